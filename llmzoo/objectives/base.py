"""The contract every pretraining objective follows.

An objective is the data side of pretraining plus its loss; models compute, objectives
orchestrate (DESIGN.md). Every objective:

- is built with the special-token ids it needs (`special_tokens`, role -> id, see
  special_tokens.py) and `vocab_size`, plus its own options;
- `fits`: the model kinds it trains ("decoder", "encoder", "encoder_decoder");
- `check(special_tokens, seq_len)`: LlmzooError naming a missing token or a too-short sequence;
- `make_batch(tokens, generator)`: a pure function of a (B, T) LongTensor of token ids and a
  `torch.Generator` (the only source of randomness, so a seed reproduces a batch exactly);
  it returns model inputs and targets as tensors;
- `loss(outputs, batch)`: (scalar loss, metrics of floats) from what the model returned;
- `model_inputs(batch)`: the keys of the batch the model takes (the rest are targets).

Label convention (all objectives): `labels[b, t]` is the target of `logits[b, t]`, with
IGNORE_INDEX (-100) where there is no target. Causal objectives shift in `make_batch`, never
in `loss`, so the model side never shifts.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from llmzoo.errors import LlmzooError
from llmzoo.objectives.special_tokens import describe_role, normalise_special_tokens

IGNORE_INDEX = -100
MODEL_KINDS = ("decoder", "encoder", "encoder_decoder")

# Batch keys a model consumes; every other key is a target (labels, nsp_labels, rtd_labels, ...)
# or bookkeeping (original_ids, denoiser, ...) for the loss and metrics.
MODEL_INPUT_KEYS = (
    "input_ids", "attention_mask", "token_type_ids", "position_ids", "prefix_lengths", "langs",
    "perm_mask", "target_mapping", "decoder_input_ids", "decoder_attention_mask", "decoder_position_ids",
    "sbo_left", "sbo_right", "sbo_offsets",
)


class Objective:
    """Base class: holds special tokens and vocabulary size, validates, defines the API."""

    name: ClassVar[str] = ""
    fits: ClassVar[tuple[str, ...]] = ()
    paper: ClassVar[str] = ""
    # True when `loss` is one mean token cross-entropy, so exp(loss) is a perplexity; objectives that
    # add terms (ELECTRA's generator MLM + 50 x discriminator, MLM + NSP) set it False, and trainers
    # then report the loss alone
    loss_is_token_mean: ClassVar[bool] = True

    def __init__(self, *, special_tokens: Mapping[str, int] | None = None, vocab_size: int | None = None) -> None:
        if vocab_size is not None and (isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 1):
            raise LlmzooError(f"vocab_size must be a positive integer, got {vocab_size!r}")
        self.special_tokens = normalise_special_tokens(special_tokens)
        self.vocab_size = vocab_size
        if self.needs_vocab_size() and vocab_size is None:
            raise LlmzooError(f"objective {self.name!r} needs vocab_size (it samples random tokens or sentinel ids)")
        for role, token_id in self.special_tokens.items():
            if vocab_size is not None and token_id >= vocab_size:
                raise LlmzooError(f"special token {role!r} has id {token_id}, outside the vocabulary of {vocab_size}")
        self._check_tokens(self.special_tokens)

    # ----- what a subclass declares -----

    def required_tokens(self) -> tuple[str, ...]:
        """Roles this objective (with its options) cannot work without."""
        return ()

    def needs_vocab_size(self) -> bool:
        return False

    def min_seq_len(self) -> int:
        """Shortest (B, T) row length make_batch accepts."""
        return 2

    def make_batch(self, tokens: Tensor, generator: torch.Generator, **extra: Any) -> dict[str, Tensor]:
        raise NotImplementedError

    def loss(self, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        raise NotImplementedError

    # ----- shared behaviour -----

    def check(self, special_tokens: Mapping[str, int] | None = None, seq_len: int | None = None) -> None:
        """LlmzooError naming a missing special token or a sequence length that is too short."""
        tokens = self.special_tokens if special_tokens is None else normalise_special_tokens(special_tokens)
        self._check_tokens(tokens)
        if seq_len is not None:
            self._check_seq_len(int(seq_len))

    def _check_tokens(self, tokens: Mapping[str, int]) -> None:
        missing = [r for r in self.required_tokens() if r not in tokens]
        if missing:
            names = ", ".join(describe_role(r) for r in missing)
            raise LlmzooError(f"objective {self.name!r} needs special token(s) {names}; add them to the tokenizer")

    def _check_seq_len(self, seq_len: int) -> None:
        need = self.min_seq_len()
        if seq_len < need:
            raise LlmzooError(
                f"objective {self.name!r} with these options needs sequences of at least {need} tokens, got {seq_len}"
            )

    def _validate_tokens(self, tokens: Tensor) -> Tensor:
        """The (B, T) integer tensor make_batch works on, or a one-line LlmzooError."""
        if not isinstance(tokens, Tensor):
            raise LlmzooError(f"objective {self.name!r} expects a torch.LongTensor of token ids, got {type(tokens).__name__}")
        if tokens.dim() != 2 or tokens.size(0) == 0:
            raise LlmzooError(f"objective {self.name!r} expects token ids of shape (batch, seq_len), got {tuple(tokens.shape)}")
        if tokens.dtype.is_floating_point or tokens.dtype == torch.bool:
            raise LlmzooError(f"objective {self.name!r} expects integer token ids, got dtype {tokens.dtype}")
        self._check_seq_len(tokens.size(1))
        if tokens.numel() and int(tokens.min()) < 0:
            raise LlmzooError(f"objective {self.name!r} got a negative token id; pass token ids, not labels")
        if self.vocab_size is not None and tokens.numel() and int(tokens.max()) >= self.vocab_size:
            raise LlmzooError(
                f"token id {int(tokens.max())} is outside the vocabulary of {self.vocab_size} given to {self.name!r}"
            )
        return tokens.long()

    def model_inputs(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The part of a batch that goes into the model (see MODEL_INPUT_KEYS)."""
        return {k: batch[k] for k in MODEL_INPUT_KEYS if k in batch}

    def token(self, role: str) -> int:
        return self.special_tokens[role]

    def special_ids(self) -> Tensor:
        """Every id named in special_tokens: never masked, replaced or predicted by corruption."""
        return torch.tensor(sorted(set(self.special_tokens.values())), dtype=torch.long)

    def special_mask(self, tokens: Tensor) -> Tensor:
        """(B, T) True where the token is one of the special ids."""
        ids = self.special_ids().to(tokens.device)
        if ids.numel() == 0:
            return torch.zeros_like(tokens, dtype=torch.bool)
        return torch.isin(tokens, ids)

    @classmethod
    def option_names(cls) -> list[str]:
        """Keyword options of the constructor, following `**options` pass-throughs up the MRO."""
        names: list[str] = []
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            params = inspect.signature(init).parameters.values()
            names += [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in names]
            if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
                break
        return names

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, fits={self.fits})"


