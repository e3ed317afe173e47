"""Flamingo (Alayrac et al. 2022): the paper's stated properties (the gated layers leave the frozen LM
unchanged at init; only the new parts train; each token sees only its most recent image; cached decoding
equals the full forward) and the layers against transformers' IDEFICS, an open Flamingo reproduction."""

from __future__ import annotations

import copy
import re

import pytest
import torch

from llmzoo.errors import ConfigError, LlmzooError
from llmzoo.infer.cache import Cache
from llmzoo.models.build import build_model
from llmzoo.models.clip_config import VisionConfig
from llmzoo.models.flamingo import Flamingo
from llmzoo.models.flamingo_config import FlamingoConfig
from llmzoo.models.vision import VisionTower
from llmzoo.models.zoo import get_config
from llmzoo.nn.gated_cross_attention import GatedCrossAttentionDense, media_masks
from llmzoo.nn.perceiver_resampler import PerceiverResampler

IMG = 16  # tiny images: 16x16 pixels, 8x8 patches


def tiny_lm(**kw):
    config = get_config("llama-2-7b").replace(**{**dict(vocab_size=64, d_model=32, n_layers=4, n_heads=4, d_ff=48,
                                                         max_seq_len=32), **kw})
    return build_model(config).eval()


def tiny_vision() -> VisionTower:
    return VisionTower(VisionConfig(image_size=IMG, patch_size=8, d_model=24, n_layers=1, n_heads=2, d_ff=40)).eval()


def tiny_flamingo(**kw) -> Flamingo:
    torch.manual_seed(0)
    config = FlamingoConfig(**{**dict(cross_attention_interval=2, n_latents=3, resampler_depth=2, resampler_heads=2,
                                      resampler_head_dim=8), **kw})
    return Flamingo(tiny_lm(), tiny_vision(), config).eval()


def _randomise_gates(model: Flamingo) -> None:
    """Gates at 0 make every image invisible; the masking tests need them open."""
    with torch.no_grad():
        for layer in model.gated.values():
            layer.alpha_attn.fill_(0.7)
            layer.alpha_ffn.fill_(0.5)


def _batch(B: int = 2, T: int = 10, N: int = 2):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 64, (B, T), generator=g)
    media = torch.zeros(B, T, dtype=torch.bool)
    media[:, 1] = True  # image 1 at position 1, image 2 at position 5
    media[:, 5] = True
    return ids, torch.randn(B, N, 3, IMG, IMG, generator=g), media


def test_at_init_the_logits_are_the_frozen_decoders_exactly():
    torch.manual_seed(0)
    lm = tiny_lm()
    frozen = copy.deepcopy(lm)  # taken before Flamingo hooks its gated layers into lm's blocks
    model = Flamingo(lm, tiny_vision(), FlamingoConfig(cross_attention_interval=1, n_latents=3, resampler_depth=1))
    ids, pixels, media = _batch()
    with torch.no_grad():
        expected = frozen(ids).logits
        assert torch.equal(model(ids, pixel_values=pixels, media_locations=media).logits, expected)
        assert torch.equal(model(ids).logits, expected)  # text only
        assert torch.equal(model.decoder(ids).logits, expected)  # the decoder alone stays the plain LM


def test_gated_layers_sit_before_every_kth_block():
    assert sorted(tiny_flamingo(cross_attention_interval=2).gated) == ["0", "2"]
    assert sorted(tiny_flamingo(cross_attention_interval=1).gated) == ["0", "1", "2", "3"]


