"""Self-Instruct (Wang et al. 2022): the near-duplicate filter on hand-made pairs, the prompting
loop with a scripted model, and `llmzoo data self-instruct` end to end on a tiny random model."""

from __future__ import annotations

import json

import pytest

from llmzoo.cli import main
from llmzoo.data.self_instruct import NearDuplicateFilter, acceptable, parse_tasks, self_instruct, task_prompt
from llmzoo.finetune.sft_data import read_sft_jsonl
from tests.finetune.sft_helpers import tiny_chat_base, write_jsonl

SEEDS = ["Give three tips for staying healthy.", "Translate the sentence into French.",
         "Write a short poem about the sea.", "Summarise the paragraph in one sentence."]


def test_rouge_l_near_duplicates_are_dropped_and_distinct_tasks_kept():
    pool = NearDuplicateFilter(SEEDS)
    # 6 of 7 words in order with the seed: ROUGE-L F = 6/7 > 0.7
    assert pool.most_similar("Write a short poem about the ocean.") > 0.7
    assert not pool.admit("Write a short poem about the ocean.")
    assert not pool.admit("Give three tips for staying healthy!")  # punctuation aside, the same words
    assert pool.admit("List the planets of the solar system in order.")
    # an admitted task joins the pool: its own near-duplicate is now refused too
    assert not pool.admit("List the planets of the solar system in order of size.")
    assert pool.pool[-1] == "List the planets of the solar system in order."


def test_the_prompt_numbers_the_sampled_tasks_and_completions_parse_back():
    assert task_prompt(SEEDS[:2]) == ("Come up with a series of tasks:\n\nTask 1: Give three tips for staying "
                                      "healthy.\nTask 2: Translate the sentence into French.\nTask 3:")
    assert parse_tasks(" Name a fruit that is red.\nTask 4: Count the vowels in a word.\n\nunrelated") == [
        "Name a fruit that is red.", "Count the vowels in a word."]
    assert not acceptable("Describe the image below.") and not acceptable("Hi there") and acceptable("Count to ten now.")


def test_the_loop_keeps_new_tasks_filters_the_rest_and_answers_each():
    completions = iter([
        " Write a short poem about the ocean.\nTask 9: Explain why the sky is blue.",  # near-duplicate, new
        " Explain why the sky looks blue.\nTask 9: Draw a picture of a cat.",  # near-duplicate of the last, blocked
        " Name the largest desert on Earth.",
    ])
    prompts = []

    def complete(prompt, round_):
        prompts.append(prompt)
        return next(completions)

    rows = self_instruct(complete, lambda instruction: f" answer to: {instruction} ", SEEDS, n=2, prompt_tasks=4)
    assert rows == [
        {"instruction": "Explain why the sky is blue.", "input": "", "output": "answer to: Explain why the sky is blue."},
        {"instruction": "Name the largest desert on Earth.", "input": "",
         "output": "answer to: Name the largest desert on Earth."}]
    assert len(prompts) == 3 and all(p.startswith("Come up with a series of tasks:") for p in prompts)
    assert "Explain why the sky is blue." in prompts[2]  # generated tasks join later prompts


@pytest.mark.asset
def test_cli_writes_sft_ready_jsonl_from_a_tiny_model(tmp_path, capsys):
    base = tiny_chat_base(tmp_path / "tiny")
    seeds = write_jsonl(tmp_path / "seeds.jsonl", [{"instruction": s} for s in SEEDS])
    out = tmp_path / "generated.jsonl"
    assert main(["data", "self-instruct", "--model", str(base), "--seeds", str(seeds), "--n", "2", "--out", str(out),
                 "--max-new-tokens", "24"]) == 0
    assert f"wrote 2 instruction/output rows to {out}" in capsys.readouterr().out
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2 and all(set(r) == {"instruction", "input", "output"} for r in rows)
    filt = NearDuplicateFilter(SEEDS)
    assert all(filt.admit(r["instruction"]) for r in rows)  # none is a near-duplicate of a seed or each other
    assert len(read_sft_jsonl(out)) == 2  # the SFT reader takes the file as it is


def test_cli_bad_seed_file_is_one_line(tmp_path, capsys):
    seeds = write_jsonl(tmp_path / "seeds.jsonl", [{"instruction": "ok then fine"}, {"task": "no instruction"}])
    assert main(["data", "self-instruct", "--model", "x", "--seeds", str(seeds), "--n", "1",
                 "--out", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f'error: {seeds} line 2: a seed row needs a non-empty "instruction" string'
