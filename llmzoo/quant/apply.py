"""Swap a loaded model's nn.Linear layers for QuantLinear: from a GGUF file's own blocks, or by
quantizing the float weights (int8 / int4).

Only modules of type exactly nn.Linear are swapped: embeddings and norms are not linear layers,
an MoE router stays in fp32 (its top-k choice is discrete, so small errors flip routes), and
layers an adapter wraps (LoRA's wrapper) keep their float base. For int8/int4 a tied LM head is
replaced by a quantized *copy* of the embedding matrix and the lookup keeps the fp32 table (the tie
is broken on purpose: quantized models are for inference). From a GGUF file the token embedding
keeps the file's blocks too (QuantEmbedding), on the same tensors as a tied head: one copy.

llmzoo.load(path, quant="gguf") reads the file with the tensors `built_from_blocks` names left as
meta placeholders, so no fp32 copy of them is ever made; `quantize_from_gguf` then builds those
layers from the memory-mapped blocks and dequantizes whatever placeholder no quantized module took.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from llmzoo.errors import CheckpointError, LlmzooError
from llmzoo.quant.gguf_blocks import GroupedInts, can_unpack, unpack
from llmzoo.quant.int4_planes import KERNEL_GROUPS, Int4Planes
from llmzoo.quant.int_quant import quantize_int4, quantize_int8_rows
from llmzoo.quant import grouped_codes, native
from llmzoo.quant.linear import QuantLinear
from llmzoo.quant.quant_embedding import QuantEmbedding

QUANT_METHODS = ("gguf", "int8", "int4")
INT4_GROUP = 32  # inputs per int4 scale/zero: Q4_1's group; 64 and 128 (if they divide K) also run
_SKIP = ("router",)  # MoE routers: see the module docstring
_READ_BYTES = 4 << 20  # GGUF bytes read at a time while building a layer from the file's blocks


def check_quant(quant: str | None) -> str | None:
    """The quant method by name (None: no quantization); a typed error naming the supported ones."""
    if quant is None:
        return None
    if not isinstance(quant, str) or quant.lower() not in QUANT_METHODS:
        raise LlmzooError(f"unknown quant {quant!r}; supported: {', '.join(QUANT_METHODS)} (leave it out for float weights)")
    return quant.lower()


def built_from_blocks(info) -> bool:
    """Whether quant="gguf" runs this GGUF tensor (a llmzoo.convert.gguf_format.TensorInfo) from its
    blocks, so reading it as fp32 would be wasted: the 2-D tensors of a type with an unpacker."""
    return len(info.shape) == 2 and can_unpack(info.qtype)


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

    # the blocks, read as they are on disk, one tensor at a time: plain reads, not a memory map,
    # whose touched pages would count in the process's resident memory until the whole load ends
    data = open(gf.path, "rb")

    def heads_of(gguf_name: str) -> int | None:  # llama.cpp permuted Q/K rows, which read_gguf undoes
        if not is_rope_permuted(arch, gguf_name):
            return None
        return dims.n_heads if ".attn_q." in gguf_name else dims.n_kv_heads

    def rows(gguf_name: str, r0: int = 0, r1: int | None = None) -> np.ndarray:
        """Rows [r0, r1) as (rows, bytes per row), in the float weights' row order."""
        info = gf.tensors[gguf_name]
        n, row_bytes = info.shape[0], info.n_bytes // info.shape[0]
        heads = heads_of(gguf_name)
        r0, r1 = (0, n) if heads is not None else (r0, n if r1 is None else r1)  # permuted: read them all
        data.seek(info.offset + r0 * row_bytes)
        raw = np.fromfile(data, dtype=np.uint8, count=(r1 - r0) * row_bytes).reshape(r1 - r0, row_bytes)
        if heads is not None:  # rows are independent: move their bytes
            raw = raw[deinterleave_rope_rows(np.arange(n), heads)]
        return raw

    def blocks(gguf_name: str) -> GroupedInts:
        return unpack(rows(gguf_name), gf.tensors[gguf_name].qtype, gf.tensors[gguf_name].shape)

    def layer(gguf_name: str, bias: torch.Tensor | None) -> QuantLinear:
        info = gf.tensors[gguf_name]
        qtype, n = info.qtype.name, info.shape[0]
        if not (native.available() and grouped_codes.stored_as_codes(qtype)):
            return _from_grouped(blocks(gguf_name), bias, qtype)
        # the file's bytes are the kernel's codes: copied into place a few MB of rows at a time, so
        # a big matrix (the 49k-row head) never has a second whole copy beside it while it loads
        step = n if heads_of(gguf_name) is not None else max(1, _READ_BYTES * n // info.n_bytes)
        out = None
        for r0 in range(0, n, step):
            part = grouped_codes.from_blocks(rows(gguf_name, r0, min(n, r0 + step)), qtype)
            if out is None:
                out = [t.new_empty((n, *t.shape[1:])) for t in part[:3]]
            for whole, piece in zip(out, part[:3]):
                whole[r0: r0 + piece.shape[0]] = piece
        return QuantLinear.from_packed(*out, part[3], bias, qtype)

    fallback: dict[str, int] = {}
    try:
        for name, linear in _linears(model):
            gguf_name = source_of.get(f"{name}.weight")
            if gguf_name is None:
                continue  # not from the file (cannot happen for the supported architectures)
            info = gf.tensors[gguf_name]
            if not can_unpack(info.qtype):
                if info.qtype.name not in ("F32", "F16", "BF16"):
                    fallback[info.qtype.name] = fallback.get(info.qtype.name, 0) + 1
                continue
            _replace(model, name, layer(gguf_name, linear.bias))
        _quantize_embedding(model, source_of, gf, blocks)
    finally:
        data.close()
    _read_placeholders(model, source_of, gf, heads_of)
    if fallback:
        kinds = ", ".join(f"{k} ({n})" for k, n in sorted(fallback.items()))
        warnings.warn(f"{Path(path).name}: no native matmul for {kinds}; those layers run dequantized in fp32",
                      stacklevel=2)
    model.quant = "gguf"
    return model


def _quantize_embedding(model: nn.Module, source_of: dict, gf, blocks) -> None:
    """The token embedding as a QuantEmbedding on the file's codes: the tied head's own tensors
    where the head is that same GGUF tensor in the grouped layout, else its own unpacked copy."""
    key = "embeddings.tokens.weight"
    gguf_name = source_of.get(key)
    embedding = model.get_submodule("embeddings.tokens") if gguf_name is not None else None
    if type(embedding) is not nn.Embedding or not built_from_blocks(gf.tensors[gguf_name]):
        return
    source = gf.tensors[gguf_name].qtype.name
    head = getattr(model, "lm_head", None)
    if isinstance(head, QuantLinear) and head.kind == "grouped" and source_of.get("lm_head.weight") == gguf_name:
        new = QuantEmbedding.sharing(head)
    else:
        grouped = blocks(gguf_name)
        if not grouped_codes.fits(grouped):
            return  # (Q6_K's groups of 16, no native kernel): the fp32 table, read below
        codes, scale, offset, bits = grouped_codes.pack(grouped)
        new = QuantEmbedding(codes, scale.contiguous().view(torch.int32), offset.contiguous().view(torch.int32),
                             bits, grouped.codes.shape[1], source)
    _replace(model, "embeddings.tokens", new)


def _read_placeholders(model: nn.Module, source_of: dict, gf, heads_of) -> None:
    """Dequantize into fp32 every meta placeholder (see the module docstring) no quantized module
    replaced: a layer the kernels cannot take (an MoE router, an embedding of Q6_K, ...)."""
    from llmzoo.convert.gguf_rope import deinterleave_rope_rows

    read: dict[str, nn.Parameter] = {}  # by GGUF name: a tied pair stays one parameter
    for name, param in list(model.named_parameters(remove_duplicate=False)):
        if not param.is_meta:
            continue
        gguf_name = source_of.get(name)
        if gguf_name is None:
            raise CheckpointError(f"internal: {name} was left unread by quant='gguf' and maps to no GGUF tensor")
        if gguf_name not in read:
            values = gf.dequantize(gguf_name)
            if (heads := heads_of(gguf_name)) is not None:
                values = deinterleave_rope_rows(values, heads)
            read[gguf_name] = nn.Parameter(torch.from_numpy(np.ascontiguousarray(values)), param.requires_grad)
        owner, _, leaf = name.rpartition(".")
        setattr(model.get_submodule(owner) if owner else model, leaf, read[gguf_name])