def test_the_decoder_is_the_lms_config_with_gated_layers_built_by_build_model():
    """A Flamingo decoder is data: the LM's ModelConfig with 'gated' entries in cross_attentions, before
    blocks 0, k, 2k, ... (IDEFICS' cross_layer_interval). build_model makes the modules Flamingo adds to a
    plain LM, and a Flamingo on that built decoder computes the same logits."""
    model = tiny_flamingo()
    _randomise_gates(model)
    config = model.decoder.config
    assert [config.cross_kind(i) for i in range(4)] == ["gated", "none", "gated", "none"]
    assert config == model.config.decoder_config(tiny_lm().config, 24)
    built = build_model(config)
    assert {k: v.shape for k, v in built.state_dict().items()} == {k: v.shape for k, v in model.decoder.state_dict().items()}
    built.load_state_dict(model.decoder.state_dict())
    other = Flamingo(built, copy.deepcopy(model.vision), model.config).eval()
    other.resampler.load_state_dict(model.resampler.state_dict())
    assert [n for n, p in other.named_parameters() if p.requires_grad] == \
        [n for n, p in model.named_parameters() if p.requires_grad]
    ids, pixels, media = _batch()
    with torch.no_grad():
        assert torch.equal(other(ids, pixel_values=pixels, media_locations=media).logits,
                           model(ids, pixel_values=pixels, media_locations=media).logits)


LM = get_config("llama-2-7b").replace(vocab_size=64, d_model=32, n_layers=4, n_heads=4, d_ff=48, max_seq_len=32)


@pytest.mark.parametrize("make, message", [
    (lambda: get_config("bert-base-uncased").replace(cross_attentions=("gated",)), "layer 0: cross_attentions 'gated'"),
    (lambda: LM.replace(cross_attentions=("none", "gated"), share_layers=True), "layer 1: cross_attentions 'gated'"),
    (lambda: LM.replace(cross_attentions=("gated",), xattn_gate="per-head"), "layer 0: xattn_gate 'per-head'"),
    (lambda: LM.replace(cross_attentions=("none", "gated"), xattn_heads=3), "layer 1: xattn_heads=3 must divide"),
    (lambda: FlamingoConfig().decoder_config(LM.replace(cross_attentions=("chunked",), cca_chunk=2), 24),
     "has cross_attentions=\\('chunked',\\)"),
])
def test_bad_gated_specs_name_the_layer(make, message):
    with pytest.raises(ConfigError, match=message) as info:
        make()
    assert "\n" not in str(info.value)


def test_a_cross_attention_layer_given_the_other_kinds_memory_names_the_layer():
    from llmzoo.nn.block import Block
    from llmzoo.nn.gated_cross_attention import VisualMemory

    x = torch.randn(1, 4, 32)
    gated = Block(LM.replace(cross_attentions=("none", "gated")), 1)
    with pytest.raises(LlmzooError, match="layer 1: gated cross-attention reads Flamingo's visual tokens"):
        gated(x, cross_states=object())  # e.g. RETRO's neighbours
    chunked = Block(LM.replace(cross_attentions=("chunked",), cca_chunk=2), 0)
    with pytest.raises(LlmzooError, match="layer 0: chunked cross-attention reads RETRO's neighbours"):
        chunked(x, cross_states=VisualMemory())


def test_one_step_changes_only_the_new_parameters():
    model = tiny_flamingo().train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    new = {n for n, p in model.named_parameters() if n.startswith("resampler.") or ".gated_cross_attn." in n}
    assert {n for n, p in model.named_parameters() if p.requires_grad} == new
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-2)
    ids, pixels, media = _batch()
    loss = model(ids[:, :-1], pixel_values=pixels, media_locations=media[:, :-1], targets=ids[:, 1:]).loss
    loss.backward()
    opt.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    # The gates get gradients first (tanh'(0) = 1); everything the gates multiply has none until they open.
    assert changed and changed <= new
    gates = [f"decoder.layers.{i}.gated_cross_attn.{alpha}" for i in model.gated for alpha in ("alpha_attn", "alpha_ffn")]
    assert set(gates) <= changed


def test_with_open_gates_the_loss_reaches_the_resampler_through_the_frozen_parts():
    model = tiny_flamingo().train()
    _randomise_gates(model)
    ids, pixels, media = _batch()
    model(ids[:, :-1], pixel_values=pixels, media_locations=media[:, :-1], targets=ids[:, 1:]).loss.backward()
    assert model.resampler.latents.grad.abs().sum() > 0 and model.gated["2"].k_proj.weight.grad.abs().sum() > 0
    frozen = [p for n, p in model.decoder.named_parameters() if ".gated_cross_attn." not in n]
    assert all(p.grad is None for p in [*frozen, *model.vision.parameters()])


