"""Switch Transformer routing (Fedus et al. 2021) as the MoE kind moe_kind="switch": top-1 routing with
a per-sequence expert capacity (over-capacity tokens dropped, carried by the residual), the router
z-loss (ST-MoE) and the per-sequence load-balancing loss, checked against transformers' router and loss
functions; then SwitchTransformersForConditionalGeneration loaded and saved both ways."""

from __future__ import annotations

import math

import pytest
import torch
import transformers
from transformers.models.switch_transformers import modeling_switch_transformers as hf_switch

import llmzoo
from llmzoo.config import ModelConfig
from llmzoo.errors import ConfigError
from llmzoo.flops import count_params
from llmzoo.models.build import build_model, count_parameters
from llmzoo.nn.moe import MoE, router_z_loss, switch_load_balancing_loss, within_capacity

TINY = dict(vocab_size=61, d_model=16, n_layers=4, n_heads=2, d_ff=24, max_seq_len=64, activation="relu",
            mlp_gated=False, ffns=("dense", "moe"), n_experts=4, n_experts_per_token=1, moe_kind="switch",
            moe_renormalize=False)


def switch(**kw) -> ModelConfig:
    return ModelConfig(**{**TINY, **kw})


def moe_layer(**kw) -> MoE:
    torch.manual_seed(0)
    return MoE(switch(**kw)).eval()


def hf_router(moe: MoE, capacity: int) -> hf_switch.SwitchTransformersTop1Router:
    cfg = transformers.SwitchTransformersConfig(d_model=16, num_experts=4, expert_capacity=capacity, router_jitter_noise=0.0)
    router = hf_switch.SwitchTransformersTop1Router(cfg).eval()
    router.classifier.weight.data.copy_(moe.router.weight)
    return router


@pytest.mark.parametrize("capacity", [1, 3, 100])
def test_capacity_keeps_what_transformers_router_keeps(capacity):
    moe = moe_layer(moe_expert_capacity=capacity)
    x = torch.randn(3, 11, 16)
    with torch.no_grad():
        expert_index, probs, logits = hf_router(moe, capacity)(x)  # one-hot (B, T, E), capacity applied
        out, ours = moe(x)
    torch.testing.assert_close(ours, logits)
    kept = within_capacity(ours.argmax(-1, keepdim=True), 4, capacity)[..., 0]  # (B, T)
    assert torch.equal(kept, expert_index.sum(-1).bool())
    assert (expert_index.sum(1) <= capacity).all()  # no expert over capacity in any sequence
    # a dropped token skips the feed-forward (the block's residual carries it); a kept one is p * expert(x)
    assert torch.equal(out[~kept], torch.zeros_like(out[~kept]))
    e = ours.argmax(-1)
    for b, t in kept.nonzero().tolist()[:5]:
        torch.testing.assert_close(out[b, t], probs[b, t, 0] * moe.experts[int(e[b, t])](x[b, t]))
    if capacity == 1:
        assert (~kept).any()


def test_capacity_factor_is_the_papers_formula():
    # Switch eq. 3: capacity = capacity_factor * tokens / experts (per sequence here, rounded up)
    T, factor = 12, 1.25
    moe = moe_layer(moe_capacity_factor=factor)
    assert moe.capacity(T) == math.ceil(factor * T / 4) == 4
    x = torch.randn(2, T, 16)
    with torch.no_grad():
        expert_index, _, _ = hf_router(moe, 4)(x)
        out, _ = moe(x)
        unlimited, _ = moe_layer()(x)
    kept = expert_index.sum(-1).bool()
    torch.testing.assert_close(out[kept], unlimited[kept])
    assert torch.equal(out[~kept], torch.zeros_like(out[~kept]))
    with torch.no_grad():  # a large enough factor drops nothing
        torch.testing.assert_close(moe_layer(moe_capacity_factor=4.0)(x)[0], unlimited)


def test_top2_capacity_serves_first_choices_first():
    # GShard's order, which top-k capacity follows: every token's first choice before any second choice
    chosen = torch.tensor([[[0, 1], [0, 1], [1, 0]]])  # (B=1, T=3, k=2)
    kept = within_capacity(chosen, 2, capacity=2)
    # expert 0: first choices of tokens 0, 1 fill it, token 2's second choice is dropped;
    # expert 1: token 2's first choice, then token 0's second choice; token 1's second choice dropped
    assert kept.tolist() == [[[True, True], [True, False], [True, False]]]


