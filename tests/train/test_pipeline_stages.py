"""parallel=pp's stages, chained in one process, compute the whole model's logits, including the
steps outside the layer stack (PanGu-alpha's query layer, OPT's project_out, GLM-130B's embedding
gradient shrink); what a stage cannot compute is refused from the config, before any process starts."""

import pytest
import torch

from llmzoo.config import ModelConfig
from llmzoo.errors import ConfigError
from llmzoo.models.build import build_model
from llmzoo.train.pipeline import StageModule, check_pipeline

BASE = dict(vocab_size=97, d_model=32, n_layers=4, n_heads=4, d_ff=64, max_seq_len=32, tie_embeddings=False)


@pytest.mark.parametrize("extra", [{}, {"top_query_layer": True}, {"embed_dim": 16}, {"embed_grad_scale": 0.1}],
                         ids=["plain", "pangu-query-layer", "opt-project-out", "glm-grad-shrink"])
@pytest.mark.parametrize("stages", [2, 3])
def test_chained_stages_equal_the_whole_model(extra, stages):
    torch.manual_seed(0)
    config = ModelConfig(**BASE, **extra)
    check_pipeline(config, stages, "clm")
    model = build_model(config).eval()
    ids = torch.randint(0, config.vocab_size, (2, 11))
    h = ids
    for stage in range(stages):
        h = StageModule(model, stage, stages)(h)
    torch.testing.assert_close(h, model(ids).logits)
    h.sum().backward()  # every parameter of the model is some stage's and gets a gradient
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("position", ["relative_bias", "xl_relative"])
def test_positions_shared_across_stages_are_refused(position):
    extra = {"mem_len": 8} if position == "xl_relative" else {}
    with pytest.raises(ConfigError, match=f"parallel=pp does not split position='{position}'"):
        check_pipeline(ModelConfig(**BASE, position=position, **extra), 2, "clm")
