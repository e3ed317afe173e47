"""CLIP against transformers' CLIPModel: load, save, the four outputs, the loss, the config's errors."""

from __future__ import annotations

import pytest
import torch

import llmzoo
from llmzoo.errors import ConfigError, LlmzooError
from llmzoo.models.build import build_model, count_parameters
from llmzoo.models.clip import zero_shot_classify
from llmzoo.models.clip_config import CLIPConfig, VisionConfig, clip_text_config

transformers = pytest.importorskip("transformers")

OUTPUTS = ("logits_per_image", "logits_per_text", "text_embeds", "image_embeds")
EOS, PAD = 98, 0


def tiny_hf(eos_token_id: int = EOS, **changes) -> "transformers.CLIPModel":
    torch.manual_seed(0)
    config = transformers.CLIPConfig(
        text_config=dict(vocab_size=99, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                         max_position_embeddings=16, eos_token_id=eos_token_id, pad_token_id=PAD, bos_token_id=97),
        vision_config=dict(hidden_size=24, intermediate_size=40, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=20, **changes)
    model = transformers.CLIPModel(config).eval()
    with torch.no_grad():  # a temperature other than the default, so a dropped logit_scale shows
        model.logit_scale.fill_(1.7)
    return model


def batch(eos: int = EOS, n: int = 3) -> dict[str, torch.Tensor]:
    """Right-padded captions of different lengths, each ending in EOS, and random images."""
    g = torch.Generator().manual_seed(1)
    lengths = torch.tensor([10, 7, 5, 9][:n])
    ids = torch.randint(1, 90, (n, 10), generator=g)
    ids[torch.arange(n), lengths - 1] = eos
    mask = (torch.arange(10)[None] < lengths[:, None]).long()
    ids = ids.masked_fill(mask == 0, PAD)
    return {"input_ids": ids, "attention_mask": mask, "pixel_values": torch.randn(n, 3, 32, 32, generator=g)}


def assert_same_outputs(ours, theirs, inputs) -> None:
    with torch.no_grad():
        a = ours(**inputs, return_loss=True)
        b = theirs(**inputs, return_loss=True)
    for name in (*OUTPUTS, "loss"):
        torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=1e-5, msg=name)


def test_load_transformers_clip(tmp_path):
    ref = tiny_hf()
    ref.save_pretrained(tmp_path)
    model = llmzoo.load(tmp_path)
    assert isinstance(model.config, CLIPConfig)
    assert_same_outputs(model, ref, batch())
    inputs = batch()
    with torch.no_grad():
        torch.testing.assert_close(model.get_text_features(inputs["input_ids"], inputs["attention_mask"]),
                                   ref.get_text_features(input_ids=inputs["input_ids"],
                                                         attention_mask=inputs["attention_mask"]).pooler_output,
                                   atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model.get_image_features(inputs["pixel_values"]),
                                   ref.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output,
                                   atol=1e-5, rtol=1e-5)


def test_legacy_eos_token_id_2_pools_at_the_largest_id(tmp_path):
    # Configs from before transformers knew CLIP's EOS id say 2: the argmax of the ids is pooled.
    ref = tiny_hf(eos_token_id=2)
    ref.save_pretrained(tmp_path)
    model = llmzoo.load(tmp_path)
    assert_same_outputs(model, ref, batch(eos=EOS))


def test_save_hf_loads_in_transformers(tmp_path):
    config = CLIPConfig(
        text=clip_text_config(vocab_size=99, d_model=32, n_layers=2, n_heads=4, d_ff=37, max_seq_len=16,
                              eos_token_id=EOS, pad_token_id=PAD, bos_token_id=97),
        vision=VisionConfig(image_size=32, patch_size=8, d_model=24, n_layers=2, n_heads=2, d_ff=40),
        projection_dim=20, logit_scale_init=1.3)
    torch.manual_seed(0)
    model = build_model(config).eval()
    llmzoo.save(model, tmp_path, format="hf")
    ref = transformers.CLIPModel.from_pretrained(tmp_path).eval()
    assert_same_outputs(model, ref, batch())
    assert llmzoo.load(tmp_path).config == config.replace(name="clip")  # config.json alone carries it


