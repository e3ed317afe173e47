"""Planning tools against published facts (Chinchilla, ZeRO) and hand counts (FLOPs, KV cache)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from llmzoo.cli import main
from llmzoo.config import ModelConfig
from llmzoo.errors import LlmzooError
from llmzoo.flops import attention_flops, count_params, flops_per_token, matmul_params, training_flops_per_token
from llmzoo.models.build import build_model
from llmzoo.models.zoo import get_config
from llmzoo.scaling import (
    CHINCHILLA_FIT,
    chinchilla_optimal,
    isoflop_curve,
    kv_cache_bytes_per_token,
    parse_number,
    tokens_per_param_rule,
    training_memory,
)

GOPHER_BUDGET = 5.76e23  # Hoffmann et al. 2022: Gopher's training compute, also Chinchilla's


# --- Chinchilla ---------------------------------------------------------------------------------------


def test_twenty_tokens_per_parameter_gives_chinchilla_at_gophers_budget():
    # Chinchilla: 70B parameters on 1.4T tokens with Gopher's compute.
    plan = tokens_per_param_rule(GOPHER_BUDGET)
    assert plan.params == pytest.approx(70e9, rel=0.02)
    assert plan.tokens == pytest.approx(1.4e12, rel=0.02)


def test_fit_exponents_match_the_papers_approach_3():
    # Hoffmann et al. 2022, Table 2: approach 3 gives N_opt ~ C^0.46, D_opt ~ C^0.54.
    assert CHINCHILLA_FIT.a == pytest.approx(0.46, abs=0.01)
    assert CHINCHILLA_FIT.b == pytest.approx(0.54, abs=0.01)


def test_fit_optimum_spends_the_budget_and_minimises_the_isoflop_curve():
    plan = chinchilla_optimal(GOPHER_BUDGET)
    assert 6 * plan.params * plan.tokens == pytest.approx(GOPHER_BUDGET, rel=1e-9)
    sizes = [plan.params * 10 ** (k / 200) for k in range(-200, 201)]  # 0.1x .. 10x around the optimum
    losses = isoflop_curve(GOPHER_BUDGET, sizes)
    best = sizes[min(range(len(sizes)), key=losses.__getitem__)]
    assert best == pytest.approx(plan.params, rel=0.012)  # grid step is 1.2%


def test_fit_at_gophers_budget_is_in_the_papers_range():
    # Hoffmann et al. 2022: approach 1 gives 67B parameters and 1.5T tokens for this budget (Table 3),
    # approach 2 about the same, and "the third approach predicts even smaller models being optimal".
    plan = chinchilla_optimal(GOPHER_BUDGET)
    assert 20e9 < plan.params < 67e9
    assert plan.tokens > 1.4e12
    # both recipes predict a lower loss for Chinchilla (70B, 1.4T) than for Gopher (280B, 300B tokens)
    assert CHINCHILLA_FIT.loss(70e9, 1.4e12) < CHINCHILLA_FIT.loss(280e9, 300e9)


def test_bad_budget_is_a_user_error():
    with pytest.raises(LlmzooError):
        chinchilla_optimal(-1.0)
    assert parse_number("70B") == 70e9 and parse_number("1.4T") == 1.4e12 and parse_number("5.76e23") == 5.76e23
    with pytest.raises(LlmzooError, match="not a number"):
        parse_number("lots")


# --- FLOPs ----------------------------------------------------------------------------------------------

TINY = ModelConfig(vocab_size=101, d_model=64, n_layers=3, n_heads=4, n_kv_heads=2, d_ff=96, max_seq_len=32)


def _measured(model, ids, backward=False) -> int:
    with FlopCounterMode(display=False) as counter:
        logits = model(ids).logits
        if backward:
            logits.sum().backward()
    return counter.get_total_flops()


@pytest.mark.parametrize("config", [
    TINY,
    TINY.replace(tie_embeddings=False, mlp_gated=False, activation="gelu", qkv_bias=True, mlp_bias=True),
    TINY.replace(n_experts=4, n_experts_per_token=2),  # every token meets exactly 2 experts
], ids=["swiglu-gqa-tied", "gelu-untied-bias", "moe-top2"])
def test_2n_and_6n_rules_equal_a_hand_count_of_matmuls(config):
    torch.manual_seed(0)
    model = build_model(config).eval()
    ids = torch.randint(0, config.vocab_size, (2, 16))
    tokens = ids.numel()
    forward = _measured(model, ids)
    assert forward == 2 * matmul_params(config) * tokens  # SDPA's own FLOPs are not counted on CPU
    model.train()
    assert _measured(model, ids, backward=True) == 6 * matmul_params(config) * tokens


def test_attention_term_is_the_causal_half_of_the_score_matmuls():
    # The soft-capped path computes q k^T and p v as explicit matmuls over the full T x T square;
    # Kaplan et al.'s 2 * n_layers * n_ctx * d counts the causal half of it.
    config = TINY.replace(attn_logit_softcap=30.0, max_seq_len=16)
    model = build_model(config).eval()
    ids = torch.randint(0, config.vocab_size, (2, 16))
    score_flops = _measured(model, ids) - 2 * matmul_params(config) * ids.numel()
    assert score_flops == 2 * attention_flops(config, 16) * ids.numel()


def test_training_flops_per_token_rule():
    assert training_flops_per_token(7e9) == 6 * 7e9
    assert training_flops_per_token(7e9, 32, 4096, 2048) == 6 * 7e9 + 6 * 32 * 2048 * 4096
    fl = flops_per_token(get_config("gpt-3-175b"), 2048)
    assert fl.training == 3 * fl.forward
    # GPT-3 paper, Table D.1: 3.14e23 FLOPs for 175B on 300B tokens (6ND, attention excluded).
    assert 6 * fl.params * 300e9 == pytest.approx(3.14e23, rel=0.01)


# --- memory ---------------------------------------------------------------------------------------------


def test_zero_stages_reproduce_the_zero_papers_example():
    # Rajbhandari et al. 2020, Figure 1: 7.5B parameters, 64 data-parallel GPUs, K = 12:
    # baseline 120GB, P_os 31.4GB, P_os+g 16.6GB, P_os+g+p 1.9GB per GPU.
    totals = [training_memory(7.5e9, dp=64, zero=z).total / 1e9 for z in range(4)]
    assert totals[0] == pytest.approx(120, abs=0.05)
    assert totals[1] == pytest.approx(31.4, abs=0.05)
    assert totals[2] == pytest.approx(16.6, abs=0.05)
    assert totals[3] == pytest.approx(1.9, abs=0.05)


@pytest.mark.parametrize("dp", [2, 8, 1024])
def test_zero3_divides_sixteen_bytes_per_parameter_by_dp(dp):
    m = training_memory(1e9, dp=dp, zero=3)
    assert m.weights + m.grads + m.optimizer == pytest.approx(16e9 / dp)


def test_tensor_and_pipeline_parallelism_split_the_model():
    one = training_memory(70e9, config=get_config("llama-2-70b"), seq_len=4096)
    split = training_memory(70e9, config=get_config("llama-2-70b"), tp=8, pp=4, seq_len=4096)
    assert split.weights == pytest.approx(one.weights / 32)
    assert split.activations == pytest.approx(one.activations / 8)  # 1F1B keeps pp micro-batches in flight


def test_memory_rejects_impossible_layouts():
    with pytest.raises(LlmzooError, match="must divide"):
        training_memory(7e9, config=get_config("llama-2-7b"), tp=3)
    with pytest.raises(LlmzooError, match="ZeRO"):
        training_memory(7e9, zero=4)


def test_kv_cache_bytes_equal_what_the_cache_allocates():
    from llmzoo.infer.cache import Cache

    config = TINY
    model = build_model(config).to(torch.bfloat16)
    cache = Cache.for_model(model, batch_size=1, max_len=10)
    with torch.no_grad():
        model(torch.zeros(1, 1, dtype=torch.long), cache=cache)  # each layer creates its state
    allocated = cache.nbytes()
    assert allocated == 10 * kv_cache_bytes_per_token(config, "bf16")


def test_weights_memory_is_params_times_bytes():
    config = get_config("llama-2-7b")
    from llmzoo.scaling import inference_memory

    m = inference_memory(config)
    n = count_params(config)
    assert (m["weights_fp32"], m["weights_bf16"], m["weights_int8"], m["weights_int4"]) == (4 * n, 2 * n, n, n / 2)


# --- CLI ------------------------------------------------------------------------------------------------


def test_cli_chinchilla_prints_both_plans_and_saves_a_plot(tmp_path, capsys):
    plot = tmp_path / "iso.png"
    assert main(["scaling", "chinchilla", "--compute", "5.76e23", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "parametric fit" in out and "20 tokens per parameter" in out and "69.3B" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_chinchilla_json(capsys):
    assert main(["scaling", "chinchilla", "--compute", "1e21", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {p["method"] for p in data["plans"]} >= {"20 tokens per parameter"}
    for p in data["plans"]:
        assert 6 * p["params"] * p["tokens"] == pytest.approx(1e21)


def test_cli_flops_for_a_model_and_for_a_count(capsys):
    assert main(["scaling", "flops", "llama-2-7b", "--seq-len", "4096", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    config = get_config("llama-2-7b")
    assert data["training"] == 6 * matmul_params(config) + 6 * config.n_layers * 4096 * config.d_model
    assert main(["scaling", "flops", "--params", "70B", "--tokens", "1.4T", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["training_total"] == pytest.approx(6 * 70e9 * 1.4e12)


def test_cli_memory_table_and_errors(capsys):
    assert main(["scaling", "memory", "--params", "7.5B", "--dp", "64", "--zero", "3"]) == 0
    out = capsys.readouterr().out
    assert "120 GB" in out and "31.4 GB" in out and "16.6 GB" in out and "1.88 GB" in out
    assert main(["scaling", "memory", "llama-2-70b", "--tp", "3"]) == 2
    assert "error: --tp 3 must divide" in capsys.readouterr().err
    assert main(["scaling", "memory", "gpt-4"]) == 2
    assert "no config" in capsys.readouterr().err
    assert main(["scaling", "flops"]) == 2
    assert "error:" in capsys.readouterr().err


def test_isoflop_losses_fall_with_compute():
    losses = [chinchilla_optimal(10.0**e).loss for e in range(18, 26)]
    assert all(a > b for a, b in zip(losses, losses[1:]))
    assert all(l > CHINCHILLA_FIT.E for l in losses) and not any(math.isnan(l) for l in losses)
