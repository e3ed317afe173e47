"""Helpers for the GPT-2-era decoder parity tests: save a reference checkpoint (optionally with
edited config.json fields, for unsupported variants) and a KV-cache check that, beyond
base.check_cached_decoding, also feeds a multi-token chunk after a prefix: a query block with a
past is where sliding-window and ALiBi masks go wrong."""

from __future__ import annotations

import json
from pathlib import Path

import torch

import llmzoo
from llmzoo.infer.cache import Cache
from tests.parity.base import reference_model


def save_reference(cls_name: str, hf_config, directory: Path, **config_edits) -> Path:
    """save_pretrained a tiny randomised reference model, then overwrite config.json fields
    (to produce checkpoint variants transformers itself may not build)."""
    reference_model(cls_name, hf_config).save_pretrained(directory)
    if config_edits:
        path = directory / "config.json"
        data = json.loads(path.read_text())
        data.update(config_edits)
        path.write_text(json.dumps(data))
    return directory


def load_reference(cls_name: str, hf_config, tmp_path: Path) -> torch.nn.Module:
    return llmzoo.load(save_reference(cls_name, hf_config, tmp_path / "hf"))


def check_chunked_cached_decoding(model: torch.nn.Module, *, seq_len: int = 14, prefix: int = 5, chunk: int = 3,
                          batch: int = 2, seed: int = 0) -> None:
    """Feed `prefix` tokens, then a `chunk` of several tokens (a query block with a past), then one
    token at a time; every step's logits must equal the full forward's at those positions."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, model.config.vocab_size, (batch, seq_len), generator=gen)
    with torch.no_grad():
        full = model(ids).logits
        cache = Cache.for_model(model, batch, seq_len)
        steps = [(0, prefix), (prefix, prefix + chunk)] + [(t, t + 1) for t in range(prefix + chunk, seq_len)]
        for start, end in steps:
            got = model(ids[:, start:end], cache=cache).logits
            cache.advance(end - start)
            torch.testing.assert_close(got, full[:, start:end], msg=lambda m: f"tokens {start}:{end}: {m}")
    assert cache.seq_length == seq_len


def check_static_cache_decoding(model: torch.nn.Module, *, prefix: int, total: int, batch: int = 2,
                                capacity: int = 16, seed: int = 2) -> None:
    """Prefill `prefix` tokens into a StaticCache (the compiled path's fixed-shape cache), then decode one
    token at a time up to `total`: the logits must equal the full forward's."""
    from llmzoo.infer.cache import StaticCache

    ids = torch.randint(0, model.config.vocab_size, (batch, total), generator=torch.Generator().manual_seed(seed))
    cache = StaticCache.for_model(model, batch, capacity)
    with torch.no_grad():
        full = model(ids).logits
        got = [model(ids[:, :prefix], cache=cache).logits]
        cache.advance(prefix)
        for t in range(prefix, total):
            got.append(model(ids[:, t:t + 1], cache=cache).logits)
            cache.advance(1)
    torch.testing.assert_close(torch.cat(got, dim=1), full, atol=1e-5, rtol=1e-4)


def check_generate_ids_matches_uncached_greedy(model: torch.nn.Module, prompt: tuple[int, ...] = (3, 14, 15, 9, 2),
                                               new_tokens: int = 6) -> None:
    """llmzoo.generate_ids (cached decoding) picks the tokens a full forward's argmax picks at every step."""
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(new_tokens):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    assert llmzoo.generate_ids(model, [list(prompt)], max_new_tokens=new_tokens)[0].token_ids == ids[len(prompt):]
