"""Sparse mixture-of-experts feed-forward (Shazeer 2017; Switch, GLaM, Mixtral).

A linear router scores experts per token; each token goes to its top-k experts and their outputs
are mixed by the router probabilities (renormalised over the k chosen for Mixtral). The router kind
(ModelConfig.moe_kind) decides the details:

topk    softmax top-k gating in the model's dtype (GLaM's top-2, Mixtral); load balance over all tokens.
switch  Switch Transformer (Fedus et al. 2021): top-1, the expert's output scaled by its probability,
        the router in fp32 ("selective precision", sec. 2.4), optional multiplicative jitter on its
        input while training, load balance per sequence.

Either kind may cap each expert's tokens per sequence (the expert capacity, Switch eq. 3); a token
over capacity skips the feed-forward and is carried by the residual connection alone. Losses over
all MoE layers' router logits: the load-balancing loss (Switch eq. 4) and the router z-loss
(ST-MoE, Zoph et al. 2022, eq. 5).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from llmzoo.config import ModelConfig
from llmzoo.nn.mlp import MLP


class MoE(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.kind = config.moe_kind
        self.top_k = config.n_experts_per_token
        self.renormalize = config.moe_renormalize
        self.jitter = config.moe_jitter
        self.capacity_factor, self.expert_capacity = config.moe_capacity_factor, config.moe_expert_capacity
        self.n_experts = config.n_experts  # all of them, also where only some live here (llmzoo.parallel.expert)
        self.router = nn.Linear(config.d_model, config.n_experts, bias=config.moe_router_bias)
        experts = config if config.expert_mlp_gated == config.mlp_gated else config.replace(mlp_gated=config.expert_mlp_gated)
        self.experts = nn.ModuleList(MLP(experts) for _ in range(config.n_experts))

    def route(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, D) -> router logits (B, T, E)."""
        if self.kind != "switch":
            return self.router(x)
        h = x.float()
        if self.training and self.jitter > 0:
            # Switch sec. 2.4 / appendix: multiplicative noise on the router's input only (the experts see x)
            h = h * torch.empty_like(h).uniform_(1.0 - self.jitter, 1.0 + self.jitter)
        bias = self.router.bias.float() if self.router.bias is not None else None
        return F.linear(h, self.router.weight.float(), bias)

    def capacity(self, tokens: int) -> int | None:
        """Slots per expert in a sequence of `tokens` tokens (None: unlimited)."""
        if self.expert_capacity is not None:
            return self.expert_capacity
        if self.capacity_factor is not None:
            return math.ceil(self.capacity_factor * self.top_k * tokens / self.n_experts)
        return None

    def gate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, T, D) -> router logits (B, T, E) and each token's top-k weights and experts (B * T, k);
        an assignment dropped over capacity has weight 0."""
        B, T, D = x.shape
        logits = self.route(x)  # (B, T, E)
        probs = F.softmax(logits, dim=-1, dtype=torch.float32)
        weights, chosen = probs.topk(self.top_k, dim=-1)  # (B, T, k)
        if self.renormalize:
            weights = weights / weights.sum(dim=-1, keepdim=True)
        capacity = self.capacity(T)
        if capacity is not None:
            weights = weights * within_capacity(chosen, self.n_experts, capacity)  # dropped: weight 0
        return logits, weights.to(x.dtype).reshape(B * T, self.top_k), chosen.reshape(B * T, self.top_k)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, D) -> (output (B, T, D), router logits (B, T, E))."""
        B, T, D = x.shape
        logits, weights, chosen = self.gate(x)
        flat = x.reshape(-1, D)  # (N, D)
        out = torch.zeros_like(flat)
        # Loop over experts, not tokens: each expert runs once on the tokens routed to it (and kept).
        for e, expert in enumerate(self.experts):
            token_idx, slot = torch.where((chosen == e) & (weights != 0))
            if token_idx.numel() == 0:
                continue
            out.index_add_(0, token_idx, expert(flat[token_idx]) * weights[token_idx, slot, None])
        return out.view(B, T, D), logits


