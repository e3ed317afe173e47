"""The training task adds the MoE routers' losses with their configured weights: Switch's
load-balancing loss (Fedus et al. 2021) and, when switched on, ST-MoE's router z-loss (Zoph et al.
2022): task loss = cross-entropy + aux_coef * aux_loss + z_coef * z_loss, computed here by hand."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from llmzoo.config import ModelConfig
from llmzoo.models.build import build_model
from llmzoo.train.task import Task


def test_task_loss_adds_load_balancing_and_z_loss_with_their_weights():
    config = ModelConfig(name="tiny-switch", vocab_size=61, d_model=16, n_layers=2, n_heads=2, d_ff=24,
                         max_seq_len=32, ffns=("dense", "moe"), n_experts=4, n_experts_per_token=1,
                         moe_kind="switch", moe_renormalize=False, moe_aux_loss_coef=0.03, moe_z_loss_coef=0.002)
    torch.manual_seed(0)
    model = build_model(config)
    rows = torch.randint(0, 61, (2, 17))
    task = Task(16, config)
    batch = task.make_batch(rows, torch.Generator())
    out = model(**task.model_inputs(batch))
    assert out.get("aux_loss") is not None and out.get("z_loss") is not None and float(out.z_loss) > 0
    ce = F.cross_entropy(out.logits.reshape(-1, 61), batch["labels"].reshape(-1))
    want = ce + 0.03 * out.aux_loss + 0.002 * out.z_loss
    torch.testing.assert_close(task.loss(out, batch), want)
