"""Prefix tuning (Li & Liang 2021, "Prefix-Tuning: Optimizing Continuous Prompts for Generation"):
n learned keys and values in front of every layer's attention; peft's PREFIX_TUNING.

    llmzoo.peft.apply(model, "prefix_tuning", num_virtual_tokens=20)                        # a free table
    llmzoo.peft.apply(model, "prefix_tuning", num_virtual_tokens=20, prefix_projection=True,
                      encoder_hidden_size=128)     # the paper's reparameterisation: an MLP over n embeddings

The prefix is a past of n tokens, as in peft and transformers: it fills the first n slots of each
layer's KV cache (llmzoo.peft.virtual_tokens), so the real tokens' positions start at n (RoPE
rotates them by n.., the prefix keys are not rotated) and every mask sees n visible tokens first.
Widths follow peft's rule for grouped-query attention: n_kv_heads x head_dim per layer.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from llmzoo.errors import LlmzooError
from llmzoo.infer.cache import AttentionState, Cache
from llmzoo.peft.names import ModuleNames
from llmzoo.peft.methods import Method, register
from llmzoo.peft.prompt_format import check_task, config_int, loaded_tokens, saved_tensors
from llmzoo.peft.virtual_tokens import Table, VirtualTokens, attach, check_n_tokens

OPTIONS = ("num_virtual_tokens", "prefix_projection", "encoder_hidden_size")


class PrefixTuning(VirtualTokens):
    kind = "prefix"

    def __init__(self, encoder: nn.Module, n_tokens: int, n_layers: int, n_kv_heads: int, head_dim: int,
                 seq2seq: bool = False) -> None:
        super().__init__(encoder, n_tokens)
        self.shape = (n_layers, n_kv_heads, head_dim)
        # Which of the table's L (key, value) pairs each layer reads. peft's SEQ_2_SEQ_LM prefix
        # (num_transformer_submodules=2) doubles the L pairs and gives decoder layer i chunks 4i, 4i+1
        # of the doubled list, i.e. pair 2i mod L; the other pairs it builds for cross-attention are
        # dropped. llmzoo reads the same pairs, so adapters mean the same in both.
        self.pairs = [(2 * i) % n_layers if seq2seq else i for i in range(n_layers)]

    def filled(self, cache, owner: nn.Module, batch: int, new_tokens: int):
        """`cache` (a new one of n + new_tokens slots if None) with each layer's n prefix keys/values
        in its first slots: the prefix is a past of n tokens."""
        if cache is None:
            cache = Cache.for_model(owner, batch, self.n_tokens + new_tokens)
        n_layers, kv, hd = self.shape
        # (n, L * 2 * KV * hd) -> (L * 2, KV, n, hd): peft's layout, pair p's keys at 2p, values at 2p + 1
        table = self.tokens().view(self.n_tokens, n_layers * 2, kv, hd).permute(1, 2, 0, 3)
        for layer, pair in enumerate(self.pairs):
            state = cache.state(("self", layer), lambda *a: AttentionState.empty(a[0], kv, hd, *a[1:]))
            k, v = (t.to(cache.dtype)[None].expand(batch, -1, -1, -1) for t in (table[2 * pair], table[2 * pair + 1]))
            state.write(k, v, cache.write_position)
        cache.advance(self.n_tokens)
        return cache


class PrefixEncoder(nn.Module):
    """The paper's reparameterisation: Embedding(n, W) -> Linear(W, H) Tanh Linear(H, L * 2 * W)."""

    def __init__(self, n: int, width: int, hidden: int, n_layers: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n, width)
        self.transform = nn.Sequential(nn.Linear(width, hidden), nn.Tanh(), nn.Linear(hidden, n_layers * 2 * width))

    def forward(self) -> torch.Tensor:
        return self.transform(self.embedding.weight)


def _dims(model: nn.Module) -> tuple[int, int, int]:
    """(layers that get a prefix, key/value heads, head dim): an encoder-decoder's decoder layers."""
    c = model.config
    return c.decoder_layers if c.arch == "encoder_decoder" else c.n_layers, c.kv_heads, c.hd


