"""Shared pieces of the SFT tests: SmolLM2-Instruct's real tokenizer (chat template included) and
tiny random decoders over its vocabulary, saved where `model.from` loads them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from llmzoo.errors import AssetMissingError

SMOLLM2 = "smollm2-135m-instruct"


def smollm2_tokenizer():
    import llmzoo

    try:
        return llmzoo.load_tokenizer(SMOLLM2)
    except AssetMissingError as e:
        pytest.skip(str(e))


def tiny_model(vocab_size: int, seed: int = 0):
    from llmzoo.config import ModelConfig
    from llmzoo.models.build import build_model

    torch.manual_seed(seed)
    config = ModelConfig(name="tiny-chat", vocab_size=vocab_size, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2,
                         d_ff=64, max_seq_len=256, tie_embeddings=True)
    return build_model(config).eval()


def tiny_chat_base(directory: Path, chat_template: bool = True) -> Path:
    """A tiny random decoder with SmolLM2-Instruct's tokenizer; without its chat template if asked."""
    import llmzoo

    tokenizer = smollm2_tokenizer()
    path = llmzoo.save(tiny_model(tokenizer.vocab_size), directory, tokenizer=tokenizer)
    if not chat_template:
        config_file = Path(path) / "tokenizer_config.json"
        config = json.loads(config_file.read_text())
        config.pop("chat_template", None)
        config_file.write_text(json.dumps(config))
        (Path(path) / "chat_template.jinja").unlink(missing_ok=True)
    return Path(path)


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


CHATS = [
    {"messages": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}]},
    {"conversations": [{"from": "system", "value": "Answer in one word."}, {"from": "human", "value": "Capital of France?"},
                       {"from": "gpt", "value": "Paris"}, {"from": "human", "value": "And of Italy?"},
                       {"from": "gpt", "value": "Rome"}]},
    {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},
    {"prompt": "Say hi.", "completion": "Hi!"},
]