def test_losses_equal_transformers_functions():
    logits = [torch.randn(3, 9, 4) * 2 for _ in range(2)]  # two MoE layers' router logits (B, T, E)
    cat = torch.cat(logits, dim=1)
    torch.testing.assert_close(router_z_loss(logits), hf_switch.router_z_loss_func(cat))
    expected = hf_switch.load_balancing_loss_func(torch.softmax(cat, -1), cat.argmax(-1))
    torch.testing.assert_close(switch_load_balancing_loss(logits), expected)
    # the paper's bounds: 1 for uniform routing, up to E when one expert takes everything
    uniform = [torch.zeros(2, 8, 4)]
    assert float(switch_load_balancing_loss(uniform)) == pytest.approx(1.0)
    collapsed = [torch.tensor([10.0, 0, 0, 0]).expand(2, 8, 4)]
    assert float(switch_load_balancing_loss(collapsed)) > 3.9


def test_jitter_noise_only_while_training():
    moe = moe_layer(moe_jitter=0.1)
    x = torch.randn(2, 7, 16)
    with torch.no_grad():
        a, b = moe.route(x), moe.route(x)
        torch.testing.assert_close(a, moe_layer()(x)[1])  # eval: no noise
        assert torch.equal(a, b)
        moe.train()
        noisy = moe.route(x)
    assert not torch.allclose(noisy, a)


def test_decoder_with_switch_layers_returns_both_losses_and_trains():
    torch.manual_seed(0)
    model = build_model(switch(moe_capacity_factor=1.0, moe_z_loss_coef=1e-3))
    out = model(torch.randint(0, 61, (2, 9)))
    assert out.aux_loss is not None and out.z_loss is not None
    (out.logits.float().pow(2).mean() + out.aux_loss + out.z_loss).backward()
    assert model.layers[1].mlp.router.weight.grad.abs().sum() > 0
    assert count_params(model.config) == count_parameters(model)
    active = count_params(model.config, active=True)
    assert count_params(model.config) - active == 2 * 3 * 2 * 16 * 24  # 2 MoE layers x 3 idle experts


@pytest.mark.parametrize("changes, message", [
    (dict(n_experts_per_token=5, moe_kind="topk", moe_renormalize=True), r"layer 1: MoE top-k n_experts_per_token=5"),
    (dict(n_experts_per_token=2), r"layer 1: moe_kind 'switch' routes each token to one expert"),
    (dict(moe_capacity_factor=0.0), r"layer 1: moe_capacity_factor must be > 0, got 0.0"),
    (dict(moe_capacity_factor=-1.0), r"layer 1: moe_capacity_factor must be > 0"),
    (dict(moe_expert_capacity=0), r"layer 1: moe_expert_capacity must be > 0"),
    (dict(moe_expert_capacity=4, moe_capacity_factor=1.0), r"layer 1: set moe_capacity_factor or moe_expert_capacity"),
    (dict(moe_kind="expert_choice"), r"layer 1: moe_kind 'expert_choice' is not one of"),
    (dict(moe_renormalize=True), r"layer 1: moe_kind 'switch' weights the expert by its router probability"),
    (dict(moe_jitter=1.5), r"layer 1: moe_jitter must be in \[0, 1\)"),
])
def test_bad_moe_options_name_the_layer_and_field(changes, message):
    with pytest.raises(ConfigError, match=message):
        switch(**changes)


