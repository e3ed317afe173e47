"""The built-in recipe cls-minilm-sst2 the way README runs it, shortened: `llmzoo finetune --recipe
cls-minilm-sst2 max_steps=2 ...` adds a fresh classifier to all-MiniLM-L6-v2 (with a note), writes the
held-out accuracy to the run's metrics, and leaves a model that llmzoo.load and transformers'
BertForSequenceClassification both load, with equal logits."""

from __future__ import annotations

import json

import pytest
import torch
import transformers

import llmzoo
from llmzoo.cli import main
from llmzoo.tokenizer import load_tokenizer


def test_shortened_recipe_run_leaves_a_classifier_both_libraries_load(tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["finetune", "--recipe", "cls-minilm-sst2", "max_steps=2", "warmup_steps=1", "eval_every=2",
                 "eval_batches=1", "checkpoint_every=2", "data.train_fraction=0.9", "threads=1", f"run_dir={run}"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "no trained seq_cls head; classifier initialised fresh (n_labels=2)" in captured.err
    held_out = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
                if json.loads(line)["kind"] == "held_out"]
    assert len(held_out) == 1 and held_out[0]["examples"] == 87  # 10% of SST-2's 872 sentences
    assert 0.0 <= held_out[0]["accuracy"] <= 1.0
    assert f"held-out accuracy {held_out[0]['accuracy']:.4g}" in captured.out

    model = llmzoo.load(run / "model").eval()
    assert model.config.head == "seq_cls" and model.config.n_labels == 2
    tokenizer = load_tokenizer(run / "model")
    ids = torch.tensor([tokenizer.encode("a gorgeous, witty, seductive movie.")])
    reference = transformers.AutoModelForSequenceClassification.from_pretrained(run / "model").eval()
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, reference(ids).logits, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("task, head, rows", [
    ("qa", "qa", [{"question": "When was it completed?", "context": "The tower was completed in 1889.",
                   "answers": {"text": ["1889"], "answer_start": [27]}}] * 4),
    ("token-cls", "token_cls", [{"tokens": ["Paris", "is", "nice"], "tags": [1, 0, 0]}] * 4),
])
def test_the_other_encoder_tasks_run_from_the_same_recipe(tmp_path, capsys, task, head, rows):
    """The docstrings' form: the SST-2 recipe with another task, head and JSONL file."""
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = tmp_path / "run"
    assert main(["finetune", "--recipe", "cls-minilm-sst2", f"task={task}", f"model.head={head}", "data.builtin=null",
                 f"data.train={data}", f"data.val={data}", "max_steps=1", "batch_size=2", "eval_batches=1",
                 "threads=1", "progress=false", f"run_dir={run}"]) == 0
    captured = capsys.readouterr()
    metric = "exact_match" if task == "qa" else "accuracy"
    assert f"no trained {head} head" in captured.err and f"held-out {metric} " in captured.out
    assert llmzoo.load(run / "model").config.head == head
