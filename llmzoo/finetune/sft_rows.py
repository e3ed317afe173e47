"""Training rows from tokenized conversations: packed (several per row) or one per row, padded.

Labels are next-token targets inside each conversation: position i is trained to predict token
i + 1 when that token is assistant text, else ignored (-100). A conversation's last token
predicts nothing, so no target ever crosses into the next conversation of a packed row.

Packed rows carry `document_ids` (the decoder then attends only within a conversation,
llmzoo/nn/masks.py) and `position_ids` that restart at 0 for each conversation, so a packed
conversation is computed exactly as it would be alone (Krell et al. 2021, "Efficient sequence
packing without cross-contamination"). Padded rows hold one conversation each, right-padded to the
longest of the batch: under a causal mask the padding after a conversation changes nothing.
"""

from __future__ import annotations

import sys

import torch

from llmzoo.finetune.sft_template import TokenizedConversation

IGNORE = -100  # the label cross-entropy skips


def fit_to_length(conversations: list[TokenizedConversation], seq_len: int, what: str = "conversations",
                  out=None) -> list[TokenizedConversation]:
    """Conversations cut to seq_len tokens; says how many were cut, and drops (and counts) any cut
    before its first target token. Nothing is truncated silently."""
    kept, cut, dropped = [], 0, 0
    for c in conversations:
        if len(c.ids) > seq_len:
            cut += 1
            c = TokenizedConversation(c.ids[:seq_len], c.targets[:seq_len])
            if not any(c.targets[1:]):
                dropped += 1
                continue
        kept.append(c)
    if cut:
        note = f" ({dropped} dropped: no assistant token left)" if dropped else ""
        print(f"note: {cut} of {len(conversations)} {what} are longer than seq_len={seq_len} tokens and were "
              f"truncated{note}", file=out or sys.stderr)
    return kept


def _labels(c: TokenizedConversation) -> list[int]:
    return [c.ids[i + 1] if c.targets[i + 1] else IGNORE for i in range(len(c.ids) - 1)] + [IGNORE]


def pack(conversations: list[TokenizedConversation], seq_len: int) -> list[list[TokenizedConversation]]:
    """Greedy packing in order: a row takes conversations while they fit (deterministic)."""
    rows: list[list[TokenizedConversation]] = []
    used = seq_len
    for c in conversations:
        if used + len(c.ids) > seq_len:
            rows.append([])
            used = 0
        rows[-1].append(c)
        used += len(c.ids)
    return rows


class PackedRows:
    """Rows of exactly seq_len tokens, each holding whole conversations; the rest is padding
    (its own document, ignored by the loss)."""

    def __init__(self, conversations: list[TokenizedConversation], seq_len: int, pad_id: int) -> None:
        self.seq_len = seq_len
        self.pad_id = pad_id
        self.groups = pack(conversations, seq_len)

    def __len__(self) -> int:
        return len(self.groups)

    def _row(self, group: list[TokenizedConversation]) -> tuple[list[int], ...]:
        ids, labels, positions, documents = [], [], [], []
        for doc, c in enumerate(group):
            ids += c.ids
            labels += _labels(c)
            positions += range(len(c.ids))
            documents += [doc] * len(c.ids)
        pad = self.seq_len - len(ids)
        return (ids + [self.pad_id] * pad, labels + [IGNORE] * pad, positions + list(range(pad)),
                documents + [len(group)] * pad)

    def rows(self, indices) -> dict[str, torch.Tensor]:
        ids, labels, positions, documents = zip(*(self._row(self.groups[int(i)]) for i in indices))
        return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels),
                "position_ids": torch.tensor(positions), "document_ids": torch.tensor(documents)}


class PaddedRows:
    """One conversation per row, right-padded to the longest conversation of the requested rows."""

    def __init__(self, conversations: list[TokenizedConversation], pad_id: int) -> None:
        self.conversations = conversations
        self.pad_id = pad_id

    def __len__(self) -> int:
        return len(self.conversations)

    def rows(self, indices) -> dict[str, torch.Tensor]:
        chosen = [self.conversations[int(i)] for i in indices]
        width = max(len(c.ids) for c in chosen)
        ids = [c.ids + [self.pad_id] * (width - len(c.ids)) for c in chosen]
        labels = [_labels(c) + [IGNORE] * (width - len(c.ids)) for c in chosen]
        return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels)}
