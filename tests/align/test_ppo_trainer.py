"""The PPO trainer (llmzoo/align/ppo_task.py, ppo_rollout.py): the assembled update on a tiny model
against the same step computed by hand row by row (no padding, python floats for the rewards, GAE,
whitening and the clipped losses); a judge that rewards one token is rewarded more after a few PPO
steps; the adapters-disabled reference equals a separate frozen copy; `llmzoo align ppo` leaves
what it promises; bad input is one line, exit 2, no run directory."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
import yaml

import llmzoo
from llmzoo import peft
from llmzoo.align.ppo_rollout import PPOSettings, RunningMoments, make_experience, pack, reference_of
from llmzoo.align.ppo_task import PPOTask
from llmzoo.cli import main
from llmzoo.config import ModelConfig
from llmzoo.models.build import build_model
from llmzoo.models.value_head import attach_value_head, load_value_model
from tests.finetune.sft_helpers import smollm2_tokenizer, tiny_chat_base, write_jsonl

VOCAB = 16
LIKED = 5  # the token the property test's judge rewards


def _tiny_policy(seed: int = 0):
    torch.manual_seed(seed)
    config = ModelConfig(name="tiny-ppo", vocab_size=VOCAB, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=64,
                         max_seq_len=64, tie_embeddings=True)
    return attach_value_head(build_model(config), seed=seed).eval()


def _row_by_hand(model, prompt, response):
    """log p and V of each response token from an unpadded forward of one row."""
    ids = torch.tensor([prompt + response])
    out = model(ids)
    logp = torch.log_softmax(out.logits[0].double(), -1)
    values = model.score(out["last_hidden_state"][0]).squeeze(-1).double()
    steps = range(len(prompt) - 1, len(prompt) + len(response) - 1)
    return [float(logp[t, ids[0, t + 1]]) for t in steps], [float(values[t]) for t in steps]


def _gae_by_hand(rewards, values, gamma, lam):
    adv, last = [0.0] * len(rewards), 0.0
    for t in reversed(range(len(rewards))):
        next_value = values[t + 1] if t + 1 < len(rewards) else 0.0
        last = rewards[t] + gamma * next_value - values[t] + gamma * lam * last
        adv[t] = last
    return adv, [a + v for a, v in zip(adv, values)]


PROMPTS = [[1, 2, 3], [4, 5], [6, 7, 8, 9]]
RESPONSES = [[10, 11, 12], [13], [2, 3]]
SCORES = [1.0, 0.0, 2.0]


def test_one_ppo_update_equals_the_hand_computed_step():
    """Rollout scoring (full fine-tuning: the reference is a frozen copy), one SGD step on the whole
    batch, then the step's losses on the moved policy: every number of the trainer's assembled step
    against a row-by-row computation."""
    policy = _tiny_policy()
    reference = copy.deepcopy(policy).requires_grad_(False)
    s = PPOSettings(kl_coef=0.2, gamma=0.9, lam=0.8, clip_range=0.1, clip_range_value=0.05, vf_coef=0.5)
    ids, mask, response_mask = pack(PROMPTS, RESPONSES, pad_id=0)
    exp = make_experience(policy, reference, ids, mask, response_mask, torch.tensor(SCORES), s, RunningMoments())

    with torch.no_grad():
        old = [_row_by_hand(policy, p, r) for p, r in zip(PROMPTS, RESPONSES)]
        ref = [_row_by_hand(reference, p, r)[0] for p, r in zip(PROMPTS, RESPONSES)]
    mean = sum(SCORES) / 3
    std = math.sqrt(sum((x - mean) ** 2 for x in SCORES) / 2)
    normed = [(x - mean) / std for x in SCORES]
    kls, advs, rets = [], [], []
    for (lp, v), rl, score in zip(old, ref, normed):
        kl = [a - b for a, b in zip(lp, rl)]
        rewards = [-s.kl_coef * k for k in kl]
        rewards[-1] += score
        a, r = _gae_by_hand(rewards, v, s.gamma, s.lam)
        kls.append(kl)
        advs.append(a)
        rets.append(r)
    flat = [a for row in advs for a in row]
    m = sum(flat) / len(flat)
    sd = math.sqrt(sum((a - m) ** 2 for a in flat) / (len(flat) - 1))
    advs = [[(a - m) / sd for a in row] for row in advs]
    assert float(exp.kl.sum(-1).mean()) == pytest.approx(sum(sum(k) for k in kls) / 3, abs=1e-6)

    task = PPOTask(PROMPTS, [{"prompt": []}] * 3, None, None, s, rollout_batch=3, ppo_epochs=1, sampling={},
                   stop_ids=set(), pad_id=0, reference=reference)
    task.experience, task.rollout_index = exp, 0
    batch = exp.rows([0, 1, 2])
    optimizer = torch.optim.SGD([p for p in policy.parameters() if p.requires_grad], lr=0.5)
    policy.train()
    task.loss(task.forward(policy, batch), batch).backward()
    optimizer.step()
    out = task.losses(task.forward(policy, batch), batch)  # the moved policy: ratios leave 1, clips bite

    with torch.no_grad():
        new = [_row_by_hand(policy, p, r) for p, r in zip(PROMPTS, RESPONSES)]
    surrogate, value_loss, clipped, n = 0.0, 0.0, 0, 0
    for (lp, v), (old_lp, old_v), a_row, r_row in zip(new, old, advs, rets):
        for lp_t, v_t, olp, ov, a, ret in zip(lp, v, old_lp, old_v, a_row, r_row):
            ratio = math.exp(lp_t - olp)
            surrogate += max(-a * ratio, -a * min(max(ratio, 1 - s.clip_range), 1 + s.clip_range))
            v_clip = ov + min(max(v_t - ov, -s.clip_range_value), s.clip_range_value)
            value_loss += 0.5 * max((v_t - ret) ** 2, (v_clip - ret) ** 2)
            clipped += abs(ratio - 1) > s.clip_range
            n += 1
    assert clipped > 0  # the step moved the policy far enough that clipping is exercised
    assert out["policy_loss"].item() == pytest.approx(surrogate / n, abs=1e-5)
    assert out["value_loss"].item() == pytest.approx(value_loss / n, abs=1e-5)
    assert out["clipfrac"].item() == pytest.approx(clipped / n, abs=1e-6)
    assert out["loss"].item() == pytest.approx(surrogate / n + s.vf_coef * value_loss / n, abs=1e-5)


def test_a_few_ppo_steps_raise_the_reward_of_a_judge_that_likes_one_token():
    """The task's own rollouts (llmzoo's sampling) and updates, driven as the loop drives them:
    before_step, the rollout's rows in minibatches, the loss, an optimizer step."""
    policy = _tiny_policy(seed=1)
    prompts = [[1 + i % 4, 2 + i % 3] for i in range(16)]
    judge = lambda prompt, text, row: text.split().count(str(LIKED)) / max(1, len(text.split()))  # noqa: E731
    decode = lambda ids: " ".join(map(str, ids))  # noqa: E731
    task = PPOTask(prompts, [{"prompt": []}] * 16, judge, decode, PPOSettings(kl_coef=0.01),
                   rollout_batch=16, ppo_epochs=2, sampling={"max_new_tokens": 6, "temperature": 1.0, "top_k": None},
                   stop_ids=set(), pad_id=0, reference=copy.deepcopy(policy).requires_grad_(False), seed=0)
    optimizer = torch.optim.Adam([p for p in policy.parameters() if p.requires_grad], lr=1e-2)
    rewards, minibatch = [], 8
    policy.train()
    for step in range(24):  # 6 rollouts x 2 epochs x 2 minibatches
        samples = step * minibatch
        task.before_step(policy, samples)
        first = samples % task.rollout_batch
        batch = task.experience.rows(range(first, first + minibatch))
        task.loss(task.forward(policy, batch), batch).backward()
        optimizer.step()
        optimizer.zero_grad()
        rewards.append(task.step_metrics()["reward"])
    assert rewards[-1] > rewards[0] + 0.2 and rewards[-1] > 2 / VOCAB