def apply_prefix_tuning(model: nn.Module, **options: Any) -> None:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise LlmzooError(f"unknown prefix tuning option(s) {', '.join(unknown)}; valid: {', '.join(OPTIONS)}")
    n = check_n_tokens(options.get("num_virtual_tokens", 20))
    n_layers, kv, hd = _dims(model)
    width = kv * hd
    device = model.embeddings.tokens.weight.device
    if options.get("prefix_projection", False):
        hidden = options.get("encoder_hidden_size", width)
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden <= 0:
            raise LlmzooError(f"encoder_hidden_size must be a positive integer, got {hidden!r}")
        encoder: nn.Module = PrefixEncoder(n, width, hidden, n_layers)
    else:
        hidden = width
        encoder = Table(torch.randn(n, n_layers * 2 * width))  # nn.Embedding's N(0, 1), as peft's table
    module = PrefixTuning(encoder.to(device), n, n_layers, kv, hd, seq2seq=model.config.arch == "encoder_decoder")
    module.settings = {"prefix_projection": bool(options.get("prefix_projection", False)),
                       "encoder_hidden_size": hidden}
    attach(model, module)


def save_prefix_tuning(model: nn.Module, names: ModuleNames) -> tuple[dict, dict]:
    n_layers, kv, hd = _dims(model)
    vt = model.virtual_tokens
    settings = getattr(vt, "settings", None) or {"prefix_projection": False, "encoder_hidden_size": kv * hd}
    return saved_tensors(model, names), {
        "num_virtual_tokens": vt.n_tokens, "token_dim": kv * hd, "num_attention_heads": kv, "num_layers": n_layers,
        "num_transformer_submodules": 2 if model.config.arch == "encoder_decoder" else 1, "init_weights": None,
        **settings}


def load_prefix_tuning(model: nn.Module, cfg: dict, tensors: dict, names: ModuleNames, where: str) -> None:
    check_task(model, cfg, where)
    n_layers, kv, hd = _dims(model)
    n = check_n_tokens(cfg.get("num_virtual_tokens"))
    config_int(cfg, "num_layers", n_layers, where, "layers")
    config_int(cfg, "token_dim", kv * hd, where, f"key/value width per layer (n_kv_heads {kv} x head_dim {hd})")
    config_int(cfg, "num_attention_heads", kv, where, "key/value heads")
    values = loaded_tokens(model, tensors, names, where, n, n_layers * 2 * kv * hd,
                           "num_virtual_tokens x layers x 2 x kv width")
    submodules = cfg.get("num_transformer_submodules") or (2 if model.config.arch == "encoder_decoder" else 1)
    if submodules != (2 if model.config.arch == "encoder_decoder" else 1):
        raise LlmzooError(f"{where}: num_transformer_submodules={submodules} is not supported for a "
                          f"{model.config.arch} base (peft writes {2 if submodules == 1 else 1})")
    module = PrefixTuning(Table(values.to(model.embeddings.tokens.weight.device)), n, n_layers, kv, hd,
                          seq2seq=submodules == 2)
    module.settings = {"prefix_projection": cfg.get("prefix_projection", False),
                       "encoder_hidden_size": cfg.get("encoder_hidden_size", kv * hd)}
    attach(model, module)


def describe_prefix(cfg: dict, shapes: dict) -> dict:
    return {"num_virtual_tokens": cfg.get("num_virtual_tokens"), "num_layers": cfg.get("num_layers"),
            "token_dim": cfg.get("token_dim"), "prefix_projection": cfg.get("prefix_projection", False),
            "trainable_parameters": sum(int(torch.Size(s).numel()) for s in shapes.values())}


register(Method(
    name="prefix_tuning", peft_type="PREFIX_TUNING", module_types=(PrefixTuning,), apply=apply_prefix_tuning,
    save=save_prefix_tuning, load=load_prefix_tuning, describe=describe_prefix, title="prefix tuning",
))