def test_a_token_sees_only_its_most_recent_image():
    model = tiny_flamingo()
    _randomise_gates(model)
    ids, pixels, media = _batch()
    other_first = pixels.clone()
    other_first[:, 0] = torch.randn_like(pixels[:, 0])
    other_second = pixels.clone()
    other_second[:, 1] = torch.randn_like(pixels[:, 1])
    with torch.no_grad():
        base = model(ids, pixel_values=pixels, media_locations=media).logits
        a = model(ids, pixel_values=other_first, media_locations=media).logits
        b = model(ids, pixel_values=other_second, media_locations=media).logits
    # Positions 1-4 read image 1, 5-9 image 2, position 0 none. Across the whole model, later tokens still
    # reach image 1 through self-attention over the tokens that read it (the paper, section 2.3), so the
    # whole-model check is that nothing sees a later image; the per-image mask itself is checked on a layer.
    assert torch.equal(base[:, 0], a[:, 0]) and torch.equal(base[:, :5], b[:, :5])
    assert not torch.allclose(base[:, 1:5], a[:, 1:5]) and not torch.allclose(base[:, 5:], b[:, 5:])
    layer = model.gated["0"]
    x = torch.randn(2, 10, 32)
    with torch.no_grad():
        v1, v2 = model.encode_images(pixels), model.encode_images(other_first)
        masks = media_masks(media.long().cumsum(1), 2, 3)
        out1, out2 = layer(x, v1, *masks), layer(x, v2, *masks)
    assert torch.equal(out1[:, 5:], out2[:, 5:])  # tokens after image 2 ignore a changed image 1
    assert not torch.allclose(out1[:, 1:5], out2[:, 1:5])


def test_a_row_with_fewer_images_ignores_the_padding_image():
    model = tiny_flamingo()
    _randomise_gates(model)
    ids, pixels, media = _batch()
    media[1, 5] = False  # row 1 has one image; its pixel_values[1, 1] is padding
    padded = pixels.clone()
    padded[1, 1] = 0.0
    with torch.no_grad():
        a = model(ids, pixel_values=pixels, media_locations=media).logits
        b = model(ids, pixel_values=padded, media_locations=media).logits
    assert torch.equal(a[1], b[1]) and torch.equal(a[0], b[0])


def test_tokens_before_any_image_get_no_cross_attention():
    layer = GatedCrossAttentionDense(get_config("llama-2-7b").replace(d_model=32, n_heads=4, d_ff=48), 24)
    with torch.no_grad():
        layer.alpha_attn.fill_(1.0)  # FFN gate stays 0: the output is x + the cross-attention alone
    x, visual = torch.randn(1, 4, 32), torch.randn(1, 3, 24)
    index = torch.tensor([[0, 0, 1, 1]])
    out = layer(x, visual, *media_masks(index, 1, 3))
    assert torch.equal(out[:, :2], x[:, :2]) and not torch.allclose(out[:, 2:], x[:, 2:])


def test_cached_decoding_equals_the_full_forward():
    model = tiny_flamingo()
    _randomise_gates(model)
    ids, pixels, media = _batch()
    with torch.no_grad():
        full = model(ids, pixel_values=pixels, media_locations=media).logits
        cache = Cache.for_model(model, batch_size=2, max_len=16)
        steps = [model(ids[:, :4], pixel_values=pixels, media_locations=media[:, :4], cache=cache).logits]
        cache.advance(4)
        for t in range(4, 10):  # the second image's token (position 5) arrives while decoding
            steps.append(model(ids[:, t:t + 1], media_locations=media[:, t:t + 1], cache=cache).logits)
            cache.advance(1)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-5, atol=1e-5)


