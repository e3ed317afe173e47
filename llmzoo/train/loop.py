"""The one training loop: `train(recipe)`, `llmzoo pretrain --recipe FILE` or `llmzoo finetune --recipe FILE`.

Pretraining reads token windows of a prepared dataset through a Task of llmzoo/train/task.py; a
fine-tuning recipe (`task:` set) loads its base from `model.from`, applies `peft:`, and reads the
rows and loss of a llmzoo.finetune task (llmzoo/train/finetune.py). Everything below is shared.

Per optimizer step: set the learning rate, accumulate gradients over the step's micro-batches,
check the loss for a spike (NaN/inf, or far above the running median: rewind to the last good
checkpoint and skip the batches around it), clip, step AdamW; every few steps validate and
checkpoint. A run killed at any moment and resumed with `--resume RUN_DIR` continues with the same
per-step losses, bit for bit, as if never interrupted: the checkpoint holds the exact fp32
weights, AdamW moments, RNG states and data position, and batches are a pure function of it.
"""

from __future__ import annotations

import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmzoo.config import ModelConfig
from llmzoo.errors import LlmzooError
from llmzoo.train import checkpoint as ckpt_io
from llmzoo.train import preflight
from llmzoo.train.batches import ExampleSampler, WindowSampler
from llmzoo.train.distributed import DistEnv, barrier, gather_objects, init_distributed, shutdown
from llmzoo.train.engine import Engine
from llmzoo.train.faults import faults_from_env
from llmzoo.train.metrics import MetricsLog, plot_loss_curve
from llmzoo.train.optim import lr_at, set_lr
from llmzoo.train.progress import ProgressBar, Throughput, measure_matmul_peak
from llmzoo.train.recipe import Recipe
from llmzoo.train.spikes import SpikeDetector, plan_rewind


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    losses: dict[int, float] = field(default_factory=dict)  # step -> train loss of this process's timeline
    val_loss: float | None = None
    val_perplexity: float | None = None  # exp(val_loss) where the loss is a mean token cross-entropy
    rewinds: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: Path | None = None
    curve: Path | None = None
    sample: str | None = None
    sample_continues_prompt: bool = True  # False: an encoder-decoder's output for the prompt
    model_dir: Path | None = None
    adapter_dir: Path | None = None  # a PEFT fine-tune's adapter, in peft's format


def _rng_state() -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"python": [version, list(internal), gauss], "numpy": [kind, keys.tolist(), pos, has_gauss, cached],
            "torch": torch.get_rng_state().tolist(),
            **({"cuda": torch.cuda.get_rng_state().tolist()} if torch.cuda.is_initialized() else {})}


def _set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():  # dropout on the GPU draws from its own generator
        torch.cuda.set_rng_state(torch.tensor(state["cuda"], dtype=torch.uint8))


