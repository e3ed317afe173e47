"""KOSMOS-1-style interleaving (Huang et al. 2023): image embeddings at placeholder positions of the
decoder's input. Properties: text-only input is the plain decoder's; the placeholders hold the images'
projected embeddings and nothing else changes; causality (text before an image does not see it); cached
decoding equals the full forward; mismatched placeholders are a clear error."""

from __future__ import annotations

import pytest
import torch

from llmzoo.errors import ConfigError, LlmzooError
from llmzoo.infer.cache import Cache
from llmzoo.models.kosmos import Kosmos, KosmosConfig
from tests.models.test_flamingo import IMG, tiny_lm, tiny_vision

IMAGE = 5  # the placeholder token id
L = 3  # embeddings per image


def tiny_kosmos() -> Kosmos:
    torch.manual_seed(0)
    return Kosmos(tiny_lm(), tiny_vision(), KosmosConfig(image_token_id=IMAGE, n_latents=L, resampler_depth=1,
                                                         resampler_heads=2, resampler_head_dim=8)).eval()


def _batch():
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(6, 64, (2, 12), generator=g)
    ids[:, 2:2 + L] = IMAGE  # image 1 at 2..4, image 2 at 7..9
    ids[:, 7:7 + L] = IMAGE
    return ids, torch.randn(2, 2, 3, IMG, IMG, generator=g)


def test_text_only_input_is_the_plain_decoders():
    model = tiny_kosmos()
    ids = torch.randint(0, 64, (2, 9))
    with torch.no_grad():
        assert torch.equal(model(ids).logits, model.decoder(ids).logits)


def test_placeholders_hold_the_image_embeddings_in_order():
    model = tiny_kosmos()
    ids, pixels = _batch()
    with torch.no_grad():
        embeds = model.embed(ids, pixels)
        images = model.image_embeddings(pixels)  # (2, 2 * L, emb)
        text = model.decoder.embeddings.tokens(ids)
    place = ids == IMAGE
    assert torch.equal(embeds[~place], text[~place])
    assert torch.equal(embeds[place].view(2, 2 * L, -1), images)


def test_text_before_an_image_does_not_see_it():
    model = tiny_kosmos()
    ids, pixels = _batch()
    other = pixels.clone()
    other[:, 1] = torch.randn_like(other[:, 1])
    with torch.no_grad():
        a, b = model(ids, pixel_values=pixels).logits, model(ids, pixel_values=other).logits
    assert torch.equal(a[:, :7], b[:, :7]) and not torch.allclose(a[:, 7:], b[:, 7:])


def test_cached_decoding_equals_the_full_forward():
    model = tiny_kosmos()
    ids, pixels = _batch()  # both images within the first 10 tokens, then text at 10 and 11
    with torch.no_grad():
        full = model(ids, pixel_values=pixels).logits
        cache = Cache.for_model(model, batch_size=2, max_len=16)
        steps = [model(ids[:, :10], pixel_values=pixels, cache=cache).logits]
        cache.advance(10)
        for t in (10, 11):  # decode steps are text: no pixel_values
            steps.append(model(ids[:, t:t + 1], cache=cache).logits)
            cache.advance(1)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("make, text", [
    (lambda: KosmosConfig(image_token_id=-1), "image_token_id"),
    (lambda: KosmosConfig(image_token_id=1, n_latents=0), "n_latents"),
    (lambda: Kosmos(tiny_lm(), tiny_vision(), KosmosConfig(image_token_id=64)), "vocab_size=64"),
])
def test_bad_configs_name_the_field(make, text):
    with pytest.raises(ConfigError, match=text):
        make()


def test_placeholder_count_mismatch_is_a_clear_error():
    model = tiny_kosmos()
    ids, pixels = _batch()
    with pytest.raises(LlmzooError, match="image placeholders"):
        model(ids, pixel_values=pixels[:, :1])
