"""Preference and policy-gradient losses, as the papers define them.

- reward_loss: Bradley-Terry pairwise loss of a reward model (Ouyang et al. 2022, InstructGPT),
  -log sigmoid(r_chosen - r_rejected - margin) (LLaMA-2's margin term, Touvron et al. 2023).
- dpo_loss: Direct Preference Optimization (Rafailov et al. 2023) and its kin: IPO's squared loss
  (Azar et al. 2023), SLiC's hinge (Zhao et al. 2023), robust DPO for noisy labels (Chowdhury et
  al. 2024); label smoothing is conservative DPO (cDPO, Mitchell 2023).
- gae: generalized advantage estimation (Schulman et al. 2016), as PPO's advantages.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from llmzoo.errors import LlmzooError

DPO_LOSS_TYPES = ("sigmoid", "ipo", "hinge", "robust")


def reward_loss(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor,
                margin: torch.Tensor | float | None = None) -> torch.Tensor:
    """Mean of -log sigmoid(r_chosen - r_rejected - margin) over the pairs."""
    diff = chosen_rewards - rejected_rewards
    if margin is not None:
        diff = diff - margin
    return -F.logsigmoid(diff).mean()


def dpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
             ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor, beta: float = 0.1,
             loss_type: str = "sigmoid", label_smoothing: float = 0.0
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss averaged over the batch, chosen rewards (B,), rejected rewards (B,)).

    With h = (log pi(y_w) - log ref(y_w)) - (log pi(y_l) - log ref(y_l)):
    sigmoid: -(1 - eps) log s(beta h) - eps log s(-beta h);   ipo: (h - 1/(2 beta))^2;
    hinge: max(0, 1 - beta h);   robust: the sigmoid loss de-biased for labels flipped with prob eps,
    ((1 - eps) l(h) - eps l(-h)) / (1 - 2 eps). The implicit rewards are beta * log(pi/ref), detached.
    """
    if loss_type not in DPO_LOSS_TYPES:
        raise LlmzooError(f"unknown DPO loss_type {loss_type!r}; choose one of {', '.join(DPO_LOSS_TYPES)}")
    if beta <= 0:
        raise LlmzooError(f"beta must be > 0, got {beta}")
    if not 0.0 <= label_smoothing < 0.5:
        raise LlmzooError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
    chosen_ratio = policy_chosen_logps - ref_chosen_logps
    rejected_ratio = policy_rejected_logps - ref_rejected_logps
    h = chosen_ratio - rejected_ratio
    eps = label_smoothing
    if loss_type == "sigmoid":
        losses = -(1 - eps) * F.logsigmoid(beta * h) - eps * F.logsigmoid(-beta * h)
    elif loss_type == "ipo":
        losses = (h - 1 / (2 * beta)) ** 2
    elif loss_type == "hinge":
        losses = torch.relu(1 - beta * h)
    else:
        losses = (-(1 - eps) * F.logsigmoid(beta * h) + eps * F.logsigmoid(-beta * h)) / (1 - 2 * eps)
    return losses.mean(), beta * chosen_ratio.detach(), beta * rejected_ratio.detach()


def gae(rewards: torch.Tensor, values: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
        ) -> tuple[torch.Tensor, torch.Tensor]:
    """rewards, values (B, T) -> (advantages, returns) (B, T); each episode ends after position T-1
    (the value after it is 0). A_t = sum_k (gamma lam)^k delta_{t+k}, delta_t = r_t + gamma V_{t+1} - V_t;
    returns = A + V (the value head's regression target)."""
    if rewards.shape != values.shape:
        raise LlmzooError(f"rewards {tuple(rewards.shape)} and values {tuple(values.shape)} must have one shape")
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[..., 0])
    next_value = torch.zeros_like(values[..., 0])
    for t in reversed(range(rewards.shape[-1])):
        delta = rewards[..., t] + gamma * next_value - values[..., t]
        running = delta + gamma * lam * running
        advantages[..., t] = running
        next_value = values[..., t]
    return advantages, advantages + values
