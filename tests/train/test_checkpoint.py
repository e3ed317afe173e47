"""Checkpoint files: a faithful round trip, atomic visibility, pruning, and clear errors."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from llmzoo.config import ModelConfig
from llmzoo.errors import CheckpointError
from llmzoo.models.build import build_model
from llmzoo.train import checkpoint as ckpt_io
from llmzoo.train.optim import param_groups


def _state(step: int = 3) -> ckpt_io.TrainingState:
    config = ModelConfig(vocab_size=40, d_model=16, n_layers=1, n_heads=2, d_ff=32, max_seq_len=8)  # tied head
    torch.manual_seed(0)
    model = build_model(config)
    optimizer = torch.optim.AdamW(param_groups(model, 0.1), lr=1e-3, fused=True)
    for _ in range(step):
        model(torch.randint(0, 40, (2, 8))).logits.square().mean().backward()
        optimizer.step()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    opt = get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True))
    return ckpt_io.TrainingState(model.state_dict(), opt, {"step": step, "samples": 12, "rng": {"0": {"x": [1, 2]}}},
                                 config, {"name": "t", "lr": 1e-3})


def test_round_trip_is_exact(tmp_path):
    state = _state()
    path = ckpt_io.save_checkpoint(tmp_path, 3, state)
    assert path.name == "step_0000003" and (path / "COMPLETE").is_file()
    back = ckpt_io.load_checkpoint(path)
    assert back.model.keys() == state.model.keys()
    assert all(torch.equal(back.model[k], v) for k, v in state.model.items())  # tied head saved as its own copy
    for name, entries in state.optimizer["state"].items():
        for key, value in entries.items():
            assert torch.equal(back.optimizer["state"][name][key], value), (name, key)
    assert back.optimizer["param_groups"] == state.optimizer["param_groups"]  # betas back as a tuple
    assert back.trainer == state.trainer and back.config == state.config and back.recipe == state.recipe


def test_checkpoint_files_get_the_umasks_mode(tmp_path):
    """safetensors writes 0600 whatever the umask; a checkpoint is as readable as the run's other files."""
    old = os.umask(0o022)
    try:
        path = ckpt_io.save_checkpoint(tmp_path, 3, _state())
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.iterdir()}
    assert set(modes.values()) == {0o644}, modes


def test_only_complete_checkpoints_count_and_old_ones_are_pruned(tmp_path):
    state = _state(1)
    for step in (1, 2, 3, 4):
        ckpt_io.save_checkpoint(tmp_path, step, state, keep_last=2)
    assert [p.name for p in ckpt_io.complete_checkpoints(tmp_path)] == ["step_0000003", "step_0000004"]
    assert not (tmp_path / "checkpoints" / "step_0000001").exists()
    (tmp_path / "checkpoints" / "step_0000004" / "COMPLETE").unlink()  # as if the marker never got written
    assert ckpt_io.find_checkpoint(tmp_path).name == "step_0000003"
    with pytest.raises(CheckpointError, match="incomplete checkpoint"):
        ckpt_io.find_checkpoint(tmp_path / "checkpoints" / "step_0000004")


def test_damaged_or_missing_checkpoints_are_one_line_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        ckpt_io.find_checkpoint(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        ckpt_io.find_checkpoint(tmp_path)
    path = ckpt_io.save_checkpoint(tmp_path, 1, _state(1))
    (path / "model.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match="not a readable safetensors file") as info:
        ckpt_io.load_checkpoint(path)
    assert "\n" not in str(info.value)


def test_config_differences_name_every_changed_field():
    a = ModelConfig(d_model=64, n_heads=4, n_layers=2)
    b = a.replace(d_model=128, n_layers=3)
    assert ckpt_io.config_differences(a, b) == ["d_model 64 != 128", "n_layers 2 != 3"]
