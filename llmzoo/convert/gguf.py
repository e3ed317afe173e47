"""Read and write GGUF files (llama.cpp's format) as Hugging Face checkpoints.

GGUF is translated to and from the HF world: `read_gguf` returns a transformers config.json
dict and a state dict with transformers key names, so the one HF -> llmzoo converter serves
GGUF files too; `write_gguf` is the inverse and follows llama.cpp's conventions (tensor names,
Q/K row order, 1-D tensors kept in F32), so llama.cpp and `transformers` load what it writes.

    ckpt = read_gguf("SmolLM2-135M-Instruct.Q4_1.gguf")
    ckpt.hf_config["num_key_value_heads"], ckpt.state_dict["model.embed_tokens.weight"].shape
    write_gguf(ckpt.hf_config, ckpt.state_dict, "copy.gguf", tokenizer_metadata=ckpt.metadata, dtype="q8_0")
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from gguf import GGUFValueType, GGUFWriter
from tqdm.auto import tqdm

from llmzoo.convert.gguf_config import (
    dims_from_gguf,
    dims_from_hf,
    gguf_metadata_from_hf,
    hf_config_from_gguf,
    special_token_metadata,
)
from llmzoo.convert.gguf_format import GGUFFile, TensorInfo, infer_value_type
from llmzoo.convert.gguf_names import ROPE_FREQS, arch_for_gguf, arch_for_hf, is_rope_permuted, tensor_name_map
from llmzoo.convert.gguf_quants import file_type, is_quantized, quantize, tensor_type
from llmzoo.convert.gguf_rope import deinterleave_rope_rows, interleave_rope_rows
from llmzoo.errors import CheckpointError

__all__ = ["GGUFCheckpoint", "read_gguf", "write_gguf"]

_PROGRESS_ABOVE = 500  # tensors; smaller files read in seconds and need no bar
CHAT_TEMPLATE_KEY = "tokenizer.chat_template"


@dataclass
class GGUFCheckpoint:
    hf_config: dict  # a transformers config.json dict
    # (repr=False: a vocabulary and 100M weights are no use in a printout)
    state_dict: dict[str, torch.Tensor] = field(repr=False)  # transformers key names, dequantized
    metadata: dict = field(default_factory=dict, repr=False)  # the file's key/values (general.*, tokenizer.ggml.*)
    chat_template: str | None = field(default=None, repr=False)


def read_gguf(path: str | Path, dtype: torch.dtype = torch.float32, *,
              placeholder: Callable[[TensorInfo], bool] | None = None) -> GGUFCheckpoint:
    """Load a GGUF file as an HF config dict + state dict (every tensor dequantized to `dtype`).
    `placeholder(info)` true: that tensor is left as an empty meta tensor of its shape, not read
    (quant="gguf" builds those layers from the file's blocks; an fp32 copy first would be wasted)."""
    gf = GGUFFile(path)
    if "general.architecture" not in gf.metadata:
        raise CheckpointError(f"GGUF file {gf.path} lacks general.architecture; cannot tell what model it holds")
    if gf.metadata.get("split.count", 1) > 1:
        raise CheckpointError(
            f"{gf.path} is shard {gf.metadata.get('split.no', 0) + 1} of a {gf.metadata['split.count']}-part GGUF; "
            "merge the parts first (llama-gguf-split --merge)"
        )
    arch = arch_for_gguf(gf.metadata["general.architecture"])
    dims = dims_from_gguf(gf, arch)
    hf_config = hf_config_from_gguf(gf, arch, dims)
    names = tensor_name_map(arch, dims.n_layers, tied=dims.tied, biased=dims.biased)

    missing = [n for n in names if n not in gf.tensors]
    if missing:
        raise CheckpointError(
            f"GGUF file {gf.path} lacks {len(missing)} tensor(s) its metadata declares "
            f"({arch.name}.block_count={dims.n_layers}), e.g. {missing[0]}; the file is incomplete"
        )
    unknown = [n for n in gf.tensors if n not in names and n != ROPE_FREQS]
    if unknown:
        raise CheckpointError(
            f"GGUF file {gf.path} has {len(unknown)} tensor(s) a {arch.name} model does not use, "
            f"e.g. {unknown[0]}; unsupported variant"
        )

    expected = dims.shapes(arch, names)
    state_dict: dict[str, torch.Tensor] = {}
    for gguf_name, hf_name in tqdm(names.items(), desc=f"reading {gf.path.name}", unit="tensor",
                                   disable=len(names) <= _PROGRESS_ABOVE):
        if gf.tensors[gguf_name].shape != expected[hf_name]:
            raise CheckpointError(
                f"GGUF tensor {gguf_name} has shape {list(gf.tensors[gguf_name].shape)}; "
                f"the metadata implies {list(expected[hf_name])}"
            )
        if placeholder is not None and placeholder(gf.tensors[gguf_name]):
            state_dict[hf_name] = torch.empty(expected[hf_name], dtype=dtype, device="meta")
            continue
        values = gf.dequantize(gguf_name)
        if is_rope_permuted(arch, gguf_name):
            heads = dims.n_heads if ".attn_q." in gguf_name else dims.n_kv_heads
            values = deinterleave_rope_rows(values, heads)
        state_dict[hf_name] = torch.from_numpy(np.ascontiguousarray(values)).to(dtype)
    return GGUFCheckpoint(hf_config, state_dict, gf.metadata, gf.metadata.get(CHAT_TEMPLATE_KEY))


# -- writing --------------------------------------------------------------------------------------

# derived from the weights and the config; a caller's copy of these keys (e.g. the metadata of
# the file a checkpoint was read from) must not override them
_DERIVED_PREFIXES = ("GGUF.", "split.")
_DERIVED_KEYS = {"general.architecture", "general.alignment", "general.file_type", "general.quantization_version"}
_IGNORED_HF_KEYS = ("rotary_emb.inv_freq",)  # a buffer some old HF checkpoints saved


def _passthrough_metadata(metadata: dict, arch_name: str, written: set[str]) -> list[tuple[str, object]]:
    source_arch = metadata.get("general.architecture")
    keep = []
    for key, value in metadata.items():
        prefix = key.split(".")[0]
        if key in written or key in _DERIVED_KEYS or key.startswith(_DERIVED_PREFIXES):
            continue
        if prefix in (arch_name, source_arch):  # hyper-parameters: we wrote our own from hf_config
            continue
        if isinstance(value, (list, tuple)) and not value:
            continue  # gguf's writer refuses empty arrays; an empty list carries no information
        keep.append((key, value))
    return keep


def _encode(value: object) -> object:
    """Strings to bytes with surrogateescape, so tokens read from non-UTF-8 bytes are written back unchanged."""
    if isinstance(value, str):
        return value.encode("utf-8", errors="surrogateescape")
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], str):
        return [v.encode("utf-8", errors="surrogateescape") for v in value]
    return value


