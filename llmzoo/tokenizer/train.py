"""Train a tokenizer on text files: byte-level BPE, WordPiece or Unigram.

    tok = train_tokenizer(["corpus.txt", "more.jsonl.gz"], kind="bpe", vocab_size=8000, out_dir="tok/")

* bpe (default): byte-level BPE as GPT-2 (Sennrich et al. 2016; Radford et al. 2019): every byte is in
  the alphabet, so nothing is ever unknown; <|endoftext|> is the one special token.
* wordpiece: BERT-style (Devlin et al. 2019): lower-cased, split on whitespace and punctuation,
  [PAD] [UNK] [CLS] [SEP] [MASK], sequences wrapped as [CLS] ... [SEP].
* unigram: SentencePiece-style (Kudo 2018): NFKC, spaces as "▁" with a dummy prefix, <unk> <s> </s> <pad>;
  runs of spaces and newlines are kept (SentencePiece collapses them), so text round-trips.

Files are streamed, never loaded whole: plain text line by line, .jsonl by its "text" field, and
the .gz form of either. A directory stands for its .txt/.text/.md/.jsonl/.ndjson files (and their .gz),
found recursively as `llmzoo data prepare` finds them. Input must be UTF-8 text: a NUL byte or invalid
UTF-8 stops training with the file and byte offset, rather than learning merges of binary garbage.
The result is written as tokenizer.json + tokenizer_config.json, which `load_tokenizer` and
transformers' AutoTokenizer / PreTrainedTokenizerFast both read.
"""

from __future__ import annotations

import gzip
import json
import shutil
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import tokenizers
from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers

from llmzoo.errors import LlmzooError
from llmzoo.tokenizer.base import Tokenizer
from llmzoo.tokenizer.spm import llama_style_normalizer, metaspace, spm_decoder
from llmzoo.tokenizer.wordpiece import wordpiece_backend

KINDS = ("bpe", "wordpiece", "unigram")
BATCH_LINES = 1000  # lines handed to the trainer at once


@dataclass(frozen=True)
class KindSpec:
    specials: tuple[str, ...]  # always present, ids 0.. in this order
    roles: dict[str, str]


KIND_SPECS = {
    "bpe": KindSpec(("<|endoftext|>",), {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
                                         "pad_token": "<|endoftext|>"}),
    "wordpiece": KindSpec(("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"),
                          {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                           "mask_token": "[MASK]"}),
    "unigram": KindSpec(("<unk>", "<s>", "</s>", "<pad>"),
                        {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}),
}


class _Progress:
    """Counts bytes read from disk across all files, for one tqdm bar."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="B", unit_scale=True, desc="reading corpus")
        self.chars = 0

    def advance(self, n_bytes: int) -> None:
        if self.bar is not None and n_bytes > 0:
            self.bar.update(n_bytes)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _decoded(raw_line: bytes, path: Path, offset: int, where: str) -> str:
    """One line of a training file as text; binary or non-UTF-8 data is an error naming the byte."""
    nul = raw_line.find(b"\x00")
    if nul >= 0:
        raise LlmzooError(f"{path} holds binary data (NUL byte at {where} {offset + nul}); "
                          "train on UTF-8 text files")
    try:
        return raw_line.decode("utf-8")
    except UnicodeDecodeError as e:
        raise LlmzooError(f"{path} is not UTF-8 text (invalid byte at {where} {offset + e.start}); "
                          "convert it to UTF-8 or leave it out") from None


def _texts_of(path: Path, progress: _Progress) -> Iterator[str]:
    """The text of one file, piece by piece: lines of a text file, "text" fields of a .jsonl file."""
    is_jsonl = path.name.removesuffix(".gz").endswith((".jsonl", ".ndjson"))
    compressed = path.name.endswith(".gz")
    where = "uncompressed byte offset" if compressed else "byte offset"
    raw = open(path, "rb")  # raw.tell() tracks progress through the file on disk
    stream: IO[bytes] = gzip.GzipFile(fileobj=raw) if compressed else raw
    last = offset = 0
    try:
        for lineno, raw_line in enumerate(stream, 1):
            line = _decoded(raw_line, path, offset, where)
            offset += len(raw_line)
            if is_jsonl:
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    raise LlmzooError(f"{path}:{lineno} is not valid JSON; a .jsonl file holds one JSON object per line") from None
                if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                    raise LlmzooError(f'{path}:{lineno} has no string "text" field to train on')
                line = record["text"]
            progress.chars += len(line.strip())
            position = raw.tell()
            progress.advance(position - last)
            last = position
            yield line
    except gzip.BadGzipFile:
        raise LlmzooError(f"{path} ends in .gz but is not a gzip file") from None
    except (EOFError, zlib.error):
        raise LlmzooError(f"{path} is a truncated or corrupt gzip file") from None
    finally:
        stream.close()
        raw.close()


def iter_corpus(files: list[Path], progress: _Progress) -> Iterator[list[str]]:
    """All files' text in batches of lines (the trainer takes batches faster than single strings)."""
    batch: list[str] = []
    for path in files:
        for piece in _texts_of(path, progress):
            batch.append(piece)
            if len(batch) >= BATCH_LINES:
                yield batch
                batch = []
    if batch:
        yield batch


