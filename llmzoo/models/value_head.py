"""A scalar value/reward head on any stack: the reward model of InstructGPT (Ouyang et al. 2022) and
the critic of PPO (Schulman et al. 2017) are the language model with one Linear(d_model, 1) more.

    model = attach_value_head(llmzoo.load("smollm2-135m-instruct"))
    out = value_forward(model, input_ids, attention_mask=mask)
    out["rewards"]   # (B,)  the score of each sequence
    out["values"]    # (B, T) a score per token (PPO's value estimates)

Which token scores the sequence: a decoder's last real (non-pad) token, the only one that has read
the whole sequence under a causal mask (transformers' *ForSequenceClassification with num_labels=1,
trl's reward models); an encoder's first token ([CLS]), as its classifiers pool.

The head is attached in place as `model.score` (transformers' name for it), so the stack's own
parameter names, PEFT targets and converters are unchanged. On disk a reward model is the stack's
own directory (llmzoo.load reads it as the plain model) plus `value_head.safetensors` and
`value_head.json` beside it; `load_value_model(DIR)` reads both. (A transformers
*ForSequenceClassification checkpoint is not read: llmzoo's converters know its stack, not its
`score`; tests/align/test_reward_trainer.py copies one's head by hand.)
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llmzoo.errors import LlmzooError

HEAD_FILE = "value_head.safetensors"
HEAD_CONFIG = "value_head.json"
POOLINGS = ("last", "first")


def has_value_head(model: nn.Module) -> bool:
    return isinstance(getattr(model, "score", None), nn.Linear) and getattr(model, "value_head_pooling", None) in POOLINGS


def default_pooling(model: nn.Module) -> str:
    """An encoder reads its whole input at every position and pools the first token; a causal
    stack scores the last one."""
    return "first" if getattr(model.config, "arch", "decoder") == "encoder" else "last"


def attach_value_head(model: nn.Module, pooling: str | None = None, *, seed: int | None = None) -> nn.Module:
    """Give `model` a fresh value head (model.score, no bias, as transformers' classifiers on LLaMA) in
    place and return it; a model that has one keeps it. Initialised N(0, 1/sqrt(d_model + 1)) (trl's
    value head scale: rewards start near 0 whatever the hidden size)."""
    pooling = pooling or default_pooling(model)
    if pooling not in POOLINGS:
        raise LlmzooError(f"value head pooling {pooling!r} is not one of {', '.join(POOLINGS)}")
    if has_value_head(model):
        return model
    d_model = model.config.d_model
    reference = next(model.parameters())
    score = nn.Linear(d_model, 1, bias=False, device=reference.device, dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    with torch.no_grad():
        score.weight.copy_(torch.randn(score.weight.shape, generator=generator) / (d_model + 1) ** 0.5)
    model.score = score
    model.value_head_pooling = pooling
    return model


def pooled_index(attention_mask: torch.Tensor | None, input_ids: torch.Tensor, pad_token_id: int | None) -> torch.Tensor:
    """(B,) position of each row's last real token: the rightmost 1 of the mask (or non-pad id), so left
    and right padding both work."""
    real = attention_mask.bool() if attention_mask is not None else (
        input_ids != pad_token_id if pad_token_id is not None else torch.ones_like(input_ids, dtype=torch.bool))
    positions = torch.arange(real.shape[1], device=real.device).expand_as(real)
    return (positions * real).argmax(dim=-1)


def value_forward(model: nn.Module, input_ids: torch.Tensor, *, attention_mask: torch.Tensor | None = None,
                  **kwargs: Any) -> dict[str, torch.Tensor]:
    """{"rewards": (B,), "values": (B, T)} from the model's final hidden states and its value head."""
    if not has_value_head(model):
        raise LlmzooError(f"{model.config.name} has no value head; a reward model is a model with one "
                          "(llmzoo align reward trains it; attach_value_head adds a fresh one)")
    if getattr(model.config, "arch", "decoder") == "decoder" and getattr(model, "lm_head", None) is not None:
        kwargs.setdefault("logits_to_keep", 1)  # the LM logits are not needed: compute one position's only
    out = model(input_ids, attention_mask=attention_mask, **kwargs)
    h = out["last_hidden_state"]
    values = model.score(h.to(model.score.weight.dtype)).squeeze(-1)  # (B, T)
    if model.value_head_pooling == "first":
        rewards = values[:, 0]
    else:
        index = pooled_index(attention_mask, input_ids, model.config.pad_token_id)
        rewards = values.gather(1, index[:, None])[:, 0]
    return {"rewards": rewards, "values": values}


@contextlib.contextmanager
def without_value_head(model: nn.Module) -> Iterator[nn.Module]:
    """The bare stack inside the block (its converters know no `score`): how the stack is saved."""
    score, pooling = model.score, model.value_head_pooling
    del model.score
    del model.value_head_pooling
    try:
        yield model
    finally:
        model.score, model.value_head_pooling = score, pooling


def save_value_model(model: nn.Module, directory: str | Path, tokenizer: Any = None) -> Path:
    """The stack as llmzoo.save writes it, plus the head's tensor and pooling beside it."""
    from safetensors.torch import save_file

    from llmzoo.convert.save import save_model

    if not has_value_head(model):
        raise LlmzooError(f"{model.config.name} has no value head to save")
    with without_value_head(model) as bare:
        saved = save_model(bare, directory, format="auto", tokenizer=tokenizer)
    path = Path(saved.path)
    save_file({"score.weight": model.score.weight.detach().float().contiguous().cpu()}, str(path / HEAD_FILE))
    (path / HEAD_CONFIG).write_text(json.dumps({"pooling": model.value_head_pooling, "d_model": model.config.d_model}))
    return path


def value_head_tensors(directory: str | Path) -> tuple[torch.Tensor, str] | None:
    """(score weight (1, D), pooling) saved in `directory` (value_head.safetensors), or None."""
    from safetensors import safe_open

    path = Path(directory)
    if (path / HEAD_FILE).is_file():
        with safe_open(str(path / HEAD_FILE), framework="pt") as f:
            weight = f.get_tensor("score.weight")
        pooling = json.loads((path / HEAD_CONFIG).read_text()).get("pooling", "last") if (path / HEAD_CONFIG).is_file() else "last"
        return weight, pooling
    return None


def load_value_model(source: str | Path, dtype: torch.dtype | None = torch.float32) -> nn.Module:
    """A reward/value model saved by save_value_model: the stack through llmzoo.load, with its value head."""
    import llmzoo

    found = value_head_tensors(source) if Path(source).is_dir() else None
    if found is None:
        raise LlmzooError(f"{source} has no value head ({HEAD_FILE}); it is not a "
                          f"reward model: train one with `llmzoo align reward`")
    weight, pooling = found
    model = llmzoo.load(source, dtype=dtype)
    if weight.shape[-1] != model.config.d_model:
        raise LlmzooError(f"{source}: the value head takes {weight.shape[-1]} features but the model's d_model is "
                          f"{model.config.d_model}")
    attach_value_head(model, pooling)
    with torch.no_grad():
        model.score.weight.copy_(weight.float())
    return model


__all__ = ["attach_value_head", "has_value_head", "load_value_model", "save_value_model", "value_forward",
           "value_head_tensors", "without_value_head"]
