"""Decontamination: which evaluation documents appear in a training corpus (GPT-3 style).

Brown et al. 2020 (GPT-3), appendix C: an evaluation example is "dirty" when it shares a
13-gram with the training data, or, when it is shorter than that, when the whole example
occurs in it. The n-grams are of words, compared after lowercasing and dropping punctuation.
Here that means:

  * words = maximal runs of letters and digits of the lowercased text, after deleting
    apostrophes ("Don't" -> "dont"; "well-known" -> "well", "known"; "3.14" -> "3", "14");
    both sides are normalised the same way, so case and punctuation never matter;
  * a task document with at least `n` words is contaminated when any of its n-grams occurs in
    the corpus; one with `min_words` <= length < n when all of its words occur there in a row
    (GPT-3 section 4: "or that overlap with the whole example when it is shorter"); shorter
    documents are too short to judge and are counted apart (GPT-3 never used N below 8 on
    natural-language tasks "due to spurious collisions", hence `min_words=8`);
  * `n="auto"` is appendix C's per-task N: the 5th percentile of the task's document lengths
    in words, clamped to [8, 13]; the default is the fixed 13 of section 4;
  * n-grams never cross corpus documents: JSONL records and token-shard documents (split at
    EOS) are separate, while a plain text file is one continuous stream of words.

Efficient in the way the paper's scale needs: the (small) task side is indexed as a hash set
of its n-grams; the (large) corpus is streamed once and only windows made of words that occur
in some task document are hashed. Every hash hit is verified against the document's words,
so a hash collision never reports a false overlap.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmzoo.errors import LlmzooError

DEFAULT_NGRAM = 13  # GPT-3, appendix C
DEFAULT_MIN_WORDS = 8  # GPT-3's smallest per-task N
AUTO_RANGE = (8, 13)  # GPT-3 appendix C: N = 5th percentile example length, at least 8, at most 13
_WORD = re.compile(r"[^\W_]+")
_APOSTROPHES = str.maketrans("", "", "'\u2019\u02bc")


def words(text: str) -> list[str]:
    """The normalised words of a text (see the module docstring)."""
    return _WORD.findall(text.lower().translate(_APOSTROPHES))


@dataclass(frozen=True)
class TaskDocument:
    task: str
    index: int  # position in the task's documents (as `--limit` counts them)
    id: str  # the dataset's own id where it has one, else the index
    text: str


@dataclass
class Match:
    ngram: str
    corpus: str  # "file:line", "file#record" or "shards/split@token"


@dataclass
class TaskReport:
    task: str
    ngram: int
    documents: int = 0
    too_short: int = 0
    contaminated: dict[int, Match] = field(default_factory=dict)  # document index -> first match

    @property
    def fraction(self) -> float:
        checked = self.documents - self.too_short
        return len(self.contaminated) / checked if checked else 0.0


class NgramIndex:
    """The task side: every n-gram (and whole short document) of every task document."""

    def __init__(self, n: int = DEFAULT_NGRAM, min_words: int = DEFAULT_MIN_WORDS) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise LlmzooError(f"--ngram must be a whole number >= 1, got {n!r}")
        if isinstance(min_words, bool) or not isinstance(min_words, int) or min_words < 1:
            raise LlmzooError(f"--min-words must be a whole number >= 1, got {min_words!r}")
        self.n, self.min_words = n, min(min_words, n)
        self.docs: list[TaskDocument] = []
        self.reports: dict[str, TaskReport] = {}
        self.vocabulary: set[str] = set()
        self.lengths: set[int] = set()  # window lengths to check: n, and those of short documents
        self._grams: dict[int, int | list[int]] = {}  # hash of a word tuple -> document number(s)
        self._joined: dict[int, str] = {}  # document number -> " words ", built on the first hit

    def add(self, doc: TaskDocument, n: int | None = None) -> None:
        """Index one document's n-grams (n: this task's own N, default the index's)."""
        n = n or self.n
        report = self.reports.setdefault(doc.task, TaskReport(doc.task, n))
        report.documents += 1
        w = words(doc.text)
        length = min(len(w), n)
        if length < min(self.min_words, n):
            report.too_short += 1
            return
        number = len(self.docs)
        self.docs.append(doc)
        self.vocabulary.update(w)
        self.lengths.add(length)
        for i in range(len(w) - length + 1):
            key = hash(tuple(w[i : i + length]))
            have = self._grams.get(key)
            if have is None:
                self._grams[key] = number
            elif isinstance(have, int):
                if have != number:
                    self._grams[key] = [have, number]
            elif number not in have:
                have.append(number)

    def matches(self, gram: tuple[str, ...]) -> list[int]:
        """Task documents that contain `gram` (verified: a hash collision matches nothing)."""
        have = self._grams.get(hash(gram))
        if have is None:
            return []
        needle = " " + " ".join(gram) + " "
        found = []
        for number in [have] if isinstance(have, int) else have:
            joined = self._joined.get(number)
            if joined is None:
                joined = self._joined[number] = " " + " ".join(words(self.docs[number].text)) + " "
            if needle in joined:
                found.append(number)
        return found