def test_an_image_token_decoded_without_pixels_reads_no_image():
    """An <image> generated while decoding has no pixels: its tokens get no cross-attention, and every
    row of the mask keeps an allowed key (an all-masked softmax row is NaN on some backends)."""
    allowed, has_media = media_masks(torch.tensor([[0, 1, 2]]), n_images=1, tokens_per_image=3)
    assert has_media.tolist() == [[False, True, False]]
    assert allowed.any(-1).all()
    model = tiny_flamingo()
    _randomise_gates(model)
    ids, pixels, media = _batch()
    with torch.no_grad():
        cache = Cache.for_model(model, batch_size=2, max_len=16)
        model(ids[:, :4], pixel_values=pixels[:, :1], media_locations=media[:, :4], cache=cache)
        cache.advance(4)
        step = model(ids[:, 4:5], media_locations=torch.ones(2, 1, dtype=torch.bool), cache=cache).logits
    assert torch.isfinite(step).all()


@pytest.mark.parametrize("make, field", [
    (lambda: Flamingo(tiny_lm(), None, FlamingoConfig()), "vision is None"),
    (lambda: Flamingo(tiny_lm(), tiny_vision(), FlamingoConfig(cross_attention_interval=9)), "cross_attention_interval=9"),
    (lambda: FlamingoConfig(cross_attention_interval=0), "cross_attention_interval"),
    (lambda: FlamingoConfig(gate="per-head"), "gate"),
    (lambda: FlamingoConfig(resampler_activation="gelu2"), "resampler_activation"),
    (lambda: Flamingo(tiny_lm(share_layers=True), tiny_vision(), FlamingoConfig(cross_attention_interval=1)), "share_layers"),
])
def test_bad_configs_name_the_field(make, field):
    with pytest.raises(ConfigError, match=field) as info:
        make()
    assert "\n" not in str(info.value)


def test_more_image_positions_than_images_is_a_clear_error():
    model = tiny_flamingo()
    ids, pixels, media = _batch()
    with pytest.raises(LlmzooError, match="pixel_values holds 1"):
        model(ids, pixel_values=pixels[:, :1], media_locations=media)
    with pytest.raises(LlmzooError, match="pixel_values holds 0"):
        model(ids, media_locations=media)


def test_image_token_id_marks_the_images():
    model = tiny_flamingo(image_token_id=7)
    _randomise_gates(model)
    ids, pixels, media = _batch()
    ids = ids.masked_fill(ids == 7, 8).masked_fill(media, 7)
    with torch.no_grad():
        torch.testing.assert_close(model(ids, pixel_values=pixels).logits,
                                   model(ids, pixel_values=pixels, media_locations=media).logits, rtol=0, atol=0)


# --- transformers' IDEFICS: its layers are Flamingo's, so copying their weights must give equal outputs ---

def _idefics_config(**kw):
    transformers = pytest.importorskip("transformers")
    config = transformers.IdeficsConfig(
        hidden_size=32, num_attention_heads=4, intermediate_size=48, num_hidden_layers=2, vocab_size=64,
        vision_config=dict(embed_dim=24, image_size=IMG, patch_size=8, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=40),
        perceiver_config=dict(use_resampler=True, resampler_n_latents=4, resampler_depth=2, resampler_n_heads=2,
                              resampler_head_dim=8, qk_layer_norms_perceiver=True), **kw)
    config._attn_implementation = "eager"
    return config


PERCEIVER_KEYS = {"0.context_layer_norm": "attn.context_norm", "0.latents_layer_norm": "attn.latents_norm",
                  "0.q_layer_norm": "attn.q_norm", "0.k_layer_norm": "attn.k_norm", "0.output_proj": "attn.o_proj",
                  "0.q_proj": "attn.q_proj", "0.k_proj": "attn.k_proj", "0.v_proj": "attn.v_proj",
                  "1.ln": "ffn.norm", "1.fc": "ffn.up_proj", "1.c_proj": "ffn.down_proj"}


