"""Metrics against hand-computed cases (definitions: lm-eval-harness lm_eval/api/task.py, metrics.py)."""

import math

import pytest

from llmzoo.eval import metrics


def test_acc_and_acc_norm_differ_on_a_planted_example():
    # A short wrong choice with a higher total loglikelihood, a long gold choice with a better
    # per-character one: acc picks the short one, acc_norm (per *character*) the long one.
    choices = ["no", "yes, certainly so"]  # 2 and 17 characters
    lls = [-3.0, -5.1]  # per char: -1.5 vs -0.3
    assert metrics.acc(lls, gold=1) == 0.0
    assert metrics.acc_norm(lls, choices, gold=1) == 1.0
    assert metrics.acc(lls, gold=0) == 1.0 and metrics.acc_norm(lls, choices, gold=0) == 0.0


def test_acc_norm_counts_characters_not_tokens_or_bytes():
    # "ééé" is 3 characters but 6 UTF-8 bytes: per character -1.0; "abcd" per character -1.1.
    assert metrics.acc_norm([-3.0, -4.4], ["ééé", "abcd"], gold=0) == 1.0


def test_ties_go_to_the_first_choice_as_numpy_argmax():
    assert metrics.argmax([-1.0, -1.0, -2.0]) == 0
    assert metrics.acc([-1.0, -1.0], gold=1) == 0.0


def test_perplexities_and_bits_per_byte():
    lls, words, n_bytes = [-4.0, -2.0], [2, 1], [10, 6]
    assert metrics.perplexity(lls) == pytest.approx(math.exp(3.0))
    assert metrics.weighted_perplexity(lls, words) == pytest.approx(math.exp(2.0))
    assert metrics.bits_per_byte(lls, n_bytes) == pytest.approx(6.0 / 16 / math.log(2))
    assert metrics.count_words("a  b\nc") == 3 and metrics.count_bytes("é") == 2
