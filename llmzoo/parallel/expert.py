"""Expert parallelism (GShard, Lepikhin et al. 2020; Switch, Fedus et al. 2021, sec. 5.6): the experts of
every MoE layer are split over the processes of a torch.distributed group, each rank holding a contiguous
block of n_experts / world of them, while everything else (attention, router, dense layers) is replicated.
Each rank runs its own tokens: it gates them locally, sends every (token, expert) assignment to the rank that
holds the expert with one all-to-all, runs its local experts on what it received, and a second all-to-all
brings the outputs home, where they are mixed by the gate weights exactly as the unsharded layer mixes them.

    from llmzoo.parallel.expert import shard_experts, all_reduce_replicated_grads
    shard_experts(model)                  # in place; every rank must build the same model first
    out = model(my_rows)                  # each rank its own rows
    out_loss.backward()                   # expert gradients arrive through the all-to-all's backward
    all_reduce_replicated_grads(model)    # sum the replicated parameters' gradients over the ranks

The result equals one process running all rows (the gradients of the sum of the ranks' losses; scale the
loss by 1 / world for a mean). The all-to-all is torch.distributed.all_to_all_single with uneven splits,
which gloo (CPU) and NCCL both implement; its autograd rule is the reverse all-to-all. Capacity is per
sequence (Switch eq. 3), and a sequence lives on one rank, so dropping is unchanged. The MoE losses
(load balance, z-loss) are computed from each rank's own tokens, as in a data-parallel run.

Both router kinds (llmzoo.nn.moe) and PanGu-Sigma's Random Routed Experts (llmzoo.nn.rre) are sharded.
The training loop's `parallel=ep` (llmzoo.train.distributed) is this layout plus data parallelism for the
rest: gradients averaged over ranks after the last micro-step, the gradient norm summing the experts' shards,
checkpoints full (every expert under its unsharded name), so they load in any layout.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch import nn

from llmzoo.errors import ConfigError
from llmzoo.nn.moe import MoE
from llmzoo.nn.rre import RandomRoutedExperts


class _AllToAll(torch.autograd.Function):
    """Rows exchanged between ranks: send_counts[r] rows go to rank r, recv_counts[r] arrive from it.
    The gradient goes back the same way reversed."""

    @staticmethod
    def forward(ctx, rows: torch.Tensor, send_counts: list[int], recv_counts: list[int], group) -> torch.Tensor:
        ctx.send_counts, ctx.recv_counts, ctx.group = send_counts, recv_counts, group
        out = rows.new_empty((sum(recv_counts), *rows.shape[1:]))
        dist.all_to_all_single(out, rows.contiguous(), recv_counts, send_counts, group=group)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        back = grad.new_empty((sum(ctx.send_counts), *grad.shape[1:]))
        dist.all_to_all_single(back, grad.contiguous(), ctx.send_counts, ctx.recv_counts, group=ctx.group)
        return back, None, None, None


def dispatch(flat: torch.Tensor, token: torch.Tensor, expert: torch.Tensor, weight: torch.Tensor,
             experts: nn.ModuleList, offset: int, group) -> torch.Tensor:
    """flat (N, D) tokens; assignment i sends token[i] to global expert[i], its output weighted by weight[i].
    Returns (N, D): each token's weighted sum over its assignments, computed on the experts' ranks."""
    world, local = dist.get_world_size(group), len(experts)
    order = torch.argsort(expert, stable=True)  # grouped by destination rank, then expert
    token, expert, weight = token[order], expert[order], weight[order]
    send = torch.bincount(expert // local, minlength=world)
    recv = torch.empty_like(send)
    dist.all_to_all_single(recv, send, group=group)
    send_counts, recv_counts = send.tolist(), recv.tolist()
    arrived_expert = expert.new_empty(sum(recv_counts))
    dist.all_to_all_single(arrived_expert, expert, recv_counts, send_counts, group=group)
    rows = _AllToAll.apply(flat[token], send_counts, recv_counts, group)
    # `rows * 0`, not zeros: the return trip stays in the graph on a rank that got nothing, so every rank
    # takes part in both backward all-to-alls
    out = rows * 0
    for j, module in enumerate(experts):
        idx = torch.where(arrived_expert == offset + j)[0]
        if idx.numel():
            out = out.index_copy(0, idx, module(rows[idx]).to(out.dtype))  # bf16 autocast: experts give bf16
    back = _AllToAll.apply(out, recv_counts, send_counts, group)
    return flat.new_zeros(flat.shape).index_add(0, token, back * weight[:, None])


class ExpertParallelMoE(MoE):
    """A MoE (llmzoo.nn.moe) holding only this rank's experts; gating is the unsharded layer's."""

    group = None
    expert_offset = 0

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, D = x.shape
        logits, weights, chosen = self.gate(x)
        token, slot = torch.where(weights != 0)  # kept (token, choice) assignments
        out = dispatch(x.reshape(-1, D), token, chosen[token, slot], weights[token, slot], self.experts,
                       self.expert_offset, self.group)
        return out.view(B, T, D), logits


class ExpertParallelRRE(RandomRoutedExperts):
    """PanGu-Sigma's Random Routed Experts holding only this rank's experts; routing is the unsharded map's."""

    group = None
    expert_offset = 0

    def forward(self, x: torch.Tensor, token_ids: torch.Tensor | None = None,
                domain_ids: torch.Tensor | None = None) -> torch.Tensor:
        if token_ids is None:
            return super().forward(x, token_ids, domain_ids)  # its one-line error
        chosen = self.expert_ids(token_ids, domain_ids).reshape(-1)
        token = torch.arange(chosen.numel(), device=x.device)
        out = dispatch(x.reshape(-1, x.shape[-1]), token, chosen, x.new_ones(chosen.shape), self.experts,
                       self.expert_offset, self.group)
        return out.view_as(x)


