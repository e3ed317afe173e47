"""`llmzoo convert --format gguf` writes no tokenizer metadata yet, and its --help says so.

When the writer gains the vocabulary, the first test fails: then drop the caveat from --help and
the README together with this file."""

from __future__ import annotations

import torch

import llmzoo
from llmzoo.cli import main
from llmzoo.config import ModelConfig
from llmzoo.convert.gguf import read_gguf
from llmzoo.models.build import build_model

TINY = ModelConfig(family="llama", vocab_size=64, d_model=32, n_layers=1, n_heads=4, d_ff=64, max_seq_len=32)


def test_gguf_export_lacks_tokenizer_metadata(tmp_path, capsys):
    torch.manual_seed(0)
    model = build_model(TINY).eval()
    llmzoo.save(model, tmp_path / "hf")
    assert main(["convert", str(tmp_path / "hf"), str(tmp_path / "gguf"), "--format", "gguf"]) == 0
    (path,) = (tmp_path / "gguf").glob("*.gguf")
    assert not any(key.startswith("tokenizer.ggml.tokens") or key == "tokenizer.ggml.model"
                   for key in read_gguf(path).metadata)
    back = llmzoo.load(path)  # what the help promises instead: llmzoo reads the weights back
    ids = torch.tensor([[1, 2, 3]])
    torch.testing.assert_close(back(ids).logits, model(ids).logits)


def test_convert_help_says_llama_cpp_refuses_it(capsys):
    try:
        main(["convert", "--help"])
    except SystemExit:
        pass
    text = " ".join(capsys.readouterr().out.split())
    assert "no tokenizer metadata" in text and "llama.cpp refuses" in text
