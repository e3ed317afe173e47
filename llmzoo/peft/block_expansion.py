"""LLaMA-Pro block expansion (Wu et al. 2024, "LLaMA Pro: Progressive LLaMA with Block Expansion").

    llmzoo.peft.expand_blocks(model, every=2)   # a copy after every 2nd block, the base frozen
    ...train llmzoo.peft.trainable_parameters(model)  (the new blocks only)...
    llmzoo.save(model, "expanded/")             # n_layers counts the new blocks; loads as a plain model

Each new block is a copy of the block before it whose attention output projection (o_proj) and
feed-forward down projection (down_proj, every expert's in a MoE) are zero. In a pre-norm residual
block x + attn(norm(x)) + mlp(norm(...)) both branches then add zero, so the block is the identity
and the expanded model computes exactly what the base did; training only the new blocks adds
capacity for a new domain while the old blocks (and the knowledge in them) stay as they were.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from llmzoo.errors import LlmzooError
from llmzoo.nn.block import Block


class ExpandedBlock(Block):
    """A block added by expansion: a Block with the same parameter names (checkpoints are plain),
    told apart so `llmzoo.peft.disabled(model)` can skip it (the base's outputs) and
    `llmzoo.peft.merge(model)` can turn it into a plain Block."""

    disabled = False

    def forward(self, x: torch.Tensor, **kwargs):
        if self.disabled:  # the identity the block was at initialisation: the base model's computation
            return x, None
        return super().forward(x, **kwargs)


def expand_blocks(model: nn.Module, every: int = 1, *, after: list[int] | None = None,
                  freeze_base: bool = True) -> nn.Module:
    """Insert an identity-initialised copy after every `every`-th block (or after the blocks whose
    0-based indices are in `after`), in place, and return the model. With freeze_base only the new
    blocks have requires_grad; `expanded_layers(model)` lists their indices in the new stack.
    As the PEFT method "llama_pro" (`llmzoo.peft.apply(model, "llama_pro", every=2)`, or
    `peft.method=llama_pro peft.every=2` in a fine-tune recipe) its blocks save as an adapter."""
    layers, config = _checked_stack(model)
    if expanded_layers(model):
        raise LlmzooError("this model already has expanded blocks; llmzoo.peft.merge(model) them first")
    sources = _insertion_points(config.n_layers, every, after)
    new_layers: list[nn.Module] = []
    kinds: list[str] = []
    added: list[int] = []
    for i, block in enumerate(layers):
        new_layers.append(block)
        kinds.append(config.layer_kind(i))
        if i in sources:
            added.append(len(new_layers))
            new_layers.append(_identity_copy(block))
            kinds.append(config.layer_kind(i))  # the copy attends as its source did (local or global)
    for idx, block in enumerate(new_layers):
        _renumber(block, idx)  # KV caches are indexed by layer
    changes = {"n_layers": len(new_layers)}
    if config.layer_pattern is not None:
        changes["layer_pattern"] = tuple(kinds)  # spelled out: the old cycle no longer fits
    model.layers = nn.ModuleList(new_layers)
    model.config = config.replace(**changes)
    if freeze_base:
        for p in model.parameters():
            p.requires_grad_(False)
        for idx in added:
            for p in model.layers[idx].parameters():
                p.requires_grad_(True)
    return model


def expanded_layers(model: nn.Module) -> list[int]:
    """Indices (in the expanded stack) of the blocks expansion added and merge has not folded."""
    return [i for i, block in enumerate(getattr(model, "layers", [])) if isinstance(block, ExpandedBlock)]


def fold_expansion(model: nn.Module) -> None:
    """The expanded blocks become plain Blocks: a model like any other, with n_layers blocks."""
    for block in model.layers:
        if isinstance(block, ExpandedBlock):
            block.__class__ = Block


def _checked_stack(model: nn.Module):
    config = getattr(model, "config", None)
    layers = getattr(model, "layers", None)
    if config is None or not isinstance(layers, nn.ModuleList):
        raise LlmzooError(f"block expansion needs a llmzoo decoder or encoder with .layers; got {type(model).__name__}")
    if config.arch == "encoder_decoder":
        raise LlmzooError("block expansion of an encoder-decoder is not supported; expand a decoder-only model")
    if config.share_layers:
        raise LlmzooError("block expansion of a model whose layers share weights (ALBERT) would change every layer; "
                          "it needs separate blocks")
    if config.norm_placement != "pre":
        # post-norm: norm(x + 0) != x, so a zeroed block would not be the identity (the paper's argument
        # holds for pre-norm stacks only)
        raise LlmzooError(f"block expansion keeps outputs unchanged only in pre-norm stacks; this model is "
                          f"{config.norm_placement}-norm (norm_placement={config.norm_placement!r})")
    return layers, config


def _insertion_points(n_layers: int, every: int, after: list[int] | None) -> set[int]:
    if after is not None:
        bad = [i for i in after if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n_layers]
        if bad or not after:
            raise LlmzooError(f"after= must list block indices in 0..{n_layers - 1}, got {after!r}")
        return set(after)
    if isinstance(every, bool) or not isinstance(every, int) or not 1 <= every <= n_layers:
        raise LlmzooError(f"every= must be an integer in 1..{n_layers} (the model has {n_layers} blocks), got {every!r}")
    # LLaMA-Pro: blocks split into groups of `every`, a copy appended to each group
    return {i for i in range(n_layers) if (i + 1) % every == 0}


def _identity_copy(block: nn.Module) -> nn.Module:
    if type(block) is not Block:
        raise LlmzooError(f"block expansion copies llmzoo Blocks; this model's layers are {type(block).__name__}")
    new = copy.deepcopy(block)
    new.__class__ = ExpandedBlock  # same attributes and parameters, plus the disabled switch
    zeroed = 0
    for name, module in new.named_modules():
        if name.rsplit(".", 1)[-1] in ("o_proj", "down_proj") and isinstance(module, nn.Linear):
            with torch.no_grad():
                module.weight.zero_()
                if module.bias is not None:
                    module.bias.zero_()
            zeroed += 1
    if zeroed < 2:
        raise LlmzooError(f"block {type(block).__name__} has no o_proj and down_proj to zero; cannot expand it")
    return new


def _renumber(block: nn.Module, idx: int) -> None:
    for module in block.modules():
        if hasattr(module, "layer_idx"):
            module.layer_idx = idx


from llmzoo.peft import llama_pro_method  # noqa: E402,F401  (registers the "llama_pro" PEFT method)
