"""Best-of-n sampling and rejection-sampling data (LLaMA-2-Chat, Touvron et al. 2023, section 3.2.3):
sample n answers per prompt from the policy, score each with a judge, keep the best; the kept
answers are supervised fine-tuning data (`llmzoo finetune` task sft reads the rows written here).

Judges (a callable (prompt messages, answer, row) -> float):

- RewardModelJudge: a reward model's score (llmzoo/models/value_head.py) of prompt + answer rendered
  with the chat template, the same way it was trained (llmzoo/align/preference_data.py).
- GoldAnswerJudge: a rule on rows with a gold `answer`: 1 when the answer's first word is the gold
  one (case and punctuation aside), else 0 (tasks with a gold answer, as the SST-2 pairs).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llmzoo.errors import LlmzooError

Judge = Callable[[list[dict], str, dict], float]


@dataclass
class BestOfN:
    prompt: list[dict]
    best: str
    score: float
    candidates: list[str]
    scores: list[float]


class RewardModelJudge:
    def __init__(self, reward_model: nn.Module, tokenizer, template: str) -> None:
        self.model, self.tokenizer, self.template = reward_model.eval(), tokenizer, template

    @torch.no_grad()
    def __call__(self, prompt: list[dict], answer: str, row: dict) -> float:
        from llmzoo.align.preference_data import tokenize_side
        from llmzoo.models.value_head import value_forward

        side = tokenize_side(prompt, answer, self.template, self.tokenizer)
        return float(value_forward(self.model, torch.tensor([side.ids]))["rewards"][0])


def _first_word(text: str) -> str:
    words = re.findall(r"\w+", text.lower())
    return words[0] if words else ""


class GoldAnswerJudge:
    def __call__(self, prompt: list[dict], answer: str, row: dict) -> float:
        gold = row.get("answer")
        if not isinstance(gold, str) or not gold.strip():
            raise LlmzooError("the gold judge needs an 'answer' string in every prompt row; give --reward-model DIR "
                              "to judge rows without one")
        return float(_first_word(answer) == _first_word(gold))


def read_prompts(path: str | Path) -> list[dict]:
    """JSONL rows with a `prompt` (a string or chat messages), and for the gold judge an `answer`."""
    from llmzoo.align.preference_data import _prompt

    from llmzoo.finetune.rows import read_jsonl

    rows = []
    for row in read_jsonl(path, (), "prompt"):
        where = f"{path} line {row.pop('_line')}"
        if row.get("prompt") in (None, "", []):
            raise LlmzooError(f"{where}: a row needs a 'prompt' (a string or chat messages)")
        rows.append({**row, "prompt": _prompt(row["prompt"], where)})
    return rows


def sample_answers(model: nn.Module, tokenizer, template: str, prompt: list[dict], n: int, *, max_new_tokens: int,
                   temperature: float, top_k: int | None, seed: int) -> list[str]:
    """n sampled answers to one prompt, as one batch of n copies of the rendered prompt."""
    from llmzoo.infer.generate import generate_ids
    from llmzoo.infer.sampling import SamplingConfig
    from llmzoo.tokenizer.chat import render_chat_template

    text = render_chat_template(template, prompt, add_generation_prompt=True, special_tokens=tokenizer.special_tokens_map)
    ids = tokenizer.encode(text, add_special_tokens=False)  # the template wrote its own specials
    eos = set(getattr(tokenizer, "stop_token_ids", None) or ())
    if tokenizer.eos_token_id is not None:
        eos.add(tokenizer.eos_token_id)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    results = generate_ids(model, [ids] * n, max_new_tokens=max_new_tokens, eos_ids=eos, pad_id=pad, seed=seed,
                           sampling=SamplingConfig(temperature=temperature, top_k=top_k))
    return [tokenizer.decode(r.token_ids, skip_special_tokens=True).strip() for r in results]


def best_of_n(model: nn.Module, tokenizer, rows: list[dict], judge: Judge, *, n: int = 4, template: str | None = None,
              max_new_tokens: int = 64, temperature: float = 0.8, top_k: int | None = 50, seed: int = 0) -> list[BestOfN]:
    """For each row: n samples, each scored by the judge, the highest kept (the first of equals)."""
    from llmzoo.finetune.sft_template import resolve_template

    if n < 1:
        raise LlmzooError(f"n must be >= 1 samples per prompt, got {n}")
    if temperature <= 0 and n > 1:
        raise LlmzooError("greedy decoding (temperature 0) gives n identical samples; set temperature > 0")
    template = resolve_template(template, tokenizer)
    was_training = model.training
    model.eval()
    out = []
    for i, row in enumerate(rows):
        candidates = sample_answers(model, tokenizer, template, row["prompt"], n, max_new_tokens=max_new_tokens,
                                    temperature=temperature, top_k=top_k, seed=seed + i)
        scores = [judge(row["prompt"], c, row) for c in candidates]
        k = max(range(n), key=lambda j: scores[j])
        out.append(BestOfN(row["prompt"], candidates[k], scores[k], candidates, scores))
    model.train(was_training)
    return out


def write_sft_rows(results: list[BestOfN], path: str | Path, min_score: float | None = None) -> int:
    """The kept answers as chat rows (`messages`, which task sft reads), with their score; returns how
    many were written (those below min_score are rejected)."""
    kept = [r for r in results if min_score is None or r.score >= min_score]
    Path(path).write_text("".join(json.dumps({"messages": r.prompt + [{"role": "assistant", "content": r.best}],
                                              "score": r.score, "n": len(r.candidates)}) + "\n" for r in kept),
                          encoding="utf-8")
    return len(kept)


def judge_from(reward_model: Any, gold: bool, tokenizer, template: str) -> Judge:
    if (reward_model is None) == (not gold):
        raise LlmzooError("give one judge: --reward-model DIR (a model saved by `llmzoo align reward`) or --judge gold")
    if gold:
        return GoldAnswerJudge()
    from llmzoo.models.value_head import load_value_model

    return RewardModelJudge(load_value_model(reward_model), tokenizer, template)
