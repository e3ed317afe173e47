"""Best-of-n / rejection sampling: the kept answer is the judge's highest-scoring sample (its score
recomputed from scratch equals the one reported), the rows written are what task sft reads, and a
judge that cannot judge is one line, exit 2."""

from __future__ import annotations

import json

import pytest

import llmzoo
from llmzoo.align.best_of_n import GoldAnswerJudge, RewardModelJudge, best_of_n, read_prompts
from llmzoo.cli import main
from llmzoo.finetune.sft_data import read_sft_jsonl
from llmzoo.models.value_head import attach_value_head, save_value_model
from tests.finetune.sft_helpers import smollm2_tokenizer, tiny_chat_base, tiny_model, write_jsonl

PROMPTS = [{"prompt": "Is red a colour?", "answer": "yes"},
           {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Is 7 prime?"}],
            "answer": "yes"}]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bon")
    base = tiny_chat_base(tmp / "base")
    tokenizer = smollm2_tokenizer()
    reward = attach_value_head(tiny_model(tokenizer.vocab_size, seed=5), seed=5)
    rm_dir = save_value_model(reward, tmp / "rm", tokenizer)
    return base, rm_dir, tokenizer, write_jsonl(tmp / "prompts.jsonl", PROMPTS), tmp


def test_best_of_n_keeps_the_highest_scoring_sample(setup):
    base, rm_dir, tokenizer, prompts, _ = setup
    from llmzoo.models.value_head import load_value_model

    judge = RewardModelJudge(load_value_model(rm_dir), tokenizer, tokenizer.chat_template)
    results = best_of_n(llmzoo.load(base), tokenizer, read_prompts(prompts), judge, n=4, max_new_tokens=6, seed=0)
    assert len(results) == 2
    for r in results:
        assert len(set(r.candidates)) > 1  # sampling gives different answers to choose from
        assert r.score == max(r.scores) and r.best == r.candidates[r.scores.index(r.score)]
        assert judge(r.prompt, r.best, {}) == pytest.approx(r.score)


def test_gold_judge_reads_the_first_word():
    judge = GoldAnswerJudge()
    assert judge([], "Yes, it is.", {"answer": "yes"}) == 1.0
    assert judge([], "No. Yes.", {"answer": "yes"}) == 0.0


def test_cli_writes_sft_rows(setup, capsys):
    base, rm_dir, _, prompts, tmp = setup
    out = tmp / "best.jsonl"
    assert main(["align", "rejection-sampling", "--model", str(base), "--prompts", str(prompts), "--out", str(out),
                 "--n", "3", "--reward-model", str(rm_dir), "--max-new-tokens", "5"]) == 0
    assert "2 prompts x 3 samples" in capsys.readouterr().out
    conversations = read_sft_jsonl(out)  # task sft reads them as they are
    assert [m["role"] for m in conversations[1]] == ["system", "user", "assistant"]
    assert all("score" in json.loads(line) for line in out.read_text().splitlines())


@pytest.mark.parametrize("judge_args, message", [
    (["--reward-model", "BASE"], "has no value head"),
    ([], "give one judge"),
])
def test_a_judge_that_cannot_judge_is_one_line(setup, capsys, judge_args, message):
    base, _, _, prompts, tmp = setup
    judge_args = [str(base) if a == "BASE" else a for a in judge_args]
    assert main(["align", "rejection-sampling", "--model", str(base), "--prompts", str(prompts),
                 "--out", str(tmp / "x.jsonl"), *judge_args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp / "x.jsonl").exists()


def test_gold_judge_on_rows_without_answer_is_one_line(setup, capsys):
    base, _, _, _, tmp = setup
    prompts = write_jsonl(tmp / "no_answer.jsonl", [{"prompt": "Hi?"}])
    assert main(["align", "rejection-sampling", "--model", str(base), "--prompts", str(prompts),
                 "--out", str(tmp / "y.jsonl"), "--judge", "gold", "--max-new-tokens", "2"]) == 2
    assert "needs an 'answer'" in capsys.readouterr().err
    assert not (tmp / "y.jsonl").exists()

