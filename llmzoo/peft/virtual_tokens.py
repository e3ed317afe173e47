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
real tokens only (peft's CAUSAL_LM logits include the n virtual positions first).

peft saves every one of them as one tensor, `prompt_embeddings` (n, width): the virtual tokens as
computed (for P-tuning and projected prefixes, the encoder's output: peft does not save the
encoder), which is what `load` reads back into a fixed table.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from llmzoo.errors import LlmzooError

PROMPT_KEY = "prompt_embeddings"


class VirtualTokens(nn.Module):
    """n virtual tokens produced by `encoder()` -> (n, width). kind: "input" (embeddings prepended
    to the input) or "prefix" (per-layer keys/values). `disabled` makes the model compute its base outputs."""

    kind = "input"

    def __init__(self, encoder: nn.Module, n_tokens: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.n_tokens = n_tokens
        self.disabled = False
        self._added = 0  # virtual positions the running forward prepended (the post-hook strips them)

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
    """Add `module` as model.virtual_tokens and hook the model's forward (see the module docstring)."""
    if model.config.arch != "decoder":
        raise LlmzooError(f"{type(module).__name__} on a {model.config.arch} model is not supported yet "
                          f"(llmzoo has it for decoder models)")
    if getattr(model, "virtual_tokens", None) is not None:
        raise LlmzooError("this model already has virtual tokens (a prompt/prefix adapter)")
    model.virtual_tokens = module
    module._hooks = (model.register_forward_pre_hook(_before, with_kwargs=True),
                     model.register_forward_hook(_after, with_kwargs=True))


def n_virtual(model: nn.Module) -> int:
    """Positions the virtual tokens take before the input (0 without, or while disabled)."""
    vt = getattr(model, "virtual_tokens", None)
    return vt.n_tokens if vt is not None and not vt.disabled else 0


def _before(model: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
    vt: VirtualTokens = model.virtual_tokens
    vt._added = 0
    if vt.disabled:
        return None
    kwargs = dict(kwargs)
    if args:  # input_ids is the only positional argument of a model's forward
        kwargs["input_ids"] = args[0]
    ref = kwargs.get("input_ids") if kwargs.get("input_ids") is not None else kwargs.get("inputs_embeds")
    B, T = ref.shape[:2]
    n, device = vt.n_tokens, ref.device
    cache = kwargs.get("cache")
    fresh = cache is None or cache.length == 0  # the virtual tokens are not in the cache yet
    if kwargs.get("attention_mask") is not None:  # the virtual tokens are always visible (peft: ones)
        mask = kwargs["attention_mask"]
        kwargs["attention_mask"] = torch.cat((mask.new_ones(B, n), mask), dim=1)
    if kwargs.get("position_ids") is not None:
        positions = kwargs["position_ids"] + n
        if vt.kind == "input" and fresh:
            positions = torch.cat((torch.arange(n, device=device).expand(B, n), positions), dim=1)
        kwargs["position_ids"] = positions
    if vt.kind == "input" and fresh:
        _prepend_prompt(model, vt, kwargs, B)
    elif vt.kind == "prefix" and fresh:
        if cache is None:  # a full forward: the prefix is a past of n tokens in a cache of n + T
            from llmzoo.infer.cache import KVCache

            cache = KVCache.for_model(model, B, n + T)
            kwargs["cache"] = cache
        vt.fill(cache, B)
    return (), kwargs


def _prepend_prompt(model: nn.Module, vt: VirtualTokens, kwargs: dict, batch: int) -> None:
    embeds = kwargs.pop("inputs_embeds", None)
    ids = kwargs.pop("input_ids", None)
    if embeds is None:
        embeds = model.embeddings.tokens(ids)
    prompt = vt.tokens().to(embeds.dtype)[None].expand(batch, -1, -1)  # (B, n, D)
    kwargs["inputs_embeds"] = torch.cat((prompt, embeds), dim=1)
    if kwargs.get("targets") is not None:  # the virtual positions predict nothing
        targets = kwargs["targets"]
        kwargs["targets"] = torch.cat((targets.new_full((batch, vt.n_tokens), -100), targets), dim=1)
    vt._added = vt.n_tokens


def _after(model: nn.Module, args: tuple, kwargs: dict, out: Any) -> Any:
    vt: VirtualTokens = model.virtual_tokens
    n, vt._added = vt._added, 0
    if not n:
        return out
    if out.get("logits") is not None and not kwargs.get("logits_to_keep"):
        out["logits"] = out["logits"][:, n:]
    out["last_hidden_state"] = out["last_hidden_state"][:, n:]
    if out.get("hidden_states") is not None:
        out["hidden_states"] = tuple(h[:, n:] for h in out["hidden_states"])
    return out


def saved_tokens(model: nn.Module) -> torch.Tensor:
    """The virtual tokens as peft saves them: (n, width), computed, detached."""
    with torch.no_grad():
        return model.virtual_tokens.tokens().detach().float().contiguous()


def loaded_tokens(tensors: dict[str, torch.Tensor], where: str, n: int, width: int, what: str) -> torch.Tensor:
    """The `prompt_embeddings` tensor of a saved adapter, checked against this base."""
    extra = sorted(set(tensors) - {PROMPT_KEY})
    if PROMPT_KEY not in tensors or extra:
        raise LlmzooError(f"{where}: a prompt-learning adapter holds one tensor {PROMPT_KEY!r}; found "
                          f"{', '.join(sorted(tensors)) or 'none'}")
    values = tensors[PROMPT_KEY]
    if tuple(values.shape) != (n, width):
        raise LlmzooError(f"{where}: {PROMPT_KEY} has shape {tuple(values.shape)} but this base needs ({n}, {width}) "
                          f"({what}); the adapter was made for another model")
    return values


def config_int(cfg: dict[str, Any], field: str, want: int, where: str, what: str) -> None:
    """A layer count or width in the adapter's config that must match this base: say which differs."""
    got = cfg.get(field)
    if got is not None and got != want:
        raise LlmzooError(f"{where}: the adapter's {field}={got} but this base has {want} {what}; "
                          f"the adapter was made for another model")