def test_contrastive_loss_and_zero_shot():
    model = build_model(CLIPConfig(
        text=clip_text_config(vocab_size=99, d_model=32, n_layers=1, n_heads=4, d_ff=37, max_seq_len=16,
                              eos_token_id=EOS),
        vision=VisionConfig(image_size=32, patch_size=8, d_model=24, n_layers=1, n_heads=2, d_ff=40),
        projection_dim=20)).eval()
    inputs = batch()
    with torch.no_grad():
        out = model(**inputs, return_loss=True)
    # the paper's Figure 3: mean of cross-entropy over images (rows of logits_per_image) and over texts
    targets = torch.arange(3)
    expected = (torch.nn.functional.cross_entropy(out.logits_per_image, targets)
                + torch.nn.functional.cross_entropy(out.logits_per_text, targets)) / 2
    torch.testing.assert_close(out.loss, expected)
    torch.testing.assert_close(out.image_embeds.norm(dim=-1), torch.ones(3))
    probs = zero_shot_classify(model, inputs["pixel_values"], inputs["input_ids"], inputs["attention_mask"])
    torch.testing.assert_close(probs, out.logits_per_image.softmax(-1))
    with pytest.raises(LlmzooError, match="as many of each"):
        model(input_ids=inputs["input_ids"], pixel_values=inputs["pixel_values"][:2], return_loss=True)
    with pytest.raises(LlmzooError, match="pixel_values has shape"):
        model.get_image_features(torch.zeros(1, 3, 30, 30))
    with pytest.raises(LlmzooError, match="pass pixel_values"):
        model(input_ids=inputs["input_ids"])


@pytest.mark.parametrize(("make", "words"), [
    (lambda: CLIPConfig(text=clip_text_config().replace(norm="rmsnorm")), "norm='rmsnorm'"),
    (lambda: CLIPConfig(text=clip_text_config().replace(mlp_gated=True)), "mlp_gated=True"),
    (lambda: CLIPConfig(text=clip_text_config(eos_token_id=None)), "eos_token_id"),
    (lambda: CLIPConfig(projection_dim=0), "projection_dim"),
    (lambda: CLIPConfig(text="big"), "text must be a ModelConfig"),
    (lambda: VisionConfig(image_size=224, patch_size=30), "patch_size=30"),
    (lambda: VisionConfig(d_model=100, n_heads=12), "not divisible"),
    (lambda: VisionConfig(activation="gelu2"), "activation"),
    (lambda: CLIPConfig.from_dict({"projection_dims": 3}), "projection_dims"),
    (lambda: CLIPConfig(vision={"patch": 3}), "patch"),
])
def test_bad_composite_config_is_one_line(make, words):
    with pytest.raises(ConfigError) as info:
        make()
    message = str(info.value)
    assert words in message and "\n" not in message


def test_refuses_other_formats(tmp_path):
    model = build_model(CLIPConfig(
        text=clip_text_config(vocab_size=99, d_model=32, n_layers=1, n_heads=4, d_ff=37, max_seq_len=16),
        vision=VisionConfig(image_size=32, patch_size=8, d_model=24, n_layers=1, n_heads=2, d_ff=40),
        projection_dim=20))
    with pytest.raises(LlmzooError, match="transformers layout only"):
        llmzoo.save(model, tmp_path / "out", format="llmzoo")
    assert not (tmp_path / "out").exists()


def test_zoo_clip_vit_b32_count():
    from llmzoo.cli.models import show_data
    from llmzoo.models.zoo import get_card

    card = get_card("clip-vit-base-patch32")
    model = build_model(card.composite, device="meta")
    with torch.device("meta"):
        reference = transformers.CLIPModel(transformers.CLIPConfig())  # transformers' defaults are ViT-B/32
    n = count_parameters(model)
    assert n == sum(p.numel() for p in reference.parameters())
    assert n == card.composite.count_params() == show_data(card)["params"]
    assert abs(n - card.params_published) / card.params_published < 0.02


def test_cli_show_prints_the_count(capsys):
    from llmzoo.cli import main

    assert main(["show", "clip-vit-base-patch32"]) == 0
    out = capsys.readouterr().out
    assert "151M counted from the config" in out and "image tower" in out
