"""The losses of one PPO update for RLHF (Schulman et al. 2017; InstructGPT, Ouyang et al. 2022;
"Secrets of RLHF in Large Language Models", Zheng et al. 2023), on per-token tensors (B, T) of the
response tokens, `mask` 1 on real response tokens:

    rewards = kl_penalized_rewards(scores, logprobs, ref_logprobs, mask, kl_coef)
        per token -kl_coef * (log pi_old - log ref), and the reward model's score added at the
        last response token (the per-token KL penalty to the supervised model, InstructGPT eq. 2)
    advantages, returns = masked_gae(rewards, values, mask, gamma, lam); advantages whitened
    ppo_losses(...): the clipped policy surrogate and the clipped value loss

The trainer that rolls out and updates with them: llmzoo/align/ppo_task.py (see docs/alignment.md).
"""

from __future__ import annotations

import torch

from llmzoo.align.losses import gae
from llmzoo.errors import LlmzooError


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp_min(1)


def whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / std over the masked entries (unbiased variance, as trl); the mean kept if not shift_mean."""
    mean = masked_mean(x, mask)
    n = mask.sum()
    var = ((x - mean) ** 2 * mask).sum() / (n - 1).clamp_min(1)
    out = (x - mean) * torch.rsqrt(var + eps)
    return (out if shift_mean else out + mean) * mask


def last_index(mask: torch.Tensor) -> torch.Tensor:
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    return (positions * mask.bool()).argmax(dim=-1)


def kl_penalized_rewards(scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor,
                         mask: torch.Tensor, kl_coef: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(rewards (B, T), kl (B, T)): kl = log pi - log ref per response token, rewards = -kl_coef * kl,
    plus the sequence's score on its last response token."""
    if kl_coef < 0:
        raise LlmzooError(f"kl_coef must be >= 0, got {kl_coef}")
    kl = (logprobs - ref_logprobs) * mask
    rewards = -kl_coef * kl
    rewards = rewards.scatter_add(1, last_index(mask)[:, None], scores[:, None].to(rewards.dtype))
    return rewards * mask, kl


def masked_gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
               lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE over right-padded responses: padding gets reward 0 and value 0, so each episode ends at its
    last real token (the value after it is 0) and padding's advantage is 0."""
    advantages, returns = gae(rewards * mask, values * mask, gamma, lam)
    return advantages * mask, returns * mask


def ppo_losses(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, values: torch.Tensor,
               old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, *, clip_range: float = 0.2,
               clip_range_value: float = 0.2, vf_coef: float = 0.1) -> dict[str, torch.Tensor]:
    """The clipped surrogate -min(ratio A, clip(ratio, 1 +- eps) A) and the clipped value loss
    0.5 max((V - R)^2, (clip(V, V_old +- eps_v) - R)^2), token means over the mask (trl's PPO);
    loss = policy + vf_coef * value. Also approx_kl (0.5 E[(log ratio)^2]) and the clipped fraction."""
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    surrogate = torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - clip_range, 1 + clip_range))
    policy_loss = masked_mean(surrogate, mask)
    clipped_values = old_values + (values - old_values).clamp(-clip_range_value, clip_range_value)
    value_loss = 0.5 * masked_mean(torch.max((values - returns) ** 2, (clipped_values - returns) ** 2), mask)
    return {"loss": policy_loss + vf_coef * value_loss, "policy_loss": policy_loss, "value_loss": value_loss,
            "approx_kl": 0.5 * masked_mean(log_ratio.detach() ** 2, mask),
            "clipfrac": masked_mean(((ratio.detach() - 1).abs() > clip_range).float(), mask)}