def _check_files(files: list[str | Path]) -> list[Path]:
    """The files to read: as given, with each directory replaced by the text files inside it."""
    from llmzoo.data.readers import expand_inputs  # the same rule as `llmzoo data prepare` inputs

    if isinstance(files, (str, Path)):
        files = [files]
    paths = [Path(f).expanduser() for f in files]
    if not paths:
        raise LlmzooError("no training files given; pass one or more text, .jsonl or .gz files")
    for p in paths:
        if not p.exists():
            raise LlmzooError(f"training file not found: {p}")
        if not (p.is_file() or p.is_dir()):
            raise LlmzooError(f"{p} is not a regular file or a directory; pass text, .jsonl or .gz files")
    return expand_inputs(paths)


def _create_out_dir(out_dir: Path) -> bool:
    """Create `out_dir` before training, so an unwritable --out fails in a second, not after an hour
    of training; True when it was created here (and should be removed again if training fails)."""
    if out_dir.exists():
        if not out_dir.is_dir():
            raise LlmzooError(f"cannot save a tokenizer to {out_dir}: it is a file, not a directory")
        return False
    try:
        out_dir.mkdir(parents=True)
    except OSError as e:
        raise LlmzooError(f"cannot create output directory {out_dir}: {e.strerror or e}; "
                          "choose a writable --out") from None
    return True


def _bpe(vocab_size: int, min_frequency: int, specials: list[str], progress: bool):
    backend = tokenizers.Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=progress)
    return backend, trainer


def _wordpiece(vocab_size: int, min_frequency: int, specials: list[str], progress: bool):
    backend = tokenizers.Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials,
                                        continuing_subword_prefix="##", show_progress=progress)
    return backend, trainer


def _unigram(vocab_size: int, min_frequency: int, specials: list[str], progress: bool):
    backend = tokenizers.Tokenizer(models.Unigram())
    # NFKC as SentencePiece's default normalizer; unlike SentencePiece, spaces and newlines are kept
    # as they are, so decoding gives back the (NFKC) text exactly. The dummy prefix is added by the
    # normalizer rather than by Metaspace, which skips it for text that already starts with a space.
    backend.normalizer = normalizers.Sequence([normalizers.NFKC(), llama_style_normalizer(add_space_prefix=True)])
    backend.pre_tokenizer = metaspace(add_dummy_prefix=False)
    backend.decoder = spm_decoder(strip_prefix=True)
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=specials, unk_token="<unk>",
                                      show_progress=progress)
    return backend, trainer


