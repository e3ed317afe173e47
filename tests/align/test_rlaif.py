"""RLAIF pair labelling (llmzoo/align/rlaif.py): the rubric judge's label is order-free by
construction (both orders averaged, as Lee et al. 2023), so a judge that only ever says "A" decides
nothing; a rule judge's chosen answer always scores higher; the CLI writes pairs DPO reads."""

from __future__ import annotations

import json

import pytest
import torch

import llmzoo
from llmzoo.align.best_of_n import read_prompts
from llmzoo.align.preference_data import read_preference_jsonl
from llmzoo.align.rlaif import RubricJudge, label_pairs
from llmzoo.cli import main
from tests.finetune.sft_helpers import smollm2_tokenizer, tiny_chat_base, write_jsonl

PROMPTS = [{"prompt": "Is red a colour?"}, {"prompt": "Name a fruit."}, {"prompt": "What is 2 + 2?"},
           {"prompt": [{"role": "user", "content": "Say hello."}]}]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rlaif")
    base = tiny_chat_base(tmp / "base")
    return base, write_jsonl(tmp / "prompts.jsonl", PROMPTS), tmp


class AlwaysA(torch.nn.Module):
    """A judge with nothing but position bias: whatever it is shown, "A" is likelier than "B"."""

    def __init__(self, vocab: int, a: int) -> None:
        super().__init__()
        self.vocab, self.a, self.weight = vocab, a, torch.nn.Parameter(torch.zeros(1))

    def forward(self, ids, logits_to_keep=0):
        logits = torch.zeros(ids.shape[0], 1, self.vocab)
        logits[..., self.a] = 3.0
        return type("Out", (), {"logits": logits})()


def test_the_rubric_label_is_order_free(setup):
    base, _, _ = setup
    judge = RubricJudge(llmzoo.load(base), llmzoo.load_tokenizer(base))
    prompt = [{"role": "user", "content": "Is red a colour?"}]
    forward, backward = judge.prefer_first(prompt, "Yes.", "No, never."), judge.prefer_first(prompt, "No, never.", "Yes.")
    assert forward == pytest.approx(1.0 - backward, abs=1e-6)
    assert 0.0 < forward < 1.0


def test_pure_position_bias_decides_nothing(setup):
    base, prompts, _ = setup
    tokenizer = smollm2_tokenizer()
    judge = RubricJudge(llmzoo.load(base), tokenizer)
    judge.model = AlwaysA(tokenizer.vocab_size, judge.choices[0])
    assert judge.prefer_first([{"role": "user", "content": "q"}], "one", "two") == pytest.approx(0.5)
    pairs, dropped = label_pairs(llmzoo.load(base), tokenizer, read_prompts(prompts), judge, max_new_tokens=6)
    assert pairs == [] and dropped["unsure"] + dropped["identical"] == len(PROMPTS)


def test_a_rule_judges_chosen_answer_scores_higher(setup):
    base, prompts, _ = setup
    tokenizer = llmzoo.load_tokenizer(base)
    def judge(prompt, answer, row):  # any scoring Judge: here the answer's length, so ties are rare
        return float(len(answer))

    pairs, dropped = label_pairs(llmzoo.load(base), tokenizer, read_prompts(prompts), judge, max_new_tokens=8, seed=0)
    assert pairs and len(pairs) + sum(dropped.values()) == len(PROMPTS)
    for p in pairs:
        assert judge(p.prompt, p.chosen, {}) > judge(p.prompt, p.rejected, {}) and p.preference == 1.0


def test_the_cli_writes_pairs_dpo_reads(setup, capsys):
    base, prompts, tmp = setup
    out = tmp / "pairs.jsonl"
    assert main(["align", "label-pairs", "--model", str(base), "--prompts", str(prompts), "--out", str(out),
                 "--judge-model", str(base), "--max-new-tokens", "6"]) == 0
    assert f"{len(PROMPTS)} prompts:" in capsys.readouterr().out
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and all(0.5 < r["preference"] <= 1.0 and r["judge"] == f"rubric:{base}" for r in rows)
    assert len(read_preference_jsonl(out)) == len(rows)


@pytest.mark.parametrize("judge_args, message", [
    ([], "give one judge"),
    (["--judge", "gold", "--judge-model", "BASE"], "give one judge"),
    (["--judge", "contains:x", "--rubric", "be kind"], "--rubric is the judge model's prompt"),
    (["--judge", "nonsense"], "is not one of"),
])
def test_a_judge_that_cannot_judge_is_one_line(setup, capsys, judge_args, message):
    base, prompts, tmp = setup
    judge_args = [str(base) if a == "BASE" else a for a in judge_args]
    assert main(["align", "label-pairs", "--model", str(base), "--prompts", str(prompts),
                 "--out", str(tmp / "x.jsonl"), *judge_args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp / "x.jsonl").exists()
