"""What one training row becomes and how its loss is computed.

`clm` (the default) runs natively: rows of seq_len + 1 tokens give inputs and next-token
targets without copies. Any other name goes through the objectives registry
(llmzoo.objectives): rows of seq_len tokens go to `objective.make_batch`, the batch keys the model's
forward accepts are passed to it, and `objective.loss` scores the outputs.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from llmzoo.config import ModelConfig
from llmzoo.errors import LlmzooError


class Task:
    """Native causal LM (Radford et al. 2018): predict token t + 1 from tokens <= t."""

    name = "clm"

    def __init__(self, seq_len: int, config: ModelConfig, fused_loss: bool = False) -> None:
        self.seq_len = seq_len
        self.config = config
        # The model computes the loss itself from its hidden states (DecoderLM's `targets`), chunk by
        # chunk, without the (tokens x vocab) logits tensor: same loss, less time and memory.
        self.fused_loss = fused_loss

    @property
    def row_len(self) -> int:
        return self.seq_len + 1

    def make_batch(self, rows: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {"input_ids": rows[:, :-1], "labels": rows[:, 1:]}

    def model_inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        if self.fused_loss:
            return {"input_ids": batch["input_ids"], "targets": batch["labels"]}
        return {"input_ids": batch["input_ids"]}

    def loss(self, outputs, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.fused_loss:
            return outputs.loss + self._aux(outputs)
        logits = outputs.logits
        # Cross-entropy in fp32 even under bf16 autocast: log-softmax over a large vocabulary
        # loses too much precision in bf16.
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), batch["labels"].reshape(-1))
        return loss + self._aux(outputs)

    def _aux(self, outputs) -> torch.Tensor | float:
        aux = outputs.get("aux_loss") if hasattr(outputs, "get") else None
        if aux is None or not self.config.n_experts:
            return 0.0
        # Switch Transformer (Fedus et al. 2021): load-balancing loss keeps the router from collapsing;
        # ST-MoE's router z-loss (Zoph et al. 2022) keeps router logits small, where it is switched on.
        total = self.config.moe_aux_loss_coef * aux
        z = outputs.get("z_loss")
        if z is not None and self.config.moe_z_loss_coef:
            total = total + self.config.moe_z_loss_coef * z
        return total

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.loss(model(**self.model_inputs(batch)), batch)

    # Next-token rows are independent and every row has seq_len targets: a data-parallel rank
    # reads and batches its own rows only, and the mean of the ranks' losses is the batch's loss.
    corrupts = False
    # every parameter of a DecoderLM takes part in next-token prediction
    uses_every_parameter = True

    def split(self, batch: dict[str, torch.Tensor], rank: int, ranks: int) -> dict[str, torch.Tensor]:
        """Rank `rank`'s rows of a batch built whole (see ObjectiveTask)."""
        return batch

    def build_model(self, config: ModelConfig) -> nn.Module:
        from llmzoo.models.build import build_model

        return build_model(config)


