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
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # experts in bf16, residual in fp32
            bf16 = _forward(model, name, rows)[0].float()
        results[name] = {"logits": logits.detach(), "grads": grads, "experts": experts,
                         "state": full_state_dict(model), "bf16": bf16}
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
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = _forward(single, name, slice(0, ROWS))[0].float()
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
            torch.testing.assert_close(got["bf16"], bf16[rows], rtol=2e-2, atol=2e-2)
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


# ---------------------------------------------------------------------------------------------
# parallel=ep in the training loop: a recipe runs the same steps as one process would


STEPS, HALF = 6, 3


def _recipe(data, run_dir, aux: float = 0.0, **kw):
    from tests.train.helpers import tiny_recipe

    # aux_loss 0 for the single-process comparison: a rank's load-balancing loss is over its own tokens, as
    # under ddp (the ep_aux / ddp_aux runs check that they agree with it on)
    model = {"d_model": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "d_ff": 64, "max_seq_len": 64,
             "n_experts": 4, "n_experts_per_token": 2, "moe_aux_loss_coef": aux}
    return tiny_recipe(data, run_dir, model=model, max_steps=STEPS, checkpoint_every=HALF, eval_every=HALF,
                       batch_size=4, **kw)


def test_recipe_parallel_ep_trains_as_one_process(tmp_path):
    import shutil

    import numpy as np

    from llmzoo.train.loop import train
    from llmzoo.train.recipe import recipe_from_dict
    from tests.train.helpers import make_token_data, run_workers

    data = make_token_data(tmp_path / "data")
    single = train(recipe_from_dict(_recipe(data, tmp_path / "single"))).losses
    resume = tmp_path / "single_to_ep"
    shutil.copytree(tmp_path / "single", resume)
    for ckpt in (resume / "checkpoints").iterdir():
        if int(ckpt.name.split("_")[1]) > HALF:
            shutil.rmtree(ckpt)
    spec = {"runs": [
        {"name": "ep", "recipe": _recipe(data, tmp_path / "ep", parallel="ep")},
        {"name": "single_to_ep", "recipe": _recipe(data, resume, parallel="ep"), "resume": str(resume)},
        {"name": "ep_aux", "recipe": _recipe(data, tmp_path / "ep_aux", aux=0.01, parallel="ep")},
        {"name": "ddp_aux", "recipe": _recipe(data, tmp_path / "ddp_aux", aux=0.01, parallel="ddp")},
    ]}
    got = {k: {int(s): v for s, v in d.items()} for k, d in run_workers(spec, tmp_path)[0].items()}
    back = tmp_path / "ep_to_single"
    shutil.copytree(tmp_path / "ep", back)
    for ckpt in (back / "checkpoints").iterdir():
        if int(ckpt.name.split("_")[1]) > HALF:
            shutil.rmtree(ckpt)
    got["ep_to_single"] = train(recipe_from_dict(_recipe(data, back)), resume=back).losses
    steps = range(1, STEPS + 1)
    for name in ("ep", "single_to_ep", "ep_to_single"):
        assert sorted(got[name]) == list(steps), name
        np.testing.assert_allclose([got[name][s] for s in steps], [single[s] for s in steps], rtol=1e-5, atol=1e-6,
                                   err_msg=name)
    np.testing.assert_allclose([got["ep_aux"][s] for s in steps], [got["ddp_aux"][s] for s in steps], rtol=1e-5,
                               atol=1e-6)


def test_recipe_parallel_ep_refuses_a_dense_model():
    from llmzoo.train.distributed import check_layout

    dense = build_model(ModelConfig(**BASE))
    try:
        check_layout(dense, "ep", 2, "clm")
    except ConfigError as e:
        assert "parallel=ep shards the experts of MoE layers" in str(e)
    else:
        raise AssertionError("no ConfigError")
