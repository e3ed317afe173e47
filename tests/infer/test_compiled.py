"""The static cache and the compiled decode step: same tokens as eager decoding, one graph."""

import pytest
import torch

from llmzoo.infer.cache import Cache, StaticCache
from llmzoo.infer.compiled import _step, can_compile
from llmzoo.infer.generate import generate_ids

from tests.infer.test_generate import VARIANTS, _model

STATIC = [name for name, config in VARIANTS.items() if StaticCache.supports(config)]


@pytest.mark.parametrize("name", STATIC)
def test_static_cache_decoding_equals_full_forward(name):
    """Left-padded rows on a StaticCache (all max_len slots attended, masked by slot order and
    padding) give each row the logits of its own unpadded full forward."""
    model = _model(VARIANTS[name])
    prompts = [[5, 6, 7, 8, 9, 10], [11, 12, 13]]
    new = [[20, 21, 22], [30, 31, 32]]
    cache = StaticCache.for_model(model, 2, 24)
    ids = torch.tensor([[5, 6, 7, 8, 9, 10], [0, 0, 0, 11, 12, 13]])
    mask = torch.tensor([[1] * 6, [0, 0, 0, 1, 1, 1]])
    with torch.no_grad():
        got = [model(ids, attention_mask=mask, cache=cache, logits_to_keep=1).logits[:, -1]]
        cache.advance(6, mask)
        for t in range(3):
            got.append(model(torch.tensor([[new[0][t]], [new[1][t]]]), cache=cache).logits[:, -1])
            cache.advance(1)
        for row in range(2):
            full = model(torch.tensor([prompts[row] + new[row]])).logits[0]
            want = full[len(prompts[row]) - 1:]
            torch.testing.assert_close(torch.stack([g[row] for g in got]), want, atol=1e-5, rtol=1e-4)


def test_the_decode_step_is_one_graph():
    model = _model(VARIANTS["local_global"])
    cache = StaticCache.for_model(model, 2, 16)
    with torch.no_grad():
        model(torch.tensor([[1, 2, 3], [4, 5, 6]]), cache=cache)
        cache.advance(3)
        explained = torch._dynamo.explain(_step)(model, torch.tensor([[1], [2]]), cache)
    assert explained.graph_break_count == 0, explained.break_reasons


def test_compiled_greedy_equals_eager_on_a_padded_batch(capfd):
    model = _model(VARIANTS["gqa_rope"])
    prompts = [[1, 2, 3, 4, 5, 6, 7], [8, 9, 10], [11, 12, 13, 14]]  # three rows: padded to a bucket of four
    eager = generate_ids(model, prompts, max_new_tokens=12, compile=False)
    compiled = generate_ids(model, prompts, max_new_tokens=12, compile=True)
    assert [r.token_ids for r in compiled] == [r.token_ids for r in eager]
    assert "compiled the decode step (batch 4, cache 256)" in capfd.readouterr().err
    again = generate_ids(model, prompts[:1], max_new_tokens=12, compile=True)  # batch 1: its own bucket
    assert again[0].token_ids == eager[0].token_ids


def test_models_a_static_graph_cannot_hold_stay_eager():
    assert not can_compile(_model(VARIANTS["moe"]))  # data-dependent expert routing
    assert not can_compile(_model(VARIANTS["alibi_layernorm"]))  # mask bias by position: dynamic cache only
    assert can_compile(_model(VARIANTS["sliding_window"]))
    cache = Cache.for_model(_model(VARIANTS["gqa_rope"]), 1, 8)
    assert not cache.static and cache.write_position == 0


def test_the_cli_decodes_compiled_or_eager_to_the_same_text(tmp_path, capfd):
    """`llmzoo generate --compile` (the default from 512 new tokens) and `--no-compile` print the same
    completion; the compiled run says what compiling cost."""
    import llmzoo
    from llmzoo.cli import main
    from llmzoo.tokenizer.train import train_tokenizer

    corpus = tmp_path / "c.txt"
    corpus.write_text("the garden river runs by the old stone wall and the quiet town\n" * 40)
    tokenizer = train_tokenizer([corpus], kind="wordpiece", vocab_size=97, progress=False)
    llmzoo.save(_model(VARIANTS["gqa_rope"]), tmp_path / "model", tokenizer=tokenizer)
    outputs = {}
    for flag in ("--compile", "--no-compile"):
        capfd.readouterr()
        assert main(["generate", str(tmp_path / "model"), "--prompt", "the garden", "--max-new-tokens", "10",
                     "--no-stream", flag]) == 0
        outputs[flag] = capfd.readouterr()
    assert outputs["--compile"].out == outputs["--no-compile"].out and outputs["--compile"].out.strip()
    assert "compiled the decode step" in outputs["--compile"].err
    assert "compiled" not in outputs["--no-compile"].err