class Trainer:
    def __init__(self, recipe: Recipe, resume: str | Path | None = None, *, model: torch.nn.Module | None = None) -> None:
        """model (fine-tuning recipes only): train this in-memory model in place instead of loading
        model.from; the caller keeps it, so the run writes no model directory (train_objective)."""
        self.recipe = recipe
        self.given_model = model
        if model is not None and not recipe.is_finetune:
            raise LlmzooError("Trainer(model=...) takes a fine-tuning recipe (task: set); pretraining builds its own model")
        self.faults = faults_from_env()  # test-only fault injection, from the environment (faults.py)
        self.env: DistEnv = init_distributed(recipe.parallel, recipe.device)
        self.main = self.env.is_main
        if recipe.threads:
            torch.set_num_threads(recipe.threads)
        if recipe.deterministic:
            torch.use_deterministic_algorithms(True)
        self.resume_from = ckpt_io.find_checkpoint(resume) if resume else None
        self.run_dir = ckpt_io.run_dir_of(self.resume_from) if self.resume_from else recipe.resolved_run_dir()
        if self.resume_from is None and ckpt_io.complete_checkpoints(self.run_dir):
            latest = ckpt_io.complete_checkpoints(self.run_dir)[-1]
            raise LlmzooError(f"run_dir {self.run_dir} already has checkpoints (latest {latest.name}); pass "
                              f"--resume {self.run_dir} to continue it, or set run_dir=... for a new run")
        self.finetune = recipe.is_finetune
        self.trainable_only = False  # checkpoints hold only the trainable tensors (PEFT runs)
        if self.finetune:
            model = self._setup_finetune()  # refuses a recipe that trains nothing before run_dir exists
            if self.main:
                preflight.prepare_run_dir(self.run_dir)
        else:
            # Pre-flight (llmzoo/train/preflight.py): refuse in one line what cannot work, before a
            # tokenizer is trained, data prepared or a model allocated; the model first, so a refused run
            # leaves no empty run_dir behind.
            preflight.check_model_fits(recipe, self.run_dir, self.env.world_size)
            if self.main:
                preflight.prepare_run_dir(self.run_dir)
            self._setup_data()
            model = self._setup_pretraining_model()
        self._setup_engine(model)

    # ------------------------------------------------------------------------------------------
    def _setup_data(self) -> None:
        from llmzoo.data import open_token_dataset
        from llmzoo.train.prepare import ensure_prepared

        recipe = self.recipe
        if self.main:  # rank 0 builds missing data first; the others then find it
            data_dir, tokenizer = ensure_prepared(recipe, self.run_dir, progress=recipe.progress)
        barrier(self.env)
        if not self.main:
            data_dir, tokenizer = ensure_prepared(recipe, self.run_dir, progress=False)
        if not Path(data_dir).is_dir():
            raise LlmzooError(f"data directory {str(data_dir)!r} does not exist; prepare it with `llmzoo data prepare`")
        self.train_data = open_token_dataset(data_dir, "train")
        if self.train_data.num_tokens == 0:
            raise LlmzooError(f"{data_dir} has no training tokens (every document was filtered out?); "
                              f"prepare it again with more or different text")
        try:
            self.val_data = open_token_dataset(data_dir, "val")
        except LlmzooError:
            self.val_data = None
        from llmzoo.train.task import is_native_clm

        # the row make_task's task will take
        window = recipe.seq_len + 1 if is_native_clm(recipe.objective, recipe.objective_options) else recipe.seq_len
        preflight.check_data(recipe, self.train_data.num_tokens, window)
        self.tokenizer_source = tokenizer or getattr(self.train_data, "tokenizer", None)
        self.data_dir = Path(data_dir)

    def _load_tokenizer(self):
        if not self.tokenizer_source:
            return None
        try:
            from llmzoo.tokenizer import load_tokenizer

            return load_tokenizer(self.tokenizer_source)
        except (LlmzooError, OSError, ValueError):
            return None

    def _seed(self) -> None:
        # Same seed on every rank: every layout starts from the same weights as one process would.
        torch.manual_seed(self.recipe.seed)
        random.seed(self.recipe.seed)
        np.random.seed(self.recipe.seed % 2**32)

    def _setup_finetune(self) -> torch.nn.Module:
        """The base from model.from with peft applied, and the task's rows and loss."""
        from llmzoo.train import finetune as ft

        recipe = self.recipe
        self._seed()  # adapter initialisation (LoRA's A) draws from it
        model = self.given_model if self.given_model is not None else ft.load_base(recipe)
        self.config = model.config
        if self.resume_from is not None:
            ckpt_io.check_same_model(self.resume_from, self.config)
        ft.apply_peft(model, recipe)
        self.trainable_only = recipe.peft is not None
        self.tokenizer = ft.load_tokenizer_for(recipe, model)
        data = ft.build_data(recipe, self.tokenizer, model)
        ft.check_trains_something(model, recipe)  # after the builder: a task may freeze parts (LLaMA-Pro)
        self.task = ft.FinetuneTask(recipe.task, data.task)
        self.sampler = ExampleSampler(data.train, recipe.seed)
        self.val_sampler = None
        if data.val is not None and len(data.val):
            self.val_sampler = ExampleSampler(data.val, recipe.seed, shuffle=False, what="validation")
            rows = recipe.batch_size // recipe.grad_accum  # validation runs whole micro-batches
            if len(data.val) < rows and self.main:
                print(f"note: the validation data has {len(data.val)} rows, fewer than one micro-batch of {rows} "
                      f"(batch_size / grad_accum); no validation loss", file=sys.stderr)
        self.eos_id = None
        return model

    def _setup_pretraining_model(self) -> torch.nn.Module:
        from llmzoo.models.build import build_model
        from llmzoo.train.model import forward_kwargs, resolve_model_config
        from llmzoo.train.task import make_task

        recipe = self.recipe
        self.config: ModelConfig = resolve_model_config(recipe.model, vocab_size=self.train_data.vocab_size,
                                                        eos_id=self.train_data.eos_id, name=recipe.name)
        preflight.check_memory(recipe, self.config, self.env.world_size)  # at the dataset's own vocabulary
        if self.resume_from is not None:
            ckpt_io.check_same_model(self.resume_from, self.config)
        self.tokenizer = self._load_tokenizer()
        self.eos_id = self.train_data.eos_id
        self._seed()
        plain = build_model(self.config)
        self.task = make_task(recipe.objective, recipe.objective_options, seq_len=recipe.seq_len, config=self.config,
                              tokenizer=self.tokenizer, accepted=forward_kwargs(plain), eos_id=self.train_data.eos_id,
                              fused_loss=recipe.fused_loss and recipe.parallel != "pp")
        torch.manual_seed(recipe.seed)  # the objective's model starts from the same seed as the plain one
        model = self.task.build_model(self.config)
        self.sampler = WindowSampler(self.train_data, recipe.seq_len, recipe.seed, window=self.task.row_len)
        self.val_sampler = None
        if self.val_data is not None and self.val_data.num_tokens >= self.task.row_len:
            self.val_sampler = WindowSampler(self.val_data, recipe.seq_len, recipe.seed, window=self.task.row_len,
                                             shuffle=False, what="validation")
        return model

    def _setup_engine(self, model: torch.nn.Module) -> None:
        from llmzoo.flops import flops_per_token

        recipe = self.recipe
        unique = {id(p): p for p in model.parameters()}.values()
        self.n_params = sum(p.numel() for p in unique)
        self.n_trainable = sum(p.numel() for p in unique if p.requires_grad)
        self.engine = Engine(model, recipe, self.env, self.task)
        from llmzoo.models.retro_config import RetroConfig

        # RETRO (a task's own model): its decoder's FLOPs; the neighbour encoder's are left out (MFU reads low)
        counted = self.config.decoder if isinstance(self.config, RetroConfig) else self.config
        self.flops_per_token = flops_per_token(counted, recipe.seq_len).training
        self.tokens_per_step = recipe.batch_size * recipe.seq_len  # a pretraining step's; fine-tuning counts them
        self.step = 0
        self.tokens = 0
        self.samples = 0
        self.lr_scale = 1.0
        self.rewinds: list[dict[str, Any]] = []
        self.spikes = SpikeDetector(recipe.spike_factor, recipe.spike_window, recipe.spike_min_history)
        self.metrics = MetricsLog(self.run_dir, enabled=self.main)

    # ------------------------------------------------------------------------------------------
    def _trainer_state(self) -> dict[str, Any]:
        return {"step": self.step, "samples": self.samples, "tokens": self.tokens, "lr_scale": self.lr_scale,
                "spikes": self.spikes.state_dict(), "rewinds": self.rewinds,
                "rng": {str(r): s for r, s in enumerate(gather_objects(_rng_state(), self.env))},
                "world_size": self.env.world_size, "parallel": self.recipe.parallel}

    def save(self) -> Path | None:
        model_state = self.engine.trainable_state() if self.trainable_only else self.engine.model_state()
        optimizer_state = self.engine.optimizer_state()
        trainer = self._trainer_state()
        path = None
        if self.main:
            state = ckpt_io.TrainingState(model_state, optimizer_state, trainer, self.config, self.recipe.to_dict())
            path = ckpt_io.save_checkpoint(self.run_dir, self.step, state, keep_last=self.recipe.keep_last,
                                           crash_midway=self.faults.crash_in_checkpoint == self.step)
            self.metrics.write({"kind": "event", "event": "checkpoint", "step": self.step, "path": str(path)})
        barrier(self.env)
        self._last_saved = self.step
        return path

    def _restore(self, checkpoint: Path, *, keep_history: bool = False) -> dict[str, Any]:
        state = ckpt_io.load_checkpoint(checkpoint)
        self.engine.load_state(state.model, state.optimizer, trainable_only=self.trainable_only)
        trainer = state.trainer
        self.step, self.samples = int(trainer["step"]), int(trainer["samples"])
        self.tokens = int(trainer.get("tokens", self.step * self.tokens_per_step))
        self.lr_scale = float(trainer.get("lr_scale", 1.0))
        self.spikes.load_state_dict(trainer.get("spikes", {}))
        if not keep_history:
            self.rewinds = list(trainer.get("rewinds", []))
        rng = trainer.get("rng", {})
        mine = rng.get(str(self.env.rank)) or rng.get("0")
        if mine:
            _set_rng_state(mine)
        return trainer

    # ------------------------------------------------------------------------------------------
    def _rewind(self, loss: float, reason: str, batch_index: int, log: ProgressBar) -> None:
        """PaLM-style recovery: back to the newest checkpoint, skip the batches since then (and
        spike_skip_after more), optionally with a lower learning rate (OPT)."""
        recipe = self.recipe
        self.engine.discard_gradients()
        spike_step = self.step + 1
        candidates = [c for c in ckpt_io.complete_checkpoints(self.run_dir) if ckpt_io.checkpoint_step(c) <= self.step]
        if not candidates:
            raise LlmzooError(f"loss spike at step {spike_step} ({reason}) and no checkpoint to rewind to; "
                              f"set checkpoint_every > 0")
        if len(self.rewinds) >= recipe.max_rewinds:
            raise LlmzooError(f"training diverged: loss spike at step {spike_step} ({reason}) after "
                              f"{len(self.rewinds)} rewinds (max_rewinds); lower lr or raise warmup_steps")
        checkpoint = candidates[-1]
        scale_before = self.lr_scale  # lowered LRs of earlier rewinds stay lowered
        trainer = self._restore(checkpoint, keep_history=True)
        bs = recipe.batch_size
        plan = plan_rewind(self.step, int(trainer["samples"]) // bs, batch_index + 1, recipe.spike_skip_after,
                           scale_before, recipe.spike_lr_factor)
        self.lr_scale = plan.lr_scale
        self.samples = plan.skip_to_batch * bs
        event = {"kind": "event", "event": "spike", "step": spike_step, "loss": loss if math.isfinite(loss) else str(loss),
                 "reason": reason, "rewind_to": plan.checkpoint_step, "skipped_batches": [plan.skip_from_batch, plan.skip_to_batch],
                 "lr_scale": self.lr_scale}
        self.rewinds.append(event)
        self.metrics.truncate_after(self.step)
        self.metrics.write(event)
        log.write(f"loss spike at step {spike_step} ({reason}): rewound to step {plan.checkpoint_step}, skipping "
                  f"batches {plan.skip_from_batch}..{plan.skip_to_batch - 1}, lr scale {self.lr_scale:g}")

    # ------------------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        recipe = self.recipe
        self._last_saved = -1
        if self.resume_from is not None:
            self._restore(self.resume_from)
            self._last_saved = self.step
            self.metrics.truncate_after(self.step)
            self.metrics.write({"kind": "event", "event": "resume", "step": self.step, "from": str(self.resume_from)})
        else:
            if self.main and self.metrics.path.exists():
                self.metrics.path.unlink()  # a previous attempt that never checkpointed
            if recipe.checkpoint_every:
                self.save()  # step 0: something to rewind to if the very first steps spike
        result = TrainResult(run_dir=self.run_dir, steps=self.step)
        # MFU against the GEMMs that actually run: bf16, or fp32 when bf16 is computed through it
        gemm_dtype = torch.bfloat16 if recipe.precision == "bf16" and not self.engine.emulate_bf16 else torch.float32
        peak = recipe.peak_flops or measure_matmul_peak(gemm_dtype, seconds=1.0, device=self.env.device.type)
        throughput = Throughput(self.flops_per_token, peak * self.env.world_size)
        if self.main and recipe.progress:
            what = f"fine-tuning ({recipe.task})" if self.finetune else "pretraining"
            trains = f" ({self.n_trainable / 1e6:.3f}M trainable)" if self.n_trainable != self.n_params else ""
            print(f"{what} {self.config.name}: {self.n_params / 1e6:.2f}M parameters{trains}, on {self.env.device}, "
                  f"{recipe.max_steps} steps x {recipe.batch_size} x {recipe.seq_len} tokens, parallel={recipe.parallel} "
                  f"x{self.env.world_size}, matmul peak {peak / 1e9:.1f} GFLOP/s -> {self.run_dir}", file=sys.stderr)
        bar = ProgressBar(recipe.max_steps, self.step, enabled=self.main and recipe.progress,
                          desc="finetune" if self.finetune else "pretrain")
        val_loss = None
        started = time.perf_counter()
        throughput.update(self.tokens)
        # A fine-tuning task's own per-step hooks (PPO, llmzoo/align/ppo_task.py): before_step makes the
        # rows the step reads (a rollout from the current policy), step_metrics adds to its train record.
        hooks = getattr(self.task, "task", None)
        before_step, step_metrics = getattr(hooks, "before_step", None), getattr(hooks, "step_metrics", None)
        try:
            while self.step < recipe.max_steps:
                lr = lr_at(self.step, recipe) * self.lr_scale
                set_lr(self.engine.optimizer, lr)
                batch_index = self.samples // recipe.batch_size
                if before_step is not None:
                    before_step(self.engine.base, self.samples, self.engine.autocast)
                loss = self.engine.forward_backward(self.sampler, self.samples, self.faults.loss_factor(batch_index))
                reason = self.spikes.is_spike(loss)
                grad_norm = None
                if reason is None:
                    grad_norm = self.engine.clip_gradients()
                    if not math.isfinite(grad_norm):
                        reason = f"gradient norm {grad_norm}"
                if reason is not None:
                    self._rewind(loss, reason, batch_index, bar)
                    throughput.restart()
                    continue
                self.engine.optimizer_step()
                self.step += 1
                self.samples += recipe.batch_size
                self.tokens += self.engine.step_tokens if self.finetune else self.tokens_per_step
                self.spikes.add(loss)
                throughput.update(self.tokens)
                extra = step_metrics() if step_metrics is not None else {}
                if self.step % recipe.log_every == 0 or self.step == recipe.max_steps:
                    self.metrics.write({"kind": "train", "step": self.step, "loss": loss, "lr": lr,
                                        "grad_norm": grad_norm, "batch": batch_index,
                                        "tokens": self.tokens,
                                        "tokens_per_s": round(throughput.tokens_per_s, 1),
                                        "mfu": round(throughput.mfu, 4),
                                        "elapsed_s": round(time.perf_counter() - started, 3), **extra})
                if self.main:
                    result.losses[self.step] = loss
                if recipe.eval_every and self.step % recipe.eval_every == 0 or self.step == recipe.max_steps:
                    val_loss = self._validate(bar) or val_loss
                if recipe.checkpoint_every and self.step % recipe.checkpoint_every == 0:
                    self.save()
                bar.update(self.step, loss, throughput, val_loss)
                if self.faults.step_delay:
                    time.sleep(self.faults.step_delay)
            if recipe.checkpoint_every and self._last_saved != self.step:
                self.save()
        finally:
            bar.close()
        result.steps = self.step
        result.val_loss = val_loss
        if val_loss is not None and self._loss_is_token_mean():
            result.val_perplexity = math.exp(min(val_loss, 50.0))
        result.rewinds = list(self.rewinds)
        if self.main:
            complete = ckpt_io.complete_checkpoints(self.run_dir)
            result.checkpoint = complete[-1] if complete else None
            result.curve = plot_loss_curve(self.run_dir, title=f"{recipe.name}: {self.n_params / 1e6:.1f}M parameters, "
                                                               f"{self.step} steps, {self.tokens / 1e6:.2f}M tokens")
            result.losses = {r["step"]: r["loss"] for r in _train_records(self.run_dir)}
        self._finish(result)
        return result

    def _validate(self, bar: ProgressBar) -> float | None:
        if self.val_sampler is None:
            return None
        loss = self.engine.evaluate(self.val_sampler, self.recipe.eval_batches)
        if loss is not None:
            record = {"kind": "val", "step": self.step, "loss": loss}
            if self._loss_is_token_mean():
                record["perplexity"] = math.exp(min(loss, 50.0))
            self.metrics.write(record)
        return loss

    def _loss_is_token_mean(self) -> bool:
        """Whether exp(loss) is a perplexity: not for summed losses such as ELECTRA's (objectives/base.py)."""
        owner = self.task if hasattr(self.task, "loss_is_token_mean") else getattr(self.task, "objective", None)
        return bool(getattr(owner, "loss_is_token_mean", True))

    def _finish(self, result: TrainResult) -> None:
        """Rank 0: save the final model as an HF-style directory (and a fine-tune's adapter) and print a sample."""
        recipe = self.recipe
        if self.given_model is not None:
            return  # trained in place: the caller holds the model
        model_state = self.engine.model_state()  # collective: every rank takes part
        if not self.main:
            return
        if self.finetune:
            from llmzoo.train import finetune as ft

            model = ft.load_base(recipe)  # a fresh copy in the plain layout, whatever the run's parallelism
            ft.apply_peft(model, recipe)
            model.load_state_dict(model_state, strict=True)
            result.adapter_dir, result.model_dir = ft.export_finetuned(model, self.run_dir, recipe, self.tokenizer)
            report = getattr(self.task.task, "held_out_report", None)  # e.g. a classifier's held-out accuracy
            scores = report(model) if report is not None else None
            if scores:
                self.metrics.write({"kind": "held_out", "step": self.step, **scores})
                print("held-out " + ", ".join(f"{k} {v:.4g}" for k, v in scores.items()))
        else:
            model = self.task.build_model(self.config)
            model.load_state_dict(model_state, strict=True)
            model.eval()
            from llmzoo.train.export import export_run_model

            # HF layout where one exists, llmzoo's own otherwise (with a note): never nothing, never silently
            result.model_dir = export_run_model(model, self.run_dir / "model", self.tokenizer, self.eos_id)
        if recipe.sample_tokens and self.tokenizer is not None and self.config.arch in ("decoder", "encoder_decoder"):
            import llmzoo

            # An encoder-decoder (T5, BART) reads the prompt as its encoder input and writes its own
            # output, which is printed apart from the prompt (sample_continues_prompt).
            result.sample_continues_prompt = self.config.arch == "decoder"
            try:
                result.sample = llmzoo.generate(model, self.tokenizer, recipe.sample_prompt or "\n",
                                                max_new_tokens=recipe.sample_tokens, temperature=recipe.sample_temperature,
                                                top_k=50, seed=recipe.seed)
            except LlmzooError as e:  # the run and its model are saved: say why there is no sample, don't fail
                print(f"note: no sample ({e})", file=sys.stderr)


def _train_records(run_dir: Path) -> list[dict[str, Any]]:
    from llmzoo.train.metrics import read_metrics

    return [r for r in read_metrics(run_dir) if r.get("kind") == "train"]


def train(recipe: Recipe, resume: str | Path | None = None, *, model: torch.nn.Module | None = None) -> TrainResult:
    """Run `recipe` (or continue the run in `resume`); returns the losses, paths and a sample.
    model: for a fine-tuning recipe, an in-memory model to train in place (see Trainer)."""
    # threads and determinism are process-wide: give them back as they were (train() may run
    # inside a larger program, or a test session)
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    trainer = None
    try:
        trainer = Trainer(recipe, resume=resume, model=model)
        return trainer.run()
    finally:
        if trainer is not None:
            shutdown(trainer.env)
        torch.set_num_threads(threads)
        if torch.are_deterministic_algorithms_enabled() != deterministic:  # the call imports inductor (~4 s)
            torch.use_deterministic_algorithms(deterministic)


__all__ = ["TrainResult", "Trainer", "train"]