class ObjectiveTask(Task):
    """Any objective from llmzoo.objectives."""

    def __init__(self, seq_len: int, config: ModelConfig, objective, accepted: set[str]) -> None:
        super().__init__(seq_len, config)
        self.objective = objective
        self.name = objective.name
        self.accepted = accepted
        # ELECTRA samples the generator's replacements; seeded so runs are reproducible.
        self.generator = torch.Generator().manual_seed(0)

    @property
    def row_len(self) -> int:
        return self.seq_len

    def make_batch(self, rows: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return self.objective.make_batch(rows, generator)

    def model_inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        return {k: v for k, v in batch.items() if k in self.accepted}

    def loss(self, outputs, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        loss, _ = self.objective.loss(outputs, batch)
        return loss + self._aux(outputs)

    # The corruption is drawn for a whole batch at once (one generator, batched draws), so every
    # data-parallel rank builds the whole micro-batch and keeps its rows: the same examples one
    # process would train on, whatever the number of processes.
    corrupts = True
    # a model may carry heads its objective does not train (a pooler, a pair head, XLNet's extras)
    uses_every_parameter = False

    def split(self, batch: dict[str, torch.Tensor], rank: int, ranks: int) -> dict[str, torch.Tensor]:
        """Rank `rank`'s rows of `batch` (every tensor of an objective's batch is one row per example).
        Their target counts differ between ranks; the engine's loss context (objectives.base
        data_parallel_means) makes the ranks' token means add up to the batch's."""
        rows = batch["input_ids"].size(0)
        if rows % ranks:
            raise LlmzooError(f"internal: {rows} rows do not split over {ranks} data-parallel ranks")
        lo, hi = rank * rows // ranks, (rank + 1) * rows // ranks
        return {k: v[lo:hi] if torch.is_tensor(v) and v.dim() and v.size(0) == rows else v for k, v in batch.items()}

    def build_model(self, config: ModelConfig) -> nn.Module:
        """The model this objective trains at `config`'s sizes: the plain stack, or the objective's
        wrapper (ELECTRA's generator + discriminator, SpanBERT's boundary head, XLM's language embeddings)."""
        from llmzoo.models.build import build_model
        from llmzoo.objectives.modeling.architectures import architecture_for

        wrapper = architecture_for(self.objective).wrapper
        if wrapper == "electra":
            from llmzoo.objectives.modeling.electra import ElectraPretrainingModel

            return ElectraPretrainingModel(config)
        if wrapper == "spanbert":
            from llmzoo.objectives.modeling.spanbert import SpanBERTModel

            return SpanBERTModel(config, max_span_offset=getattr(self.objective, "max_span_offset", 30))
        model = build_model(config)
        if wrapper == "languages":
            from llmzoo.objectives.modeling.languages import LanguageEmbeddings

            return LanguageEmbeddings(model)
        return model

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        from llmzoo.objectives.modeling.forward import forward_for_objective
        from llmzoo.train.distributed import unwrap

        # The objective's own way of running its model (ELECTRA's two passes, GLM's 2D positions, ...),
        # read off the llmzoo model inside any wrapper but called through the wrapper (DDP syncs
        # gradients, FSDP gathers parameters, only in its forward).
        outputs = forward_for_objective(unwrap(model), self.objective, batch, self.generator, through=model)
        return self.loss(outputs, batch)


def is_native_clm(name: str, options: dict) -> bool:
    """Whether objective `name` runs as the native Task (rows of seq_len + 1 tokens), not through the registry."""
    return name.strip().lower().replace("-", "_") in ("clm", "causal_lm", "gpt") and not options


def make_task(name: str, options: dict, *, seq_len: int, config: ModelConfig, tokenizer, accepted: set[str],
              eos_id: int | None = None, fused_loss: bool = False) -> Task:
    """The task for objective `name`; one-line LlmzooError when it does not fit the architecture."""
    from llmzoo.objectives import ALIASES, OBJECTIVES, get_objective
    from llmzoo.objectives.special_tokens import special_tokens_from_tokenizer

    key = name.strip().lower().replace("-", "_")
    if is_native_clm(name, options):
        if config.arch != "decoder" or config.head != "lm":
            raise LlmzooError(f"objective 'clm' trains decoder models with an LM head; model {config.name!r} is "
                              f"arch={config.arch!r} head={config.head!r}")
        return Task(seq_len, config, fused_loss=fused_loss and "targets" in accepted)
    cls = OBJECTIVES.get(ALIASES.get(key, key))
    if cls is not None and config.arch not in cls.fits:  # before building: its own errors would mislead
        raise LlmzooError(f"objective {cls.name!r} trains {' / '.join(cls.fits)} models, but model "
                          f"{config.name!r} is arch={config.arch!r}; pick a fitting model or objective")
    if cls is not None and config.head == "none":  # else a KeyError-like "needs the model output 'logits'"
        head = "mlm" if config.arch == "encoder" else "lm"
        raise LlmzooError(f"objective {cls.name!r} scores the model's token predictions, but model {config.name!r} "
                          f"has no output head (head='none'); add model.head={head}")
    special = special_tokens_from_tokenizer(tokenizer) if tokenizer is not None else {}
    if eos_id is not None:
        special.setdefault("eos", eos_id)  # the dataset's document separator is an EOS whatever the tokenizer says
    options = dict(options)
    if getattr(cls, "name", None) == "wwm_mlm" and "continuation" not in options and tokenizer is not None:
        from llmzoo.objectives.special_tokens import continuation_table

        # Whole-word masking needs word boundaries: WordPiece marks continuations with "##".
        options["continuation"] = continuation_table(tokenizer, config.vocab_size)
    objective = get_objective(name, special_tokens=special, vocab_size=config.vocab_size, **options)
    objective.check(seq_len=seq_len)
    from llmzoo.objectives.modeling.forward import objective_kinds

    kinds = objective_kinds(objective)  # T5/UL2 batches are laid out for one kind (their `format`)
    if config.arch not in kinds:
        raise LlmzooError(f"objective {objective.name!r} as configured trains {' / '.join(kinds)} models, but model "
                          f"{config.name!r} is arch={config.arch!r}; pick a fitting model or objective")
    return ObjectiveTask(seq_len, config, objective, accepted)

