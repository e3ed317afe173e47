"""count_params counts the per-layer cross-attention kinds (RETRO's 'chunked', Flamingo's 'gated') as the
modules build them: checked against meta-device builds, from tiny configs to the zoo's full-size RETRO 7.5B
decoder and Flamingo-80B (whose published 80B the composite count is within 2% of)."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from llmzoo.config import ModelConfig
from llmzoo.errors import ConfigError
from llmzoo.flops import count_params, matmul_params
from llmzoo.models.build import build_model, count_parameters
from llmzoo.models.clip_config import VisionConfig
from llmzoo.models.flamingo import Flamingo
from llmzoo.models.flamingo_config import FlamingoConfig
from llmzoo.models.flamingo_model_config import FlamingoModelConfig
from llmzoo.models.vision import VisionTower
from llmzoo.models.zoo import get_card
from llmzoo.nn.perceiver_resampler import PerceiverResampler

BASE = ModelConfig(d_model=64, n_layers=4, n_heads=4, d_ff=96, vocab_size=100, max_seq_len=32)

CONFIGS = {
    "chunked": BASE.replace(cross_attentions=("none", "chunked"), cca_memory_dim=48, cca_chunk=4),
    "chunked-layernorm-xl": BASE.replace(cross_attentions=("chunked",), norm="layernorm", norm_bias=False,
                                         position="xl_relative", head_dim=24),
    "gated": BASE.replace(cross_attentions=("gated", "none"), cca_memory_dim=40),
    "gated-every-option": BASE.replace(cross_attentions=("gated",), cca_memory_dim=40, xattn_heads=2, xattn_d_ff=72,
                                       xattn_gate="vector", xattn_qk_norm=True, norm="layernorm", mlp_bias=True,
                                       mlp_gated=False, activation="gelu"),
    "gated-moe": BASE.replace(cross_attentions=("gated", "none"), n_experts=4, n_experts_per_token=1),
}


@pytest.mark.parametrize("name", CONFIGS)
def test_count_params_counts_each_cross_kind_as_built(name):
    config = CONFIGS[name]
    built = count_parameters(build_model(config, device="meta"))
    assert count_params(config) == built
    assert count_params(config) > count_params(config.replace(cross_attentions=None))
    if not config.n_experts:
        assert count_params(config, active=True) == built
    else:  # the gated FFW is dense: every token uses it; only the idle experts drop out
        idle = 3 * 4 * (3 * 64 * 96)
        assert count_params(config, active=True) == built - idle


def test_retro_7_5b_decoder_counted_as_built():
    decoder = get_card("retro-7.5b").composite.decoder
    assert count_params(decoder) == count_parameters(build_model(decoder, device="meta"))


def test_flamingo_80b_decoder_counted_as_built():
    decoder = get_card("flamingo-80b").composite.decoder  # Chinchilla 70B, gated before every 7th block
    assert [i for i in range(decoder.n_layers) if decoder.cross_kind(i) == "gated"] == list(range(0, 80, 7))
    assert count_params(decoder) == count_parameters(build_model(decoder, device="meta"))


@pytest.mark.parametrize("qk_norm", [False, True])
def test_resampler_count_is_the_built_one(qk_norm):
    c = get_card("flamingo-80b").composite
    f = FlamingoConfig(resampler_heads=16, resampler_head_dim=128, resampler_qk_norm=qk_norm)
    c = FlamingoModelConfig(c.name, c.lm, f, c.vision_dim, c.vision_params)
    with torch.device("meta"):
        resampler = PerceiverResampler(c.vision_dim, n_latents=f.n_latents, depth=f.resampler_depth,
                                       n_heads=f.resampler_heads, head_dim=f.resampler_head_dim, qk_norm=qk_norm)
    assert c.resampler_params() == sum(p.numel() for p in resampler.parameters())


def test_flamingo_80b_is_within_2_percent_of_the_published_80b():
    card = get_card("flamingo-80b")
    c = card.composite
    with torch.device("meta"):
        resampler = PerceiverResampler(c.vision_dim, n_latents=64, depth=6, n_heads=16, head_dim=128)
    built = count_parameters(build_model(c.decoder, device="meta")) + sum(p.numel() for p in resampler.parameters())
    assert c.count_params() == built + 435_000_000  # NFNet-F6: the paper's 435M, not built
    assert abs(c.count_params() / card.params_published - 1) < 0.02
    assert card.approximation and "NFNet-F6" in card.approximation  # the fixed count is said


def test_show_describes_flamingo_80b(capsys):
    from llmzoo.cli import main

    assert main(["show", "flamingo-80b"]) == 0
    out = capsys.readouterr().out
    for part in ("vision encoder", "NFNet-F6", "resampler", "language model", "chinchilla-70b", "gated xattn",
                 "before blocks 1, 8, 15", "one every 7 blocks"):
        assert part in out
    assert main(["show", "flamingo-80b", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert FlamingoModelConfig.from_dict(data["config"]) == get_card("flamingo-80b").composite
    assert data["params"] == get_card("flamingo-80b").composite.count_params()


def test_bad_flamingo_model_config_is_a_config_error():
    c = get_card("flamingo-80b").composite
    with pytest.raises(ConfigError, match="vision_dim must be a positive integer"):
        FlamingoModelConfig(c.name, c.lm, c.flamingo, 0, c.vision_params)
    with pytest.raises(ConfigError, match="exceeds the LM's n_layers"):
        FlamingoModelConfig(c.name, c.lm.replace(n_layers=4), c.flamingo, c.vision_dim, c.vision_params)
    with pytest.raises(ConfigError, match="invalid FlamingoModelConfig"):
        FlamingoModelConfig.from_dict({"name": "x"})


def _flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def test_matmul_params_count_the_gated_layers_a_text_token_meets():
    # Measured: a Flamingo forward minus its image encoding is the decoder's matmuls per text token (now with
    # the gated layers' q, o and FFW) plus the k/v projections of the visual tokens, which the config leaves out.
    torch.manual_seed(0)
    lm = BASE.replace(n_layers=4)
    vision = VisionTower(VisionConfig(image_size=16, patch_size=8, d_model=24, n_layers=1, n_heads=2, d_ff=40)).eval()
    config = FlamingoConfig(cross_attention_interval=2, n_latents=3, resampler_depth=1, resampler_heads=2,
                            resampler_head_dim=8)
    model = Flamingo(build_model(lm).eval(), vision, config).eval().requires_grad_(False)
    ids, pixels = torch.randint(0, 100, (2, 10)), torch.randn(2, 1, 3, 16, 16)
    media = torch.zeros(2, 10, dtype=torch.bool)
    media[:, 0] = True
    total = _flops(lambda: model(ids, pixel_values=pixels, media_locations=media))
    images = _flops(lambda: model.encode_images(pixels))
    decoder = config.decoder_config(lm, 24)
    kv = 2 * 2 * 24 * 64 * 3 * 2 * 2  # 2 FLOPs x (k, v) x 24 -> 64 x 3 visual tokens x 2 rows x 2 gated layers
    assert total - images == 2 * matmul_params(decoder) * ids.numel() + kv
    assert matmul_params(decoder) > matmul_params(lm)
