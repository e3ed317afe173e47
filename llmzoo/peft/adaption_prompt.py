"""LLaMA-Adapter (Zhang et al. 2023, "LLaMA-Adapter: Efficient Fine-tuning of Language Models with
Zero-init Attention"); peft's ADAPTION_PROMPT.

The top `adapter_layers` layers each learn `adapter_len` prompt vectors. The layer's own k_proj and
v_proj turn them into keys and values (not rotated); the layer's rotated queries attend to them in
a softmax of their own, scaled by a learned gate that starts at zero ("zero-init attention"), so
the model is unchanged at init; the result goes through o_proj and is added to the attention
output. peft has this method for LLaMA-style decoders only (and GPT-2); so does llmzoo: decoders
with separate q/k/v projections.

    llmzoo.peft.apply(model, "adaption_prompt", adapter_len=10, adapter_layers=30)
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from llmzoo.errors import LlmzooError
from llmzoo.peft.names import ModuleNames
from llmzoo.peft.methods import Method, register
from llmzoo.peft.module_io import PREFIX

OPTIONS = ("adapter_len", "adapter_layers")
SUFFIXES = ("adaption_prompt", "adaption_gate")


class AdaptionPrompt(nn.Module):
    """One layer's prompt (1, n, D) and gate; called by Attention with itself and its queries."""

    def __init__(self, n: int, dim: int) -> None:
        super().__init__()
        self.adaption_prompt = nn.Parameter(torch.randn(1, n, dim))
        self.adaption_gate = nn.Parameter(torch.zeros(1))  # zero-init: outputs unchanged at the start
        self.disabled = False

    def forward(self, attn: nn.Module, q: torch.Tensor) -> torch.Tensor:
        """q (B, H, T, hd), already rotated -> (B, T, D) to add to the attention's output."""
        if self.disabled:
            return q.new_zeros(())
        B, H, T, hd = q.shape
        n = self.adaption_prompt.shape[1]
        prompt = self.adaption_prompt.to(q.dtype)
        k = attn.k_proj(prompt).view(1, n, attn.n_kv_heads, hd).transpose(1, 2)  # (1, KV, n, hd)
        v = attn.v_proj(prompt).view(1, n, attn.n_kv_heads, hd).transpose(1, 2)
        k, v = (t.repeat_interleave(H // attn.n_kv_heads, dim=1) for t in (k, v))  # (1, H, n, hd)
        scores = (q @ k.transpose(-1, -2)) * hd**-0.5  # (B, H, T, n)
        probs = self.adaption_gate.to(q.dtype) * F.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
        out = (probs @ v).transpose(1, 2).reshape(B, T, H * hd)
        return attn.o_proj(out)


def _attentions(model: nn.Module) -> list[tuple[str, nn.Module]]:
    if model.config.arch != "decoder":
        raise LlmzooError(f"LLaMA-Adapter (adaption_prompt) needs a decoder model, not {model.config.arch} "
                          f"(peft has it for LLaMA-style decoders only)")
    return [(f"layers.{i}.self_attn", model.layer(i).self_attn) for i in range(model.config.n_layers)]


def apply_adaption_prompt(model: nn.Module, **options: Any) -> None:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise LlmzooError(f"unknown adaption prompt option(s) {', '.join(unknown)}; valid: {', '.join(OPTIONS)}")
    n, layers = options.get("adapter_len", 10), options.get("adapter_layers", 1)
    total = model.config.n_layers
    for name, value in (("adapter_len", n), ("adapter_layers", layers)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise LlmzooError(f"{name} must be a positive integer, got {value!r}")
    if layers > total:
        raise LlmzooError(f"adapter_layers={layers} but this model has {total} layers")
    device = model.embeddings.tokens.weight.device
    for _, attn in _attentions(model)[total - layers:]:  # the top layers, as the paper and peft
        attn.prompt_attention = AdaptionPrompt(n, model.config.d_model).to(device)


def adapted(model: nn.Module) -> dict[str, AdaptionPrompt]:
    return {name: attn.prompt_attention for name, attn in _attentions(model)
            if isinstance(attn.prompt_attention, AdaptionPrompt)}


def save_adaption_prompt(model: nn.Module, names: ModuleNames) -> tuple[dict, dict]:
    modules = adapted(model)
    tensors = {}
    for name, module in modules.items():
        hf = names.to_hf(name + ".q_proj").rsplit(".", 1)[0]
        tensors[f"{PREFIX}{hf}.adaption_prompt"] = module.adaption_prompt
        tensors[f"{PREFIX}{hf}.adaption_gate"] = module.adaption_gate
    first = next(iter(modules.values()))
    return tensors, {"adapter_len": first.adaption_prompt.shape[1], "adapter_layers": len(modules),
                     "target_modules": "self_attn"}


def load_adaption_prompt(model: nn.Module, cfg: dict, state: dict, names: ModuleNames, where: str) -> None:
    n, layers = cfg.get("adapter_len"), cfg.get("adapter_layers")
    apply_adaption_prompt(model, adapter_len=n, adapter_layers=layers)
    modules = adapted(model)
    by_hf = {names.to_hf(name + ".q_proj").rsplit(".", 1)[0]: m for name, m in modules.items()}
    want = {f"{PREFIX}{hf}.{s}" for hf in by_hf for s in SUFFIXES}
    if set(state) != want:
        odd = sorted(set(state) ^ want)[0]
        raise LlmzooError(f"{where}: tensor {odd!r} does not fit adapter_layers={layers} on this "
                          f"{model.config.n_layers}-layer base (the top layers carry the prompts)")
    with torch.no_grad():
        for hf, module in by_hf.items():
            for suffix in SUFFIXES:
                tensor, own = state[f"{PREFIX}{hf}.{suffix}"], getattr(module, suffix)
                if tensor.shape != own.shape:
                    raise LlmzooError(f"{where}: {hf}.{suffix} has shape {tuple(tensor.shape)} but this base needs "
                                      f"{tuple(own.shape)}; the adapter was made for another model")
                own.copy_(tensor)


def describe_adaption_prompt(cfg: dict, shapes: dict) -> dict:
    return {"adapter_len": cfg.get("adapter_len"), "adapter_layers": cfg.get("adapter_layers"),
            "trainable_parameters": sum(int(torch.Size(s).numel()) for s in shapes.values())}


register(Method(
    name="adaption_prompt", peft_type="ADAPTION_PROMPT", module_types=(AdaptionPrompt,),
    apply=apply_adaption_prompt, save=save_adaption_prompt, load=load_adaption_prompt,
    describe=describe_adaption_prompt, title="LLaMA-Adapter (adaption prompt)",
))