class Scanner:
    """Streams corpus words through the index; `feed` continues a stream, `reset` ends one."""

    def __init__(self, index: NgramIndex) -> None:
        self.index = index
        self.lengths = sorted(index.lengths)
        self.longest = max(self.lengths, default=0)
        self.tail: list[str] = []  # the last words of the current run of task-vocabulary words
        self.words_scanned = 0

    def reset(self) -> None:
        self.tail = []

    def feed(self, text: str, where: str) -> None:
        if not self.lengths:
            return
        vocab, index = self.index.vocabulary, self.index
        run = self.tail
        for word in words(text):
            self.words_scanned += 1
            if word not in vocab:  # no task n-gram can contain this word: start a new run
                run = []
                continue
            run.append(word)
            if len(run) > self.longest:
                del run[0]
            for length in self.lengths:
                if length > len(run):
                    break
                gram = tuple(run[len(run) - length :])
                for number in index.matches(gram):
                    doc = index.docs[number]
                    index.reports[doc.task].contaminated.setdefault(doc.index, Match(" ".join(gram), where))
        self.tail = run


def corpus_streams(paths: Sequence[str | Path], *, text_field: str = "text", tokenizer: str | None = None,
                   split: str = "train") -> Iterator[tuple[str, Iterator[tuple[str, str]]]]:
    """(stream name, iterator of (text, location)) per unit that n-grams must not cross."""
    for given in paths:
        path = Path(given)
        if path.is_dir() and (path / "manifest.json").is_file():
            yield from _shard_streams(path, tokenizer, split)
            continue
        from llmzoo.data.readers import Document, expand_inputs, iter_documents

        for file in expand_inputs([path]):
            jsonl = file.name.removesuffix(".gz").endswith((".jsonl", ".ndjson"))
            docs = iter_documents([file], doc_sep="line", text_field=text_field)
            if jsonl:  # every record its own stream
                for doc in docs:
                    if isinstance(doc, Document):
                        yield f"{file}#{doc.index}", iter([(doc.text, f"{file}#{doc.index}")])
            else:  # a text file is one stream of lines
                yield str(file), ((d.text, f"{file}:{d.line}") for d in docs if isinstance(d, Document))


def _shard_streams(directory: Path, tokenizer: str | None, split: str) -> Iterator[tuple[str, Iterator]]:
    """Token shards decoded with their tokenizer, one stream per document (split at EOS)."""
    import numpy as np

    from llmzoo.data.dataset import TokenDataset, read_manifest
    from llmzoo.data.tokenize import load_data_tokenizer

    manifest = read_manifest(directory)
    ds = TokenDataset(directory, split, manifest)
    source = tokenizer or manifest.get("tokenizer")
    if not source:
        raise LlmzooError(f"{directory} names no tokenizer; give one with --tokenizer to decode its shards")
    tok = load_data_tokenizer(source)
    if not callable(getattr(tok, "decode", None)):
        raise LlmzooError(f"tokenizer {source!r} cannot decode token ids")
    chunk, start, pending = 1 << 20, 0, []
    doc_start = 0
    for offset in range(0, ds.num_tokens, chunk):
        ids = ds.read(offset, min(chunk, ds.num_tokens - offset))
        ends = np.flatnonzero(ids == ds.eos_id)
        start = 0
        for end in ends.tolist():
            pending.append(ids[start:end])
            tokens = np.concatenate(pending).tolist()
            where = f"{directory}/{split}@{doc_start}"
            yield where, iter([(tok.decode(tokens), where)])
            pending, start, doc_start = [], end + 1, offset + end + 1
        pending.append(ids[start:])
    if pending and sum(len(p) for p in pending):
        where = f"{directory}/{split}@{doc_start}"
        yield where, iter([(tok.decode(np.concatenate(pending).tolist()), where)])


def task_documents(name: str) -> Iterator[TaskDocument]:
    """The documents of an evaluation task (llmzoo.eval's registry), as text: the prompt plus
    every answer choice (or the gold answer), so an overlap anywhere in the example counts."""
    from llmzoo.eval.tasks import get_task

    task = get_task(name)
    for leaf in task.subtasks() or [task]:
        for i, doc in enumerate(leaf.docs()):
            native = next((doc[k] for k in ("id", "task_id", "idx") if isinstance(doc.get(k), (str, int))), i)
            yield TaskDocument(leaf.name, i, str(native), _doc_text(leaf, doc))


