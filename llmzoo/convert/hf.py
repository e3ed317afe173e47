"""Hugging Face checkpoints <-> llmzoo, driven by one declarative `Family` per model type.

A family lists (a) how its config.json maps to a ModelConfig and back, (b) a key map
from HF parameter names to ours with `{i}` (layer) and `{j}` (expert) placeholders,
and (c) named tensor transforms for what is not a rename (fused QKV split, GPT-2's
Conv1D transpose, per-head interleaving). Unknown keys raise: a checkpoint is never
loaded half-understood.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from llmzoo.config import ModelConfig
from llmzoo.errors import CheckpointError

Tensors = list[torch.Tensor]


@dataclass(frozen=True)
class Transform:
    """Many-to-many tensor mapping: hf keys <-> zoo keys, applied per layer/expert index."""

    hf_keys: tuple[str, ...]
    zoo_keys: tuple[str, ...]
    to_zoo: Callable[[Tensors, ModelConfig], Tensors]
    to_hf: Callable[[Tensors, ModelConfig], Tensors]
    optional: bool = False  # e.g. biases that exist only in some configs


@dataclass(frozen=True)
class Family:
    name: str  # our family name (zoo cards use it)
    model_types: tuple[str, ...]  # HF config.json "model_type" values handled here
    architecture: str  # HF class written to config.json "architectures" on save
    config_from_hf: Callable[[dict[str, Any]], ModelConfig]
    config_to_hf: Callable[[ModelConfig], dict[str, Any]]
    # hf pattern -> zoo pattern; or a function of the config when a variant renames tensors
    # (Falcon-40B's ln_attn/ln_mlp vs Falcon-7B's input_layernorm for the same zoo norms)
    key_map: dict[str, str] | Callable[[ModelConfig], dict[str, str]]
    transforms: tuple[Transform, ...] = ()
    ignore: tuple[str, ...] = ()  # regexes of HF keys that carry no weights (buffers)
    base_prefix: str = ""  # prefix of the bare model inside the *ForCausalLM class ("model.")
    check: Callable[[dict[str, Any]], None] | None = None  # raise for unsupported config variants
    # other zoo family names whose models are saved in this layout (UL2 is a T5 v1.1 checkpoint)
    zoo_families: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    # (hf config, tensor shapes by HF key) -> the hf config to build from, where a config field can
    # disagree with the weights and the weights are the truth (MPT's expansion_ratio)
    amend_from_weights: Callable[[dict[str, Any], dict[str, tuple[int, ...]]], dict[str, Any]] | None = None


def _compile(pattern: str) -> re.Pattern:
    regex = re.escape(pattern).replace(r"\{i\}", r"(?P<i>\d+)").replace(r"\{j\}", r"(?P<j>\d+)")
    return re.compile(f"^{regex}$")


def _fill(pattern: str, groups: dict[str, str]) -> str:
    for name, value in groups.items():
        pattern = pattern.replace("{" + name + "}", value)
    return pattern


def _index_sets(keys: list[str], pattern: str) -> list[dict[str, str]]:
    regex = _compile(pattern)
    found = []
    for key in keys:
        m = regex.match(key)
        if m:
            found.append(m.groupdict())
    return found


def _convert(
    state: dict[str, torch.Tensor],
    config: ModelConfig,
    renames: dict[str, str],
    transforms: list[tuple[tuple[str, ...], tuple[str, ...], Callable, bool]],
    ignore: tuple[str, ...],
    direction: str,
) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    remaining = dict(state)
    for src_keys, dst_keys, fn, optional in transforms:
        for groups in _index_sets(list(remaining), src_keys[0]):
            names = [_fill(k, groups) for k in src_keys]
            if any(n not in remaining for n in names):
                if optional:
                    continue
                missing = [n for n in names if n not in remaining]
                raise CheckpointError(f"checkpoint is missing {missing[0]} (needed with {names[0]})")
            results = fn([remaining.pop(n) for n in names], config)
            for key, tensor in zip(dst_keys, results):
                out[_fill(key, groups)] = tensor
    compiled = [(_compile(src), dst) for src, dst in renames.items()]
    ignored = [re.compile(p) for p in ignore]
    unknown = []
    for key, tensor in remaining.items():
        for regex, dst in compiled:
            m = regex.match(key)
            if m:
                out[_fill(dst, m.groupdict())] = tensor
                break
        else:
            if not any(r.search(key) for r in ignored):
                unknown.append(key)
    if unknown:
        raise CheckpointError(
            f"{len(unknown)} {'HF' if direction == 'to_zoo' else 'llmzoo'} parameter(s) not understood, "
            f"e.g. {unknown[0]!r}; this checkpoint variant is not supported"
        )
    return out


def _key_map(family: Family, config: ModelConfig) -> dict[str, str]:
    return family.key_map(config) if callable(family.key_map) else family.key_map


def hf_to_zoo(family: Family, config: ModelConfig, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename/transform an HF state dict (bare or with the *ForCausalLM prefix) to llmzoo names."""
    if family.base_prefix:
        has_prefix = any(k.startswith(family.base_prefix) for k in state)
        if not has_prefix:  # saved from the bare model class (e.g. LlamaModel)
            state = {family.base_prefix + k: v for k, v in state.items()}
    transforms = [(t.hf_keys, t.zoo_keys, t.to_zoo, t.optional) for t in family.transforms]
    return _convert(state, config, _key_map(family, config), transforms, family.ignore, "to_zoo")


