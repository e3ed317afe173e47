"""Scale-out with torch.distributed: how the model, its gradients and its optimizer state are
spread over processes: gloo between CPU processes, NCCL between CUDA ones (the recipe's `device`;
one GPU per process, LOCAL_RANK picks it).

    none   one process
    ddp    data parallel: full replicas, gradients all-reduced (Li et al. 2020, PyTorch DDP)
    zero1  DDP + optimizer state sharded (ZeroRedundancyOptimizer; Rajbhandari et al. 2020, ZeRO stage 1)
    zero2  FSDP2 keeping parameters gathered between forward and backward (reshard_after_forward=False):
           gradients and optimizer state sharded, like ZeRO stage 2
    fsdp   FSDP2 `fully_shard`: parameters, gradients and optimizer state sharded (ZeRO stage 3)
    tp     tensor parallel (Shoeybi et al. 2019, Megatron-LM): q/k/v/gate/up split by output columns,
           o/down by input rows, so each rank holds n_heads / tp heads and d_ff / tp hidden units
    pp     pipeline parallel: see pipeline.py
    ep     expert parallel (GShard; llmzoo.parallel.expert): each rank holds n_experts / world experts of every
           MoE layer and its own rows, tokens reach their experts by all-to-all; the rest is data parallel

Every strategy offers the same few operations to the loop (forward/backward of a micro-batch,
gradient norm, full state dicts for checkpoints), so checkpoints are always full, unsharded state
dicts with llmzoo parameter names: a checkpoint written by any layout loads in any other.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from llmzoo.errors import ConfigError, LlmzooError

DATA_PARALLEL = ("ddp", "zero1", "zero2", "fsdp", "ep")


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    initialized_here: bool = False
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return dist.is_available() and dist.is_initialized()


def training_device(kind: str) -> torch.device:
    """The device this process trains on: the CPU, or its GPU (LOCAL_RANK of this node's GPUs);
    `cuda` where torch sees none is a one-line ConfigError."""
    if kind == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError("device=cuda, but torch sees no CUDA device here (torch.cuda.is_available() is False); "
                          "set device=cpu, or run on a machine with a GPU and a CUDA build of torch")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if local >= torch.cuda.device_count():
        raise ConfigError(f"process {local} of this node has no GPU of its own ({torch.cuda.device_count()} visible); "
                          f"start at most that many processes per node")
    torch.cuda.set_device(local)
    return torch.device("cuda", local)


def init_distributed(mode: str, device: str = "cpu") -> DistEnv:
    """Join the process group torchrun (or a test) describes through RANK / WORLD_SIZE / MASTER_*:
    NCCL for CUDA processes, gloo for CPU ones."""
    where = training_device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if mode == "none":
        if world > 1:
            raise ConfigError(f"started as {world} processes but parallel=none; set parallel=ddp, fsdp, tp, pp or ep")
        return DistEnv(device=where)
    if dist.is_initialized():
        return DistEnv(dist.get_rank(), dist.get_world_size(), device=where)
    missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise ConfigError(f"parallel={mode} needs several processes; run `llmzoo pretrain --nproc-per-node 2 ...` "
                          f"(or torchrun --nproc_per_node 2 -m llmzoo pretrain ...; missing {', '.join(missing)})")
    dist.init_process_group("nccl" if where.type == "cuda" else "gloo", device_id=where if where.type == "cuda" else None)
    return DistEnv(dist.get_rank(), dist.get_world_size(), initialized_here=True, device=where)


def shutdown(env: DistEnv) -> None:
    if env.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def all_reduce_sum(value: torch.Tensor, env: DistEnv) -> torch.Tensor:
    if env.distributed:
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def broadcast_object(obj, env: DistEnv, src: int = 0):
    if not env.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_objects(obj, env: DistEnv) -> list:
    if not env.distributed:
        return [obj]
    out = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def data_parallel_size(mode: str, env: DistEnv) -> int:
    return env.world_size if mode in DATA_PARALLEL else 1


# ---------------------------------------------------------------------------------------------
# wrapping the model


def _mesh(env: DistEnv):
    from torch.distributed.device_mesh import init_device_mesh

    return init_device_mesh(env.device.type, (env.world_size,))


def blocks(model: nn.Module) -> list[nn.Module]:
    """The transformer blocks of every stack in `model`: a decoder's or encoder's `layers`, an
    encoder-decoder's two stacks, ELECTRA's generator and discriminator, the stack inside
    SpanBERT's or XLM's wrapper. A block shared by several layers (ALBERT) is listed once."""
    found: dict[int, nn.Module] = {}
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] == "layers" and isinstance(module, (nn.ModuleList, nn.ModuleDict)):
            for block in module.children():
                found.setdefault(id(block), block)
    return list(found.values())


def shard_fully(model: nn.Module, env: DistEnv, reshard_after_forward: bool) -> nn.Module:
    """FSDP2: one FSDP unit per block plus the root (embeddings, final norm, heads), so only one
    block's full parameters exist at a time (Zhao et al. 2023, PyTorch FSDP). The root is the
    module the task calls, so its forward (which gathers the root's parameters) covers the whole
    of an objective's model side, e.g. both of ELECTRA's passes."""
    from torch.distributed.fsdp import fully_shard

    mesh = _mesh(env)
    for block in blocks(model):
        fully_shard(block, mesh=mesh, reshard_after_forward=reshard_after_forward)
    fully_shard(model, mesh=mesh, reshard_after_forward=reshard_after_forward)
    return model


def check_tensor_parallel(config, tp: int) -> None:
    for key, value in (("n_heads", config.n_heads), ("n_kv_heads", config.kv_heads), ("d_ff", config.d_ff)):
        if value % tp:
            raise ConfigError(f"parallel=tp over {tp} processes splits attention heads and the MLP across ranks: "
                              f"{key}={value} is not divisible by {tp}")
    if config.n_experts:
        raise ConfigError("parallel=tp does not split MoE experts; use ddp or fsdp for MoE models")


def check_layout(model: nn.Module, mode: str, world_size: int, objective: str) -> None:
    """ConfigError, before any process group work, when layout `mode` cannot train `model` for
    `objective` (data-parallel layouts take every model; TP and PP split the model itself)."""
    if mode == "ep":
        from llmzoo.parallel.expert import check_expert_parallel

        check_expert_parallel(model, world_size)
    if mode != "tp" or world_size < 2:
        return
    config = model.config
    other = "use parallel=ddp, zero1, zero2 or fsdp"
    if config.position in ("relative_bias", "alibi", "xl_relative"):
        # T5 buckets / ALiBi slopes / Transformer-XL's W_R, u and v are per head, outside the q/k/v TP splits
        raise ConfigError(f"parallel=tp cannot train objective {objective!r} on model {config.name!r}: its "
                          f"position={config.position} adds a per-head position term to every attention score, "
                          f"which TP splits across ranks; {other}")
    for block in blocks(model):
        attn = block.self_attn
        if not hasattr(attn, "n_kv_heads"):  # XLNet's two-stream attention keeps per-head biases
            raise ConfigError(f"parallel=tp cannot train objective {objective!r}: {type(attn).__name__} has per-head "
                              f"parameters TP does not split; {other}")
        if attn.n_heads % world_size or attn.n_kv_heads % world_size:  # ELECTRA's narrower generator has its own
            raise ConfigError(f"parallel=tp over {world_size} processes cannot train objective {objective!r}: a stack "
                              f"of this model has n_heads={attn.n_heads}, n_kv_heads={attn.n_kv_heads}, not divisible "
                              f"by {world_size}; {other}")


def tensor_parallel(model: nn.Module, env: DistEnv) -> nn.Module:
    """Megatron-style TP with DTensor: column-parallel q/k/v and gate/up (each rank computes its own
    heads / hidden units), row-parallel o/down (one all-reduce per sub-layer), in every stack."""
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

    tp = env.world_size
    check_tensor_parallel(model.config, tp)
    mesh = _mesh(env)
    for block in blocks(model):
        attn = block.self_attn
        plan = {"self_attn.q_proj": ColwiseParallel(), "self_attn.k_proj": ColwiseParallel(),
                "self_attn.v_proj": ColwiseParallel(), "self_attn.o_proj": RowwiseParallel(),
                "mlp.up_proj": ColwiseParallel(), "mlp.down_proj": RowwiseParallel()}
        if hasattr(block.mlp, "gate_proj"):
            plan["mlp.gate_proj"] = ColwiseParallel()
        parallelize_module(block, mesh, plan)
        # the attention module reshapes by its own head counts: they are now per rank
        attn.n_heads, attn.n_kv_heads = attn.n_heads // tp, attn.n_kv_heads // tp
    return model


def parallelize(model: nn.Module, mode: str, env: DistEnv, *, every_parameter_used: bool = True) -> nn.Module:
    """The module the loop calls: `model` itself, a DDP wrapper, or `model` sharded in place.
    `every_parameter_used=False`: some parameters may get no gradient in a step (a pooler or pair
    head an objective does not train); DDP then looks for them after each forward."""
    if mode == "none":
        return model
    if mode in ("ddp", "zero1"):
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, find_unused_parameters=not every_parameter_used)
    if mode in ("fsdp", "zero2"):
        return shard_fully(model, env, reshard_after_forward=(mode == "fsdp"))
    if mode == "tp":
        return tensor_parallel(model, env)
    if mode == "ep":
        from llmzoo.parallel.expert import shard_experts

        return shard_experts(model)
    raise LlmzooError(f"internal: parallelize() does not handle {mode!r}")


def unwrap(module: nn.Module) -> nn.Module:
    return module.module if hasattr(module, "module") and isinstance(module, nn.parallel.DistributedDataParallel) else module


def no_grad_sync(module: nn.Module, mode: str, sync: bool):
    """Skip the gradient all-reduce / reduce-scatter on all but the last micro-step of accumulation."""
    if mode == "ep":  # no wrapper syncs for it: the last micro-step's backward is followed by the average
        return _expert_parallel_sync(module) if sync else contextlib.nullcontext()
    if sync:
        return contextlib.nullcontext()
    if mode in ("ddp", "zero1"):
        return module.no_sync()
    if mode in ("fsdp", "zero2"):
        return _fsdp_no_sync(module)
    return contextlib.nullcontext()


@contextlib.contextmanager
def _expert_parallel_sync(module: nn.Module):
    from llmzoo.parallel.expert import average_grads

    yield
    average_grads(module)


@contextlib.contextmanager
def _fsdp_no_sync(module: nn.Module):
    module.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        module.set_requires_gradient_sync(True)


# ---------------------------------------------------------------------------------------------
# optimizer


def make_zero1_optimizer(groups: list[dict], kwargs: dict):
    from torch.distributed.optim import ZeroRedundancyOptimizer

    return ZeroRedundancyOptimizer(groups, optimizer_class=torch.optim.AdamW, **kwargs)


# ---------------------------------------------------------------------------------------------
# gradient norm


def clip_grad_norm(params: list[nn.Parameter], max_norm: float, mode: str, env: DistEnv) -> float:
    """Global L2 norm of all gradients, and clip them to `max_norm` (0: measure only).

    Sharded gradients (FSDP, TP: DTensor shards) contribute their local squares, summed over ranks;
    replicated ones count once. Pipeline stages hold disjoint parameters, so all are summed.
    """
    if mode in ("fsdp", "zero2", "tp"):
        from torch.distributed.tensor import DTensor
    else:
        DTensor = ()  # noqa: N806 (nothing is a DTensor; skips importing torch.distributed.tensor)
    device = params[0].device if params else torch.device("cpu")
    local_sum = torch.zeros((), dtype=torch.float32, device=device)
    shared_sum = torch.zeros((), dtype=torch.float32, device=device)
    for p in params:
        g = p.grad
        if g is None:
            continue
        if isinstance(g, DTensor):
            sharded = any(pl.is_shard() for pl in g.placements)
            part = g.to_local().float().pow(2).sum()
            if sharded:
                local_sum += part
            else:
                shared_sum += part
        elif mode == "pp" or (mode == "ep" and getattr(p, "_expert_shard", False)):
            local_sum += g.float().pow(2).sum()  # disjoint across ranks: summed over them
        else:
            shared_sum += g.float().pow(2).sum()
    if env.distributed and mode in ("fsdp", "zero2", "tp", "pp", "ep"):
        dist.all_reduce(local_sum, op=dist.ReduceOp.SUM)
    total = float((local_sum + shared_sum).sqrt())
    if max_norm > 0 and total > max_norm:
        coef = max_norm / (total + 1e-6)
        for p in params:
            if p.grad is not None:
                p.grad.mul_(coef)
    return total
