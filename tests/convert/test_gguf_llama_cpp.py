"""llama.cpp itself (through llama-cpp-python) loads and runs the GGUF files llmzoo writes.

* the real SmolLM2-135M-Instruct, its tokenizer taken from an HF tokenizer directory (so the
  tokenizer.ggml.* keys are built by llmzoo, not copied from a GGUF), written as q8_0: llama.cpp
  tokenizes like llmzoo and its greedy continuation is llmzoo's on the same file;
* llama.cpp's own quantizer (`llama_model_quantize`, what `llama-quantize` runs) turns our f32 file
  into Q4_K_M with the same type for every tensor as our q4_k_m, and our k-quant errors are its own.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

import llmzoo
from llmzoo.convert.gguf_format import GGUFFile
from llmzoo.convert.save import save_model
from tests.convert.gguf_export_helpers import TEXTS, smollm2_gguf, tiny_smollm2_dir

try:
    import llama_cpp
except ImportError:
    llama_cpp = None

pytestmark = [pytest.mark.asset, pytest.mark.skipif(
    llama_cpp is None, reason="llama-cpp-python not installed (make bench installs it)")]

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def smollm2_q8_0(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("llama-cpp")
    tokenizer_dir = llmzoo.load_tokenizer(smollm2_gguf()).save(tmp / "SmolLM2-135M-Instruct")
    model = llmzoo.load(smollm2_gguf())
    saved = save_model(model, tmp / "gguf", format="gguf", tokenizer=llmzoo.load_tokenizer(tokenizer_dir),
                       gguf_type="q8_0")
    return saved.path


def test_llama_cpp_tokenizes_like_llmzoo(smollm2_q8_0):
    runner = llama_cpp.Llama(model_path=str(smollm2_q8_0), n_ctx=256, n_threads=1, verbose=False, vocab_only=True)
    ours = llmzoo.load_tokenizer(smollm2_q8_0)
    for text in [*TEXTS, "In 2024, 1234567 people"]:  # llama.cpp splits digits as SmolLM2 does
        assert runner.tokenize(text.encode(), add_bos=False, special=True) == ours.encode(text), text
        ids = ours.encode(text)
        assert runner.detokenize(ids, special=True).decode("utf-8", "replace") == ours.decode(ids), text


def test_llama_cpp_continues_like_llmzoo(smollm2_q8_0):
    runner = llama_cpp.Llama(model_path=str(smollm2_q8_0), n_ctx=256, n_threads=1, verbose=False, seed=0)
    theirs = runner(PROMPT, max_tokens=8, temperature=0.0)["choices"][0]["text"]
    model, tokenizer = llmzoo.load(smollm2_q8_0), llmzoo.load_tokenizer(smollm2_q8_0)
    ours = llmzoo.generate(model, tokenizer, PROMPT, max_new_tokens=8)
    assert "Paris" in theirs
    # llama.cpp also quantizes the activations (to Q8_K) in its matmuls, so only the first tokens
    # are compared exactly
    assert tokenizer.encode(theirs)[:4] == tokenizer.encode(ours)[:4]


def test_q4_k_m_types_and_errors_are_llama_quantizes(tmp_path):
    hf_dir = tiny_smollm2_dir(tmp_path / "SmolLM2-tiny", hidden=256, layers=8)
    model = llmzoo.load(hf_dir)
    tokenizer = llmzoo.load_tokenizer(hf_dir)
    f32 = save_model(model, tmp_path / "f32", format="gguf", tokenizer=tokenizer).path
    ours = save_model(model, tmp_path / "ours", format="gguf", tokenizer=tokenizer, gguf_type="q4_k_m").path
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
    params.nthread = 1
    reference = tmp_path / "reference-Q4_K_M.gguf"
    assert llama_cpp.llama_model_quantize(str(f32).encode(), str(reference).encode(), ctypes.byref(params)) == 0

    original, theirs, mine = GGUFFile(f32), GGUFFile(reference), GGUFFile(ours)
    assert mine.metadata["general.file_type"] == theirs.metadata["general.file_type"]
    assert {n: t.qtype for n, t in mine.tensors.items()} == {n: t.qtype for n, t in theirs.tensors.items()}
    for name, info in theirs.tensors.items():
        if info.qtype.name in ("Q4_K", "Q6_K"):
            x = original.dequantize(name)
            their_error = np.sqrt(np.mean((theirs.dequantize(name) - x) ** 2))
            our_error = np.sqrt(np.mean((mine.dequantize(name) - x) ** 2))
            assert our_error <= 1.02 * their_error + 1e-7, name
