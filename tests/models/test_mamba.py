"""Mamba (Gu & Dao 2023) against transformers' MambaForCausalLM: HF directory in and out, cached
step-by-step decoding with the SSM state, greedy generation, and the full-size configs' counts."""

from __future__ import annotations

import pytest
import torch
import transformers

import llmzoo
from llmzoo.errors import ConfigError, LlmzooError
from llmzoo.infer.cache import Cache
from llmzoo.models.build import build_model, count_parameters
from llmzoo.models.zoo import get_card
from tests.parity.base import check_cached_decoding, check_parity, reference_model
from tests.parity.decoding import check_chunked_cached_decoding


def tiny_config(**kw) -> transformers.MambaConfig:
    # eos None: transformers' generate then runs max_new_tokens, as generate_ids without eos_ids does
    base = dict(vocab_size=97, hidden_size=32, state_size=8, num_hidden_layers=3, expand=2, conv_kernel=4,
                time_step_rank=5, use_conv_bias=True, use_bias=False, eos_token_id=None, bos_token_id=None,
                pad_token_id=0)
    return transformers.MambaConfig(**{**base, **kw})


@pytest.mark.parametrize("variant", [{}, {"use_bias": True, "use_conv_bias": False, "time_step_rank": "auto"}])
def test_load_and_save_equal_transformers(tmp_path, variant):
    model = check_parity("MambaForCausalLM", tiny_config(**variant), tmp_path)
    assert model.config.family == "mamba" and model.config.mixer_kind(0) == "mamba"


def test_cached_step_by_step_equals_full_forward(tmp_path):
    model = check_parity("MambaForCausalLM", tiny_config(), tmp_path)
    check_cached_decoding(model)
    check_chunked_cached_decoding(model)


def _greedy_reference(ref, prompt: list[int], n: int) -> list[int]:
    ids = torch.tensor([prompt])
    out = ref.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False)
    return out[0, len(prompt):].tolist()


def test_generate_ids_equals_transformers_generate(tmp_path):
    ref = reference_model("MambaForCausalLM", tiny_config())
    ref.save_pretrained(tmp_path / "hf")
    model = llmzoo.load(tmp_path / "hf")
    prompts = [[5, 17, 42, 8, 3, 66], [9, 1, 30]]  # unequal lengths: the short one is left-padded
    got = llmzoo.generate_ids(model, prompts, max_new_tokens=10)
    for prompt, result in zip(prompts, got):
        assert result.token_ids == _greedy_reference(ref, prompt, 10)


def test_padded_row_equals_its_unpadded_forward(tmp_path):
    # Padding is zeroed before the conv and the scan, so a left-padded row's state starts empty.
    ref = reference_model("MambaForCausalLM", tiny_config())
    ref.save_pretrained(tmp_path / "hf")
    model = llmzoo.load(tmp_path / "hf")
    ids = torch.tensor([[0, 0, 7, 8, 9, 10]])
    mask = torch.tensor([[0, 0, 1, 1, 1, 1]])
    with torch.no_grad():
        padded = model(ids, attention_mask=mask).logits[:, 2:]
        alone = model(ids[:, 2:]).logits
        expected = ref(ids, attention_mask=mask).logits[:, 2:]
    torch.testing.assert_close(padded, alone)
    torch.testing.assert_close(padded, expected)


def test_rolled_back_cache_is_refused(tmp_path):
    model = build_model(llmzoo.load(_tiny_dir(tmp_path)).config)
    cache = Cache.for_model(model, 1, 8)
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        model(ids, cache=cache)
        cache.advance(4)
        cache.crop(2)  # speculative rollback: the SSM state already folded in all four tokens
        with pytest.raises(LlmzooError, match="cannot be rolled back"):
            model(ids[:, :1], cache=cache)


def _tiny_dir(tmp_path):
    reference_model("MambaForCausalLM", tiny_config()).save_pretrained(tmp_path / "hf")
    return tmp_path / "hf"


def test_bad_layer_spec_names_the_layer():
    with pytest.raises(ConfigError, match=r"layer 1: mixers entry 'ssm'"):
        llmzoo.ModelConfig(n_layers=2, mixers=("mamba", "ssm"), ffns=("none",), position="none")
    with pytest.raises(ConfigError, match=r"ssm_conv_kernel must be > 1"):
        llmzoo.ModelConfig(n_layers=2, mixers=("mamba",), ffns=("none",), position="none", ssm_conv_kernel=1)


