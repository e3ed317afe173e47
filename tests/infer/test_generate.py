"""Generation properties on random tiny models: caching, batching, sampling semantics."""

import pytest
import torch
import transformers

from llmzoo.config import ModelConfig
from llmzoo.errors import LlmzooError
from llmzoo.infer.cache import Cache
from llmzoo.infer.generate import generate_ids
from llmzoo.infer.sampling import SamplingConfig, apply_repetition_penalty, filter_logits, next_tokens
from llmzoo.models.build import build_model

BASE = ModelConfig(vocab_size=97, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=96, max_seq_len=64)
VARIANTS = {
    "gqa_rope": BASE,
    "mqa_partial_rope": BASE.replace(n_kv_heads=1, rope_fraction=0.5),
    "alibi_layernorm": BASE.replace(position="alibi", norm="layernorm", mlp_gated=False, activation="gelu"),
    "learned_parallel": BASE.replace(position="learned", parallel_residual=True, norm="layernorm"),
    "sliding_window": BASE.replace(sliding_window=4),
    "local_global": BASE.replace(sliding_window=3, layer_pattern=("global", "local")),
    "moe": BASE.replace(n_experts=4, n_experts_per_token=2),
    "relative_bias": BASE.replace(position="relative_bias", relative_buckets=8, relative_max_distance=16),
}


def _model(config: ModelConfig, seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(config).eval()
    with torch.no_grad():  # bigger weights than init so mistakes show in the logits
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return model


@pytest.mark.parametrize("name", list(VARIANTS))
def test_cached_decoding_equals_full_forward(name):
    model = _model(VARIANTS[name])
    ids = torch.randint(0, 97, (2, 14), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(ids).logits
        cache = Cache.for_model(model, 2, 20)
        chunks = [(0, 5)] + [(t, t + 1) for t in range(5, 9)] + [(9, 14)]  # the last: several tokens after a past
        steps = []
        for start, end in chunks:
            steps.append(model(ids[:, start:end], cache=cache).logits)
            cache.advance(end - start)
    torch.testing.assert_close(torch.cat(steps, dim=1), full)


@pytest.mark.parametrize("name", ["gqa_rope", "alibi_layernorm", "learned_parallel", "sliding_window"])
def test_batched_generation_equals_one_by_one(name):
    model = _model(VARIANTS[name])
    prompts = [[5, 6, 7, 8, 9, 10, 11], [3], [40, 41, 42, 43]]
    batched = generate_ids(model, prompts, max_new_tokens=8)
    for prompt, result in zip(prompts, batched):
        alone = generate_ids(model, [prompt], max_new_tokens=8)[0]
        assert result.token_ids == alone.token_ids


def test_greedy_equals_argmax_of_full_forward():
    model = _model(BASE)
    prompt = [1, 2, 3, 4]
    out = generate_ids(model, [prompt], max_new_tokens=6)[0].token_ids
    seq = list(prompt)
    for _ in range(6):
        with torch.no_grad():
            seq.append(int(model(torch.tensor([seq])).logits[0, -1].argmax()))
    assert out == seq[len(prompt):]


def test_greedy_matches_transformers_generate(tmp_path):
    import llmzoo
    from tests.parity.base import reference_model

    cfg = transformers.LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    ref = reference_model("LlamaForCausalLM", cfg)
    ref.save_pretrained(tmp_path)
    model = llmzoo.load(tmp_path)
    prompt = [7, 8, 9, 10, 11]
    with torch.no_grad():
        expected = ref.generate(torch.tensor([prompt]), max_new_tokens=10, min_new_tokens=10, do_sample=False,
                                pad_token_id=0, eos_token_id=None)[0, len(prompt):].tolist()
    assert generate_ids(model, [prompt], max_new_tokens=10)[0].token_ids == expected


def test_eos_stops_a_row_and_on_token_can_stop():
    model = _model(BASE)
    first = generate_ids(model, [[1, 2, 3]], max_new_tokens=5)[0].token_ids
    stopped = generate_ids(model, [[1, 2, 3]], max_new_tokens=5, eos_ids={first[2]})[0]
    assert stopped.finish_reason == "eos" and stopped.token_ids == first[:2]
    halted = generate_ids(model, [[1, 2, 3]], max_new_tokens=5, on_token=lambda row, tok: True)[0]
    assert halted.finish_reason == "stop" and halted.token_ids == first[:1]


def test_sampling_is_reproducible_under_a_seed():
    model = _model(BASE)
    cfg = SamplingConfig(temperature=1.0, top_k=20, top_p=0.9)
    a = generate_ids(model, [[1, 2, 3]], max_new_tokens=12, sampling=cfg, seed=123)[0].token_ids
    b = generate_ids(model, [[1, 2, 3]], max_new_tokens=12, sampling=cfg, seed=123)[0].token_ids
    c = generate_ids(model, [[1, 2, 3]], max_new_tokens=12, sampling=cfg, seed=124)[0].token_ids
    assert a == b and a != c


def test_top_k_top_p_match_transformers_warpers():
    logits = torch.randn(4, 50, generator=torch.Generator().manual_seed(0)) * 3
    ids = torch.zeros(4, 1, dtype=torch.long)
    for k in (1, 5, 49):
        expected = transformers.TopKLogitsWarper(k)(ids, logits.clone())
        assert torch.equal(filter_logits(logits, k, None).isinf(), expected.isinf())
    for p in (0.1, 0.5, 0.9, 0.99):
        expected = transformers.TopPLogitsWarper(p)(ids, logits.clone())
        assert torch.equal(filter_logits(logits, None, p).isinf(), expected.isinf())


def test_repetition_penalty_matches_transformers():
    logits = torch.randn(2, 30, generator=torch.Generator().manual_seed(0))
    seen_ids = torch.tensor([[1, 4, 4, 9], [0, 2, 29, 3]])
    seen = torch.zeros(2, 30, dtype=torch.bool).scatter(1, seen_ids, True)
    expected = transformers.RepetitionPenaltyLogitsProcessor(1.3)(seen_ids, logits.clone())
    torch.testing.assert_close(apply_repetition_penalty(logits, seen, 1.3), expected)


def test_sampled_distribution_follows_temperature():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    gen = torch.Generator().manual_seed(0)
    draws = torch.stack([next_tokens(logits, SamplingConfig(temperature=0.5), generator=gen) for _ in range(4000)])
    freq = torch.bincount(draws.flatten(), minlength=4).float() / 4000
    torch.testing.assert_close(freq, (logits[0] / 0.5).softmax(-1), atol=0.03, rtol=0)


def test_prompt_longer_than_context_is_a_clear_error():
    model = _model(BASE)
    with pytest.raises(LlmzooError, match="context of 64"):
        generate_ids(model, [list(range(70))], max_new_tokens=4)
    with pytest.raises(LlmzooError, match="empty"):
        generate_ids(model, [[]], max_new_tokens=4)
