"""Expert parallelism (llmzoo.parallel.expert) over 2 gloo processes computes what one process computes.

Each rank holds half the experts of every MoE layer and runs half the rows; tokens reach their experts'
ranks through all-to-all. One process running all rows through the unsharded model is the reference: the
logits of each rank's rows, every gradient (the replicated ones summed over ranks, each expert's on its own
rank) and the gathered full state dict must match it. Three layer kinds: Mixtral-style top-2 in every layer,
Switch top-1 with a capacity small enough to drop tokens, PanGu-Sigma's Random Routed Experts.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from llmzoo.config import ModelConfig
from llmzoo.errors import ConfigError
from llmzoo.models.build import build_model
from llmzoo.parallel.expert import all_reduce_replicated_grads, full_state_dict, named_global_parameters, shard_experts

V, ROWS, T, WORLD = 61, 4, 12, 2
BASE = dict(vocab_size=V, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=48, max_seq_len=32)
CONFIGS = {
    "mixtral": dict(BASE, n_experts=4, n_experts_per_token=2, moe_renormalize=True),
    "switch": dict(BASE, ffns=("dense", "moe"), n_experts=4, n_experts_per_token=1, moe_kind="switch",
                   moe_renormalize=False, moe_capacity_factor=0.75, moe_router_bias=True),
    "pangu_sigma": dict(BASE, position="learned", norm="layernorm", activation="quick_gelu", mlp_gated=False,
                        mlp_bias=True, ffns=("dense", "rre"), n_experts=4, rre_domains=2),
}
DOMAINS = torch.tensor([0, 1, 1, 0])


def _build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(name=name, **CONFIGS[name]))


def _forward(model, name: str, rows: slice) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ids, probe = torch.randint(0, V, (ROWS, T), generator=g), torch.randn(ROWS, T, V, generator=g)
    kwargs = {"domain_ids": DOMAINS[rows]} if name == "pangu_sigma" else {}
    logits = model(ids[rows], **kwargs).logits
    return logits, (logits * probe[rows]).sum()  # a loss whose gradient reaches every logit differently


def _worker(rank: int, init: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=WORLD)
    results = {}
    for name in CONFIGS:
        model = shard_experts(_build(name))
        rows = slice(rank * ROWS // WORLD, (rank + 1) * ROWS // WORLD)
        logits, loss = _forward(model, name, rows)
        loss.backward()
        all_reduce_replicated_grads(model)
        grads = {key: p.grad.clone() for key, p, _ in named_global_parameters(model) if p.grad is not None}
        experts = sorted(key for key, _, expert in named_global_parameters(model) if expert)
        results[name] = {"logits": logits.detach(), "grads": grads, "experts": experts,
                         "state": full_state_dict(model)}
    try:
        shard_experts(build_model(ModelConfig(**dict(BASE, n_experts=3, n_experts_per_token=1))))
    except ConfigError as e:
        results["error"] = str(e)
    torch.save(results, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def test_two_processes_equal_one(tmp_path):
    mp.spawn(_worker, args=(f"file://{tmp_path}/rendezvous", str(tmp_path)), nprocs=WORLD)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    assert all("n_experts=3, not divisible by 2" in r["error"] for r in ranks)
    for name in CONFIGS:
        single = _build(name)
        initial = {k: v.clone() for k, v in single.state_dict().items()}
        logits, loss = _forward(single, name, slice(0, ROWS))
        loss.backward()
        want = {key: p.grad for key, p in single.named_parameters()}
        experts = [key for r in ranks for key in r[name]["experts"]]
        expert_keys = sorted(k for k in want if ".experts." in k)
        assert sorted(experts) == expert_keys and len(set(experts)) == len(experts)  # each expert on one rank
        for rank, got in enumerate(ranks):
            got = got[name]
            rows = slice(rank * ROWS // WORLD, (rank + 1) * ROWS // WORLD)
            torch.testing.assert_close(got["logits"], logits[rows].detach(), rtol=1e-5, atol=1e-5)
            mine = {k for k in got["grads"] if k in got["experts"]}
            for key, grad in want.items():
                if key in expert_keys and key not in got["experts"]:
                    continue  # another rank's expert
                if grad is None:
                    assert key not in got["grads"] or not got["grads"][key].any(), (name, key)
                    continue
                torch.testing.assert_close(got["grads"][key], grad, rtol=1e-5, atol=1e-5, msg=f"{name} {key}")
            assert mine, f"{name}: rank {rank} got no expert gradient"
            assert sorted(got["state"]) == sorted(initial)
            for key, value in initial.items():
                assert torch.equal(got["state"][key], value), (name, key)