def test_the_adapters_disabled_reference_equals_a_separate_frozen_copy():
    policy = _tiny_policy(seed=2)
    frozen = copy.deepcopy(policy).requires_grad_(False)  # the base before adapters exist
    peft.apply(policy, "lora", r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    with torch.no_grad():  # adapters that change the outputs, so that disabling them matters
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.5)
    ids, mask, response_mask = pack(PROMPTS, RESPONSES, pad_id=0)
    s = PPOSettings()
    with_adapters = make_experience(policy, None, ids, mask, response_mask, torch.tensor(SCORES), s)
    with_copy = make_experience(policy, frozen, ids, mask, response_mask, torch.tensor(SCORES), s)
    torch.testing.assert_close(with_adapters.kl, with_copy.kl)
    assert with_copy.kl.abs().sum() > 0.1  # the adapted policy differs from its reference
    from llmzoo.align.ppo_rollout import token_logprobs_and_values

    with torch.no_grad(), reference_of(policy, None) as ref:
        disabled, _ = token_logprobs_and_values(ref, ids, mask, values=False)
    with torch.no_grad():
        torch.testing.assert_close(disabled, token_logprobs_and_values(frozen, ids, mask, values=False)[0])


# --- through the CLI ----------------------------------------------------------------------------
SHORT = {"seq_len": 64, "batch_size": 2, "max_steps": 4, "lr": 0.01, "warmup_steps": 0, "precision": "fp32",
         "eval_every": 0, "checkpoint_every": 0, "progress": False, "peak_flops": 1e9, "threads": 1}
