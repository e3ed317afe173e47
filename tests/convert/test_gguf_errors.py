"""Bad GGUF input fails with one CheckpointError line that says what is wrong, never a traceback
from deep inside numpy or gguf."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFWriter
from gguf.quants import quantize

from llmzoo.convert.gguf import read_gguf, write_gguf
from llmzoo.convert.gguf_format import GGUFFile
from llmzoo.errors import CheckpointError, ConfigError, LlmzooError

CONFIG = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 4096, "hidden_size": 64,
          "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
          "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 128, "tie_word_embeddings": False}


def llama_state_dict(config: dict) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    h, f, v = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    d = h // config["num_attention_heads"]
    kv = config["num_key_value_heads"] * d
    state = {"model.embed_tokens.weight": torch.randn(v, h, generator=g),
             "model.norm.weight": torch.randn(h, generator=g),
             "lm_head.weight": torch.randn(v, h, generator=g)}
    for i in range(config["num_hidden_layers"]):
        for name, shape in [("self_attn.q_proj.weight", (h, h)), ("self_attn.k_proj.weight", (kv, h)),
                            ("self_attn.v_proj.weight", (kv, h)), ("self_attn.o_proj.weight", (h, h)),
                            ("mlp.gate_proj.weight", (f, h)), ("mlp.up_proj.weight", (f, h)),
                            ("mlp.down_proj.weight", (h, f)), ("input_layernorm.weight", (h,)),
                            ("post_attention_layernorm.weight", (h,))]:
            state[f"model.layers.{i}.{name}"] = torch.randn(*shape, generator=g)
    return state


@pytest.fixture(scope="module")
def good_gguf(tmp_path_factory) -> Path:
    """A valid 2-layer LLaMA GGUF of about 2 MB (f32)."""
    path = tmp_path_factory.mktemp("gguf") / "good.gguf"
    write_gguf(CONFIG, llama_state_dict(CONFIG), path)
    assert path.stat().st_size > 2_000_000
    return path


def rewrite(src: Path, dst: Path, arch: str | None = None, drop: tuple[str, ...] = (),
            retype: dict[str, GGMLQuantizationType] | None = None) -> Path:
    """Copy a GGUF with gguf.GGUFWriter, changing the architecture, dropping or re-typing tensors."""
    gf = GGUFFile(src)
    arch = arch or gf.metadata["general.architecture"]
    writer = GGUFWriter(dst, arch)
    for key, value in gf.metadata.items():
        if key == "general.architecture":
            continue
        key = key.replace(gf.metadata["general.architecture"] + ".", arch + ".", 1)
        if isinstance(value, float):
            writer.add_float32(key, value)
        elif isinstance(value, int):
            writer.add_uint32(key, value)
        else:
            writer.add_string(key, value)
    for name in gf.tensors:
        if name in drop:
            continue
        values = gf.dequantize(name)
        qtype = (retype or {}).get(name, GGMLQuantizationType.F32)
        if qtype == GGMLQuantizationType.Q8_1:  # gguf cannot make these; any bytes of the right size do
            block, size = GGML_QUANT_SIZES[qtype]
            data = np.zeros((values.shape[0], values.shape[1] // block * size), dtype=np.uint8)
        else:
            data = quantize(values, qtype)
        writer.add_tensor(name, data, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dst


def read_error(path) -> str:
    with pytest.raises(CheckpointError) as info:
        read_gguf(path)
    message = str(info.value)
    assert "\n" not in message and message, message
    return message


def test_the_fixture_file_is_good(good_gguf, tmp_path):
    assert read_gguf(good_gguf).hf_config["num_hidden_layers"] == 2
    assert read_gguf(rewrite(good_gguf, tmp_path / "copy.gguf")).hf_config["num_hidden_layers"] == 2


def test_missing_file(tmp_path):
    assert "not found" in read_error(tmp_path / "nope.gguf")


def test_directory(tmp_path):
    assert "directory" in read_error(tmp_path)


@pytest.mark.parametrize("content", [b"", b"GG", b"PK\x03\x04 a zip file", b"{\"model_type\": \"llama\"}\n"])
def test_not_a_gguf(tmp_path, content):
    path = tmp_path / "fake.gguf"
    path.write_bytes(content)
    assert "not a GGUF file" in read_error(path)


@pytest.mark.parametrize("keep", [6, 20, 300, 1_000_000, -1])
def test_truncated(good_gguf, tmp_path, keep):
    """Cut in the header, in the metadata, in the tensor directory, in the data, and one byte short."""
    data = good_gguf.read_bytes()
    path = tmp_path / "cut.gguf"
    path.write_bytes(data[:keep])
    assert "truncated" in read_error(path)


def test_unknown_version(good_gguf, tmp_path):
    data = bytearray(good_gguf.read_bytes())
    data[4:8] = (99).to_bytes(4, "little")
    path = tmp_path / "v99.gguf"
    path.write_bytes(bytes(data))
    assert "version 99" in read_error(path)


def test_unsupported_architecture(good_gguf, tmp_path):
    message = read_error(rewrite(good_gguf, tmp_path / "foo.gguf", arch="foo"))
    assert "'foo'" in message and "llama" in message


def test_missing_block_tensor(good_gguf, tmp_path):
    message = read_error(rewrite(good_gguf, tmp_path / "short.gguf", drop=("blk.1.ffn_down.weight",)))
    assert "blk.1.ffn_down.weight" in message and "block_count=2" in message


def test_unsupported_quantization_type(good_gguf, tmp_path):
    retype = {"blk.0.ffn_up.weight": GGMLQuantizationType.Q8_1}
    message = read_error(rewrite(good_gguf, tmp_path / "q8_1.gguf", retype=retype))
    assert "Q8_1" in message and "blk.0.ffn_up.weight" in message and "Q4_K" in message


def test_write_refuses_what_it_cannot_represent(tmp_path):
    state = llama_state_dict(CONFIG)
    with pytest.raises(CheckpointError, match="'gpt2'"):
        write_gguf({**CONFIG, "model_type": "gpt2"}, state, tmp_path / "a.gguf")
    with pytest.raises(CheckpointError, match="lacks"):
        write_gguf(CONFIG, {k: v for k, v in state.items() if "layers.1.mlp" not in k}, tmp_path / "b.gguf")
    with pytest.raises(CheckpointError, match="cannot hold"):
        write_gguf(CONFIG, {**state, "model.layers.0.mlp.gate_proj.bias": torch.zeros(128)}, tmp_path / "c.gguf")
    with pytest.raises(CheckpointError, match="shape"):
        write_gguf({**CONFIG, "num_key_value_heads": 4}, state, tmp_path / "d.gguf")
    with pytest.raises(ConfigError, match="q2_k"):
        write_gguf(CONFIG, state, tmp_path / "e.gguf", dtype="q2_k")
    with pytest.raises(CheckpointError, match="does not exist"):
        write_gguf(CONFIG, state, tmp_path / "no" / "f.gguf")


def test_errors_are_llmzoo_errors():
    assert issubclass(CheckpointError, LlmzooError)  # so the CLI prints one line, exit code 2