def canonical_wordpiece_ids(vocab: dict[str, int], specials: list[str]) -> dict[str, int]:
    """The same WordPiece vocabulary with ids that do not depend on the run.

    The tokenizers library's WordPiece trainer learns the same set of pieces every run, but hands
    out the ids of the "##" alphabet and of equally frequent merges in hash-map order, which
    changes from process to process, so two trainings on the same text gave different tokenizers.
    WordPiece's greedy longest-match encoding reads only the set of pieces, so a fixed order loses
    nothing: the special tokens first (in their order), then the rest by length, word-initial
    pieces before "##" continuations, then alphabetically.
    """
    rest = sorted((t for t in vocab if t not in specials),
                  key=lambda t: (len(t.removeprefix("##")), t.startswith("##"), t))
    ordered = [t for t in specials if t in vocab] + rest
    return {token: i for i, token in enumerate(ordered)}


_BUILDERS = {"bpe": _bpe, "wordpiece": _wordpiece, "unigram": _unigram}


def train_tokenizer(
    files: list[str | Path],
    kind: str = "bpe",
    vocab_size: int = 8000,
    special_tokens: list[str] | None = None,
    out_dir: str | Path | None = None,
    min_frequency: int = 2,
    progress: bool = True,
) -> Tokenizer:
    """Train a `kind` tokenizer of `vocab_size` ids on `files`; save it to `out_dir` if given.

    `special_tokens` are extra special tokens (e.g. chat markers "<|im_start|>", "<|im_end|>"),
    added after the kind's own ones and never split.
    """
    if kind not in KINDS:
        raise LlmzooError(f"unknown tokenizer kind {kind!r}; choose one of {', '.join(KINDS)}")
    paths = _check_files(files)
    spec = KIND_SPECS[kind]
    specials = list(dict.fromkeys([*spec.specials, *(special_tokens or [])]))
    minimum = len(specials) + (256 if kind == "bpe" else 1)
    if vocab_size < minimum:
        raise LlmzooError(f"vocab_size {vocab_size} is too small for a {kind} tokenizer with {len(specials)} special "
                          f"tokens; use at least {minimum}")
    if min_frequency < 0:
        raise LlmzooError(f"min_frequency must be >= 0, got {min_frequency}")

    out_path = Path(out_dir).expanduser() if out_dir is not None else None
    created = _create_out_dir(out_path) if out_path is not None else False
    try:
        backend, trainer = _BUILDERS[kind](vocab_size, min_frequency, specials, progress)
        reading = _Progress(sum(p.stat().st_size for p in paths), progress)
        try:
            backend.train_from_iterator(iter_corpus(paths, reading), trainer=trainer)
        finally:
            reading.close()
        if reading.chars == 0:
            raise LlmzooError(f"no text to train on: {', '.join(str(p) for p in paths)} "
                              f"{'is' if len(paths) == 1 else 'are'} empty")
    except BaseException:
        if created:  # leave no empty --out behind that looks like a result
            shutil.rmtree(out_path, ignore_errors=True)
        raise

    if kind == "wordpiece":
        # Rebuild through the loader's WordPiece pipeline so [CLS] ... [SEP] and the decoder match BERT's.
        backend = wordpiece_backend(canonical_wordpiece_ids(backend.get_vocab(with_added_tokens=True), specials),
                                    lowercase=True, specials=spec.roles)
        backend.add_special_tokens([tokenizers.AddedToken(t, special=True, normalized=False) for t in specials])
        add_bos = add_eos = None
    else:
        add_bos = add_eos = False
    tokenizer = Tokenizer(backend, special_tokens=spec.roles, add_bos_token=add_bos, add_eos_token=add_eos,
                          source=str(out_dir) if out_dir else "trained")
    if tokenizer.vocab_size < vocab_size:
        import warnings

        warnings.warn(f"the corpus only supports {tokenizer.vocab_size} tokens (asked for {vocab_size}); "
                      "train on more text or lower min_frequency", stacklevel=2)
    if out_dir is not None:
        tokenizer.save(out_dir)
    return tokenizer
