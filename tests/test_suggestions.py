"""What a new user sees for a mistyped or unavailable model name, through the real CLI."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from llmzoo.cli import main
from llmzoo.hub import suggest


def _error_line(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    return err


def _suggestions(line: str) -> list[str]:
    match = re.search(r"did you mean: (.*)\?$", line)
    assert match, line
    return match.group(1).split(", ")


def test_one_letter_typo_of_the_packaged_decoder_suggests_it_first(capsys):
    line = _error_line(capsys, ["generate", "smolm2", "--prompt", "hi"])
    assert _suggestions(line)[0] == "smollm2-135m-instruct"


@pytest.mark.parametrize("typo, first", [
    ("minilm", "all-minilm-l6-v2"),  # a prefix-less part of a packaged name
    ("lama-2-7b", "llama-2-7b"),
    ("gpt-2-17m", "gpt-2-117m"),
    ("t5-bse", "t5-base"),
])
def test_ranking_prefers_name_prefixes(typo, first):
    assert _suggestions(suggest(typo))[0] == first


def test_no_close_name_points_to_the_list(capsys):
    assert "llmzoo models" in _error_line(capsys, ["generate", "xyzzy", "--prompt", "hi"])


def test_model_without_an_architecture_says_so(capsys):
    line = _error_line(capsys, ["generate", "gpt-4", "--prompt", "hi"])
    assert "no published architecture" in line and "build_model" not in line


def test_the_suggested_random_weights_snippet_runs_after_import_llmzoo(capsys):
    line = _error_line(capsys, ["generate", "gopher-44m", "--prompt", "hi"])  # the smallest catalog decoder
    snippet = line.split("build it with random weights: ", 1)[1]
    assert "gopher-44m" in snippet
    # A fresh interpreter: only `import llmzoo` has run, as in a user's script.
    code = f"import llmzoo\n{snippet.replace('; ', chr(10))}\nprint(model(__import__('torch').tensor([[1, 2]])).logits.shape)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("torch.Size([1, 2,")


def test_an_alias_of_a_packaged_model_loads_its_weights():
    import llmzoo

    model = llmzoo.load("minilm")  # the catalog alias of all-minilm-l6-v2, whose weights ship offline
    assert model.config.arch == "encoder" and model.config.vocab_size == 30522
