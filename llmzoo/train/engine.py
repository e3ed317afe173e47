"""The model in its parallel layout, with the few operations the loop needs:
forward + backward of one optimizer step's micro-batches, validation loss, and full state dicts.

Which rows a process reads: a step consumes `batch_size` consecutive samples of the run
(see batches.py). With gradient accumulation they are cut into `grad_accum` micro-batches; in
data-parallel layouts each rank takes its slice of every micro-batch. Tensor and pipeline
parallel ranks all read the same rows (they split the model, not the data).

The model, its batches and the loss totals live on the run's device (DistEnv.device: the CPU or this
process's GPU); bf16 autocast runs on that device. State dicts come back as CPU tensors.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from llmzoo.errors import ConfigError
from llmzoo.train import state as state_io
from llmzoo.train.distributed import (
    DistEnv, all_reduce_sum, check_layout, clip_grad_norm, data_parallel_size, make_zero1_optimizer, no_grad_sync,
    parallelize, unwrap,
)
from llmzoo.nn.bf16 import bf16_gemm_via_fp32, use_bf16_emulation
from llmzoo.nn.frozen_cast import frozen_weight_casts
from llmzoo.train.model import compile_blocks, enable_activation_checkpointing, set_fused_projections
from llmzoo.train.optim import adamw_kwargs, param_groups
from llmzoo.train.recipe import Recipe
from llmzoo.train.task import Task


class Engine:
    def __init__(self, model: nn.Module, recipe: Recipe, env: DistEnv, task: Task) -> None:
        self.recipe, self.env, self.task = recipe, env, task
        self.mode = recipe.parallel
        self.dp_size = data_parallel_size(self.mode, env)
        self.dp_rank = env.rank if self.dp_size > 1 else 0
        if recipe.batch_size % recipe.grad_accum:
            raise ConfigError(f"batch_size={recipe.batch_size} is not divisible by grad_accum={recipe.grad_accum}")
        self.micro_global = recipe.batch_size // recipe.grad_accum
        if self.micro_global % self.dp_size:
            raise ConfigError(f"each micro-batch of {self.micro_global} rows (batch_size / grad_accum) must split "
                              f"evenly over {self.dp_size} data-parallel processes")
        self.micro_local = self.micro_global // self.dp_size
        self.device = env.device
        bf16 = recipe.precision == "bf16"
        # the fp32-kernel route for bf16 GEMMs is for CPUs without bf16 units; GPUs have them
        self.emulate_bf16 = bf16 and self.device.type == "cpu" and use_bf16_emulation(recipe.bf16_gemm)
        self.cast_frozen_once = bf16 and not self.emulate_bf16  # llmzoo.nn.frozen_cast
        model.to(self.device)
        if recipe.activation_checkpointing:
            enable_activation_checkpointing(model)
        if self.mode != "tp":  # TP shards each projection on its own; fusing would gather them
            set_fused_projections(model, recipe.fuse_projections)
        check_layout(model, self.mode, env.world_size, task.name)
        self.pipeline = None
        if self.mode == "pp":
            from llmzoo.train.pipeline import Pipeline, check_pipeline

            check_pipeline(model.config, env.world_size, task.name)
            if self.micro_global % recipe.pp_microbatches:
                raise ConfigError(f"parallel=pp: the {self.micro_global} rows of a micro-step do not split into "
                                  f"pp_microbatches={recipe.pp_microbatches}")
            self.pipeline = Pipeline(model, env, recipe.pp_microbatches, recipe.pp_schedule, recipe.grad_accum,
                                     self.device)
            self.module = self.pipeline.module
            self.base = self.module
        else:
            self.module = parallelize(model, self.mode, env, every_parameter_used=task.uses_every_parameter)
            self.base = unwrap(self.module)
        if recipe.compile:
            compile_blocks(self.base if self.mode != "pp" else self.module)
        if self.mode == "ep":  # checkpoints name the experts as the unsharded model does
            from llmzoo.parallel.expert import named_global_parameters

            self.names = {id(p): n for n, p, _ in named_global_parameters(self.base)}
        else:
            self.names = {id(p): n for n, p in self.base.named_parameters()}
        self.params = list(self.base.parameters())
        groups = param_groups(self.base, recipe.weight_decay)
        if self.mode == "zero1":
            self.optimizer = make_zero1_optimizer(groups, adamw_kwargs(recipe))
        else:
            # torch's fused CPU AdamW takes plain tensors; FSDP's DTensor shards use foreach; TP mixes
            # DTensors (sharded projections) with plain tensors (embeddings, norms), which foreach
            # kernels refuse, so it steps one tensor at a time.
            if self.mode in ("fsdp", "zero2"):
                impl = {"foreach": True}
            elif self.mode == "tp":
                impl = {"foreach": False}
            else:
                impl = {"fused": True}
            self.optimizer = torch.optim.AdamW(groups, **adamw_kwargs(recipe), **impl)

    # ------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def autocast(self):
        """The forward pass's precision: fp32, or bf16 autocast (fp32 master weights), with bf16
        GEMMs through the fp32 kernel where the CPU has no bf16 units."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.recipe.precision == "bf16"):
            # Frozen weights cast once where bf16 GEMMs are native; emulated GEMMs round them anyway
            # (measured on an AVX2 CPU: no gain there, 15.0 vs 14.4 s per SmolLM2 LoRA step, noise).
            with bf16_gemm_via_fp32(self.emulate_bf16), frozen_weight_casts(self.cast_frozen_once):
                yield

    def _generator(self, first_sample: int) -> torch.Generator:
        # Objectives draw their corruption from this generator: a pure function of the rows' position.
        return torch.Generator().manual_seed((self.recipe.seed * 1_000_003 + first_sample) % (2**63 - 1))

    def _batch(self, sampler, first: int, count: int) -> dict[str, torch.Tensor]:
        batch = self.task.make_batch(sampler.rows(first, count), self._generator(first))
        if self.device.type == "cpu":
            return batch
        return {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}

    def _local_batch(self, sampler, first: int) -> dict[str, torch.Tensor]:
        """This rank's rows of the micro-batch starting at sample `first`."""
        if self.task.corrupts and self.dp_size > 1:
            whole = self._batch(sampler, first, self.micro_global)  # the corruption one process would draw
            return self.task.split(whole, self.dp_rank, self.dp_size)
        return self._batch(sampler, first + self.dp_rank * self.micro_local, self.micro_local)

    def _loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The task's loss of this rank's rows, its token means scaled so that the ranks' losses
        (and gradients) average to those of the whole micro-batch."""
        if not (self.task.corrupts and self.dp_size > 1):
            return self.task(self.module, batch)
        from llmzoo.objectives.base import data_parallel_means

        with data_parallel_means(self._mean_count):
            return self.task(self.module, batch)

    def _mean_count(self, count: int) -> float:
        total = torch.tensor(float(count), device=self.device)
        all_reduce_sum(total, self.env)
        return float(total) / self.dp_size

    def forward_backward(self, sampler, samples: int, factor: float) -> float:
        """Accumulate the gradients of one optimizer step; return the step's mean loss (all ranks agree).
        `factor` multiplies the loss (1.0; the spike tests inject NaN or 1000)."""
        accum = self.recipe.grad_accum
        total = torch.zeros((), device=self.device)
        tokens = 0
        if self.pipeline is not None:
            for m in range(accum):
                batch = self._batch(sampler, samples + m * self.micro_global, self.micro_global)
                with self.autocast():
                    total += self.pipeline.forward_backward(batch, factor)
            self.step_tokens = 0  # pretraining only: the loop counts batch_size x seq_len
            return float(total) / accum
        batches = [self._local_batch(sampler, samples + m * self.micro_global) for m in range(accum)]
        weights = self._target_weights(batches)
        for m, batch in enumerate(batches):
            tokens += self._token_count(batch)
            with no_grad_sync(self.module, self.mode, sync=(m == accum - 1)):
                with self.autocast():
                    loss = self._loss(batch) * factor * weights[m]
                (loss / accum).backward()
            total += loss.detach().float()
        if self.dp_size > 1:
            all_reduce_sum(total, self.env)
            total /= self.dp_size
        self.step_tokens = self._global_tokens(tokens)
        return float(total) / accum

    def _target_weights(self, batches: list[dict[str, torch.Tensor]]) -> list[float]:
        """Per micro-batch loss weights that make the step's loss the mean over all its targets.

        A task whose loss is a mean over a varying number of targets (SFT's assistant tokens) says
        how many a batch has (`target_count`). Averaging micro-batch and rank means would weight a
        target in a short micro-batch more than one in a long one; weighting each mean by its count
        over the mean count gives the batch's own token mean, however it is split into micro-batches
        and processes. Tasks without target_count (pretraining: equal counts) get weights of 1."""
        count = getattr(self.task, "target_count", None)
        if count is None or len(batches) * self.dp_size == 1:
            return [1.0] * len(batches)
        local = torch.tensor([float(count(b)) for b in batches], device=self.device)
        total = local.sum()
        if self.dp_size > 1:
            all_reduce_sum(total, self.env)
        if float(total) == 0:
            return [1.0] * len(batches)
        return (local * (len(batches) * self.dp_size) / total).tolist()

    def _token_count(self, batch: dict[str, torch.Tensor]) -> int:
        """Tokens this rank's micro-batch trains on, where the task counts them (fine-tuning rows
        differ in length); pretraining steps always hold batch_size x seq_len."""
        count = getattr(self.task, "token_count", None)
        return count(batch) if count is not None else 0

    def _global_tokens(self, local: int) -> int:
        if self.dp_size == 1 or not hasattr(self.task, "token_count"):
            return local
        total = torch.tensor(float(local), device=self.device)
        all_reduce_sum(total, self.env)
        return int(total)

    def clip_gradients(self) -> float:
        """The global gradient norm (before clipping to grad_clip)."""
        return clip_grad_norm(self.params, self.recipe.grad_clip, self.mode, self.env)

    def optimizer_step(self) -> None:
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def discard_gradients(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    @torch.no_grad()
    def evaluate(self, sampler, batches: int) -> float | None:
        """Mean loss over the first `batches` micro-batches of the (unshuffled) validation split."""
        per_batch = self.micro_global
        batches = min(batches, sampler.num_windows // per_batch)
        if batches < 1:
            return None
        self.module.train(False)
        total = torch.zeros((), device=self.device)
        try:
            for b in range(batches):
                if self.pipeline is not None:
                    batch = self._batch(sampler, b * per_batch, per_batch)
                    with self.autocast():
                        total += self.pipeline.eval_loss(batch)
                    continue
                batch = self._local_batch(sampler, b * per_batch)
                with self.autocast():
                    total += self._loss(batch).float()
        finally:
            self.module.train(True)
        if self.dp_size > 1:
            all_reduce_sum(total, self.env)
            total /= self.dp_size
        return float(total) / batches

    # ------------------------------------------------------------------------------------------
    def model_state(self) -> dict[str, torch.Tensor]:
        return state_io.full_model_state(self.module, self.mode, self.env)

    def optimizer_state(self) -> dict:
        return state_io.full_optimizer_state(self.module, self.optimizer, self.mode, self.env, self.names)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The tensors that train (a PEFT run's adapter): what its checkpoints hold of the model."""
        trainable = {n for n, p in self.base.named_parameters() if p.requires_grad}
        return {k: v for k, v in self.model_state().items() if k in trainable}

    def load_state(self, model_state: dict[str, torch.Tensor], optimizer_state: dict, *,
                   trainable_only: bool = False) -> None:
        """trainable_only: `model_state` holds just the trainable tensors (trainable_state), loaded
        onto the base weights this run started from."""
        only = {n for n, p in self.base.named_parameters() if p.requires_grad} if trainable_only else None
        state_io.load_model_state(self.module, self.mode, self.env, model_state, only=only)
        state_io.load_optimizer_state(self.module, self.optimizer, self.mode, self.env, self.names, optimizer_state)
