"""Full (unsharded) model and optimizer state dicts, from and into any parallel layout.

Checkpoints always hold full tensors keyed by llmzoo parameter names; the optimizer state is
keyed by the same names. torch.distributed.checkpoint.state_dict gathers and re-shards them for
plain modules, DDP, FSDP2 and DTensor tensor parallelism. Two layouts need a hand:
ZeroRedundancyOptimizer (consolidated on rank 0, keyed by position) and pipeline stages (each rank
holds some layers: their dicts are merged on save and filtered on load).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from llmzoo.train.distributed import DistEnv, gather_objects

_FULL = dict(full_state_dict=True, cpu_offload=True)


def _options(**extra):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(**{**_FULL, **extra})


def _named_params_in_groups(optimizer: torch.optim.Optimizer, names: dict[int, str]) -> list[list[str]]:
    return [[names[id(p)] for p in group["params"]] for group in optimizer.param_groups]


def full_model_state(module: nn.Module, mode: str, env: DistEnv) -> dict[str, torch.Tensor]:
    """The full state dict on rank 0 (other ranks may get an empty dict)."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    if mode == "ep":
        from llmzoo.parallel.expert import full_state_dict

        return full_state_dict(module)
    if mode == "pp":
        parts = gather_objects(_detached(module.state_dict()), env)
        merged: dict[str, torch.Tensor] = {}
        for part in parts:
            merged.update(part)
        return merged
    return get_model_state_dict(module, options=_options())


def load_model_state(module: nn.Module, mode: str, env: DistEnv, state: dict[str, torch.Tensor],
                     only: set[str] | None = None) -> None:
    """only: the names `state` holds, all of them and no others (a PEFT run's trainable tensors);
    the module's other tensors keep their values."""
    from torch.distributed.checkpoint.state_dict import set_model_state_dict

    if only is not None:
        if set(state) != only:
            from llmzoo.errors import CheckpointError

            odd = sorted(set(state) ^ only)
            raise CheckpointError(f"the checkpoint's trainable tensors differ from this run's ({', '.join(odd[:3])}); "
                                  f"it was written with other peft settings")
        set_model_state_dict(module, state, options=_options(cpu_offload=False, strict=False))
        return
    if mode == "pp":
        own = module.state_dict()
        module.load_state_dict({k: v for k, v in state.items() if k in own}, strict=True)
        return
    if mode == "ep":  # this rank's experts, renamed from the unsharded model's
        from llmzoo.parallel.expert import load_full_state

        load_full_state(module, state)
        return
    aliases = _aliases(module) if mode in ("fsdp", "zero2", "tp") else set()  # sharded (DTensor) parameters
    if not aliases:
        set_model_state_dict(module, state, options=_options(cpu_offload=False))
        return
    # Shared parameters (ELECTRA's generator reads the discriminator's embeddings, SpanBERT's head
    # the token table) have a second name: loading a full tensor into that sharded alias fails, and
    # the first name fills it anyway. So the aliases stay out, and only they may be missing.
    keys = set_model_state_dict(module, {k: v for k, v in state.items() if k not in aliases},
                                options=_options(cpu_offload=False, strict=False))
    wrong = sorted(set(keys.missing_keys) - aliases) + sorted(set(keys.unexpected_keys))
    if wrong:
        raise RuntimeError(f"checkpoint does not match the model: {', '.join(wrong[:5])}")


def _aliases(module: nn.Module) -> set[str]:
    """The names under which a tensor of `module`'s state dict appears a second time."""
    seen: set[int] = set()
    aliases = set()
    for name, tensor in module.state_dict(keep_vars=True).items():
        if id(tensor) in seen:
            aliases.add(name)
        seen.add(id(tensor))
    return aliases