PROMPT_ROWS = [{"prompt": f"Say something about {w}.", "answer": "yes"} for w in ("red", "tea", "rain", "jazz")]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tiny_chat_base(tmp_path_factory.mktemp("ppo") / "base")


def _recipe(tmp_path, base, data=None, **changes):
    data = {"prompts": str(write_jsonl(tmp_path / "prompts.jsonl", PROMPT_ROWS)), "judge": "contains:a",
            "rollout_batch": 4, "ppo_epochs": 1, "max_new_tokens": 4, **(data or {})}
    recipe = {"name": "tiny-ppo", "task": "ppo", "model": {"from": str(base)}, "data": data,
              "peft": {"method": "lora", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]},
              "run_dir": str(tmp_path / "run"), **SHORT, **changes}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_align_ppo_leaves_metrics_curves_and_a_model_llmzoo_loads(base, tmp_path, capsys):
    data = {"val_prompts": str(tmp_path / "prompts.jsonl"), "report_prompts": 2}
    assert main(["align", "ppo", "--recipe", str(_recipe(tmp_path, base, data))]) == 0
    run = tmp_path / "run"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3, 4] and [r["rollout"] for r in train] == [0, 0, 1, 1]
    for r in train:
        assert {"reward", "kl", "policy_loss", "value_loss", "clipfrac", "approx_kl"} <= set(r)
    assert train[0]["kl"] == 0.0 and train[0]["approx_kl"] == 0.0  # the first step's policy is its reference and pi_old
    [held_out] = [r for r in records if r["kind"] == "held_out"]
    assert held_out["heldout_prompts"] == 2 and 0 <= held_out["heldout_win_rate"] <= 1
    assert (run / "ppo_curves.png").stat().st_size > 0
    assert (run / "adapter" / "adapter_config.json").is_file()
    merged = llmzoo.load(run / "model")
    assert merged.config.vocab_size == smollm2_tokenizer().vocab_size
    adapted = llmzoo.load(base, adapter=run / "adapter")  # the base plus the adapter: the merged policy
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        torch.testing.assert_close(adapted(ids).logits, merged(ids).logits, atol=1e-4, rtol=1e-4)
        assert not torch.allclose(llmzoo.load(base)(ids).logits, merged(ids).logits)  # PPO moved it
    assert load_value_model(run / "model").score.weight.shape == (1, 32)
    out = capsys.readouterr().out
    assert "judge's mean reward" in out and "KL to the reference" in out


