"""Training tokenizers on a slice of Shakespeare: requested size, lossless round trips, and
transformers reading the result to the same ids."""

from __future__ import annotations

import gzip
import json

import pytest

from llmzoo.cli import main
from llmzoo.errors import LlmzooError
from llmzoo.tokenizer import load_tokenizer
from llmzoo.tokenizer.train import train_tokenizer
from tests.tokenizer.helpers import asset

pytestmark = pytest.mark.asset
VOCAB_SIZE = 600
CHAT_MARKERS = ["<|im_start|>", "<|im_end|>"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """~75 kB from three plays, as a plain text file, a .jsonl.gz file and held-out lines."""
    texts_dir = asset("shakespeare", "shksprdata/texts")
    plays = sorted(texts_dir.glob("*_gut.txt"))[:3]
    chunks = [p.read_text(encoding="utf-8", errors="replace")[20_000:45_000] for p in plays]
    root = tmp_path_factory.mktemp("corpus")
    (root / "plays.txt").write_text("".join(chunks[:2]), encoding="utf-8")
    with gzip.open(root / "third.jsonl.gz", "wt", encoding="utf-8") as f:
        for para in chunks[2].split("\n\n"):
            f.write(json.dumps({"text": para + "\n\n", "meta": "ignored"}) + "\n")
    held_out = [line for line in plays[0].read_text(encoding="utf-8", errors="replace")[60_000:64_000].split("\n")
                if line.strip()]
    return root, [root / "plays.txt", root / "third.jsonl.gz"], held_out


@pytest.mark.parametrize("kind", ["bpe", "wordpiece", "unigram"])
def test_train_each_kind(kind: str, corpus, tmp_path) -> None:
    transformers = pytest.importorskip("transformers")
    _, files, held_out = corpus
    out = tmp_path / kind
    tok = train_tokenizer(files, kind=kind, vocab_size=VOCAB_SIZE, special_tokens=CHAT_MARKERS, out_dir=out,
                          progress=False)
    assert tok.vocab_size == VOCAB_SIZE
    for marker in CHAT_MARKERS:  # extra special tokens stay whole
        assert tok.encode(f"a{marker}b", add_special_tokens=False).count(tok.token_to_id(marker)) == 1

    auto = transformers.AutoTokenizer.from_pretrained(str(out))
    fast = transformers.PreTrainedTokenizerFast(tokenizer_file=str(out / "tokenizer.json"))
    loaded = load_tokenizer(out)
    assert len(auto) == loaded.vocab_size == VOCAB_SIZE
    for line in held_out:
        ids = tok.encode(line)
        assert auto.encode(line) == loaded.encode(line) == ids, line
        assert fast.encode(line, add_special_tokens=False) == tok.encode(line, add_special_tokens=False), line
        text = tok.decode(ids, skip_special_tokens=True)
        if kind == "wordpiece":  # lower-cased and re-spaced: decoding is not the inverse, re-encoding is
            assert tok.encode(text) == ids, line
        elif tok.unk_token_id not in ids:
            assert text == line, line
    if kind == "wordpiece":
        assert tok.encode("to be")[0] == tok.cls_token_id and tok.encode("to be")[-1] == tok.sep_token_id


def test_byte_level_bpe_is_lossless_on_any_text(corpus, tmp_path) -> None:
    _, files, _ = corpus
    tok = train_tokenizer(files, vocab_size=VOCAB_SIZE, out_dir=tmp_path, progress=False)
    for text in ["Emoji 🚀 and 日本語 never seen in training", "\t\ttabs\r\n", "ÆØÅ ßẞ"]:
        assert tok.decode(tok.encode(text)) == text
    assert tok.eos_token_id == tok.token_to_id("<|endoftext|>") == 0


def test_empty_input_is_an_error(tmp_path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n  \n")
    with pytest.raises(LlmzooError, match="no text to train on"):
        train_tokenizer([empty], vocab_size=300, out_dir=tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    with pytest.raises(LlmzooError, match="not found"):
        train_tokenizer([tmp_path / "absent.txt"], vocab_size=300, progress=False)
    with pytest.raises(LlmzooError, match="too small"):
        train_tokenizer([empty], kind="bpe", vocab_size=100, progress=False)
    with pytest.raises(LlmzooError, match="unknown tokenizer kind"):
        train_tokenizer([empty], kind="sentencepiece", vocab_size=1000, progress=False)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"content": "no text field"}\n')
    with pytest.raises(LlmzooError, match=r"bad.jsonl:2"):
        train_tokenizer([bad], vocab_size=300, progress=False)


def test_cli_train_then_encode(corpus, tmp_path, capsys) -> None:
    _, files, held_out = corpus
    out = tmp_path / "cli"
    code = main(["tokenizer", "train", *map(str, files), "--kind", "unigram", "--vocab-size", str(VOCAB_SIZE),
                 "--out", str(out), "--special-tokens", "<|im_start|>", "--quiet"])
    assert code == 0 and f"{VOCAB_SIZE} tokens" in capsys.readouterr().out
    assert main(["tokenizer", "encode", str(out), held_out[0]]) == 0
    assert [int(x) for x in capsys.readouterr().out.split()] == load_tokenizer(out).encode(held_out[0])
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert main(["tokenizer", "train", str(empty), "--vocab-size", "300", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert capsys.readouterr().err.startswith("error: no text to train on")


# Unigram is left out: the tokenizers library's EM sums run in hash-map order, so its learned scores
# differ by up to ~5e-4 from process to process (measured), and pieces with near-equal scores swap ids.
@pytest.mark.parametrize("kind", ["bpe", "wordpiece"])
def test_training_twice_gives_the_same_tokenizer(corpus, tmp_path, kind):
    """Two `llmzoo tokenizer train` runs on the same text, each in its own process (the tokenizers
    library's hash maps are seeded per process), write the same vocabulary with the same ids."""
    import subprocess
    import sys

    _, files, _ = corpus
    vocabs = []
    for run in ("a", "b"):
        out = tmp_path / run
        subprocess.run([sys.executable, "-m", "llmzoo", "tokenizer", "train", "--kind", kind, "--vocab-size",
                        str(VOCAB_SIZE), "--quiet", "--out", str(out), *map(str, files)], check=True,
                       capture_output=True)
        vocabs.append(json.loads((out / "tokenizer.json").read_text())["model"]["vocab"])
    assert vocabs[0] == vocabs[1]