def _collect_tensors(hf_config: dict, state_dict: dict[str, torch.Tensor]):
    model_type = hf_config.get("model_type")
    if model_type == "mistral" and not hf_config.get("sliding_window"):
        model_type = "llama"  # as llama.cpp does: Mistral without a sliding window is the LLaMA graph
    arch = arch_for_hf(model_type)
    dims = dims_from_hf(hf_config, arch)
    names = tensor_name_map(arch, dims.n_layers, tied=dims.tied, biased=dims.biased)
    wanted = set(names.values())
    extra = [k for k in state_dict if k not in wanted and not k.endswith(_IGNORED_HF_KEYS)
             and not (dims.tied and k == "lm_head.weight")]
    if extra:
        raise CheckpointError(
            f"state dict has {len(extra)} key(s) a {arch.name} GGUF cannot hold, e.g. {extra[0]!r}; "
            "check the config (attention_bias, tie_word_embeddings) matches the weights"
        )
    missing = [h for h in names.values() if h not in state_dict]
    if missing:
        raise CheckpointError(
            f"state dict lacks {len(missing)} key(s) the config implies, e.g. {missing[0]!r}"
        )
    expected = dims.shapes(arch, names)
    for hf_name, shape in expected.items():
        if tuple(state_dict[hf_name].shape) != shape:
            got = list(state_dict[hf_name].shape)
            raise CheckpointError(f"{hf_name} has shape {got}; the config implies {list(shape)}")
    return arch, dims, names


def write_gguf(
    hf_config: dict,
    state_dict: dict[str, torch.Tensor],
    path: str | Path,
    tokenizer_metadata: dict | None = None,
    dtype: str = "f32",
) -> None:
    """Write an HF config + state dict as a llama.cpp GGUF file.

    `tokenizer_metadata`: GGUF key/values to carry over (tokenizer.ggml.*, tokenizer.chat_template,
    general.name, ...; see llmzoo.convert.gguf_tokenizer to build them from a Tokenizer);
    hyper-parameter keys in it are ignored and rewritten from `hf_config`.
    `dtype`: "f32", "f16", "bf16" or a llama.cpp quantization, "q8_0", "q4_0", "q4_1" or "q4_k_m",
    each with llama.cpp's per-tensor choices (llmzoo.convert.gguf_quants); 1-D tensors are always F32.
    """
    choice = file_type(dtype)
    arch, dims, names = _collect_tensors(hf_config, state_dict)
    arch_metadata, rope_freqs = gguf_metadata_from_hf(hf_config, arch, dims)
    tokenizer_metadata = dict(tokenizer_metadata or {})
    tokens = tokenizer_metadata.get("tokenizer.ggml.tokens")
    if tokens is not None and len(tokens) != dims.vocab:
        raise CheckpointError(f"the tokenizer metadata lists {len(tokens)} tokens but the model has {dims.vocab} "
                              "embedding rows; llama.cpp needs one token per row")

    metadata = [("general.file_type", int(choice.file_type), GGUFValueType.UINT32)]
    if is_quantized(choice.default):
        metadata.append(("general.quantization_version", 2, GGUFValueType.UINT32))  # ggml's current block layout
    metadata += arch_metadata
    metadata += [m for m in special_token_metadata(hf_config) if m[0] not in tokenizer_metadata]
    entries = [(key, value, vtype, None) for key, value, vtype in metadata]
    written = {key for key, _, _ in metadata}
    entries += [(key, value, *infer_value_type(value))
                for key, value in _passthrough_metadata(tokenizer_metadata, arch.name, written)]

    path = Path(path)
    if not path.parent.is_dir():
        raise CheckpointError(f"cannot write {path}: folder {path.parent} does not exist")
    writer = GGUFWriter(path, arch.name)
    for key, value, vtype, item_type in entries:
        writer.add_key_value(key, _encode(value), vtype, sub_type=item_type)
    if rope_freqs is not None:
        writer.add_tensor(ROPE_FREQS, rope_freqs)
    for gguf_name, hf_name in names.items():
        values = state_dict[hf_name].detach().to("cpu", torch.float32).numpy()
        if is_rope_permuted(arch, gguf_name):
            heads = dims.n_heads if ".attn_q." in gguf_name else dims.n_kv_heads
            values = interleave_rope_rows(values, heads)
        qtype = tensor_type(gguf_name, values.shape, choice, dims.n_layers, dims.tied)
        writer.add_tensor(gguf_name, quantize(values, qtype), raw_dtype=qtype)
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file(progress=len(names) > _PROGRESS_ABOVE)
    except OSError as e:
        raise CheckpointError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        writer.close()

