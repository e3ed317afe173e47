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
    elif hasattr(model, "_logits") and getattr(model, "lm_head", None) is not None:
        return _scored_positions_only(model, input_ids, labels, attention_mask)
    else:
        logits = model(input_ids, attention_mask=attention_mask).logits[:, :-1]
        targets = labels[:, 1:]
    keep = targets != IGNORE_INDEX
    logps = F.log_softmax(logits.float(), dim=-1).gather(-1, targets.clamp_min(0)[..., None])[..., 0]
    return (logps * keep).sum(dim=-1)


def _scored_positions_only(model: nn.Module, input_ids: torch.Tensor, labels: torch.Tensor,
                           attention_mask: torch.Tensor | None) -> torch.Tensor:
    """A llmzoo decoder's sequence_logps with only the labelled positions through the vocabulary
    projection: a preference pair's prompt (a chat template's system turn included) and padding need
    no (T x 49k) logits, their log-softmax or its backward. Equal to the full-logits path up to GEMM
    summation order."""
    out = model(input_ids, attention_mask=attention_mask, logits_to_keep=1)  # one position's logits: cheap
    targets = labels[:, 1:]
    keep = targets != IGNORE_INDEX
    rows = keep.nonzero()[:, 0]
    logits = model._logits(out.last_hidden_state[:, :-1][keep], 0).float()  # (N, V), head and logit scale
    picked = F.log_softmax(logits, dim=-1).gather(-1, targets[keep][:, None])[:, 0]
    return torch.zeros(input_ids.shape[0], dtype=picked.dtype, device=picked.device).index_add(0, rows, picked)