# ----- losses shared by objectives -----

# Data-parallel training gives each process some rows of a batch, and their target counts differ
# (MLM masks ~15% of each row). DDP/FSDP average the processes' gradients, so for the mean over the
# whole batch's targets a process's token mean must count count / (the batch's mean count per
# process); the trainer says how to get that mean (an all-reduce) for the duration of its loss.
_MEAN_COUNT: ContextVar[Callable[[int], float] | None] = ContextVar("mean_count_per_process", default=None)


@contextlib.contextmanager
def data_parallel_means(mean_count: Callable[[int], float]) -> Iterator[None]:
    """Within this block, token means are those of the batch split over processes: `mean_count(n)`
    takes this process's count and returns the mean count per process (every process calls it)."""
    token = _MEAN_COUNT.set(mean_count)
    try:
        yield
    finally:
        _MEAN_COUNT.reset(token)


def token_mean_scale(count: int) -> float:
    """The factor a mean over `count` local targets takes so that data-parallel processes average to
    the whole batch's mean (1.0 outside data_parallel_means). Every loss term calls it once."""
    mean_count = _MEAN_COUNT.get()
    if mean_count is None:
        return 1.0
    mean = mean_count(count)
    return count / mean if mean else 1.0


def token_cross_entropy(logits: Tensor, labels: Tensor) -> tuple[Tensor, int, float]:
    """Mean cross-entropy over positions whose label is not IGNORE_INDEX, in float32.

    Returns (loss, number of targets, accuracy). With no targets the loss is a zero that
    still carries the graph, so a batch that happens to have nothing to predict is harmless.
    """
    if logits.shape[:-1] != labels.shape:
        raise LlmzooError(f"logits of shape {tuple(logits.shape)} do not match labels of shape {tuple(labels.shape)}")
    flat_logits = logits.reshape(-1, logits.size(-1)).float()
    flat_labels = labels.reshape(-1).to(flat_logits.device)
    valid = flat_labels != IGNORE_INDEX
    count = int(valid.sum())
    scale = token_mean_scale(count)  # before the early return: every process takes part
    if count == 0:
        return flat_logits.sum() * 0.0, 0, 0.0
    loss = F.cross_entropy(flat_logits, flat_labels, ignore_index=IGNORE_INDEX)
    if scale != 1.0:
        loss = loss * scale
    with torch.no_grad():
        accuracy = float((flat_logits.argmax(-1)[valid] == flat_labels[valid]).float().mean())
    return loss, count, accuracy


def sequence_cross_entropy(logits: Tensor, labels: Tensor) -> tuple[Tensor, float]:
    """Mean cross-entropy of one class per sequence (NSP, SOP): logits (B, C), labels (B,)."""
    if logits.dim() != 2 or logits.size(0) != labels.size(0):
        raise LlmzooError(f"sequence logits of shape {tuple(logits.shape)} do not match labels of shape {tuple(labels.shape)}")
    loss = F.cross_entropy(logits.float(), labels.to(logits.device))
    with torch.no_grad():
        accuracy = float((logits.argmax(-1) == labels.to(logits.device)).float().mean())
    return loss, accuracy


def require_output(outputs: Mapping[str, Tensor], key: str, objective: str) -> Tensor:
    if key not in outputs:
        raise LlmzooError(f"objective {objective!r} needs the model output {key!r}; got {sorted(outputs)}")
    return outputs[key]


def lm_loss(outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor], objective: str) -> tuple[Tensor, dict[str, float]]:
    """The plain loss of a batch with `labels` aligned to `logits`."""
    loss, count, accuracy = token_cross_entropy(require_output(outputs, "logits", objective), batch["labels"])
    return loss, {"loss": float(loss.detach()), "targets": float(count), "accuracy": accuracy}