def zoo_to_hf(family: Family, config: ModelConfig, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of hf_to_zoo, producing the keys `transformers` expects on disk."""
    state = dict(state)
    if config.tie_embeddings:
        state.pop("lm_head.weight", None)
    inverse = {dst: src for src, dst in _key_map(family, config).items()}
    transforms = [(t.zoo_keys, t.hf_keys, t.to_hf, t.optional) for t in family.transforms]
    return _convert(state, config, inverse, transforms, (), "to_hf")


# --- common transforms ---------------------------------------------------------------------


def split_rows(sizes: Callable[[ModelConfig], list[int]]) -> Callable[[Tensors, ModelConfig], Tensors]:
    """Fused [q; k; v] rows (or any concatenation along dim 0) -> separate tensors."""
    return lambda ts, c: [t.contiguous() for t in ts[0].split(sizes(c), dim=0)]


def cat_rows(ts: Tensors, c: ModelConfig) -> Tensors:
    return [torch.cat(ts, dim=0)]


def qkv_sizes(c: ModelConfig) -> list[int]:
    return [c.n_heads * c.hd, c.kv_heads * c.hd, c.kv_heads * c.hd]


def split_per_head_qkv(ts: Tensors, c: ModelConfig) -> Tensors:
    """Rows laid out (H, 3, hd) (GPT-NeoX, BLOOM): head h's q, k, v are adjacent."""
    t = ts[0]
    t = t.view(c.n_heads, 3, c.hd, *t.shape[1:])
    return [t[:, i].reshape(c.n_heads * c.hd, *t.shape[3:]).contiguous() for i in range(3)]


def merge_per_head_qkv(ts: Tensors, c: ModelConfig) -> Tensors:
    q, k, v = (t.view(c.n_heads, 1, c.hd, *t.shape[1:]) for t in ts)
    return [torch.cat((q, k, v), dim=1).reshape(3 * c.n_heads * c.hd, *ts[0].shape[1:]).contiguous()]


def split_grouped_qkv(ts: Tensors, c: ModelConfig) -> Tensors:
    """Rows laid out (n_kv, n_heads / n_kv + 2, hd): each KV group's queries, then its key and
    value (Falcon-40B). With n_kv = 1 this is [q; k; v] (MQA: Falcon-7B, StarCoder); with
    n_kv = n_heads it is the per-head (H, 3, hd) layout."""
    t = ts[0]
    rep = c.n_heads // c.kv_heads
    if t.shape[0] != (c.n_heads + 2 * c.kv_heads) * c.hd:
        raise CheckpointError(f"fused qkv has {t.shape[0]} rows but n_heads={c.n_heads}, n_kv_heads={c.kv_heads}, "
                              f"head_dim={c.hd} imply {(c.n_heads + 2 * c.kv_heads) * c.hd}")
    t = t.view(c.kv_heads, rep + 2, c.hd, *t.shape[1:])
    q = t[:, :rep].reshape(c.n_heads * c.hd, *t.shape[3:])
    k, v = (t[:, rep + i].reshape(c.kv_heads * c.hd, *t.shape[3:]) for i in range(2))
    return [q.contiguous(), k.contiguous(), v.contiguous()]


def merge_grouped_qkv(ts: Tensors, c: ModelConfig) -> Tensors:
    rep = c.n_heads // c.kv_heads
    q, k, v = ts
    q = q.view(c.kv_heads, rep, c.hd, *q.shape[1:])
    k, v = (x.view(c.kv_heads, 1, c.hd, *x.shape[1:]) for x in (k, v))
    return [torch.cat((q, k, v), dim=1).reshape(-1, *ts[0].shape[1:]).contiguous()]


def transpose(ts: Tensors, c: ModelConfig) -> Tensors:
    return [t.t().contiguous() for t in ts]
