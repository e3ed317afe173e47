"""The tokenizer the pipeline needs, and how a tokenizer source string becomes one.

Any object with `encode_batch(texts, add_special_tokens=False) -> list[list[int]]`,
`eos_token_id` and `vocab_size` works (llmzoo.tokenizer's tokenizers do). A source string
goes to `llmzoo.tokenizer.load_tokenizer`; until that module exists, a path to a
`tokenizer.json` (or a directory holding one) is loaded with the `tokenizers` library.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from llmzoo.errors import LlmzooError

# Names of the end-of-text token in common vocabularies (GPT-2/NeoX, LLaMA/T5, Gemma, LLaMA-3).
_EOS_NAMES = ("<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>", "<|eot_id|>")


class DataTokenizer(Protocol):
    eos_token_id: int | None
    vocab_size: int

    def encode_batch(self, texts: list[str], add_special_tokens: bool = False) -> list[list[int]]: ...


class TokenizersAdapter:
    """A `tokenizers.Tokenizer` with the interface above (picklable, so it can go to worker processes)."""

    def __init__(self, tokenizer: Any, eos_token_id: int | None = None):
        self.tokenizer = tokenizer
        self.vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
        if eos_token_id is None:
            eos_token_id = next((i for i in map(tokenizer.token_to_id, _EOS_NAMES) if i is not None), None)
        self.eos_token_id = eos_token_id

    def encode_batch(self, texts: list[str], add_special_tokens: bool = False) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(texts, add_special_tokens=add_special_tokens)]

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)


def load_data_tokenizer(source: str) -> Any:
    try:
        from llmzoo.tokenizer import load_tokenizer
    except ImportError:  # llmzoo.tokenizer not there (yet): tokenizer.json files still work
        return _load_tokenizer_json(source)
    return load_tokenizer(source)


def _load_tokenizer_json(source: str) -> TokenizersAdapter:
    from tokenizers import Tokenizer

    path = Path(source)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise LlmzooError(f"tokenizer {source!r} not found; give a tokenizer.json file or a directory holding one")
    try:
        return TokenizersAdapter(Tokenizer.from_file(str(path)))
    except Exception as e:  # the Rust side raises plain Exception for malformed files
        raise LlmzooError(f"cannot load tokenizer {source!r}: {str(e).splitlines()[0]}") from None


def document_separator(tokenizer: Any) -> int | None:
    """The id appended after every document: the EOS token, else a well-known end-of-text name, else
    (for BERT-style WordPiece vocabularies, which have no EOS) the [SEP] token, as BERT's own
    pretraining data puts [SEP] between segments. None when the tokenizer has none of these."""
    eos = getattr(tokenizer, "eos_token_id", None)
    token_to_id = getattr(tokenizer, "token_to_id", None)
    if eos is None and callable(token_to_id):
        # a bare tokenizer.json names no roles; its end-of-text token usually has a well-known name
        eos = next((i for i in map(token_to_id, _EOS_NAMES) if i is not None), None)
    if eos is None:
        eos = getattr(tokenizer, "sep_token_id", None)
    if eos is None and callable(token_to_id):
        eos = token_to_id("[SEP]")
    return eos


def check_tokenizer(tokenizer: Any, source: str) -> tuple[int, int]:
    """(vocab_size, eos_id) of a tokenizer usable for packing, or a clear error."""
    if not callable(getattr(tokenizer, "encode_batch", None)):
        raise LlmzooError(f"tokenizer {source!r} has no encode_batch(); it cannot be used to prepare data")
    eos = document_separator(tokenizer)
    if eos is None:
        raise LlmzooError(f"tokenizer {source!r} has no end-of-text token (EOS, or [SEP]) to separate documents; "
                          "retrain it with `llmzoo tokenizer train ... --special-tokens '<|endoftext|>'` "
                          "or use one that has")
    vocab_size = int(tokenizer.vocab_size)
    if not 0 <= eos < vocab_size:
        raise LlmzooError(f"tokenizer {source!r} has EOS id {eos} outside its vocabulary of {vocab_size}")
    return vocab_size, int(eos)
