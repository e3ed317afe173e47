"""The `ppo` fine-tuning task: RLHF with PPO (Schulman et al. 2017) as InstructGPT (Ouyang et al. 2022)
and "Secrets of RLHF" (Zheng et al. 2023) run it, through the one training loop.

    llmzoo align ppo --recipe ppo-lora-smollm2

How PPO maps onto the loop. One loop step is one PPO minibatch update (batch_size responses). Every
rollout_batch * ppo_epochs samples the task rolls out: rollout_batch prompts (a seeded shuffle of
data.prompts) are answered by the policy in eval mode through llmzoo's own decoding
(llmzoo.infer.generate_ids, sampled), a judge scores each answer (llmzoo/align/ppo_judge.py), and
the policy, its value head and the reference score every response token (llmzoo/align/ppo_rollout.py).
The loop's sampler reads that rollout as its dataset of rollout_batch rows: its seeded per-epoch
shuffle is exactly PPO's "ppo_epochs passes over shuffled minibatches" of each batch. The loop calls
`before_step` (the rollout) and `step_metrics` (reward, KL, losses, clip fraction) per step.

Recipe `data:` settings:

    prompts / val_prompts   JSONL rows with 'prompt' (+ 'answer' for the gold judge), or
                            builtin:sst2-prompts-train / builtin:sst2-prompts-heldout
    template                the chat template (auto: the model's own)
    judge / reward_model    see ppo_judge.py
    rollout_batch           prompts per rollout (a multiple of batch_size; default 2 x batch_size)
    ppo_epochs              passes over each rollout (default 2)
    max_new_tokens, temperature, top_k   the rollout's sampling (defaults 32, 1.0, 0 = off)
    kl_coef                 the per-token KL penalty to the reference (default 0.05, >= 0)
    gamma, lam              GAE (defaults 1.0, 0.95)
    clip_range, clip_range_value, vf_coef   the clipped losses (0.2, 0.2, 0.1)
    whiten_advantages       (true) reward_norm / reward_clip: running-statistics normalisation of
                            the judge's scores, then clipping (true, 5.0; "Secrets of RLHF" 5.3)
    reference               auto | adapters | copy (as task dpo: adapters disabled, or a frozen copy)
    report_prompts          held-out prompts answered by the policy and the reference at the end (0: none)

A resumed run re-rolls the interrupted rollout with the resumed weights (the rollout is not in the
checkpoint) and restarts the running reward statistics: PPO runs resume, but not bit for bit.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import torch
from torch import nn

from llmzoo.align.ppo import ppo_losses
from llmzoo.align.ppo_rollout import (
    Experience, PPOSettings, RunningMoments, make_experience, pack, reference_of, sample_responses,
    token_logprobs_and_values,
)
from llmzoo.errors import ConfigError, LlmzooError
from llmzoo.finetune.registry import FinetuneData, register_task
from llmzoo.models.value_head import has_value_head

PPO_KEYS = ("prompts", "val_prompts", "template", "judge", "reward_model", "rollout_batch", "ppo_epochs",
            "max_new_tokens", "temperature", "top_k", "kl_coef", "gamma", "lam", "clip_range", "clip_range_value",
            "vf_coef", "whiten_advantages", "reward_norm", "reward_clip", "reference", "report_prompts")
BUILTIN_PROMPTS = ("builtin:sst2-prompts-train", "builtin:sst2-prompts-heldout")


class RolloutRows:
    """The loop's training dataset: the current rollout's rows (rollout_batch of them)."""

    def __init__(self, task: "PPOTask") -> None:
        self.task = task

    def __len__(self) -> int:
        return self.task.rollout_batch

    def rows(self, indices) -> dict[str, torch.Tensor]:
        if self.task.experience is None:
            raise LlmzooError("internal: a PPO batch was read before its rollout (the loop did not call before_step)")
        return self.task.experience.rows(indices)


class PPOTask:
    name = "ppo"
    loss_is_token_mean = False  # exp(PPO loss) is no perplexity
    uses_every_parameter = False

    def __init__(self, prompts: list[list[int]], rows: list[dict], judge, decode, settings: PPOSettings, *,
                 rollout_batch: int, ppo_epochs: int, sampling: dict[str, Any], stop_ids: set[int], pad_id: int,
                 reference: nn.Module | None, seed: int = 0, progress: bool = False) -> None:
        self.prompts, self.prompt_rows, self.judge, self.decode = prompts, rows, judge, decode
        self.settings, self.rollout_batch, self.ppo_epochs = settings, rollout_batch, ppo_epochs
        self.sampling, self.stop_ids, self.pad_id, self.reference = sampling, stop_ids, pad_id, reference
        self.seed, self.progress = seed, progress
        self.moments = RunningMoments()
        self.experience: Experience | None = None
        self.rollout_index = -1
        self.ppo_epoch = 0
        self._rollout_stats: dict[str, float] = {}
        self._losses: list[dict[str, float]] = []
        self.val_prompts: list[list[int]] = []
        self.val_rows: list[dict] = []
        self.report_prompts = 0
        from llmzoo.train.batches import EpochOrder

        self._order = EpochOrder(len(prompts), seed)

    # --- the loop's hooks -----------------------------------------------------------------------
    def before_step(self, model: nn.Module, samples: int, autocast=None) -> None:
        """Roll out when this step's samples belong to a rollout not in the buffer."""
        per_rollout = self.rollout_batch * self.ppo_epochs
        index = samples // per_rollout
        self.ppo_epoch = (samples % per_rollout) // self.rollout_batch
        if index != self.rollout_index:
            self.rollout(model, index, autocast)

    def step_metrics(self) -> dict[str, float]:
        losses, self._losses = self._losses, []
        mean = {k: sum(d[k] for d in losses) / len(losses) for k in losses[0]} if losses else {}
        return {"rollout": self.rollout_index, "ppo_epoch": self.ppo_epoch, **self._rollout_stats, **mean}

    # --- rollouts -------------------------------------------------------------------------------
    def score(self, prompt_indices: list[int], responses: list[list[int]]) -> torch.Tensor:
        texts = [self.decode(r) for r in responses]
        return torch.tensor([float(self.judge(self.prompt_rows[i]["prompt"], t, self.prompt_rows[i]))
                             for i, t in zip(prompt_indices, texts)])

    def rollout(self, model: nn.Module, index: int, autocast=None) -> Experience:
        first = index * self.rollout_batch
        chosen = [self._order(first + i) for i in range(self.rollout_batch)]
        prompts = [self.prompts[i] for i in chosen]
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()  # InstructGPT samples the policy as it serves: no dropout
        try:
            with autocast() if autocast is not None else contextlib.nullcontext():
                responses = sample_responses(model, prompts, stop_ids=self.stop_ids, pad_id=self.pad_id,
                                             seed=self.seed * 1_000_003 + index, **self.sampling)
                scores = self.score(chosen, responses)
                ids, mask, response_mask = pack(prompts, responses, self.pad_id)
                self.experience = make_experience(model, self.reference, ids.to(device), mask.to(device),
                                                  response_mask.to(device), scores.to(device), self.settings,
                                                  self.moments)
        finally:
            model.train(was_training)
        self.rollout_index = index
        self._rollout_stats = self.experience.stats()
        if self.progress:
            s = self._rollout_stats
            from tqdm.auto import tqdm  # above the loop's progress bar, not inside it

            tqdm.write(f"rollout {index + 1}: reward {s['reward']:.3f} (std {s['reward_std']:.3f}), KL {s['kl']:.4f}, "
                       f"{s['response_tokens']:.1f} tokens/answer", file=sys.stderr)
        return self.experience

    # --- the update -----------------------------------------------------------------------------
    def model_inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}

    def forward(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        logprobs, values = token_logprobs_and_values(model, batch["input_ids"], batch["attention_mask"])
        return {"logprobs": logprobs, "values": values}

    def losses(self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        s = self.settings
        return ppo_losses(outputs["logprobs"], batch["logprobs"], batch["advantages"], outputs["values"],
                          batch["values"], batch["returns"], batch["response_mask"], clip_range=s.clip_range,
                          clip_range_value=s.clip_range_value, vf_coef=s.vf_coef)

    def loss(self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        out = self.losses(outputs, batch)
        if torch.is_grad_enabled():  # a training micro-batch: its numbers go to this step's record
            self._losses.append({k: float(v.detach()) for k, v in out.items() if k != "loss"})
        return out["loss"]

    def token_count(self, batch: dict[str, torch.Tensor]) -> int:
        return int(batch["response_mask"].sum())

    # --- the end of the run ---------------------------------------------------------------------
    @torch.no_grad()
    def held_out_report(self, model: nn.Module) -> dict[str, float]:
        """The first report_prompts held-out prompts answered (same seed) by the policy and by the
        reference, scored by the judge: mean rewards, the policy's win rate (ties count half) and the
        KL of the policy's answers to the reference (summed over each answer's tokens)."""
        count = min(self.report_prompts, len(self.val_prompts))
        if count == 0:
            return {}
        prompts, rows = self.val_prompts[:count], self.val_rows[:count]
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        seed = self.seed * 1_000_003 - 1
        scores = {}
        try:
            for who in ("policy", "reference"):
                if who == "policy":
                    answers = sample_responses(model, prompts, stop_ids=self.stop_ids, pad_id=self.pad_id, seed=seed,
                                               **self.sampling)
                else:
                    with reference_of(model, self.reference) as ref:
                        answers = sample_responses(ref, prompts, stop_ids=self.stop_ids, pad_id=self.pad_id,
                                                   seed=seed, **self.sampling)
                scores[who] = torch.tensor([float(self.judge(r["prompt"], self.decode(a), r))
                                            for r, a in zip(rows, answers)])
                if who == "policy":
                    ids, mask, response_mask = pack(prompts, answers, self.pad_id)
                    ids, mask, response_mask = ids.to(device), mask.to(device), response_mask.to(device)
                    policy_logps, _ = token_logprobs_and_values(model, ids, mask, values=False)
                    with reference_of(model, self.reference) as ref:
                        ref_logps, _ = token_logprobs_and_values(ref, ids, mask, values=False)
                    kl = float(((policy_logps - ref_logps) * response_mask).sum(-1).mean())
        finally:
            model.train(was_training)
        p, r = scores["policy"], scores["reference"]
        return {"heldout_reward_policy": float(p.mean()), "heldout_reward_reference": float(r.mean()),
                "heldout_win_rate": float(((p > r).float() + 0.5 * (p == r).float()).mean()),
                "heldout_kl": kl, "heldout_prompts": float(count)}


# --- the recipe's prompts and settings ----------------------------------------------------------
def load_prompt_rows(source: Any) -> list[dict]:
    """Rows with 'prompt' as chat messages (+ 'answer', 'wrong'): a JSONL file or a built-in SST-2 half
    (answer: the gold label's word, wrong: the other label's)."""
    text = str(source)
    if text in BUILTIN_PROMPTS:
        from llmzoo.eval.tasks.sst2_heldout import LABELS, sst2_halves, sst2_prompt

        half = sst2_halves()[BUILTIN_PROMPTS.index(text)]
        return [{"prompt": [{"role": "user", "content": sst2_prompt(doc)}], "answer": LABELS[int(doc["label"])],
                 "wrong": LABELS[1 - int(doc["label"])]}
                for doc in half]
    if text.startswith("builtin:"):
        raise ConfigError(f"unknown built-in prompts {text!r}; available: {', '.join(BUILTIN_PROMPTS)}")
    from llmzoo.align.best_of_n import read_prompts

    return read_prompts(source)


def _number(data: dict, key: str, default, kind=float):
    value = data.get(key, default)
    try:
        return kind(value) if kind is not bool else _boolean(value, key)
    except (TypeError, ValueError):
        raise ConfigError(f"data.{key} must be a number, got {value!r}") from None


def _boolean(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "1", "yes"):
        return True
    if str(value).lower() in ("false", "0", "no"):
        return False
    raise ConfigError(f"data.{key} must be true or false, got {value!r}")


def ppo_settings(data: dict) -> PPOSettings:
    s = PPOSettings(kl_coef=_number(data, "kl_coef", 0.05), gamma=_number(data, "gamma", 1.0),
                    lam=_number(data, "lam", 0.95), clip_range=_number(data, "clip_range", 0.2),
                    clip_range_value=_number(data, "clip_range_value", 0.2), vf_coef=_number(data, "vf_coef", 0.1),
                    whiten_advantages=_number(data, "whiten_advantages", True, bool),
                    reward_norm=_number(data, "reward_norm", True, bool), reward_clip=_number(data, "reward_clip", 5.0))
    if s.kl_coef < 0:
        raise ConfigError(f"data.kl_coef must be >= 0 (the KL penalty's strength; 0 turns it off), got {s.kl_coef}")
    for key in ("gamma", "lam"):
        if not 0 <= getattr(s, key) <= 1:
            raise ConfigError(f"data.{key} must be in [0, 1], got {getattr(s, key)}")
    for key in ("clip_range", "clip_range_value", "reward_clip"):
        if not getattr(s, key) > 0:
            raise ConfigError(f"data.{key} must be > 0, got {getattr(s, key)}")
    return s


def _tokenized_prompts(rows: list[dict], template: str, tokenizer, limit: int,
                       what: str) -> tuple[list[list[int]], list[dict]]:
    from llmzoo.tokenizer.chat import render_chat_template

    prompts, kept = [], []
    for row in rows:
        text = render_chat_template(template, row["prompt"], add_generation_prompt=True,
                                    special_tokens=tokenizer.special_tokens_map)
        ids = tokenizer.encode(text, add_special_tokens=False)  # the template wrote its own specials
        if 0 < len(ids) <= limit:
            prompts.append(ids)
            kept.append(row)
    if len(kept) < len(rows):
        print(f"note: {len(rows) - len(kept)} of {len(rows)} {what} are longer than seq_len - max_new_tokens = {limit} "
              f"tokens and were dropped", file=sys.stdout)
    return prompts, kept


def build_ppo(recipe, tokenizer, model) -> FinetuneData:
    """The registry's builder: settings first, then the judge and prompts, then the reference (the
    model as it is now, before any step, is the starting policy)."""
    from llmzoo.align.dpo_task import make_reference
    from llmzoo.align.ppo_judge import make_judge
    from llmzoo.finetune.sft_template import resolve_template

    if model.config.arch != "decoder":
        raise LlmzooError(f"task ppo trains a causal language model; {model.config.name} is a {model.config.arch}")
    if not has_value_head(model):
        raise LlmzooError(f"task ppo's policy carries a value head (the critic), and {model.config.name} has none; "
                          f"run the recipe with `llmzoo align ppo --recipe ...`, which attaches one")
    data = dict(recipe.data or {})
    unknown = sorted(set(data) - set(PPO_KEYS))
    if unknown:
        raise ConfigError(f"unknown ppo data setting(s) {', '.join(unknown)}; known: {', '.join(PPO_KEYS)}")
    settings = ppo_settings(data)
    rollout_batch = _number(data, "rollout_batch", 2 * recipe.batch_size, int)
    ppo_epochs = _number(data, "ppo_epochs", 2, int)
    max_new = _number(data, "max_new_tokens", 32, int)
    temperature = _number(data, "temperature", 1.0)
    top_k = _number(data, "top_k", 0, int)
    report = _number(data, "report_prompts", 0, int)
    if rollout_batch < 1 or rollout_batch % recipe.batch_size:
        raise ConfigError(f"data.rollout_batch={rollout_batch} must be a positive multiple of batch_size="
                          f"{recipe.batch_size} (each PPO epoch passes over the rollout in whole minibatches)")
    if ppo_epochs < 1 or max_new < 1:
        raise ConfigError(f"data.ppo_epochs and data.max_new_tokens must be >= 1, got {ppo_epochs} and {max_new}")
    if not temperature > 0:
        raise ConfigError(f"data.temperature must be > 0: PPO learns from sampled answers, got {temperature}")
    if recipe.spike_factor:
        raise ConfigError("PPO's loss is no spike signal (it is near 0 and changes sign); set spike_factor=0")
    if not data.get("prompts"):
        raise ConfigError(f"task ppo needs data.prompts=FILE.jsonl (rows with 'prompt') or one of "
                          f"{', '.join(BUILTIN_PROMPTS)}")
    if tokenizer is None:
        raise ConfigError(f"task ppo renders prompts, but {recipe.model.get('from')!r} has no tokenizer; "
                          f"set tokenizer=...")
    template = resolve_template(data.get("template"), tokenizer, str(recipe.model.get("from")))
    judge = make_judge(data.get("judge"), data.get("reward_model"), tokenizer, template)
    limit = int(recipe.seq_len) - max_new
    if limit < 1:
        raise ConfigError(f"seq_len={recipe.seq_len} leaves no room for a prompt before max_new_tokens={max_new}")
    prompts, rows = _tokenized_prompts(load_prompt_rows(data["prompts"]), template, tokenizer, limit, "prompts")
    if not prompts:
        raise LlmzooError(f"task ppo: no prompt of {data['prompts']} fits seq_len - max_new_tokens = {limit} tokens")
    stop = set(getattr(tokenizer, "stop_token_ids", None) or ())
    if tokenizer.eos_token_id is not None:
        stop.add(tokenizer.eos_token_id)
    pad = next(i for i in (tokenizer.pad_token_id, tokenizer.eos_token_id, model.config.pad_token_id, 0)
               if i is not None)
    model.score.requires_grad_(True)  # the critic always trains, PEFT or not (peft's modules_to_save=["score"])
    reference = make_reference(data.get("reference", "auto"), model)
    task = PPOTask(prompts, rows, judge, lambda ids: tokenizer.decode(ids, skip_special_tokens=True).strip(), settings,
                   rollout_batch=rollout_batch, ppo_epochs=ppo_epochs,
                   sampling={"max_new_tokens": max_new, "temperature": temperature, "top_k": top_k or None},
                   stop_ids=stop, pad_id=pad, reference=reference.model, seed=recipe.seed, progress=recipe.progress)
    if report and data.get("val_prompts"):
        task.val_prompts, task.val_rows = _tokenized_prompts(load_prompt_rows(data["val_prompts"]), template, tokenizer,
                                                             limit, "held-out prompts")
        task.report_prompts = report
    return FinetuneData(task, RolloutRows(task), None)


register_task("ppo", build_ppo)