def within_capacity(chosen: torch.Tensor, n_experts: int, capacity: int) -> torch.Tensor:
    """chosen (B, T, k) expert ids -> (B, T, k) bool: the assignment got one of its expert's `capacity`
    slots in its sequence. Slots go in sequence order, every token's first choice before any second
    choice (GShard, Lepikhin et al. 2020); with k = 1 that is Switch's (and transformers') cumulative count."""
    B, T, k = chosen.shape
    one_hot = F.one_hot(chosen, n_experts).transpose(1, 2).reshape(B, k * T, n_experts)  # choice-major
    rank = one_hot.cumsum(dim=1) * one_hot  # 1-based position in the expert's queue, 0 where not routed
    kept = ((rank > 0) & (rank <= capacity)).any(dim=-1)  # (B, k*T)
    return kept.view(B, k, T).transpose(1, 2)


def _flat(router_logits: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([r.reshape(-1, r.shape[-1]) for r in router_logits], dim=0)  # (L*N, E)


def load_balancing_loss(router_logits: list[torch.Tensor], n_experts: int, top_k: int,
                        token_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Switch loss N * sum_e f_e * P_e over all layers' tokens: f_e the fraction of routing slots
    sent to expert e, P_e its mean router probability. Minimised (= top_k) by uniform routing.
    token_mask (B, T), 1 = real token: padding is left out (as transformers' Mixtral)."""
    probs = F.softmax(_flat(router_logits), dim=-1, dtype=torch.float32)  # (L*N, E)
    _, chosen = probs.topk(top_k, dim=-1)
    routed = F.one_hot(chosen, n_experts).float()  # (L*N, k, E)
    if token_mask is None:
        return (routed.mean(dim=0) * probs.mean(dim=0)[None]).sum() * n_experts
    keep = token_mask.reshape(-1).float().repeat(len(router_logits))  # (L*N,)
    tokens_per_expert = (routed * keep[:, None, None]).sum(dim=0) / keep.sum()  # (k, E)
    prob_per_expert = (probs * keep[:, None]).sum(dim=0) / keep.sum()  # (E,)
    return (tokens_per_expert * prob_per_expert[None]).sum() * n_experts


def switch_load_balancing_loss(router_logits: list[torch.Tensor]) -> torch.Tensor:
    """Switch eq. 4 per sequence (a Mesh TensorFlow group): E * sum_e f_e * P_e over the tokens of one
    sequence in all layers, f_e from the top-1 choice before capacity drops, averaged over sequences."""
    logits = torch.cat(router_logits, dim=1)  # (B, L*T, E)
    n_experts = logits.shape[-1]
    probs = F.softmax(logits, dim=-1, dtype=torch.float32)
    routed = F.one_hot(probs.argmax(dim=-1), n_experts).float()
    return (routed.mean(dim=1) * probs.mean(dim=1)).sum(dim=-1).mean() * n_experts


def router_z_loss(router_logits: list[torch.Tensor]) -> torch.Tensor:
    """ST-MoE eq. 5: mean over tokens (and layers) of logsumexp(router logits)^2, which keeps the
    logits small so the fp32 softmax stays stable."""
    return torch.logsumexp(_flat(router_logits).float(), dim=-1).square().mean()


def moe_losses(config: ModelConfig, router_logits: list[torch.Tensor],
               token_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """{aux_loss, z_loss} of one stack's MoE layers (router logits (B, T, E) each), by the config's router kind."""
    if config.moe_kind == "switch":
        aux = switch_load_balancing_loss(router_logits)
    else:
        aux = load_balancing_loss(router_logits, config.n_experts, config.n_experts_per_token, token_mask)
    return {"aux_loss": aux, "z_loss": router_z_loss(router_logits)}
