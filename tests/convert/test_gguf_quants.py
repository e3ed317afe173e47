"""GGUF quantization (llmzoo.convert.gguf_quants) and the files write_gguf makes with it.

The live reference for the bit layouts is gguf-py's `dequantize`: every block we write is read back
by it. Q4_K and Q6_K are quantized by llmzoo (gguf-py 0.19 only dequantizes them); Q8_0, Q4_0, Q4_1
and Q5_0 by gguf-py. Which type each tensor gets is checked against llama.cpp's rule for the
file type (llama-quant.cpp `llama_tensor_get_type`), restated from its source in each test.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType as Q
from gguf import LlamaFileType
from gguf.quants import dequantize

from llmzoo.convert.gguf import read_gguf, write_gguf
from llmzoo.convert.gguf_format import GGUFFile
from llmzoo.convert.gguf_quants import FILE_TYPES, quantize, tensor_type
from llmzoo.errors import ConfigError

transformers = pytest.importorskip("transformers")


def _weights(rows: int = 48, cols: int = 512) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = (0.02 * rng.standard_normal((rows, cols))).astype(np.float32)
    x[1] = 0.0  # an all-zero row
    x[2, :256] = 0.5  # a constant super-block
    x[3] = np.abs(x[3])  # all positive: a min above zero must still be represented
    x[4, 7] = 1.0  # an outlier
    x[5] = -np.abs(x[5])
    return x


# (type, values sharing one scale, symmetric (x ~ d*q) or with a minimum, levels): the grid a plain
# round-to-nearest quantizer would use on each (sub-)block, whose error the type must not exceed
TYPES = [(Q.Q8_0, 32, True, 256), (Q.Q6_K, 16, True, 64), (Q.Q5_0, 32, True, 32), (Q.Q4_1, 32, False, 16),
         (Q.Q4_0, 32, True, 16), (Q.Q4_K, 32, False, 16)]


def _grid_step(blocks: np.ndarray, symmetric: bool, levels: int) -> np.ndarray:
    if symmetric:  # the largest magnitude maps to -levels/2 (ggml's convention for these types)
        return np.abs(blocks).max(1, keepdims=True) / (levels // 2)
    low = np.minimum(blocks.min(1, keepdims=True), 0)  # the k-quant min is never above zero
    return (blocks.max(1, keepdims=True) - low) / (levels - 1)


@pytest.mark.parametrize("qtype,block,symmetric,levels", TYPES, ids=[t[0].name for t in TYPES])
def test_dequantized_blocks_are_within_the_types_error(qtype, block, symmetric, levels):
    x = _weights()
    data = quantize(x, qtype)
    assert data.dtype == np.uint8 and data.shape[0] == x.shape[0]
    back = dequantize(data, qtype)
    assert back.shape == x.shape
    assert np.all(back[1] == 0)  # zeros stay exact
    blocks, got = x[6:].reshape(-1, block), back[6:].reshape(-1, block)  # the Gaussian rows
    step = _grid_step(blocks, symmetric, levels)
    error = got - blocks
    # RMS: rounding to a grid of step s errs by s/sqrt(12) on average; the scale search may only help,
    # the 6-bit (Q4_K) / 8-bit (Q6_K) coding of sub-block scales and f16 super-scales cost a little
    slack = 1.1 if qtype in (Q.Q4_K, Q.Q6_K) else 1.02
    assert 0 < np.sqrt(np.mean(error**2)) <= slack * np.sqrt(np.mean(step**2 / 12))
    # and no value is off by more than one step (half a step from rounding, the other half where the
    # grid stops short of the extreme: ggml's symmetric types reach -levels/2 but only +levels/2 - 1)
    assert np.all(np.abs(error) <= 1.05 * step + 1e-7)


@pytest.mark.parametrize("qtype", [Q.Q4_K, Q.Q6_K])
def test_k_quant_layout_reproduces_values_on_its_grid(qtype):
    """Values that sit exactly on one shared grid come back up to the f16 rounding of the scales: a
    scale, min or nibble written to the wrong place would not."""
    rng = np.random.default_rng(1)
    levels = 16 if qtype == Q.Q4_K else 64
    q = rng.integers(0, levels, size=(8, 512))
    q[:, ::16] = 0
    q[:, 1::16] = levels - 1  # every sub-block spans the whole grid, so all share one scale
    step = 0.01
    x = (step * (q - (0 if qtype == Q.Q4_K else 32))).astype(np.float32)
    back = dequantize(quantize(x, qtype), qtype)
    assert np.abs(back - x).max() <= np.abs(x).max() * 2**-10


def test_k_quants_beat_the_32_blocks_of_similar_size():
    """Q4_K (4.5 bits a weight) is at least as accurate as Q4_0 (4.5) and Q6_K (6.56) beats Q5_0 (5.5)."""
    x = _weights()[6:]

    def rms(qtype):
        return np.sqrt(np.mean((dequantize(quantize(x, qtype), qtype) - x) ** 2))

    assert rms(Q.Q4_K) < rms(Q.Q4_0)
    assert rms(Q.Q6_K) < rms(Q.Q5_0)


def test_k_quants_refuse_rows_that_are_not_super_blocks():
    with pytest.raises(ConfigError, match="multiple of 256"):
        quantize(np.zeros((2, 96), np.float32), Q.Q4_K)


def _use_more_bits(i: int, n: int) -> bool:  # llama-quant.cpp, as written there
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def test_q4_k_m_mixture_follows_llama_cpp():
    choice, n = FILE_TYPES["q4_k_m"], 8
    more = [i for i in range(n) if _use_more_bits(i, n)]
    assert more == [0, 3, 6, 7]
    for i in range(n):
        for part in ("attn_v", "ffn_down"):
            want = Q.Q6_K if i in more else Q.Q4_K
            assert tensor_type(f"blk.{i}.{part}.weight", (512, 512), choice, n, tied=False) == want
        assert tensor_type(f"blk.{i}.attn_q.weight", (512, 512), choice, n, tied=False) == Q.Q4_K
        assert tensor_type(f"blk.{i}.attn_norm.weight", (512,), choice, n, tied=False) == Q.F32
    assert tensor_type("output.weight", (1000, 512), choice, n, tied=False) == Q.Q6_K
    assert tensor_type("token_embd.weight", (1000, 512), choice, n, tied=False) == Q.Q4_K
    assert tensor_type("token_embd.weight", (1000, 512), choice, n, tied=True) == Q.Q6_K  # it is the head
    # rows that 256 does not divide: Q4_K -> Q5_0, Q6_K -> Q8_0; not even 32: F16
    assert tensor_type("blk.1.attn_q.weight", (576, 576), choice, n, tied=False) == Q.Q5_0
    assert tensor_type("blk.0.ffn_down.weight", (576, 576), choice, n, tied=False) == Q.Q8_0
    assert tensor_type("token_embd.weight", (1000, 576), choice, n, tied=True) == Q.Q8_0
    assert tensor_type("blk.1.attn_q.weight", (40, 40), choice, n, tied=False) == Q.F16


@pytest.mark.parametrize("name", ["q4_0", "q4_1", "q8_0"])
def test_32_block_types_keep_the_head_at_q6_k_or_q8_0(name):
    choice = FILE_TYPES[name]
    head = tensor_type("output.weight", (1000, 512), choice, 4, tied=False)
    assert head == (Q.Q8_0 if name == "q8_0" else Q.Q6_K)
    assert tensor_type("blk.0.ffn_down.weight", (512, 512), choice, 4, tied=False) == choice.default
    assert tensor_type("blk.0.ffn_down.weight", (512, 40), choice, 4, tied=False) == Q.F16


def _tiny(hidden: int = 256, layers: int = 8, tied: bool = False):
    config = transformers.LlamaConfig(vocab_size=512, hidden_size=hidden, intermediate_size=2 * hidden,
                                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                                      tie_word_embeddings=tied)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).eval()
    state = {k: v for k, v in model.state_dict().items() if not (tied and k == "lm_head.weight")}
    return config.to_dict(), state


# the matrices' relative RMS error the mixture allows (its coarsest type, Q4_K/Q4_0/Q4_1, sets it)
FILES = [("q8_0", LlamaFileType.MOSTLY_Q8_0, 0.006), ("q4_0", LlamaFileType.MOSTLY_Q4_0, 0.09),
         ("q4_1", LlamaFileType.MOSTLY_Q4_1, 0.08), ("q4_k_m", LlamaFileType.MOSTLY_Q4_K_M, 0.08)]


@pytest.mark.parametrize("name,file_type,rel_rms", FILES, ids=[f[0] for f in FILES])
def test_written_file_has_llama_cpps_types_and_reads_back_within_error(tmp_path, name, file_type, rel_rms):
    config, state = _tiny()
    path = tmp_path / f"tiny-{name}.gguf"
    write_gguf(config, state, path, dtype=name)
    gf = GGUFFile(path)
    assert gf.metadata["general.file_type"] == int(file_type)
    assert gf.metadata["general.quantization_version"] == 2
    choice = FILE_TYPES[name]
    for gguf_name, info in gf.tensors.items():
        assert info.qtype == tensor_type(gguf_name, tuple(info.shape), choice, 8, tied=False), gguf_name
    if name == "q4_k_m":
        types = {info.qtype for info in gf.tensors.values()}
        assert types == {Q.Q4_K, Q.Q6_K, Q.F32}
    back = read_gguf(path).state_dict  # dequantized by gguf-py
    for key, original in state.items():
        if original.ndim == 1:
            assert torch.equal(back[key], original), key
            continue
        error = (back[key] - original).pow(2).mean().sqrt() / original.pow(2).mean().sqrt()
        assert 0 < error < rel_rms, key


def test_unknown_type_is_refused_naming_the_choices(tmp_path):
    config, state = _tiny(layers=1)
    with pytest.raises(ConfigError, match="q4_k_m"):
        write_gguf(config, state, tmp_path / "x.gguf", dtype="q3_k_s")
    assert not (tmp_path / "x.gguf").exists()
