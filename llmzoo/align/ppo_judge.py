"""What scores a PPO response (the recipe's `data.judge`), each a stated rule or a trained model:

    gold            1 when the answer's first word is the prompt row's gold `answer`, else 0
                    (the rule of the SST-2 pairs and rejection sampling, llmzoo/align/best_of_n.py)
    mentions-gold   1 when the answer names the row's gold `answer` as a word (case-insensitive) and
                    none of the row's `wrong` answers, else 0 ("answers the question correctly"
                    without demanding the label as the first word: SmolLM2 says "The sentence is
                    positive.")
    contains:TEXT   1 when the answer contains TEXT (case-insensitive), else 0
    reward-model    the score of the reward model in data.reward_model (a directory saved by
                    `llmzoo align reward`: the stack plus value_head.safetensors), prompt + answer
                    rendered with the chat template as it was trained
    MODULE:NAME     a callable (prompt messages, answer text, row) -> float in an importable module
                    (the working directory is searched), for a judge of one's own

A judge is the best_of_n Judge: (prompt messages, answer, row) -> float.
"""

from __future__ import annotations

import importlib
import os
import re
import sys

from llmzoo.align.best_of_n import GoldAnswerJudge, Judge, RewardModelJudge
from llmzoo.errors import ConfigError, LlmzooError

JUDGES = ("gold", "mentions-gold", "contains:TEXT", "reward-model", "MODULE:NAME")


class ContainsJudge:
    def __init__(self, text: str) -> None:
        if not text:
            raise ConfigError("data.judge=contains:TEXT needs a TEXT to look for")
        self.text = text.lower()

    def __call__(self, prompt: list[dict], answer: str, row: dict) -> float:
        return float(self.text in answer.lower())


class MentionsGoldJudge:
    def __call__(self, prompt: list[dict], answer: str, row: dict) -> float:
        gold, wrong = row.get("answer"), row.get("wrong", [])
        if not isinstance(gold, str) or not gold.strip():
            raise LlmzooError("the mentions-gold judge needs an 'answer' string in every prompt row")
        words = set(re.findall(r"\w+", answer.lower()))
        wrong = [wrong] if isinstance(wrong, str) else list(wrong)
        return float(gold.strip().lower() in words and not any(str(w).strip().lower() in words for w in wrong))


def _imported(spec: str) -> Judge:
    module, _, name = spec.rpartition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # a judge in the user's own file, as a task's module:name
    try:
        judge = getattr(importlib.import_module(module), name, None)
    except ModuleNotFoundError as e:
        raise ConfigError(f"data.judge={spec!r}: cannot import module {module!r} ({e.name} not found)") from None
    if not callable(judge):
        raise ConfigError(f"data.judge={spec!r}: module {module!r} has no callable {name!r}")
    return judge


def make_judge(setting: object, reward_model: object, tokenizer, template: str) -> Judge:
    """The judge a recipe names; one-line ConfigError/LlmzooError for a bad one (a reward model
    directory without a value head included) before anything trains."""
    spec = "reward-model" if setting in (None, "") and reward_model else str(setting or "")
    if reward_model and spec != "reward-model":
        raise ConfigError(f"data.reward_model is set but data.judge={spec!r}; give one judge (drop one of them)")
    if spec == "gold":
        return GoldAnswerJudge()
    if spec == "mentions-gold":
        return MentionsGoldJudge()
    if spec.startswith("contains:"):
        return ContainsJudge(spec[len("contains:"):])
    if spec == "reward-model":
        if not reward_model:
            raise ConfigError("data.judge=reward-model needs data.reward_model=DIR (saved by `llmzoo align reward`)")
        from llmzoo.models.value_head import load_value_model

        return RewardModelJudge(load_value_model(str(reward_model)), tokenizer, template)
    if ":" in spec:
        return _imported(spec)
    raise ConfigError(f"data.judge {spec!r} is not one of {', '.join(JUDGES)}; PPO needs a judge that scores answers")
