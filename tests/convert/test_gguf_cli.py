"""`llmzoo convert --format gguf --quant` and `llmzoo quantize` as the README shows them, on the real
SmolLM2-135M-Instruct: the q8_0 file continues a prompt greedily exactly as the source does, the
q4_k_m file is llama.cpp's Q4_K_M, and both carry the source's tokenizer. Plus the CLI's answers to
mistakes: one line, exit code 2."""

from __future__ import annotations

import re
import shlex

import pytest

import llmzoo
from llmzoo.cli import main
from llmzoo.convert.gguf_format import GGUFFile
from tests.convert.gguf_export_helpers import smollm2_gguf
from tests.train.helpers import REPO

PROMPT = "The capital of France is Paris. The capital of Germany is"


def readme_commands() -> list[str]:
    """The README's `llmzoo convert ... --quant` and `llmzoo quantize` lines, comments removed."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    lines = [line.split("#")[0].strip() for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S)
             for line in block.splitlines()]
    return [line for line in lines if line.startswith("llmzoo quantize") or
            (line.startswith("llmzoo convert") and "--quant" in line)]


@pytest.fixture(scope="module")
def written(tmp_path_factory, request):
    smollm2_gguf()  # skips without the asset
    workdir = tmp_path_factory.mktemp("readme")
    commands = readme_commands()
    assert len(commands) == 2, commands
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.chdir(workdir)  # the README's relative paths
    request.addfinalizer(monkeypatch.undo)
    for command in commands:
        assert main(shlex.split(command)[1:]) == 0, command
    return workdir


@pytest.mark.asset
def test_q8_0_continues_like_the_source(written):
    (path,) = written.glob("*q8_0.gguf")
    assert GGUFFile(path).metadata["general.file_type"] == 7  # MOSTLY_Q8_0
    source, tokenizer = llmzoo.load("smollm2-135m-instruct"), llmzoo.load_tokenizer("smollm2-135m-instruct")
    expected = llmzoo.generate(source, tokenizer, PROMPT, max_new_tokens=12)
    assert llmzoo.generate(llmzoo.load(path), llmzoo.load_tokenizer(path), PROMPT, max_new_tokens=12) == expected
    assert expected.startswith(" Berlin")


@pytest.mark.asset
def test_q4_k_m_file_is_llama_cpps_mixture_with_the_tokenizer(written):
    (path,) = (written / "gguf_dir").glob("*.gguf")
    assert path.name == "smollm2-135m-instruct-Q4_K_M.gguf"
    gf, original = GGUFFile(path), GGUFFile(smollm2_gguf())
    assert gf.metadata["general.file_type"] == 15  # MOSTLY_Q4_K_M
    # SmolLM2's rows of 576 do not split into 256-blocks: those fall back as llama.cpp's do
    types = {name: t.qtype.name for name, t in gf.tensors.items()}
    assert types["blk.0.ffn_down.weight"] == "Q6_K" and types["blk.3.ffn_down.weight"] == "Q4_K"  # 30 layers: 0-2 get more bits
    assert types["blk.0.attn_q.weight"] == "Q5_0" and types["blk.0.attn_v.weight"] == "Q8_0"
    assert types["token_embd.weight"] == "Q8_0"
    for key, value in original.metadata.items():
        if key.startswith("tokenizer."):
            assert gf.metadata[key] == value, key
    tokenizer = llmzoo.load_tokenizer(path)
    assert llmzoo.generate(llmzoo.load(path), tokenizer, PROMPT, max_new_tokens=4).strip()


@pytest.mark.parametrize("argv", [
    ["quantize", "smollm2-135m-instruct", "out", "--quant", "q3_k"],
    ["convert", "smollm2-135m-instruct", "out", "--format", "gguf", "--quant", "Q2_K"],
    ["convert", "smollm2-135m-instruct", "out", "--format", "hf", "--quant", "q8_0"],
])
def test_mistakes_are_one_line_and_exit_2(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    if "hf" not in argv:
        assert "q8_0, q4_0, q4_1, q4_k_m" in err
    assert not (tmp_path / "out").exists()  # refused before loading or writing anything