def _perceiver_key(name: str) -> str:
    """IDEFICS' perceiver names -> ours: blocks.i.0 is the attention, blocks.i.1 the FFW."""
    if name.startswith("blocks."):
        _, i, part, leaf = name.split(".", 3)  # blocks, i, 0|1, "q_proj.weight"
        module, param = leaf.rsplit(".", 1)
        return f"layers.{i}.{PERCEIVER_KEYS[f'{part}.{module}']}.{param}"
    return name.replace("layer_norm.", "norm.")


def test_perceiver_resampler_equals_idefics():
    from transformers.models.idefics.perceiver import IdeficsPerceiverResampler

    torch.manual_seed(0)
    ref = IdeficsPerceiverResampler(_idefics_config(), 24, 2, 2, 8, 4).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_(0, 0.5)  # not the init's ones and zeros, so every norm's weight and bias matters
    ours = PerceiverResampler(24, n_latents=4, depth=2, n_heads=2, head_dim=8, activation="relu", qk_norm=True).eval()
    ours.load_state_dict({_perceiver_key(k): v for k, v in ref.state_dict().items()}, strict=True)
    features = torch.randn(3, 5, 24)
    with torch.no_grad():
        torch.testing.assert_close(ours(features), ref(features), rtol=1e-5, atol=1e-5)


GATED_KEYS = {"alpha_cross_attn": "alpha_attn", "alpha_dense": "alpha_ffn", "input_layernorm.weight": "attn_norm.weight",
              "post_attention_layernorm.weight": "ffn_norm.weight", "cross_attn.q_layer_norm.weight": "q_norm.weight",
              "cross_attn.k_layer_norm.weight": "k_norm.weight"}


@pytest.mark.parametrize("alpha_type", ["float", "vector"])
def test_gated_cross_attention_layer_equals_idefics(alpha_type):
    from transformers.models.idefics.modeling_idefics import IdeficsGatedCrossAttentionLayer

    torch.manual_seed(0)
    config = _idefics_config(qk_layer_norms=True, alpha_type=alpha_type)
    ref = IdeficsGatedCrossAttentionLayer(config, layer_idx=0).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_(0, 0.5)  # opens the gates too
    lm = get_config("llama-2-7b").replace(d_model=32, n_heads=4, d_ff=48, norm_eps=config.rms_norm_eps)
    ours = GatedCrossAttentionDense(lm, 24, gate="scalar" if alpha_type == "float" else "vector", qk_norm=True).eval()
    state = {GATED_KEYS.get(k, k.removeprefix("cross_attn.")): v for k, v in ref.state_dict().items()}
    ours.load_state_dict({k: v.reshape(-1) if k.startswith("alpha") else v for k, v in state.items()}, strict=True)
    x, visual = torch.randn(2, 6, 32), torch.randn(2, 2 * 4, 24)  # two images of 4 visual tokens
    index = torch.tensor([[0, 1, 1, 2, 2, 2], [0, 0, 1, 1, 1, 2]])
    allowed, has_media = media_masks(index, 2, 4)
    additive = torch.zeros(allowed.shape).masked_fill(~allowed, torch.finfo(torch.float32).min)
    with torch.no_grad():
        expected = ref(x, image_hidden_states=visual, image_attention_mask=additive,
                       cross_attention_gate=has_media.float())
        torch.testing.assert_close(ours(x, visual, allowed, has_media), expected, rtol=1e-5, atol=1e-5)


