"""Built-in SFT data sources, named `builtin:NAME` in a recipe's data.train / data.val.

    builtin:sst2-train     the SST-2 half the recipe sft-lora-smollm2 fine-tunes on (436 sentences)
    builtin:sst2-heldout   the other half, the one `llmzoo eval --tasks sst2_heldout` scores

Each sentence becomes one chat exchange: the user turn is the evaluation task's prompt, the
assistant answers "negative" or "positive", so the model learns the exact format it is scored in.
"""

from __future__ import annotations

from llmzoo.errors import LlmzooError

PREFIX = "builtin:"


def _sst2(half: int) -> list[list[dict]]:
    from llmzoo.eval.tasks.sst2_heldout import LABELS, sst2_halves, sst2_prompt

    return [[{"role": "user", "content": sst2_prompt(doc)}, {"role": "assistant", "content": LABELS[int(doc["label"])]}]
            for doc in sst2_halves()[half]]


BUILTIN = {"sst2-train": lambda: _sst2(0), "sst2-heldout": lambda: _sst2(1)}


def is_builtin(source: str) -> bool:
    return str(source).startswith(PREFIX)


def builtin_conversations(source: str) -> list[list[dict]]:
    name = str(source)[len(PREFIX):]
    if name not in BUILTIN:
        raise LlmzooError(f"unknown built-in SFT data {source!r}; available: "
                          f"{', '.join(PREFIX + n for n in BUILTIN)}")
    return BUILTIN[name]()