def full_optimizer_state(module: nn.Module, optimizer: torch.optim.Optimizer, mode: str, env: DistEnv,
                         names: dict[int, str]) -> dict[str, Any]:
    """{"state": {name: {...}}, "param_groups": [{..., "params": [names]}]} on rank 0."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    if not _has_state(optimizer):
        # Before the first step. get_optimizer_state_dict would initialise the state by running a
        # zero-gradient step, which advances AdamW's step count and changes its bias correction.
        groups = _named_params_in_groups(optimizer, names)
        return {"state": {}, "param_groups": [{**{k: v for k, v in g.items() if k != "params"}, "params": n}
                                              for g, n in zip(optimizer.param_groups, groups)]}
    if mode == "zero1":
        return _zero1_state(optimizer, env, names)
    if mode in ("pp", "ep"):  # pipeline stages / expert shards: each rank names its own, merged
        own = _by_name(optimizer.state_dict(), _named_params_in_groups(optimizer, names))
        return _merge_optimizer_states(gather_objects(own, env))
    return get_optimizer_state_dict(module, optimizer, options=_options())


def load_optimizer_state(module: nn.Module, optimizer: torch.optim.Optimizer, mode: str, env: DistEnv,
                         names: dict[int, str], state: dict[str, Any]) -> None:
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    if not state["state"]:  # saved before the first step: back to a fresh optimizer
        _clear_state(optimizer)
        return
    state = _with_own_implementation(state, optimizer)
    if mode in ("zero1", "pp", "ep"):
        optimizer.load_state_dict(_by_position(state, _named_params_in_groups(_groups_of(optimizer), names)))
        return
    set_optimizer_state_dict(module, optimizer, state, options=_options(cpu_offload=False))


# ---------------------------------------------------------------------------------------------


# How the update is computed, not what it is: each layout picks its own (fused for plain tensors,
# foreach for FSDP shards, per-tensor for TP's mixed DTensor/Tensor parameters).
_IMPLEMENTATION_KEYS = ("fused", "foreach", "capturable", "differentiable")


def _with_own_implementation(state: dict[str, Any], optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    own = optimizer.param_groups
    if len(own) != len(state["param_groups"]):
        from llmzoo.errors import CheckpointError

        raise CheckpointError(f"the checkpoint's optimizer has {len(state['param_groups'])} parameter groups, this "
                              f"run {len(own)}; it was written by a different training setup")
    groups = [{**saved, **{k: mine[k] for k in _IMPLEMENTATION_KEYS if k in mine}}
              for saved, mine in zip(state["param_groups"], own)]
    return {**state, "param_groups": groups}


def _has_state(optimizer: torch.optim.Optimizer) -> bool:
    local = getattr(optimizer, "optim", optimizer)  # ZeroRedundancyOptimizer keeps its shard in .optim
    return bool(local.state)


def _clear_state(optimizer: torch.optim.Optimizer) -> None:
    optimizer.state.clear()
    if hasattr(optimizer, "optim"):
        optimizer.optim.state.clear()


def _detached(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in state.items()}


def _groups_of(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    return optimizer  # ZeroRedundancyOptimizer.param_groups lists every parameter, like a plain optimizer


def _by_name(state: dict[str, Any], group_names: list[list[str]]) -> dict[str, Any]:
    """A positional optimizer state dict (ids 0..n-1 in group order) keyed by parameter name."""
    order = [n for names in group_names for n in names]
    groups = []
    for group, names in zip(state["param_groups"], group_names):
        groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": list(names)})
    per_param = {order[i]: {k: (v.detach().cpu() if isinstance(v, torch.Tensor) else v) for k, v in s.items()}
                 for i, s in state["state"].items()}
    return {"state": per_param, "param_groups": groups}


def _by_position(state: dict[str, Any], group_names: list[list[str]]) -> dict[str, Any]:
    """The named form back to positions for this optimizer's own parameters (a pipeline stage
    keeps only the names it holds)."""
    index: dict[str, int] = {}
    for names in group_names:
        for n in names:
            index[n] = len(index)
    saved_groups = state["param_groups"]
    if len(saved_groups) != len(group_names):
        from llmzoo.errors import CheckpointError

        raise CheckpointError(f"the checkpoint's optimizer has {len(saved_groups)} parameter groups, this run "
                              f"{len(group_names)}; it was written by a different training setup")
    groups = [{**{k: v for k, v in g.items() if k != "params"}, "params": [index[n] for n in names]}
              for g, names in zip(saved_groups, group_names)]
    per_param = {index[n]: s for n, s in state["state"].items() if n in index}
    return {"state": per_param, "param_groups": groups}


def _merge_optimizer_states(parts: list[dict[str, Any]]) -> dict[str, Any]:
    merged_state: dict[str, Any] = {}
    groups: list[dict[str, Any]] = []
    for part in parts:
        merged_state.update(part["state"])
        for i, group in enumerate(part["param_groups"]):
            if i == len(groups):
                groups.append({**group, "params": []})
            groups[i]["params"] += [n for n in group["params"] if n not in groups[i]["params"]]  # ep: replicated
    return {"state": merged_state, "param_groups": groups}


def _zero1_state(optimizer, env: DistEnv, names: dict[int, str]) -> dict[str, Any]:
    optimizer.consolidate_state_dict(to=0)
    if not env.is_main:
        return {}
    return _by_name(optimizer.state_dict(), _named_params_in_groups(optimizer, names))