def _doc_text(task: Any, doc: dict) -> str:
    parts: list[str] = []
    for method in ("doc_to_text", "doc_to_choice", "doc_to_target"):
        try:
            value = getattr(task, method)(doc)
        except (NotImplementedError, AttributeError, KeyError, IndexError, TypeError):
            continue
        parts.extend(value if isinstance(value, list) else [value])
        if method == "doc_to_choice":
            break  # the target is one of the choices
    if not parts:  # a task without a prompt formulation (perplexity): its record's strings
        parts = [v for v in doc.values() if isinstance(v, str)]
    return "\n".join(str(p) for p in parts)


def file_documents(path: str | Path) -> Iterator[TaskDocument]:
    """A JSONL file of documents: {"text": ..., "id"?: ..., "task"?: ...} per line; the task
    defaults to the file's name without suffixes."""
    path = Path(path)
    if not path.is_file():
        raise LlmzooError(f"--documents {str(path)!r} does not exist; give a JSONL file of {{\"text\": ...}} lines")
    default_task = path.name.split(".")[0]
    counters: dict[str, int] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise LlmzooError(f"{path}:{lineno} is not JSON; --documents takes one JSON object per line") from None
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise LlmzooError(f"{path}:{lineno} has no string field 'text'")
            task = str(row.get("task", default_task))
            i = counters.get(task, 0)
            counters[task] = i + 1
            yield TaskDocument(task, i, str(row.get("id", i)), row["text"])


def auto_ngram(docs: Sequence[TaskDocument]) -> int:
    """GPT-3 appendix C's N for one task: the 5th percentile document length in words, in [8, 13]."""
    import numpy as np

    lengths = [len(words(d.text)) for d in docs]
    low, high = AUTO_RANGE
    return int(min(max(int(np.percentile(lengths, 5)), low), high)) if lengths else high


def decontaminate(corpus: Sequence[str | Path], documents: Iterable[TaskDocument], *, n: int | str = DEFAULT_NGRAM,
                  min_words: int = DEFAULT_MIN_WORDS, text_field: str = "text", tokenizer: str | None = None,
                  split: str = "train") -> dict[str, Any]:
    """Index the task documents, stream the corpus, return the report as plain data (see to_json)."""
    auto = n == "auto"
    index = NgramIndex(AUTO_RANGE[1] if auto else n, min_words)  # type: ignore[arg-type]
    if not corpus:
        raise LlmzooError("give at least one corpus file or directory to check")
    _check_paths(corpus)  # before the (possibly slow) task side is indexed
    if auto:
        by_task: dict[str, list[TaskDocument]] = {}
        for doc in documents:
            by_task.setdefault(doc.task, []).append(doc)
        for docs in by_task.values():
            task_n = auto_ngram(docs)
            for doc in docs:
                index.add(doc, task_n)
    else:
        for doc in documents:
            index.add(doc)
    if not index.reports:
        raise LlmzooError("no task documents to check; name tasks with --tasks or give --documents FILE.jsonl")
    scanner = Scanner(index)
    corpus_docs = 0
    for _, stream in corpus_streams(corpus, text_field=text_field, tokenizer=tokenizer, split=split):
        scanner.reset()
        for text, where in stream:
            scanner.feed(text, where)
        corpus_docs += 1
    return {
        "config": {"ngram": n if auto else index.n, "min_words": index.min_words, "corpus": [str(p) for p in corpus], "split": split},
        "corpus": {"streams": corpus_docs, "words": scanner.words_scanned},
        "tasks": {name: _task_json(r, index) for name, r in index.reports.items()},
    }


def _check_paths(corpus: Sequence[str | Path]) -> None:
    for given in corpus:
        if not Path(given).exists():
            raise LlmzooError(f"corpus {str(given)!r} does not exist; check the path")


def _task_json(report: TaskReport, index: NgramIndex) -> dict[str, Any]:
    ids = {d.index: d.id for d in index.docs if d.task == report.task}
    return {
        "ngram": report.ngram,
        "documents": report.documents,
        "checked": report.documents - report.too_short,
        "too_short": report.too_short,
        "contaminated": len(report.contaminated),
        "fraction": report.fraction,
        "contaminated_documents": [
            {"index": i, "id": ids[i], "ngram": m.ngram, "corpus": m.corpus}
            for i, m in sorted(report.contaminated.items())
        ],
    }


def format_table(report: dict[str, Any], show_documents: bool = False) -> str:
    rows = [("task", "n", "documents", "checked", "contaminated", "of checked")]
    for name, t in report["tasks"].items():
        rows.append((name, str(t["ngram"]), str(t["documents"]), str(t["checked"]), str(t["contaminated"]),
                     f"{100 * t['fraction']:.2f}%"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    cfg, scanned = report["config"], report["corpus"]
    lines.append(f"n-gram overlap, n words per task (a document under n words: the whole document; under "
                 f"{cfg['min_words']}: not checked); corpus: {scanned['words']:,} words")
    if show_documents:
        for name, t in report["tasks"].items():
            for d in t["contaminated_documents"]:
                lines.append(f"  {name} #{d['index']} (id {d['id']}): \"{d['ngram']}\" in {d['corpus']}")
    return "\n".join(lines)
