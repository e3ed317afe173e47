"""What prompt tuning, P-tuning and prefix tuning share: n virtual tokens that sit *before* the input.

The three methods differ only in what the virtual tokens are and where they enter:
- prompt tuning (Lester et al. 2021) and P-tuning (Liu et al. 2021): n embeddings prepended to the
  input embeddings ("input" tokens), so they take the first n positions and KV-cache slots;
- prefix tuning (Li & Liang 2021): n keys and values per layer ("prefix" tokens), which peft and
  transformers hand to the model as a past of length n: they fill the first n slots of each
  layer's KV cache (per-layer state, not a global), so the real tokens' positions (RoPE, learned
  or relative) start at n, exactly as in a cached continuation.

Either way the model itself is unchanged: a `VirtualTokens` module is added as `model.virtual_tokens`
and a forward pre-hook rewrites the call (prepends embeddings, fills the cache, extends the
attention mask by n ones, shifts explicit position ids by n, prepends -100 targets); a forward
hook drops the virtual positions from the returned logits and hidden states, so outputs cover the
real tokens only (peft's CAUSAL_LM logits include the n virtual positions first). An encoder-decoder's
encoder output keeps them (the decoder's cross-attention reads them), as in peft.

Saving and loading them in peft's format: llmzoo/peft/prompt_format.py.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import nn

from llmzoo.errors import LlmzooError

class VirtualTokens(nn.Module):
    """n virtual tokens produced by `encoder()` -> (n, width). kind: "input" (embeddings prepended
    to the input) or "prefix" (per-layer keys/values). `disabled` makes the model compute its base outputs."""

    kind = "input"

    def __init__(self, encoder: nn.Module, n_tokens: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.n_tokens = n_tokens
        self.disabled = False
        self._added: tuple[int, int] | int = 0  # (n, n + T) while a forward runs on prepended tokens, else 0

    def tokens(self) -> torch.Tensor:
        return self.encoder()


class Table(nn.Module):
    """A plain learned table (n, width): prompt tuning's embeddings, or a loaded adapter's tokens."""

    def __init__(self, values: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(values.detach().clone().float())

    def forward(self) -> torch.Tensor:
        return self.weight


def check_n_tokens(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise LlmzooError(f"num_virtual_tokens must be a positive integer, got {n!r}")
    return n


def attach(model: nn.Module, module: VirtualTokens) -> None:
    """Add `module` as model.virtual_tokens and hook the forward that sees the tokens first: the
    model's for decoders and encoders; for an encoder-decoder, the encoder stack's (input tokens,
    as peft prepends them to the encoder input) or the decoder stack's (prefix: peft gives the
    decoder's self-attention the past; the encoder sees none)."""
    from llmzoo.models.decoder import DecoderLM
    from llmzoo.models.encoder import EncoderModel
    from llmzoo.models.encoder_decoder import EncoderDecoderLM

    c = model.config
    if not isinstance(model, (DecoderLM, EncoderModel, EncoderDecoderLM)):
        raise LlmzooError(f"{type(module).__name__} is not supported on {c.name} ({type(model).__name__}); it works on "
                          f"decoders, encoders and encoder-decoders built from the standard stacks")
    if module.kind == "prefix" and (c.share_layers or c.attention_type != "standard"):
        raise LlmzooError(f"prefix tuning needs one standard attention per layer; {c.name} has "
                          f"{'shared layers' if c.share_layers else c.attention_type + ' attention'}")
    model.virtual_tokens = module
    if c.head == "seq_cls":  # a fresh classifier must learn too: peft's SEQ_CLS modules_to_save
        for p in model.classifier.parameters():
            p.requires_grad_(True)
    if isinstance(model, (DecoderLM, EncoderModel)):
        hooks = [model.register_forward_pre_hook(partial(_before, module, model), with_kwargs=True),
                 model.register_forward_hook(partial(_after, module), with_kwargs=True)]
    elif module.kind == "input":
        hooks = [model.encoder.register_forward_pre_hook(partial(_before_encoder_stack, module), with_kwargs=True),
                 model.decoder.register_forward_pre_hook(partial(_before_decoder_stack, module), with_kwargs=True)]
    else:
        hooks = [model.decoder.register_forward_pre_hook(partial(_before_decoder_stack, module), with_kwargs=True)]
    module._hooks = hooks


