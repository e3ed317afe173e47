"""transformers loads the GGUF `llmzoo convert --format gguf` writes (its `gguf_file=` loader builds the
tokenizer from tokenizer.ggml.* alone, so it is a live reference for that metadata): its tokenizer
encodes like llmzoo's, and its logits are llmzoo's on the same file, and the source model's in f32.

The source is an HF checkpoint directory (a tiny random LLaMA with SmolLM2's tokenizer files), so the
tokenizer metadata is built by llmzoo from tokenizer.json, not copied from another GGUF.
"""

from __future__ import annotations

import pytest
import torch

import llmzoo
from llmzoo.cli import main
from llmzoo.convert.gguf_format import GGUFFile
from tests.convert.gguf_export_helpers import CHAT, TEXTS, tiny_smollm2_dir

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")  # transformers' GGUF loading needs it

pytestmark = pytest.mark.asset


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return tiny_smollm2_dir(tmp_path_factory.mktemp("hf") / "SmolLM2-tiny")


def _convert(source, out, *flags) -> "Path":  # noqa: F821
    assert main(["convert", str(source), str(out), "--format", "gguf", *flags]) == 0
    (path,) = out.glob("*.gguf")
    return path


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


def test_transformers_reads_the_tokenizer_and_q4_k_m_weights_as_llmzoo(source, tmp_path):
    path = _convert(source, tmp_path / "gguf", "--quant", "q4_k_m")
    assert {t.qtype.name for t in GGUFFile(path).tensors.values()} == {"Q4_K", "Q6_K", "F32"}
    ours = llmzoo.load_tokenizer(path)
    theirs = transformers.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    original = llmzoo.load_tokenizer(source)
    for text in TEXTS:
        assert theirs.encode(text) == ours.encode(text) == original.encode(text), text
        ids = ours.encode(text)
        assert theirs.decode(ids) == ours.decode(ids), text
    assert theirs.chat_template == ours.chat_template == original.chat_template
    rendered = theirs.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    assert rendered == ours.apply_chat_template(CHAT)
    assert (theirs.bos_token, theirs.eos_token) == (ours.bos_token, ours.eos_token) == ("<|im_start|>", "<|im_end|>")

    reference = transformers.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                                                  dtype=torch.float32).eval()
    ids = torch.tensor([ours.encode(TEXTS[1])])
    torch.testing.assert_close(_logits(llmzoo.load(path).eval(), ids), _logits(reference, ids), rtol=1e-4, atol=1e-4)


def test_f32_gguf_is_the_source_model(source, tmp_path):
    path = _convert(source, tmp_path / "gguf")
    assert GGUFFile(path).metadata["general.file_type"] == 0  # ALL_F32
    theirs = transformers.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                                               dtype=torch.float32).eval()
    original = transformers.AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32).eval()
    ids = torch.tensor([llmzoo.load_tokenizer(path).encode(TEXTS[0])])
    torch.testing.assert_close(_logits(theirs, ids), _logits(original, ids), rtol=1e-5, atol=1e-5)


def test_llmzoo_save_gguf_writes_the_tokenizer_of_the_source(source, tmp_path):
    """llmzoo.save(model, dir, format="gguf") finds the tokenizer of the directory the model came from."""
    path = llmzoo.save(llmzoo.load(source), tmp_path / "gguf", format="gguf")
    metadata = GGUFFile(path).metadata
    assert metadata["tokenizer.ggml.model"] == "gpt2" and metadata["tokenizer.ggml.pre"] == "smollm"
    assert llmzoo.load_tokenizer(path).encode(TEXTS[1]) == llmzoo.load_tokenizer(source).encode(TEXTS[1])
