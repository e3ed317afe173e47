"""PanGu-Sigma's Random Routed Experts (Ren et al. 2023, "PanGu-Sigma: Towards Trillion Parameter Language
Model with Sparse Heterogeneous Computing"): a mixture of experts without a learned router.

Routing has two levels. Level 1: the experts of a layer are split into one group per domain (Chinese,
English, bilingual, code, ...), and a token may only use its own domain's group. Level 2: inside that group a
fixed random map from token id to expert picks exactly one expert (top-1, weight 1). Nothing is learned about
the routing, so there is no load-balancing loss, and a domain's tokens never touch another domain's experts:
a domain's sub-model (the shared layers plus that domain's experts) computes exactly what the full model
computes for it, which is how the paper extracts deployable domain models (`extract_domain`).

The domain is an input, not a prediction: `DecoderLM.forward(input_ids, domain_ids=...)` with domain_ids of
shape (B,) (one domain per sequence, as the paper's training samples) or (B, T) (per token). A model of one
domain (rre_domains=1, e.g. an extracted sub-model) needs none, so it generates and evaluates like any other.

The level-2 map of each layer is a pure function of (rre_seed, layer, global domain, token id): a seeded
random permutation of the vocabulary dealt round-robin over the group's experts, so every expert of a group
owns vocab_size / group tokens (a balanced random hash in the sense of Roller et al. 2021's Hash Layers).
It is a non-persistent buffer rebuilt from the config (init_buffers), so checkpoints need not carry it and a
sub-model with rre_first_domain=d rebuilds domain d's rows itself.
"""

from __future__ import annotations

import torch
from torch import nn

from llmzoo.config import ModelConfig
from llmzoo.errors import LlmzooError
from llmzoo.nn.mlp import MLP


def routing_table(config: ModelConfig, layer_idx: int, device: torch.device | None = None) -> torch.Tensor:
    """(rre_domains, vocab_size) long: the expert (index inside its domain's group) each token id goes to,
    one row per domain of this model (global domains rre_first_domain ...)."""
    per_domain = config.n_experts // config.rre_domains
    rows = []
    for d in range(config.rre_first_domain, config.rre_first_domain + config.rre_domains):
        # One generator per (seed, layer, domain): a domain's row does not depend on how many domains the model
        # holds, so an extracted sub-model rebuilds the same map.
        g = torch.Generator().manual_seed((config.rre_seed * 1_000_003 + layer_idx) * 1_000_003 + d)
        rows.append(torch.randperm(config.vocab_size, generator=g) % per_domain)
    return torch.stack(rows).to(device)


class RandomRoutedExperts(nn.Module):
    def __init__(self, config: ModelConfig, layer_idx: int) -> None:
        super().__init__()
        self.config, self.layer_idx = config, layer_idx
        self.domains, self.per_domain = config.rre_domains, config.n_experts // config.rre_domains
        experts = config if config.expert_mlp_gated == config.mlp_gated else config.replace(mlp_gated=config.expert_mlp_gated)
        self.experts = nn.ModuleList(MLP(experts) for _ in range(config.n_experts))
        self.init_buffers()

    def init_buffers(self) -> None:
        device = torch.empty(0).device  # the build's device: meta for parameter counting
        if device.type == "meta":
            table = torch.empty(self.domains, self.config.vocab_size, dtype=torch.long)
        else:
            table = routing_table(self.config, self.layer_idx, device)
        self.register_buffer("table", table, persistent=False)

    def expert_ids(self, token_ids: torch.Tensor, domain_ids: torch.Tensor | None) -> torch.Tensor:
        """token_ids (B, T), domain_ids (B,) / (B, T) / None -> (B, T) index of each token's expert in
        self.experts (its domain's group, then the map's pick inside it)."""
        if domain_ids is None:
            if self.domains > 1:
                raise LlmzooError(f"this model's Random Routed Experts serve {self.domains} domains: pass "
                                  f"domain_ids (B,) or (B, T) with values in [0, {self.domains})")
            domain_ids = torch.zeros_like(token_ids)
        domain_ids = torch.as_tensor(domain_ids, device=token_ids.device)
        if domain_ids.dim() == 1:
            domain_ids = domain_ids[:, None]
        if domain_ids.dim() != 2 or domain_ids.shape[0] != token_ids.shape[0] or domain_ids.shape[1] not in (1, token_ids.shape[1]):
            raise LlmzooError(f"domain_ids of shape {tuple(domain_ids.shape)} fit neither (B,) nor (B, T) for "
                              f"input_ids {tuple(token_ids.shape)}")
        domain_ids = domain_ids.expand_as(token_ids)
        if bool(((domain_ids < 0) | (domain_ids >= self.domains)).any()):
            raise LlmzooError(f"domain_ids must be in [0, {self.domains}) (this model's domains), got "
                              f"{sorted(set(domain_ids.unique().tolist()))}")
        return domain_ids * self.per_domain + self.table[domain_ids, token_ids]

    def forward(self, x: torch.Tensor, token_ids: torch.Tensor | None = None,
                domain_ids: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, D) -> (B, T, D): each token through its one expert (weight 1, no router)."""
        if token_ids is None:
            raise LlmzooError("Random Routed Experts route by token id: call the model with input_ids "
                              "(inputs_embeds and static-cache decoding carry none)")
        if token_ids.shape != x.shape[:2]:
            raise LlmzooError(f"token_ids {tuple(token_ids.shape)} do not match the hidden states {tuple(x.shape[:2])}")
        chosen = self.expert_ids(token_ids, domain_ids).reshape(-1)
        flat = x.reshape(-1, x.shape[-1])
        out = torch.zeros_like(flat)
        for e in chosen.unique().tolist():  # only the experts some token uses run
            idx = torch.where(chosen == e)[0]
            out.index_copy_(0, idx, self.experts[e](flat[idx]).to(out.dtype))  # bf16 autocast: experts give bf16
        return out.view_as(x)


def extract_domain(model: nn.Module, domain: int) -> nn.Module:
    """The sub-model of one domain (Ren et al. 2023): every shared parameter plus, in each RRE
    layer, only that domain's group of experts; rre_domains=1, so it takes no domain_ids. Its outputs for the
    domain's tokens equal the full model's."""
    from llmzoo.models.build import build_model

    c = model.config
    if not 0 <= domain < c.rre_domains:
        raise LlmzooError(f"domain {domain} is not one of this model's {c.rre_domains} domains")
    if any(c.ffn_kind(i) == "moe" for i in range(c.n_layers)):
        raise LlmzooError("extract_domain cuts Random Routed Experts layers; this model also has learned-router "
                          "MoE layers, whose experts belong to no domain")
    k = c.n_experts // c.rre_domains
    sub_config = c.replace(name=f"{c.name}-domain{c.rre_first_domain + domain}", n_experts=k, rre_domains=1,
                           rre_first_domain=c.rre_first_domain + domain)
    state = {}
    for key, value in model.state_dict().items():
        parts = key.split(".")
        if "experts" in parts and _is_rre(model, parts):
            at = parts.index("experts") + 1
            e = int(parts[at])
            if not domain * k <= e < (domain + 1) * k:
                continue
            parts[at] = str(e - domain * k)
        state[".".join(parts)] = value
    device = next(model.parameters()).device
    sub = build_model(sub_config, device=device)
    sub.load_state_dict(state)
    return sub.to(next(model.parameters()).dtype)


def _is_rre(model: nn.Module, parts: list[str]) -> bool:
    owner = model.get_submodule(".".join(parts[: parts.index("experts")]))
    return isinstance(owner, RandomRoutedExperts)