def _before(vt: VirtualTokens, model: nn.Module, _module: nn.Module, args: tuple, kwargs: dict):
    """Decoder or encoder forward: prepend the prompt or fill a prefix cache (module docstring)."""
    vt._added = 0
    if vt.disabled:
        return None
    kwargs = dict(kwargs)
    if args:  # input_ids is the only positional argument of a model's forward
        kwargs["input_ids"] = args[0]
    for field in ("document_ids", "prefix_lengths"):  # their masks would hide the virtual tokens from some rows
        if kwargs.get(field) is not None:
            raise LlmzooError(f"{field} (packed documents / prefix-LM rows) cannot be combined with a "
                              f"{type(vt).__name__} adapter yet; pad the rows instead of packing them")
    ref = kwargs.get("input_ids") if kwargs.get("input_ids") is not None else kwargs.get("inputs_embeds")
    B, T = ref.shape[:2]
    n, device = vt.n_tokens, ref.device
    cache = kwargs.get("cache")
    fresh = cache is None or cache.seq_length == 0  # the virtual tokens are not in the cache yet
    kwargs["attention_mask"] = _extended(kwargs.get("attention_mask"), n)
    if kwargs.get("position_ids") is not None:
        positions = kwargs["position_ids"] + n
        if vt.kind == "input" and fresh:
            positions = torch.cat((torch.arange(n, device=device).expand(B, n), positions), dim=1)
        kwargs["position_ids"] = positions
    if vt.kind == "input" and fresh:
        _prepend_prompt(model, vt, kwargs, B)
        vt._added = (n, n + T)
    elif vt.kind == "prefix" and fresh:
        kwargs["cache"] = vt.filled(cache, model, B, T)
    return (), kwargs


def _extended(mask: torch.Tensor | None, n: int) -> torch.Tensor | None:
    """The virtual tokens are always visible (peft prepends ones to the attention mask)."""
    return None if mask is None else torch.cat((mask.new_ones(mask.shape[0], n), mask), dim=1)


def _prepend_prompt(model: nn.Module, vt: VirtualTokens, kwargs: dict, batch: int) -> None:
    embeds = kwargs.pop("inputs_embeds", None)
    ids = kwargs.pop("input_ids", None)
    if embeds is None:
        embeds = model.embeddings.tokens(ids)
    prompt = vt.tokens().to(embeds.dtype)[None].expand(batch, -1, -1)  # (B, n, D)
    kwargs["inputs_embeds"] = torch.cat((prompt, embeds), dim=1)
    for field, fill in (("targets", -100), ("token_type_ids", 0)):  # virtual positions: no target, type 0
        if kwargs.get(field) is not None:
            kwargs[field] = torch.cat((kwargs[field].new_full((batch, vt.n_tokens), fill), kwargs[field]), dim=1)


def _after(vt: VirtualTokens, _module: nn.Module, args: tuple, kwargs: dict, out: Any) -> Any:
    """Drop the virtual positions from every per-token output (a pooled/classifier output stays)."""
    added, vt._added = vt._added, 0
    if not added:
        return out
    n, total = added
    if kwargs.get("cache") is not None:
        # The prepended prompt wrote the first n slots; the caller advances past the T tokens it passed.
        kwargs["cache"].advance(n)
    for field, value in list(out.items()):
        if isinstance(value, torch.Tensor) and value.dim() >= 2 and value.shape[1] == total:
            out[field] = value[:, n:]
        elif field == "hidden_states" and value is not None:
            out[field] = tuple(h[:, n:] for h in value)
    return out


def _before_encoder_stack(vt: VirtualTokens, _stack: nn.Module, args: tuple, kwargs: dict):
    """Encoder-decoder: the prompt goes before the encoder's token embeddings h (B, S, D)."""
    if vt.disabled:
        return None
    h = args[0] if args else kwargs.pop("h")
    prompt = vt.tokens().to(h.dtype)[None].expand(h.shape[0], -1, -1)
    kwargs = {**kwargs, "attention_mask": _extended(kwargs.get("attention_mask"), vt.n_tokens)}
    return (torch.cat((prompt, h), dim=1),), kwargs


def _before_decoder_stack(vt: VirtualTokens, stack: nn.Module, args: tuple, kwargs: dict):
    """Encoder-decoder decoder: cross-attention sees the prompt's encoder positions (their mask is
    extended); a prefix fills the first n slots of the decoder's self-attention cache."""
    if vt.disabled:
        return None
    kwargs = dict(kwargs)
    n = vt.n_tokens
    if vt.kind == "input":
        memory, mask = kwargs.get("memory"), kwargs.get("memory_attention_mask")
        if memory is not None and mask is not None and mask.shape[1] + n == memory.shape[1]:
            kwargs["memory_attention_mask"] = _extended(mask, n)
        return args, kwargs
    cache = kwargs.get("cache")
    if cache is None or cache.seq_length == 0:
        h = args[0] if args else kwargs["h"]
        kwargs["cache"] = vt.filled(cache, stack, h.shape[0], h.shape[1])
    kwargs["attention_mask"] = _extended(kwargs.get("attention_mask"), n)
    return args, kwargs
