"""Swap a loaded model's nn.Linear layers for QuantLinear: from a GGUF file's own blocks, or by
quantizing the float weights (int8 / int4).

Only modules of type exactly nn.Linear are swapped: embeddings and norms are not linear layers,
an MoE router stays in fp32 (its top-k choice is discrete, so small errors flip routes), and
layers an adapter wraps (LoRA's wrapper) keep their float base. A tied LM head is replaced by a
quantized *copy* of the embedding matrix; the embedding lookup itself keeps the fp32 table, so
the tie is broken on purpose (quantized models are for inference).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from llmzoo.errors import LlmzooError
from llmzoo.quant.gguf_blocks import GroupedInts, can_unpack, unpack
from llmzoo.quant.int4_planes import KERNEL_GROUPS, Int4Planes
from llmzoo.quant.int_quant import quantize_int4, quantize_int8_rows
from llmzoo.quant import grouped_codes
from llmzoo.quant.linear import QuantLinear

QUANT_METHODS = ("gguf", "int8", "int4")
INT4_GROUP = 32  # inputs per int4 scale/zero: Q4_1's group; 64 and 128 (if they divide K) also run
_SKIP = ("router",)  # MoE routers: see the module docstring


def check_quant(quant: str | None) -> str | None:
    """The quant method by name (None: no quantization); a typed error naming the supported ones."""
    if quant is None:
        return None
    if not isinstance(quant, str) or quant.lower() not in QUANT_METHODS:
        raise LlmzooError(f"unknown quant {quant!r}; supported: {', '.join(QUANT_METHODS)} (leave it out for float weights)")
    return quant.lower()


def _linears(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    return [(name, m) for name, m in model.named_modules()
            if type(m) is nn.Linear and name.rsplit(".", 1)[-1] not in _SKIP]


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def _from_grouped(g: GroupedInts, bias: torch.Tensor | None, source: str, keep_fp32: bool = True) -> QuantLinear:
    if grouped_codes.fits(g):  # llmzoo's own kernel where it builds: ~2x PyTorch's int4 kernel on AVX2
        return QuantLinear.from_grouped_codes(g, bias, source)
    planes = Int4Planes.from_codes(torch.from_numpy(g.codes), torch.from_numpy(g.scale),
                                   torch.from_numpy(g.offset), g.bits, g.group, keep_fp32=keep_fp32)
    return QuantLinear.from_planes(planes, bias, source)


def quantize_model(model: nn.Module, method: str, group: int = INT4_GROUP) -> nn.Module:
    """Quantize every nn.Linear of `model` in place: "int8" (per-row) or "int4" (`group` inputs per
    scale and zero). Layers whose in_features the group does not divide stay fp32, with a warning."""
    if method not in ("int8", "int4"):
        raise LlmzooError(f"quantize_model takes 'int8' or 'int4', not {method!r} (GGUF blocks: llmzoo.load(path, quant='gguf'))")
    if method == "int4" and group not in KERNEL_GROUPS:
        raise LlmzooError(f"int4 group size {group} is not one the kernel runs; choose one of {KERNEL_GROUPS}")
    skipped = []
    for name, linear in _linears(model):
        if method == "int8":
            codes, scale = quantize_int8_rows(linear.weight)
            new = QuantLinear.from_int8_rows(codes, scale, linear.bias)
        elif linear.in_features % group:
            skipped.append(name)
            continue
        else:
            # its scales and zeros are bf16 values already: the kernel's copy is exact, no fp32 copy needed
            new = _from_grouped(quantize_int4(linear.weight, group), linear.bias, f"int4 g{group}", keep_fp32=False)
        _replace(model, name, new)
    if skipped:
        warnings.warn(f"{len(skipped)} linear layer(s) kept in fp32: in_features not a multiple of the int4 group "
                      f"{group} (e.g. {skipped[0]})", stacklevel=2)
    model.quant = method
    return model


def quantize_from_gguf(model: nn.Module, path: str | Path) -> nn.Module:
    """Replace the linear layers of `model` (just loaded from the GGUF file `path`) by QuantLinear
    layers made from the file's own blocks. Types without a native path are left as the fp32
    weights already loaded (dequantized), with one warning naming them."""
    from llmzoo.convert.families import family_for_model_type
    from llmzoo.convert.gguf_config import dims_from_gguf, hf_config_from_gguf
    from llmzoo.convert.gguf_format import GGUFFile
    from llmzoo.convert.gguf_names import arch_for_gguf, is_rope_permuted, tensor_name_map
    from llmzoo.convert.gguf_rope import deinterleave_rope_rows
    from llmzoo.convert.hf import hf_to_zoo

    gf = GGUFFile(path)
    arch = arch_for_gguf(gf.metadata.get("general.architecture"))
    dims = dims_from_gguf(gf, arch)
    names = tensor_name_map(arch, dims.n_layers, tied=dims.tied, biased=dims.biased)
    family = family_for_model_type(hf_config_from_gguf(gf, arch, dims).get("model_type"))
    # Which llmzoo parameter each GGUF tensor became: run the HF -> llmzoo key map on meta
    # placeholders and follow the objects (a renamed tensor is the same object).
    placeholders = {hf: torch.empty(gf.tensors[g].shape, device="meta") for g, hf in names.items()}
    zoo_keys = {id(t): key for key, t in hf_to_zoo(family, model.config, placeholders).items()}
    source_of = {zoo_keys[id(placeholders[hf])]: g for g, hf in names.items() if id(placeholders[hf]) in zoo_keys}
    if getattr(model.config, "tie_embeddings", False) and "lm_head.weight" not in source_of:
        source_of["lm_head.weight"] = source_of.get("embeddings.tokens.weight")

    data = np.memmap(gf.path, dtype=np.uint8, mode="r")  # the blocks, read as they are on disk
    fallback: dict[str, int] = {}
    for name, linear in _linears(model):
        gguf_name = source_of.get(f"{name}.weight")
        if gguf_name is None:
            continue  # not from the file (cannot happen for the supported architectures)
        info = gf.tensors[gguf_name]
        if not can_unpack(info.qtype):
            if info.qtype.name not in ("F32", "F16", "BF16"):
                fallback[info.qtype.name] = fallback.get(info.qtype.name, 0) + 1
            continue
        n_rows = info.shape[0]
        raw = np.asarray(data[info.offset: info.offset + info.n_bytes]).reshape(n_rows, -1)
        grouped = unpack(raw, info.qtype, info.shape)
        if is_rope_permuted(arch, gguf_name):  # the row order read_gguf undid on the float weights
            heads = dims.n_heads if ".attn_q." in gguf_name else dims.n_kv_heads
            grouped = grouped.take_rows(deinterleave_rope_rows(np.arange(n_rows), heads))
        _replace(model, name, _from_grouped(grouped, linear.bias, info.qtype.name))
    if fallback:
        kinds = ", ".join(f"{k} ({n})" for k, n in sorted(fallback.items()))
        warnings.warn(f"{Path(path).name}: no native matmul for {kinds}; those layers run dequantized in fp32",
                      stacklevel=2)
    model.quant = "gguf"
    return model