def test_saving_a_hybrid_as_mamba_is_refused(tmp_path):
    config = llmzoo.ModelConfig(family="mamba", vocab_size=50, d_model=16, n_layers=2, n_heads=2, d_ff=32,
                                position="none", mixers=("mamba", "attention"), ffns=("none", "dense"))
    with pytest.raises(LlmzooError, match="only Mamba mixers"):
        llmzoo.save(build_model(config), tmp_path / "out", format="hf")


@pytest.mark.parametrize("name, hf_kwargs", [
    ("mamba-130m", dict(hidden_size=768, num_hidden_layers=24, vocab_size=50280)),
    ("mamba-2.8b", dict(hidden_size=2560, num_hidden_layers=64, vocab_size=50280)),
])
def test_full_size_count_equals_transformers_and_published(name, hf_kwargs):
    with torch.device("meta"):
        reference = transformers.MambaForCausalLM(transformers.MambaConfig(**hf_kwargs))
        model = build_model(get_card(name).config, device="meta")
    expected = sum(p.numel() for p in reference.parameters())  # tied head counted once
    assert count_parameters(model) == expected
    published = get_card(name).params_published
    assert abs(expected / published - 1) < 0.02


def test_cli_converts_a_mamba_directory_and_shows_the_card(tmp_path, capsys):
    from llmzoo.cli import main

    ref = reference_model("MambaForCausalLM", tiny_config())
    ref.save_pretrained(tmp_path / "hf")
    assert main(["convert", str(tmp_path / "hf"), str(tmp_path / "out")]) == 0
    back = transformers.MambaForCausalLM.from_pretrained(tmp_path / "out").eval()
    ids = torch.tensor([[4, 8, 15, 16, 23, 42]])
    with torch.no_grad():
        torch.testing.assert_close(back(ids).logits, ref(ids).logits)
    assert main(["show", "mamba-130m"]) == 0
    assert "HF conversion: yes (family 'mamba')" in capsys.readouterr().out


def test_chunked_selective_scan_is_the_papers_recurrence():
    # h_t = exp(dt_t A) h_{t-1} + dt_t B_t x_t, y_t = C_t h_t (Gu & Dao 2023, eq. 2a-2b with ZOH on A, Euler on B)
    from llmzoo.nn.mamba import selective_scan

    g = torch.Generator().manual_seed(0)
    Bt, T, D, N = 2, 11, 5, 3
    x, dt = torch.randn(Bt, T, D, generator=g), torch.rand(Bt, T, D, generator=g)
    A, h0 = -torch.rand(D, N, generator=g), torch.randn(Bt, D, N, generator=g)
    Bm, Cm = torch.randn(Bt, T, N, generator=g), torch.randn(Bt, T, N, generator=g)
    h, ys = h0.clone(), []
    for t in range(T):
        h = torch.exp(dt[:, t, :, None] * A) * h + dt[:, t, :, None] * Bm[:, t, None, :] * x[:, t, :, None]
        ys.append(torch.einsum("bdn,bn->bd", h, Cm[:, t]))
    y, last = selective_scan(x, dt, A, Bm, Cm, h0, chunk=4)  # chunks of 4, 4, 3
    torch.testing.assert_close(y, torch.stack(ys, dim=1))
    torch.testing.assert_close(last, h)


def test_compiled_decoding_and_the_engine_decline_ssm_layers(tmp_path):
    # A StaticCache hides unkept slots with a key mask; an SSM state has no slots, so Mamba decodes eagerly.
    from llmzoo.infer.cache import StaticCache
    from llmzoo.infer.compiled import can_compile

    model = llmzoo.load(_tiny_dir(tmp_path))
    assert not StaticCache.supports(model.config) and not can_compile(model)


def test_eval_scores_equal_full_forwards_with_contexts_of_different_lengths(tmp_path):
    # The evaluator's shared-context cache right-pads short contexts; an SSM state would fold the
    # padding in, so Mamba is scored on full rows (llmzoo.eval.lm), each equal to its own forward.
    from llmzoo.eval.lm import EvalLM

    model = llmzoo.load(_tiny_dir(tmp_path))
    pairs = [([5, 6, 7, 8, 9, 10, 11], [3, 2]), ([5, 6, 7, 8, 9, 10, 11], [4, 1, 9]), ([12, 13], [3, 2, 1]),
             ([12, 13], [7, 5])]
    scores = EvalLM(model, llmzoo.load_tokenizer("smollm2-135m-instruct"), batch_size=4).score_tokens(pairs)
    for (ctx, cont), got in zip(pairs, scores):
        with torch.no_grad():
            logp = model(torch.tensor([ctx + cont[:-1]])).logits.log_softmax(-1)[0]
        expected = sum(logp[len(ctx) - 1 + k, t].item() for k, t in enumerate(cont))
        assert got.logprob == pytest.approx(expected, abs=1e-4)
