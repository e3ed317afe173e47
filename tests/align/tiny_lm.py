"""The tiny LLaMA and word-piece tokenizer the trl comparisons share (trl needs a real HF tokenizer,
so the tokenizer is trained on a one-line corpus whose words the preference pairs use)."""

from __future__ import annotations

from pathlib import Path

from llmzoo.config import ModelConfig
from llmzoo.models.zoo import get_config
from llmzoo.tokenizer.train import train_tokenizer

CORPUS_LINE = "the cat sat on the mat and the dog ran in the park by the river\n"


def tiny_llama_and_tokenizer(tmp: Path) -> tuple[ModelConfig, object]:
    (tmp / "c.txt").write_text(CORPUS_LINE * 50)
    tokenizer = train_tokenizer([tmp / "c.txt"], kind="wordpiece", vocab_size=64, progress=False)
    config = get_config("llama-2-7b").replace(vocab_size=64, d_model=32, n_layers=2, n_heads=4, head_dim=8, d_ff=64,
                                              max_seq_len=64, n_kv_heads=2)
    return config, tokenizer
