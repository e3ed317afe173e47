"""Summed log-probabilities of a response under a language model: what every preference loss compares."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IGNORE_INDEX = -100


def sequence_logps(model: nn.Module, input_ids: torch.Tensor, labels: torch.Tensor, *,
                   attention_mask: torch.Tensor | None = None,
                   decoder_input_ids: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) sum of log p(label token) over the positions whose label is not -100.

    Causal LM: labels align with input_ids and are shifted as for next-token prediction (the logits at
    t score labels[t + 1]), so `labels = input_ids` with the prompt set to -100 scores the response.
    Encoder-decoder: input_ids is the source, decoder_input_ids the shifted target, and labels align
    with the decoder positions (no shift), as transformers' seq2seq models take them.
    """
    if decoder_input_ids is not None:
        logits = model(input_ids, decoder_input_ids, attention_mask=attention_mask).logits
        targets = labels
    else:
        logits = model(input_ids, attention_mask=attention_mask).logits[:, :-1]
        targets = labels[:, 1:]
    keep = targets != IGNORE_INDEX
    logps = F.log_softmax(logits.float(), dim=-1).gather(-1, targets.clamp_min(0)[..., None])[..., 0]
    return (logps * keep).sum(dim=-1)
