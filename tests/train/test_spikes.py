"""Loss-spike recovery (PaLM section 5.1; OPT logbook): a NaN or a loss far above the running
median rewinds to the last checkpoint, skips the batches around the spike, optionally lowers the
learning rate, and training finishes without NaN."""

from __future__ import annotations

import math

import pytest

from llmzoo.errors import LlmzooError
from llmzoo.train.loop import train
from llmzoo.train.metrics import read_metrics
from llmzoo.train.optim import lr_at
from llmzoo.train.recipe import recipe_from_dict
from llmzoo.train.spikes import SpikeDetector
from tests.train.helpers import faults, make_token_data, tiny_recipe


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_token_data(tmp_path_factory.mktemp("spikes") / "data")


def _events(run_dir):
    return [r for r in read_metrics(run_dir) if r.get("event") == "spike"]


def _train_records(run_dir):
    return [r for r in read_metrics(run_dir) if r.get("kind") == "train"]


def _inject(monkeypatch, **spec):
    for key, value in faults(**spec).items():
        monkeypatch.setenv(key, value)


def test_nan_loss_rewinds_skips_batches_and_lowers_lr(data, tmp_path, monkeypatch):
    _inject(monkeypatch, nan_batches=[6])
    recipe = recipe_from_dict(tiny_recipe(data, tmp_path / "run", max_steps=16, checkpoint_every=4,
                                          spike_skip_after=2, spike_lr_factor=0.5))
    result = train(recipe)

    [event] = _events(tmp_path / "run")
    assert event["reason"] == "nan" and event["step"] == 7
    assert event["rewind_to"] == 4  # the newest checkpoint before the spike
    assert event["skipped_batches"] == [4, 9]  # batches 4..6 since the checkpoint, the spike's, and 2 more
    records = _train_records(tmp_path / "run")
    assert [r["step"] for r in records] == list(range(1, 17))  # one clean timeline, all steps done
    assert all(math.isfinite(r["loss"]) for r in records)
    after = [r for r in records if r["step"] > 4]
    assert [r["batch"] for r in after] == list(range(9, 9 + len(after)))  # skipped batches never used
    for r in after:  # the learning rate is halved from the rewind on
        assert r["lr"] == pytest.approx(0.5 * lr_at(r["step"] - 1, recipe))
    assert result.rewinds and result.steps == 16


def test_loss_far_above_running_median_is_a_spike(data, tmp_path, monkeypatch):
    _inject(monkeypatch, spike_batches=[10])
    recipe = recipe_from_dict(tiny_recipe(data, tmp_path / "run", max_steps=14, checkpoint_every=5,
                                          spike_factor=3.0, spike_min_history=4))
    train(recipe)
    [event] = _events(tmp_path / "run")
    assert "running median" in event["reason"] and event["loss"] > 100
    assert event["rewind_to"] == 10 and event["skipped_batches"] == [10, 11]
    records = _train_records(tmp_path / "run")
    assert max(r["loss"] for r in records) < 10 and [r["step"] for r in records] == list(range(1, 15))


def test_repeated_spikes_stop_with_a_clear_error(data, tmp_path, monkeypatch):
    _inject(monkeypatch, nan_batches=list(range(3, 40)))
    recipe = recipe_from_dict(tiny_recipe(data, tmp_path / "run", max_steps=10, checkpoint_every=2, max_rewinds=2))
    with pytest.raises(LlmzooError, match="training diverged.*after 2 rewinds"):
        train(recipe)


def test_spike_without_checkpoint_is_a_clear_error(data, tmp_path, monkeypatch):
    _inject(monkeypatch, nan_batches=[2])
    recipe = recipe_from_dict(tiny_recipe(data, tmp_path / "run", max_steps=6, checkpoint_every=0))
    with pytest.raises(LlmzooError, match="no checkpoint to rewind to"):
        train(recipe)


def test_detector_uses_running_median():
    detector = SpikeDetector(factor=2.0, window=5, min_history=3)
    assert detector.is_spike(100.0) is None  # too little history to judge
    for loss in (4.0, 3.0, 100.0, 2.0, 3.5):  # one outlier does not move the median
        detector.add(loss)
    assert detector.median() == 3.5
    assert detector.is_spike(7.1) and detector.is_spike(6.9) is None
    assert detector.is_spike(float("nan")) == "nan" and detector.is_spike(float("inf")) == "inf"
