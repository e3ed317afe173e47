"""Pipeline parallelism: the decoder cut into stages by layer, one stage per process.

Stage 0 holds the embeddings and the first layers, the last stage the remaining layers, the
final norm and the LM head. A batch is split into micro-batches that flow through the stages
under a GPipe schedule (Huang et al. 2019: all forwards, then all backwards) or 1F1B
(Narayanan et al. 2019, PipeDream: one forward, one backward, bounding stored activations by the
number of stages) from torch.distributed.pipelining. Layers keep their llmzoo names
(`layers.5.self_attn...`), so a stage's state dict is a slice of the full model's.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from llmzoo.errors import ConfigError
from llmzoo.models.context import build_context
from llmzoo.nn.embed_grad_shrink import shrink_embedding_gradient
from llmzoo.train.distributed import DistEnv


def check_pipeline_objective(objective: str) -> None:
    """The stages run next-token prediction only, not an objective's own model side; known from the
    recipe alone, so the recipe checks it before any process prepares data."""
    from llmzoo.objectives import ALIASES

    key = objective.strip().lower().replace("-", "_")
    if ALIASES.get(key, key) != "clm":
        raise ConfigError(f"parallel=pp trains the clm objective only, not {objective!r}; use parallel=ddp, zero1, "
                          "zero2 or fsdp for it")


def check_pipeline(config, stages: int, objective: str) -> None:
    check_pipeline_objective(objective)
    if config.arch != "decoder" or config.head != "lm":
        raise ConfigError("parallel=pp splits decoder LMs only")
    if stages > 1 and config.tie_embeddings:
        raise ConfigError("parallel=pp puts the embeddings and the LM head on different stages: set "
                          "model.tie_embeddings=false")
    if config.share_layers or config.n_experts:
        raise ConfigError("parallel=pp does not split shared-layer or MoE models; use ddp or fsdp")
    # What a stage cannot compute from its own layers: one bias table every layer reads (T5-style
    # relative bias would be copied into each stage and trained apart), and Transformer-XL's memory
    # of the previous segment (the recurrence is the point of it, and stages pass hidden states only)
    if config.position in ("relative_bias", "xl_relative"):
        raise ConfigError(f"parallel=pp does not split position={config.position!r} models (their positions are "
                          "shared across layers or carried between segments); use ddp or fsdp")
    if config.n_layers < stages:
        raise ConfigError(f"parallel=pp over {stages} processes needs at least {stages} layers, got {config.n_layers}")


def stage_layers(n_layers: int, stages: int, stage: int) -> range:
    return range(stage * n_layers // stages, (stage + 1) * n_layers // stages)


class StageModule(nn.Module):
    """One pipeline stage of a DecoderLM: token ids or hidden states in, hidden states or logits out."""

    def __init__(self, model: nn.Module, stage: int, stages: int) -> None:
        super().__init__()
        self.config = model.config
        self.first, self.last = stage == 0, stage == stages - 1
        if self.first:
            self.embeddings = model.embeddings
        if hasattr(model, "rotary"):
            self.rotary = model.rotary
        self.alibi_slopes = getattr(model, "alibi_slopes", None)
        self.layers = nn.ModuleDict({str(i): model.layers[i] for i in stage_layers(self.config.n_layers, stages, stage)})
        if self.last:  # the model's own final steps: norm, PanGu-alpha's query layer, OPT's project_out
            self.norm, self.top_query, self.project_out = model.norm, model.top_query, model.project_out
            self.lm_head = model.lm_head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T = x.shape[:2]
        positions = torch.arange(T, device=x.device).expand(B, T)
        if self.first:
            h = shrink_embedding_gradient(self.embeddings(x, positions), self.config.embed_grad_scale)  # GLM-130B
        else:
            h = x
        ctx = build_context(self.config, batch=B, q_len=T, past=0, dtype=h.dtype, device=h.device,
                            position_ids=positions, rotary=getattr(self, "rotary", None),
                            alibi_slopes=self.alibi_slopes)
        for name, layer in self.layers.items():
            h, _ = layer(h, mask=ctx.masks[self.config.layer_kind(int(name))], is_causal=ctx.is_causal, rope=ctx.rope)
        if not self.last:
            return h
        if self.norm is not None:
            h = self.norm(h)
        if self.top_query is not None:
            h = self.top_query(h, positions, mask=ctx.masks["global"], is_causal=ctx.is_causal, rope=ctx.rope)
        if self.project_out is not None:
            h = self.project_out(h)
        logits = self.lm_head(h)
        scale = self.config.logit_multiplier
        return logits * scale if scale is not None else logits


class Pipeline:
    """Runs one stage's part of a training or evaluation step."""

    def __init__(self, model: nn.Module, env: DistEnv, microbatches: int, schedule: str, grad_accum: int,
                 device: torch.device = torch.device("cpu")) -> None:
        from torch.distributed.pipelining import PipelineStage, Schedule1F1B, ScheduleGPipe

        self.env = env
        self.stage_index, self.stages = env.rank, env.world_size
        self.module = StageModule(model, self.stage_index, self.stages)
        self.first, self.last = self.module.first, self.module.last
        self.microbatches = microbatches
        self.grad_accum = grad_accum
        self.factor = 1.0
        stage = PipelineStage(self.module, self.stage_index, self.stages, device)
        cls = ScheduleGPipe if schedule == "gpipe" else Schedule1F1B
        # scale_grads: the schedule divides gradients by the number of micro-batches, so a mean
        # loss per micro-batch gives the gradient of the batch mean.
        self.schedule = cls(stage, n_microbatches=microbatches, loss_fn=self._loss, scale_grads=True)
        eval_stage = PipelineStage(self.module, self.stage_index, self.stages, device)
        self.eval_schedule = cls(eval_stage, n_microbatches=microbatches, loss_fn=self._eval_loss)

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), labels.reshape(-1))
        return loss * self.factor / self.grad_accum

    @staticmethod
    def _eval_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), labels.reshape(-1))

    def _run(self, schedule, batch: dict[str, torch.Tensor], eval_mode: bool) -> torch.Tensor:
        losses: list[torch.Tensor] = []
        rows = batch["input_ids"].size(0)
        if rows % self.microbatches:
            raise ConfigError(f"parallel=pp splits each batch of {rows} rows into pp_microbatches="
                              f"{self.microbatches}; make the rows per micro-step divisible by it")
        args = (batch["input_ids"],) if self.first else ()
        kwargs = {"target": batch["labels"], "losses": losses} if self.last else {}
        (schedule.eval if eval_mode else schedule.step)(*args, **kwargs)
        value = torch.stack(losses).mean().detach().float() if self.last else torch.zeros((), device=batch["input_ids"].device)
        dist.broadcast(value, src=self.stages - 1)  # every stage logs and decides on the same loss
        return value

    def forward_backward(self, batch: dict[str, torch.Tensor], factor: float) -> torch.Tensor:
        """The (factor-scaled) mean loss of the batch; gradients are accumulated on every stage."""
        self.factor = factor
        return self._run(self.schedule, batch, eval_mode=False) * self.grad_accum

    @torch.no_grad()
    def eval_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._run(self.eval_schedule, batch, eval_mode=True)