def test_the_shipped_recipe_runs_shortened_on_a_tiny_model(base, tmp_path):
    """ppo-lora-smollm2's prompts (builtin:sst2-prompts-*), judge and settings, two updates on the tiny
    base (the real SmolLM2 takes minutes), its top-block LoRA targets swapped for q/v."""
    pytest.importorskip("pyarrow")
    argv = ["align", "ppo", "--recipe", "ppo-lora-smollm2", f"model.from={base}", "max_steps=2", "batch_size=2",
            "data.rollout_batch=2", "data.max_new_tokens=3", "data.report_prompts=2", "progress=false",
            "peak_flops=1e9", "threads=1", "peft.target_modules=[q_proj,v_proj]", f"run_dir={tmp_path / 'run'}"]
    assert main(argv) == 0
    assert (tmp_path / "run" / "model" / "config.json").is_file()


@pytest.mark.parametrize("override, message", [
    ("data.kl_coef=-0.1", "data.kl_coef must be >= 0"),
    ("data.judge=reward-model", "no value head"),
    ("data.prompts=EMPTY", "has no rows"),
    ("data.rollout_batch=3", "multiple of batch_size"),
    ("data.judge=nonsense", "is not one of"),
])
def test_bad_ppo_input_is_one_line_and_writes_nothing(base, tmp_path, capsys, override, message):
    extra = []
    if "reward-model" in override:
        extra = [f"data.reward_model={base}"]  # a plain model: no value_head.safetensors
    if "EMPTY" in override:
        (tmp_path / "empty.jsonl").write_text("")
        override = f"data.prompts={tmp_path / 'empty.jsonl'}"
    assert main(["align", "ppo", "--recipe", str(_recipe(tmp_path, base)), override, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "run").exists()


def test_the_docs_ppo_commands_run_shortened(base, tmp_path, monkeypatch):
    """docs/alignment.md's PPO commands (its ```shell block), as a user runs them, on the tiny base."""
    pytest.importorskip("pyarrow")
    import re
    import shlex

    from tests.train.helpers import REPO

    doc = (REPO / "docs" / "alignment.md").read_text(encoding="utf-8")
    commands = [line for block in re.findall(r"```shell\n(.*?)```", doc, flags=re.S) for line in block.splitlines()
                if line.startswith("llmzoo align ppo")]
    assert len(commands) == 2
    monkeypatch.chdir(tmp_path)
    for number, command in enumerate(commands):
        run = tmp_path / f"run{number}"
        short = [f"model.from={base}", "max_steps=2", "batch_size=2", "data.rollout_batch=2", "data.max_new_tokens=3",
                 "data.report_prompts=0", "progress=false", "peak_flops=1e9", "threads=1",
                 "peft.target_modules=[q_proj,v_proj]", f"run_dir={run}"]
        assert main([*shlex.split(command)[1:], *short]) == 0
        assert (run / "model" / "config.json").is_file() and (run / "ppo_curves.png").is_file()


def test_full_fine_tuning_against_a_reward_model_judge(base, tmp_path):
    """No peft: the reference is a frozen copy; the judge is a reward model saved as `llmzoo align reward` saves one."""
    from llmzoo.models.value_head import save_value_model

    reward_model = save_value_model(attach_value_head(llmzoo.load(base), seed=3), tmp_path / "rm")
    data = {"judge": "reward-model", "reward_model": str(reward_model)}
    assert main(["align", "ppo", "--recipe", str(_recipe(tmp_path, base, data)), "peft=null", "max_steps=2"]) == 0
    run = tmp_path / "run"
    train = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len({r["reward"] for r in train}) == 1 and train[0]["reward"] != 0.0  # one rollout, a real score
    assert not (run / "adapter").exists() and llmzoo.load(run / "model").config.n_layers == 2


def test_a_resumed_ppo_run_continues_from_its_checkpoint(base, tmp_path):
    """Resumed at a rollout boundary, the run re-rolls from the checkpoint's weights and finishes."""
    path = _recipe(tmp_path, base, checkpoint_every=2)
    assert main(["align", "ppo", "--recipe", str(path), "max_steps=2"]) == 0
    assert main(["align", "ppo", "--resume", str(tmp_path / "run"), "max_steps=4"]) == 0
    train = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3, 4] and train[-1]["rollout"] == 1


def test_ppo_is_a_task_llmzoo_finetune_knows():
    """`llmzoo finetune` finds tasks through the registry's module list: ppo is on it, as reward and dpo are."""
    import subprocess
    import sys

    code = "from llmzoo.finetune.registry import get_task; print(get_task('ppo').__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "build_ppo"
