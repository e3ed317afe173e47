"""A tiny random decoder (and encoder-decoder) with a small byte-level BPE tokenizer."""

from __future__ import annotations

import torch

import llmzoo
from llmzoo.config import ModelConfig
from llmzoo.tokenizer.train import train_tokenizer

TEXT = ("Question: How do I boil an egg?\nAnswer: Put it in boiling water for eight minutes.\n\n"
        "The quick brown fox jumps over the lazy dog. A stitch in time saves nine. ") * 20


def tiny_tokenizer(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    return train_tokenizer([corpus], kind="bpe", vocab_size=320, progress=False)


def tiny_decoder(vocab_size: int, max_seq_len: int = 256, seed: int = 0, **config_fields):
    config = ModelConfig(**{**dict(vocab_size=vocab_size, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=64,
                                   max_seq_len=max_seq_len), **config_fields})
    torch.manual_seed(seed)
    model = llmzoo.build_model(config).eval()
    with torch.no_grad():  # larger weights than init: distributions far from uniform
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return model
