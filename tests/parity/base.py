"""Shared parity check: a family equals its `transformers` reference through the production path.

1. build the reference model from a tiny config, randomise *every* parameter (norm weights and
   biases too, so a mis-mapped bias cannot hide behind zeros), save_pretrained;
2. llmzoo.load(directory) exactly as a user would, fp32 logits equal (assert_close defaults);
3. llmzoo.save(model, directory2), transformers reloads it, logits equal again.
"""

from __future__ import annotations

from pathlib import Path

import torch
import transformers

import llmzoo


def randomise(model: torch.nn.Module, seed: int = 0, std: float = 0.1) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * std)


def reference_model(cls_name: str, hf_config, seed: int = 0) -> torch.nn.Module:
    hf_config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = getattr(transformers, cls_name)(hf_config).eval()
    randomise(model, seed)
    return model


def reference_logits(model, input_ids: torch.Tensor, **kwargs) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids, **kwargs).logits


def check_parity(
    cls_name: str,
    hf_config,
    tmp_path: Path,
    *,
    seq_len: int = 12,
    batch: int = 2,
    seed: int = 0,
    reference_kwargs: dict | None = None,
) -> torch.nn.Module:
    """Returns the llmzoo model (for extra family-specific checks)."""
    ref = reference_model(cls_name, hf_config, seed)
    hf_dir, zoo_dir = tmp_path / "hf", tmp_path / "zoo"
    ref.save_pretrained(hf_dir)
    gen = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(0, hf_config.vocab_size, (batch, seq_len), generator=gen)
    expected = reference_logits(ref, ids, **(reference_kwargs or {}))

    model = llmzoo.load(hf_dir)
    with torch.no_grad():
        got = model(ids).logits
    torch.testing.assert_close(got, expected)

    llmzoo.save(model, zoo_dir, format="hf")
    back = getattr(transformers, cls_name).from_pretrained(zoo_dir, attn_implementation="eager").eval()
    torch.testing.assert_close(reference_logits(back, ids, **(reference_kwargs or {})), expected)
    return model


def check_cached_decoding(model: torch.nn.Module, *, prefix: int = 5, total: int = 12, batch: int = 2,
                          seed: int = 0) -> None:
    """KV-cached decoding (a prefix, then one token at a time) gives the logits of one full forward."""
    from llmzoo.infer.cache import Cache

    gen = torch.Generator().manual_seed(seed + 2)
    ids = torch.randint(0, model.config.vocab_size, (batch, total), generator=gen)
    with torch.no_grad():
        full = model(ids).logits
        cache = Cache.for_model(model, batch, total)
        steps = []
        for start, end in [(0, prefix)] + [(t, t + 1) for t in range(prefix, total)]:
            steps.append(model(ids[:, start:end], cache=cache).logits)
            cache.advance(end - start)
    assert cache.seq_length == total
    torch.testing.assert_close(torch.cat(steps, dim=1), full)
