"""Attention sinks with a rolling cache (StreamingLLM): after evictions the cache reads exactly as a
fresh forward over the kept tokens (the sinks + the recent window) at positions 0..n-1, and
generation runs far past the model's context in bounded memory.

Exact for one layer: a deeper layer's cached keys were computed from states that still saw the
evicted tokens (as in the paper; only the first layer's keys depend on the tokens alone)."""

import pytest
import torch

from llmzoo.errors import LlmzooError
from llmzoo.infer.generate import generate_ids
from llmzoo.infer.sink_cache import SinkCache
from tests.infer.test_generate import BASE, VARIANTS, _model

ROLLING = {
    "gqa_rope": VARIANTS["gqa_rope"],
    "mqa_partial_rope": VARIANTS["mqa_partial_rope"],
    "interleaved_rope": BASE.replace(rope_interleaved=True),
    "alibi_layernorm": VARIANTS["alibi_layernorm"],
}


@pytest.mark.parametrize("name", list(ROLLING))
def test_a_rolled_cache_equals_a_forward_over_the_kept_tokens(name):
    model = _model(ROLLING[name].replace(n_layers=1))
    ids = torch.randint(0, 97, (1, 40), generator=torch.Generator().manual_seed(3))
    cache = SinkCache.for_model(model, 1, window=16, sink_tokens=4)
    kept: list[int] = []
    with torch.no_grad():
        for t in range(40):
            got = model(ids[:, t:t + 1], cache=cache).logits[0, -1]
            kept.append(t)
            cache.advance(1)
            want = model(ids[:, kept]).logits[0, -1]  # fresh: positions 0..len(kept)-1
            torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4, msg=lambda m: f"token {t}: {m}")
            if len(kept) > cache.seq_length:  # evicted: keep the sinks and the newest
                kept = kept[:4] + kept[len(kept) - (cache.seq_length - 4):]
    assert cache.evicted == 40 - 15 and cache.seq_length == 15


def test_generation_runs_far_past_the_context_in_bounded_memory():
    model = _model(BASE.replace(max_seq_len=32))
    out = generate_ids(model, [[1, 2, 3, 4, 5]], max_new_tokens=4 * 32 + 20, attention_sinks=4, window=24)
    assert len(out[0].token_ids) == 148 and out[0].finish_reason == "length"  # no context limit
    with pytest.warns(UserWarning, match="context length"):  # without sinks the context stops it
        plain = generate_ids(model, [[1, 2, 3, 4, 5]], max_new_tokens=148)
    assert len(plain[0].token_ids) == 32 - 5
    cache = SinkCache.for_model(model, 1, window=24)
    with torch.no_grad():
        for t in range(100):
            model(torch.tensor([[t % 97]]), cache=cache)
            cache.advance(1)
    assert cache.nbytes() == 2 * 2 * 24 * 2 * 16 * 4  # layers x (k, v) x slots x kv heads x head_dim x fp32


def test_a_long_prompt_goes_in_chunks_and_bad_settings_are_refused():
    model = _model(BASE.replace(max_seq_len=32))
    prompt = list(range(1, 90))  # longer than the window and than the context
    out = generate_ids(model, [prompt], max_new_tokens=5, attention_sinks=4, window=24)
    assert len(out[0].token_ids) == 5
    with pytest.raises(LlmzooError, match="one length"):
        generate_ids(model, [[1, 2, 3], [4, 5]], max_new_tokens=3, attention_sinks=4)
    with pytest.raises(LlmzooError, match="window"):
        SinkCache.for_model(model, 1, window=4, sink_tokens=4)
    with pytest.raises(LlmzooError, match="learned positions"):
        SinkCache.for_model(_model(VARIANTS["learned_parallel"]), 1, window=16)


def test_the_cli_generates_past_the_context_with_attention_sinks(tmp_path, capfd):
    import llmzoo
    from llmzoo.cli import main
    from llmzoo.tokenizer.train import train_tokenizer

    corpus = tmp_path / "c.txt"
    corpus.write_text("the garden river runs by the old stone wall and the quiet town\n" * 40)
    tokenizer = train_tokenizer([corpus], kind="wordpiece", vocab_size=97, progress=False)
    llmzoo.save(_model(BASE.replace(max_seq_len=32)), tmp_path / "model", tokenizer=tokenizer)
    argv = ["generate", str(tmp_path / "model"), "--prompt", "the garden", "--no-stream", "--max-new-tokens", "140"]
    assert main(argv + ["--attention-sinks", "4", "--window", "24"]) == 0
    streamed = capfd.readouterr()
    assert "context length" not in streamed.err and len(streamed.out.split()) > 32
    assert main(argv) == 0
    assert "context length of 32 tokens" in capfd.readouterr().err  # without sinks the context stops it
    assert main(argv + ["--window", "24"]) == 2
    assert "--attention-sinks" in capfd.readouterr().err
    assert main(argv + ["--attention-sinks", "30", "--window", "24"]) == 2
    assert "window" in capfd.readouterr().err
