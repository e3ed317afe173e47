"""PPO's experience: sample responses from the policy, then score every response token under the
policy, the reference and the value head, and turn the judge's scores into advantages
(InstructGPT, Ouyang et al. 2022; "Secrets of RLHF", Zheng et al. 2023, sections 4-5).

Layout. A row is prompt + response, right-padded; per-token tensors are (B, T - 1), position t
being the prediction of token t + 1 from tokens <= t: `response_mask[t]` is 1 where token t + 1 is a
response token, `logprobs[t]` its log-probability, `values[t]` the value head's estimate of the
state before emitting it (trl's values[:, context - 1:-1]). The prompt's positions and the padding
are masked out, and a response's tokens are contiguous, so masked_gae's episode ends at the
response's last token. The stop token (end of turn) is kept as the response's last token: ending the
answer is an action the policy takes and is rewarded for.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from llmzoo.align.ppo import kl_penalized_rewards, masked_gae, whiten


def sample_responses(model: nn.Module, prompts: list[list[int]], *, max_new_tokens: int, temperature: float,
                     top_k: int | None, stop_ids: set[int], pad_id: int, seed: int) -> list[list[int]]:
    """One sampled response per prompt through llmzoo's batched, KV-cached decoding, the stop token
    included (generate_ids drops EOS ids, so the stop set goes through on_token, which keeps it)."""
    from llmzoo.infer.generate import generate_ids
    from llmzoo.infer.sampling import SamplingConfig

    stops = frozenset(stop_ids)
    results = generate_ids(model, prompts, max_new_tokens=max_new_tokens, pad_id=pad_id, seed=seed,
                           sampling=SamplingConfig(temperature=temperature, top_k=top_k),
                           on_token=lambda row, token: token in stops)
    return [r.token_ids for r in results]


def pack(prompts: list[list[int]], responses: list[list[int]], pad_id: int
         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids (B, T), attention_mask (B, T), response_mask (B, T - 1)) of prompt + response rows."""
    width = max(len(p) + len(r) for p, r in zip(prompts, responses))
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    response = torch.zeros((len(prompts), width - 1))
    for row, (p, r) in enumerate(zip(prompts, responses)):
        ids[row, :len(p) + len(r)] = torch.tensor(p + r)
        mask[row, :len(p) + len(r)] = 1
        response[row, len(p) - 1:len(p) + len(r) - 1] = 1.0
    return ids, mask, response


def token_logprobs_and_values(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor, *, values: bool = True
                              ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(log p(token t + 1 | <= t) (B, T - 1), value estimates (B, T - 1) or None) from one forward."""
    out = model(ids, attention_mask=mask)
    logps = F.log_softmax(out.logits[:, :-1].float(), dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
    if not values:
        return logps, None
    h = out["last_hidden_state"][:, :-1]
    return logps, model.score(h.to(model.score.weight.dtype)).squeeze(-1).float()


@contextlib.contextmanager
def reference_of(policy: nn.Module, frozen: nn.Module | None) -> Iterator[nn.Module]:
    """The reference policy: a separate frozen model, or (frozen None) the policy with its PEFT
    adapters disabled, the same network serving as both (one model in memory)."""
    if frozen is not None:
        yield frozen
        return
    from llmzoo import peft

    with peft.disabled(policy):
        yield policy


class RunningMoments:
    """Mean and standard deviation of every score seen so far (Chan et al.'s parallel update, as trl's
    RunningMoments): "Secrets of RLHF" section 5.3 normalises rewards by running statistics and clips
    them, so the critic's targets keep one scale while the policy's rewards grow."""

    def __init__(self) -> None:
        self.mean, self.var, self.count = 0.0, 1.0, 0

    def update(self, x: torch.Tensor) -> None:
        x = x.double()
        n, mean = x.numel(), float(x.mean())
        var = float(x.var(unbiased=False)) if n > 1 else 0.0
        total = self.count + n
        delta = mean - self.mean
        m2 = self.var * self.count + var * n + delta ** 2 * self.count * n / total
        self.mean, self.var, self.count = self.mean + delta * n / total, m2 / total, total

    @property
    def std(self) -> float:
        # unbiased over all the scores seen; 1 until two exist (one score says nothing of the scale)
        return (self.var * self.count / (self.count - 1)) ** 0.5 if self.count > 1 else 1.0


@dataclass
class PPOSettings:
    kl_coef: float = 0.05
    gamma: float = 1.0
    lam: float = 0.95
    clip_range: float = 0.2
    clip_range_value: float = 0.2
    vf_coef: float = 0.1
    whiten_advantages: bool = True
    reward_norm: bool = True
    reward_clip: float = 5.0


@dataclass
class Experience:
    """One rollout batch, everything PPO's epochs need (computed once, without gradients)."""

    input_ids: torch.Tensor  # (B, T)
    attention_mask: torch.Tensor  # (B, T)
    response_mask: torch.Tensor  # (B, T - 1)
    logprobs: torch.Tensor  # (B, T - 1) under the policy at rollout time (pi_old)
    values: torch.Tensor  # (B, T - 1)
    advantages: torch.Tensor  # (B, T - 1), whitened if asked
    returns: torch.Tensor  # (B, T - 1)
    scores: torch.Tensor  # (B,) the judge's raw scores
    kl: torch.Tensor  # (B, T - 1) log pi_old - log ref

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def rows(self, indices) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(list(indices), dtype=torch.long)
        keys = ("input_ids", "attention_mask", "response_mask", "logprobs", "values", "advantages", "returns")
        return {k: getattr(self, k)[index] for k in keys}

    def stats(self) -> dict[str, float]:
        lengths = self.response_mask.sum(-1)
        return {"reward": float(self.scores.mean()), "reward_std": float(self.scores.std()) if len(self) > 1 else 0.0,
                "kl": float(self.kl.sum(-1).mean()), "response_tokens": float(lengths.mean())}


@torch.no_grad()
def make_experience(policy: nn.Module, reference: nn.Module | None, ids: torch.Tensor, mask: torch.Tensor,
                    response_mask: torch.Tensor, scores: torch.Tensor, settings: PPOSettings,
                    moments: RunningMoments | None = None) -> Experience:
    """Score the packed rollout: pi_old and V_old from the policy, the reference's log-probabilities,
    the per-token KL-penalised rewards (InstructGPT eq. 2), GAE (Schulman et al. 2016) and whitening.
    `moments` (reward_norm): scores normalised by the running statistics (updated with these first),
    then clipped to +-reward_clip (equal scores so far: all 0, no signal)."""
    logprobs, values = token_logprobs_and_values(policy, ids, mask)
    with reference_of(policy, reference) as ref:
        ref_logprobs, _ = token_logprobs_and_values(ref, ids, mask, values=False)
    scores = scores.float()
    shaped = scores
    if settings.reward_norm and moments is not None:
        moments.update(scores)
        shaped = ((scores - moments.mean) / (moments.std + 1e-8)).clamp(-settings.reward_clip, settings.reward_clip)
    rewards, kl = kl_penalized_rewards(shaped, logprobs, ref_logprobs, response_mask, settings.kl_coef)
    values = values * response_mask
    advantages, returns = masked_gae(rewards, values, response_mask, settings.gamma, settings.lam)
    if settings.whiten_advantages:
        advantages = whiten(advantages, response_mask)
    return Experience(ids, mask, response_mask, logprobs * response_mask, values, advantages, returns, scores, kl)