def _idefics_to_flamingo(state: dict[str, torch.Tensor], interval: int, old_layout: bool = False) -> dict[str, torch.Tensor]:
    """A whole IdeficsForVisionText2Text state dict in Flamingo's names: LLaMA decoder, CLIP-style
    vision tower (the CLIP converter's key map), perceiver, and gated layer j before block j * interval:
    part of that block, or (old_layout) under `gated.{block}` as Flamingo named them before they were."""
    from llmzoo.convert.families.clip import KEY_MAP as CLIP_KEYS

    decoder_keys = {"input_layernorm": "attn_norm", "post_attention_layernorm": "mlp_norm"}
    out = {}
    for key, value in state.items():
        if key.startswith("model.vision_model."):
            layer = re.search(r"layers\.(\d+)\.", key)
            pattern = CLIP_KEYS[re.sub(r"layers\.\d+\.", "layers.{i}.", key.removeprefix("model."))]
            name = pattern.replace("{i}", layer.group(1)) if layer else pattern  # "vision.<ours>"
        elif key.startswith("model.perceiver_resampler."):
            name = "resampler." + _perceiver_key(key.removeprefix("model.perceiver_resampler."))
        elif key.startswith("model.gated_cross_attn_layers."):
            j, rest = key.removeprefix("model.gated_cross_attn_layers.").split(".", 1)
            rest = GATED_KEYS.get(rest, rest.removeprefix("cross_attn."))
            where = f"gated.{int(j) * interval}" if old_layout else f"decoder.layers.{int(j) * interval}.gated_cross_attn"
            name, value = f"{where}.{rest}", value.reshape(-1) if rest.startswith("alpha") else value
        elif key.startswith("model.layers."):
            i, module, rest = key.removeprefix("model.layers.").split(".", 2)
            name = f"decoder.layers.{i}.{decoder_keys.get(module, module)}.{rest}"
        else:
            name = {"model.embed_tokens.weight": "decoder.embeddings.tokens.weight", "model.norm.weight": "decoder.norm.weight",
                    "lm_head.weight": "decoder.lm_head.weight"}[key]
        out[name] = value
    return out


@pytest.mark.parametrize("old_layout", [False, True])
def test_whole_model_equals_idefics_with_copied_weights(old_layout):
    """IDEFICS' forward end to end: vision tower -> perceiver -> gated layers every cross_layer_interval-th
    block of a LLaMA decoder, with its image_attention_mask saying which image each token reads. A state
    dict in the layout Flamingo saved before its gated layers joined the blocks loads the same."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.IdeficsConfig(
        hidden_size=32, num_attention_heads=4, intermediate_size=48, num_hidden_layers=4, vocab_size=64,
        cross_layer_interval=2, use_resampler=True, vision_config=dict(embed_dim=24, image_size=IMG, patch_size=8, num_hidden_layers=1,
                                                   num_attention_heads=2, intermediate_size=40),
        perceiver_config=dict(use_resampler=True, resampler_n_latents=3, resampler_depth=2, resampler_n_heads=2,
                              resampler_head_dim=8))
    config._attn_implementation = "eager"
    ref = transformers.IdeficsForVisionText2Text(config).eval()
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if "alpha" in name:
                p.normal_(0, 1.0)  # IDEFICS starts them at 0 too: open them so the images matter
    lm = tiny_lm(norm_eps=config.rms_norm_eps)
    vision = VisionTower(VisionConfig(image_size=IMG, patch_size=8, d_model=24, n_layers=1, n_heads=2, d_ff=40,
                                      activation="gelu"))
    ours = Flamingo(lm, vision, FlamingoConfig(cross_attention_interval=2, n_latents=3, resampler_depth=2,
                                               resampler_heads=2, resampler_head_dim=8, resampler_activation="relu")).eval()
    ours.load_state_dict(_idefics_to_flamingo(ref.state_dict(), 2, old_layout), strict=True)
    ids, pixels, media = _batch()
    index = media.long().cumsum(1)  # (B, T): which image each token reads, 1-based
    image_attention_mask = torch.nn.functional.one_hot(index, 3)[..., 1:]  # (B, T, N): 0 = no image
    with torch.no_grad():
        expected = ref(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=pixels,
                       image_attention_mask=image_attention_mask).logits
        torch.testing.assert_close(ours(ids, pixel_values=pixels, media_locations=media).logits, expected,
                                   rtol=1e-4, atol=1e-4)
        assert not torch.allclose(expected, ours.decoder(ids).logits, atol=1e-3)  # the images do change the logits