def test_cli_reports_a_bad_capacity_factor_as_one_line_with_exit_code_2(tmp_path, capsys):
    from llmzoo.cli import main
    from tests.train.helpers import tiny_recipe, write_recipe

    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(tmp_path / "data", tmp_path / "run"))
    assert main(["pretrain", "--recipe", str(recipe), "model.ffns=[dense,moe]", "model.n_experts=2",
                 "model.n_experts_per_token=1", "model.moe_capacity_factor=0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "layer 1: moe_capacity_factor must be > 0" in err[0], err


# --- transformers' SwitchTransformersForConditionalGeneration, through llmzoo.load / llmzoo.save -----------------

HF_TINY = dict(vocab_size=96, d_model=32, d_kv=8, d_ff=48, num_layers=4, num_decoder_layers=4, num_heads=4,
               num_experts=4, expert_capacity=3, num_sparse_encoder_layers=2, num_sparse_decoder_layers=2,
               relative_attention_num_buckets=8, relative_attention_max_distance=20, decoder_start_token_id=0,
               initializer_factor=0.1)  # small init keeps fp32 parity tight (as tests/parity/test_t5.py)
LOSSES = ("encoder_z_loss", "encoder_aux_loss", "decoder_z_loss", "decoder_aux_loss")


def hf_switch_dir(tmp_path, **changes):
    from tests.parity.base import reference_model
    from tests.parity.seq2seq_helpers import seq2seq_inputs

    cfg = transformers.SwitchTransformersConfig(**{**HF_TINY, **changes})
    ref = reference_model("SwitchTransformersForConditionalGeneration", cfg)
    ref.save_pretrained(tmp_path / "hf")
    return ref, seq2seq_inputs(cfg, src_len=12, tgt_len=9)


def reference(model, inputs):
    with torch.no_grad():
        return model(**inputs, output_router_logits=True, use_cache=False)


def test_switch_checkpoint_loads_and_saves_equal_to_transformers(tmp_path):
    ref, inputs = hf_switch_dir(tmp_path)
    expected = reference(ref, inputs)
    model = llmzoo.load(tmp_path / "hf")
    c = model.config
    assert (c.moe_kind, c.n_experts, c.moe_expert_capacity, c.logit_scale_rsqrt_d) == ("switch", 4, 3, True)
    assert [c.ffn_kind(i) for i in range(4)] == ["dense", "moe"] * 2  # transformers' sparse step 2
    with torch.no_grad():
        out = model(inputs["input_ids"], decoder_input_ids=inputs["decoder_input_ids"],
                    attention_mask=inputs["attention_mask"])
    torch.testing.assert_close(out.logits, expected.logits)
    for name in LOSSES:
        torch.testing.assert_close(out[name], expected[name], msg=name)
    torch.testing.assert_close(out.aux_loss, expected.encoder_aux_loss + expected.decoder_aux_loss)
    torch.testing.assert_close(out.z_loss, expected.encoder_z_loss + expected.decoder_z_loss)

    llmzoo.save(model, tmp_path / "zoo", format="hf")  # the round-trip check runs inside save
    back = transformers.SwitchTransformersForConditionalGeneration.from_pretrained(
        tmp_path / "zoo", attn_implementation="eager").eval()
    again = reference(back, inputs)
    torch.testing.assert_close(again.logits, expected.logits)
    for name in LOSSES:
        torch.testing.assert_close(again[name], expected[name], msg=name)


def test_the_capacity_drops_tokens_in_that_comparison(tmp_path):
    # The fixed capacity of 3 tokens per expert per sequence is binding there: unlimited capacity changes logits.
    ref, inputs = hf_switch_dir(tmp_path)
    model = llmzoo.load(tmp_path / "hf")
    roomy = build_model(model.config.replace(moe_expert_capacity=100)).eval()
    roomy.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert not torch.allclose(roomy(**inputs).logits, model(**inputs).logits)
        ref_roomy = transformers.SwitchTransformersForConditionalGeneration.from_pretrained(
            tmp_path / "hf", expert_capacity=100).eval()
        torch.testing.assert_close(roomy(**inputs).logits, ref_roomy(**inputs, use_cache=False).logits)


def test_moe_in_every_layer_as_switch_c(tmp_path):
    # Switch-C's layout: sparse step 1 (transformers reports zero router losses for it, so only logits here)
    ref, inputs = hf_switch_dir(tmp_path, num_sparse_encoder_layers=4, num_sparse_decoder_layers=4)
    model = llmzoo.load(tmp_path / "hf")
    assert model.config.ffns == ("moe",)
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, reference(ref, inputs).logits)
    llmzoo.save(model, tmp_path / "zoo", format="hf")
    back = transformers.SwitchTransformersForConditionalGeneration.from_pretrained(tmp_path / "zoo").eval()
    assert all(block.is_sparse for block in back.encoder.block)


def test_layouts_switch_cannot_express_are_refused(tmp_path):
    hf_switch_dir(tmp_path, num_sparse_encoder_layers=2, num_sparse_decoder_layers=4)
    with pytest.raises(llmzoo.LlmzooError, match="encoder has a MoE every 2 layers and its decoder every 1"):
        llmzoo.load(tmp_path / "hf")
    hf_switch_dir(tmp_path / "untied", tie_word_embeddings=False)
    with pytest.raises(llmzoo.LlmzooError, match="untied SwitchTransformers checkpoints"):
        llmzoo.load(tmp_path / "untied" / "hf")
    config = ModelConfig(**{**TINY, "arch": "encoder_decoder", "position": "relative_bias", "attn_scale": 1.0,
                            "moe_capacity_factor": 1.25, "logit_scale_rsqrt_d": True, "family": "switch"})
    with pytest.raises(llmzoo.LlmzooError, match="moe_capacity_factor=None"):
        llmzoo.save(build_model(config), tmp_path / "cf", format="hf")
    odd = config.replace(moe_capacity_factor=None, moe_expert_capacity=4, ffns=("moe", "dense"))
    with pytest.raises(llmzoo.LlmzooError, match="i % step == 1"):
        llmzoo.save(build_model(odd), tmp_path / "odd", format="hf")


def test_save_refuses_what_the_switch_config_json_would_read_back_differently(tmp_path):
    # No per-family list names embed_scale: the shared round-trip check (convert/round_trip.py) catches it.
    hf_switch_dir(tmp_path)
    model = llmzoo.load(tmp_path / "hf")
    scaled = build_model(model.config.replace(embed_scale=2.0))
    with pytest.raises(llmzoo.LlmzooError, match="embed_scale"):
        llmzoo.save(scaled, tmp_path / "scaled", format="hf")


# --- zoo configs: Switch-Base-8 (the released checkpoint), Switch-Base-128 and Switch-C (Fedus et al. Table 9) ------


def test_switch_base_8_count_equals_transformers_on_the_meta_device():
    from llmzoo.models.zoo import get_config

    # google/switch-base-8's shape: T5 v1.0 Base (ReLU, d_ff 3072) with 8 experts in every other layer
    hf_config = transformers.SwitchTransformersConfig(d_ff=3072, num_sparse_encoder_layers=6, num_sparse_decoder_layers=6)
    with torch.device("meta"):
        reference = transformers.SwitchTransformersForConditionalGeneration(hf_config)
    config = get_config("switch-base-8")
    assert count_params(config) == sum(p.numel() for p in reference.parameters())  # tied tables once
    assert count_parameters(build_model(config, device="meta")) == count_params(config)


def _routers(c: ModelConfig) -> int:
    moe_layers = sum(c.ffn_kind(i) == "moe" for i in range(c.n_layers)) + sum(
        c.ffn_kind(i) == "moe" for i in range(c.decoder_layers))
    return moe_layers * c.d_model * c.n_experts


@pytest.mark.parametrize("name, published", [("switch-base-128", 7.4e9), ("switch-c-2048", 1571e9)])
def test_switch_counts_are_table_9s(name, published):
    from llmzoo.models.zoo import get_card

    card = get_card(name)
    assert card.params_published == published
    assert abs(count_params(card.config) / published - 1) < 0.02
    # top-1: a token meets one expert per MoE layer, so its active weights are the dense T5 of the same shape
    # plus the routers (Switch's "FLOP-matched" dense counterpart)
    dense = card.config.replace(ffns=("dense",), n_experts=0, moe_kind="topk", moe_renormalize=True)
    assert count_params(card.config, active=True) == count_params(dense) + _routers(card.config)


def test_show_describes_switch_routing(capsys):
    from llmzoo.cli import main

    assert main(["show", "switch-c"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "MoE in every layer: 2048 experts, Switch top-1 routing, capacity 64 tokens per expert and sequence" in out
    assert main(["show", "switch-base-8"]) == 0
    assert "MoE in every other layer: 8 experts, Switch top-1 routing" in " ".join(capsys.readouterr().out.split())


def test_greedy_generation_equals_transformers(tmp_path):
    from llmzoo.infer.seq2seq import generate_seq2seq

    ref, inputs = hf_switch_dir(tmp_path)
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    config = transformers.GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=8, eos_token_id=None,
                                           pad_token_id=0, decoder_start_token_id=0, bos_token_id=None,
                                           forced_bos_token_id=None, forced_eos_token_id=None, min_length=0)
    want = ref.generate(ids, attention_mask=mask, generation_config=config)
    got = generate_seq2seq(llmzoo.load(tmp_path / "hf"), ids, mask, max_new_tokens=8)
    assert got.tolist() == want.tolist()