_SHARDED = {MoE: ExpertParallelMoE, RandomRoutedExperts: ExpertParallelRRE}


def shard_experts(model: nn.Module, group=None) -> nn.Module:
    """Keep, in every MoE / RRE layer of `model`, only this rank's block of experts (in place; the other
    experts' parameters are released) and route through the all-to-all. Every rank must pass the same model."""
    if not (dist.is_available() and dist.is_initialized()):
        raise ConfigError("expert parallelism needs a torch.distributed process group (init_process_group first)")
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    for name, module in model.named_modules():
        sharded = _SHARDED.get(type(module))
        if sharded is None:
            continue
        total = len(module.experts)
        if total % world:
            raise ConfigError(f"expert parallelism over {world} processes: layer {name} has n_experts={total}, "
                              f"not divisible by {world}")
        local = total // world
        module.experts = nn.ModuleList(list(module.experts)[rank * local:(rank + 1) * local])
        module.__class__ = sharded  # as FSDP2's fully_shard: same state, a forward that communicates
        module.group, module.expert_offset = group, rank * local
        for p in module.experts.parameters():
            p._expert_shard = True  # held by this rank alone (is_expert_shard)
    return model


def _is_sharded(module: nn.Module) -> bool:
    return isinstance(module, (ExpertParallelMoE, ExpertParallelRRE))


def _global_key(name: str, offsets: dict[str, int]) -> tuple[str, bool]:
    """A local parameter / state key -> (its key in the unsharded model, whether it is a sharded expert's)."""
    for prefix, offset in offsets.items():
        lead = f"{prefix}.experts."
        if name.startswith(lead):
            j, tail = name[len(lead):].split(".", 1)
            return f"{lead}{offset + int(j)}.{tail}", True
    return name, False


def _offsets(model: nn.Module) -> dict[str, int]:
    return {prefix: m.expert_offset for prefix, m in model.named_modules() if _is_sharded(m)}


def named_global_parameters(model: nn.Module) -> Iterator[tuple[str, nn.Parameter, bool]]:
    """(name in the unsharded model, parameter, whether it is a sharded expert's) for every parameter."""
    offsets = _offsets(model)
    for name, p in model.named_parameters():
        key, expert = _global_key(name, offsets)
        yield key, p, expert


def replicated_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters every rank holds a copy of (all but the sharded experts')."""
    experts = {id(p) for m in model.modules() if _is_sharded(m) for p in m.experts.parameters()}
    return [p for p in model.parameters() if id(p) not in experts]


def all_reduce_replicated_grads(model: nn.Module, group=None) -> None:
    """Sum the replicated parameters' gradients over the ranks (the experts' are complete already)."""
    for p in replicated_parameters(model):
        if p.grad is None:
            p.grad = torch.zeros_like(p)  # a rank whose tokens never reached it still takes part
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM, group=group)


def full_state_dict(model: nn.Module, group=None) -> dict[str, torch.Tensor]:
    """The unsharded model's state dict (every expert, global names) on every rank, e.g. for a checkpoint
    that a single process loads."""
    offsets, state, mine = _offsets(model), {}, {}
    for key, value in model.state_dict().items():
        name, expert = _global_key(key, offsets)
        (mine if expert else state)[name] = value.detach().cpu() if expert else value
    gathered: list = [None] * dist.get_world_size(group)
    dist.all_gather_object(gathered, mine, group=group)
    for part in gathered:
        state.update(part)
    return state


# ---------------------------------------------------------------------------------------------
# what the training loop's parallel=ep layout (llmzoo.train.distributed) needs


def check_expert_parallel(model: nn.Module, world: int) -> None:
    """ConfigError unless `model` has experts that split evenly over `world` processes."""
    layers = [(n, m) for n, m in model.named_modules() if type(m) in _SHARDED]
    if not layers:
        raise ConfigError(f"parallel=ep shards the experts of MoE layers; model {model.config.name!r} has none "
                          f"(use ddp, zero1, zero2 or fsdp)")
    for name, module in layers:
        if len(module.experts) % world:
            raise ConfigError(f"parallel=ep over {world} processes: layer {name} has n_experts={len(module.experts)}, "
                              f"not divisible by {world}")


def average_grads(model: nn.Module, group=None) -> None:
    """Data-parallel gradients: each rank's loss is the mean of its own rows, so the step's gradient is the mean
    over ranks. Replicated parameters are all-reduced and divided by the world size; a sharded expert's
    gradient already sums every rank's contribution (through the all-to-all), so it is only divided."""
    world = dist.get_world_size(group)
    all_reduce_replicated_grads(model, group)
    for p in model.parameters():
        if p.grad is not None:
            p.grad.div_(world)


def is_expert_shard(p: nn.Parameter) -> bool:
    """A parameter only this rank holds (its gradient norm is summed over ranks, not counted once)."""
    return getattr(p, "_expert_shard", False)


def load_full_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load an unsharded state dict (full_state_dict's, or a single process's) into a sharded model."""
    offsets = _offsets(model)
    model.load_state_dict({key: state[_global_key(key, offsets)[0]] for key in model.state_dict()}, strict=True)
