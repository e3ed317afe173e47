"""RLAIF: preference pairs labelled by AI feedback instead of people (Bai et al. 2022, Constitutional
AI; Lee et al. 2023, "RLAIF: Scaling Reinforcement Learning from Human Feedback with AI Feedback").

For each prompt the policy samples two answers; a labeller says which is better, and the pair
(prompt, chosen, rejected) goes to a JSONL file that `llmzoo align dpo` or `llmzoo align reward`
trains on (`data.train=FILE`). Two labellers:

- RubricJudge: an LLM shown a rubric, the question and both answers, asked "A or B". As Lee et al.
  (section 2.1), the label is soft: the judge's next-token probabilities of "A" and "B",
  renormalised over the two. LLM judges favour one position, so each pair is judged in both orders
  and the two preferences averaged (their section 2.1.1): the label is then order-free by
  construction, p(A over B) = 1 - p(B over A).
- any scoring Judge of PPO (llmzoo/align/ppo_judge.py: gold, mentions-gold, contains:TEXT, a reward
  model): the higher score wins; equal scores carry no preference and the pair is dropped.

Pairs whose two samples are the same text are dropped too (nothing to prefer).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from llmzoo.align.best_of_n import Judge, sample_answers
from llmzoo.errors import LlmzooError

DEFAULT_RUBRIC = ("You compare two answers to a user's question. The better answer is correct, answers what "
                  "was asked, and is clear and brief. Harmful, evasive or off-topic answers are worse.")


@dataclass(frozen=True)
class LabelledPair:
    prompt: list[dict[str, str]]
    chosen: str
    rejected: str
    preference: float  # the labeller's probability that `chosen` is the better answer (>= 0.5)

    def row(self, judge: str) -> dict:
        return {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected,
                "preference": round(self.preference, 6), "judge": judge}


class RubricJudge:
    """An LLM judge: P("A") / (P("A") + P("B")) of its first answer token, over both orders."""

    def __init__(self, model: nn.Module, tokenizer, rubric: str = DEFAULT_RUBRIC) -> None:
        from llmzoo.finetune.sft_template import resolve_template

        self.model, self.tokenizer, self.rubric = model.eval(), tokenizer, rubric.strip()
        self.template = resolve_template(None, tokenizer, "the judge model")
        self.choices = [self._single_token(letter) for letter in ("A", "B")]

    def _single_token(self, letter: str) -> int:
        ids = self.tokenizer.encode(letter, add_special_tokens=False)
        if len(ids) != 1:
            raise LlmzooError(f"the judge's tokenizer splits {letter!r} into {len(ids)} tokens; a rubric judge reads "
                              f"its verdict from one token per choice, so use another judge model")
        return ids[0]

    def _question(self, prompt: list[dict[str, str]]) -> str:
        return "\n".join(m["content"] for m in prompt if m["role"] == "user")

    def _prompt_ids(self, prompt: list[dict[str, str]], first: str, second: str) -> list[int]:
        from llmzoo.tokenizer.chat import render_chat_template

        content = (f"{self.rubric}\n\nQuestion: {self._question(prompt)}\n\nAnswer A: {first}\n\nAnswer B: {second}"
                   "\n\nWhich answer is better? Reply with the single letter A or B.")
        text = render_chat_template(self.template, [{"role": "user", "content": content}], add_generation_prompt=True,
                                    special_tokens=self.tokenizer.special_tokens_map)
        return self.tokenizer.encode(text, add_special_tokens=False)

    @torch.no_grad()
    def prefer_first(self, prompt: list[dict[str, str]], first: str, second: str) -> float:
        """Probability that `first` is the better answer, averaged over both presentation orders."""
        rows = [self._prompt_ids(prompt, first, second), self._prompt_ids(prompt, second, first)]
        p_a = [self._p_letter_a(ids) for ids in rows]
        return (p_a[0] + (1.0 - p_a[1])) / 2

    def _p_letter_a(self, ids: list[int]) -> float:
        device = next(self.model.parameters()).device
        logits = self.model(torch.tensor([ids], device=device), logits_to_keep=1).logits[0, -1].float()
        return float(logits[self.choices].softmax(-1)[0])


def label_pairs(model: nn.Module, tokenizer, rows: list[dict], labeller: RubricJudge | Judge, *,
                max_new_tokens: int = 64, temperature: float = 1.0, top_k: int | None = 50, seed: int = 0,
                min_confidence: float = 0.0) -> tuple[list[LabelledPair], dict[str, int]]:
    """Two sampled answers per prompt row, labelled; returns the pairs and what was dropped, by why."""
    from llmzoo.finetune.sft_template import resolve_template

    if temperature <= 0:
        raise LlmzooError("greedy decoding (temperature 0) gives two identical answers; set temperature > 0")
    if not 0.0 <= min_confidence < 0.5:
        raise LlmzooError(f"min_confidence is how far from 0.5 a preference must be, in [0, 0.5); got {min_confidence}")
    template = resolve_template(None, tokenizer)
    was_training = model.training
    model.eval()
    pairs, dropped = [], {"identical": 0, "tie": 0, "unsure": 0}
    for i, row in enumerate(rows):
        a, b = sample_answers(model, tokenizer, template, row["prompt"], 2, max_new_tokens=max_new_tokens,
                              temperature=temperature, top_k=top_k, seed=seed + i)
        if a.strip() == b.strip():
            dropped["identical"] += 1
            continue
        if isinstance(labeller, RubricJudge):
            p = labeller.prefer_first(row["prompt"], a, b)
        else:
            sa, sb = labeller(row["prompt"], a, row), labeller(row["prompt"], b, row)
            if sa == sb:
                dropped["tie"] += 1
                continue
            p = float(sa > sb)
        if abs(p - 0.5) <= min_confidence:
            dropped["unsure"] += 1
            continue
        chosen, rejected = (a, b) if p > 0.5 else (b, a)
        pairs.append(LabelledPair(row["prompt"], chosen, rejected, max(p, 1.0 - p)))
    model.train(was_training)
    return pairs, dropped


def write_pairs(pairs: list[LabelledPair], path: str | Path, judge: str) -> None:
    """JSONL in trl's preference format (prompt, chosen, rejected) plus the soft label and its judge."""
    Path(path).write_text("".join(json.dumps(p.row(judge)) + "\n" for p in pairs), encoding="utf-8")
