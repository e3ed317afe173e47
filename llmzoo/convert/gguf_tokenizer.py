"""An llmzoo Tokenizer as GGUF `tokenizer.ggml.*` metadata: the inverse of llmzoo.tokenizer.from_gguf.

llama.cpp rebuilds its tokenizer from these keys alone (a GGUF carries no tokenizer.json), as
llama.cpp's own converter (convert_hf_to_gguf.py) writes them:

    tokenizer.ggml.model       gpt2 (byte-level BPE), llama (SentencePiece BPE), bert (WordPiece)
    tokenizer.ggml.pre         gpt2 only: the name of the pre-tokenizer split llama.cpp applies first
    tokenizer.ggml.tokens      every id's string, padded with [PAD{i}] up to the model's vocabulary
    tokenizer.ggml.token_type  normal 1, unknown 2, control 3, user-defined 4, unused 5, byte 6
    tokenizer.ggml.merges      BPE merges "a b", best first
    tokenizer.ggml.scores      llama only: llama.cpp's SentencePiece tokenizer merges the adjacent pair
                               whose concatenation scores highest, so the score is minus the merge rank
    *_token_id, add_bos_token, add_eos_token, add_space_prefix, tokenizer.chat_template

    metadata = tokenizer_metadata(llmzoo.load_tokenizer("smollm2-135m-instruct"), vocab_size=49152)
"""

from __future__ import annotations

import json
import re
import warnings
from typing import Any

from llmzoo.errors import CheckpointError, LlmzooError
from llmzoo.tokenizer.base import Tokenizer
from llmzoo.tokenizer.bytelevel import DEFAULT_SCHEME, SCHEMES
from llmzoo.tokenizer.spm import SPACE_SYMBOL, TokenType

__all__ = ["tokenizer_metadata"]

# role -> the GGUF key llama.cpp reads its id from ("seperator" is llama.cpp's spelling)
ROLE_KEYS = {
    "bos_token": "tokenizer.ggml.bos_token_id",
    "eos_token": "tokenizer.ggml.eos_token_id",
    "unk_token": "tokenizer.ggml.unknown_token_id",
    "pad_token": "tokenizer.ggml.padding_token_id",
    "sep_token": "tokenizer.ggml.seperator_token_id",
    "cls_token": "tokenizer.ggml.cls_token_id",
    "mask_token": "tokenizer.ggml.mask_token_id",
}
_BYTE_PIECE = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")


def tokenizer_metadata(tokenizer: Tokenizer, vocab_size: int | None = None) -> dict[str, Any]:
    """GGUF tokenizer key/values for `tokenizer`; `vocab_size` (the model's embedding rows) pads the
    token list with unused [PAD{i}] entries, as llama.cpp's converter does, since llama.cpp and
    transformers require one token per embedding row."""
    spec = json.loads(tokenizer.backend.to_str())
    model = spec["model"]
    kind = model["type"]
    n = tokenizer.vocab_size
    if vocab_size is not None and n > vocab_size:
        raise CheckpointError(f"the tokenizer has {n} tokens but the model only {vocab_size} embedding rows; "
                              "they do not belong together")
    total = max(n, vocab_size or 0)
    added = {t.content: t.special for t in tokenizer.backend.get_added_tokens_decoder().values()}
    tokens: list[str] = []
    for i in range(total):
        token = tokenizer.id_to_token(i)
        tokens.append(token if token else f"[PAD{i}]")

    if kind == "BPE" and _is_byte_level(spec):
        meta = _byte_level(spec, tokenizer, tokens, added)
    elif kind == "BPE":
        meta = _sentencepiece_bpe(spec, tokens, added)
    elif kind == "WordPiece":
        meta = _wordpiece(tokens, added)
    else:
        raise LlmzooError(f"cannot write a {kind} tokenizer into GGUF metadata (llmzoo writes byte-level BPE, "
                          "SentencePiece BPE and WordPiece); save in the hf format instead")
    for i in range(n, total):
        meta["tokenizer.ggml.token_type"][i] = TokenType.UNUSED

    for role, key in ROLE_KEYS.items():
        token = tokenizer.special_tokens_map.get(role)
        token_id = None if token is None else tokenizer.token_to_id(token)
        if token_id is not None:
            meta[key] = token_id
    if meta["tokenizer.ggml.model"] != "bert":  # BERT's [CLS] ... [SEP] is implied by the model type
        add_bos, add_eos = _adds_bos_eos(tokenizer)
        meta["tokenizer.ggml.add_bos_token"] = add_bos
        meta["tokenizer.ggml.add_eos_token"] = add_eos
    if tokenizer.chat_template:
        meta["tokenizer.chat_template"] = tokenizer.chat_template
    return meta


def _adds_bos_eos(tokenizer: Tokenizer) -> tuple[bool, bool]:
    """Whether encoding adds BOS / EOS, observed rather than read from flags, which a tokenizer.json
    post-processor may decide instead."""
    bare = tokenizer.encode("a", add_special_tokens=False)
    full = tokenizer.encode("a")
    add_bos = len(full) > len(bare) and full[0] == tokenizer.bos_token_id
    add_eos = len(full) > len(bare) and full[-1] == tokenizer.eos_token_id and (not add_bos or len(full) > len(bare) + 1)
    return bool(add_bos), bool(add_eos)


def _merges(model: dict) -> list[str]:
    return [m if isinstance(m, str) else f"{m[0]} {m[1]}" for m in model.get("merges", [])]


def _added_type(token: str, added: dict[str, bool], default: int) -> int:
    if token in added:
        return TokenType.CONTROL if added[token] else TokenType.USER_DEFINED
    return default


# -- byte-level BPE ---------------------------------------------------------------------------


def _is_byte_level(spec: dict) -> bool:
    return "ByteLevel" in json.dumps(spec.get("pre_tokenizer")) or "ByteLevel" in json.dumps(spec.get("decoder"))


def _steps(pre: dict | None) -> tuple:
    """A tokenizer.json pre-tokenizer as ByteLevelScheme.steps (the byte mapping itself left out)."""
    if pre is None:
        return ()
    kind = pre["type"]
    if kind == "Sequence":
        return tuple(s for p in pre["pretokenizers"] for s in _steps(p))
    if kind == "Split":
        pattern = pre["pattern"]
        return (("split", pattern.get("Regex", pattern.get("String"))),)
    if kind == "Digits":
        return (("digits", bool(pre.get("individual_digits"))),)
    if kind == "Punctuation":
        return (("punct",),)
    if kind == "ByteLevel":
        return (("bytelevel_regex",),) if pre.get("use_regex", True) else ()
    return ((kind,),)  # a step no llama.cpp pre-tokenizer has: matches nothing


def _normalizer_is_nfc(spec: dict) -> bool:
    return "NFC" in json.dumps(spec.get("normalizer"))


def pre_tokenizer_name(spec: dict, source: str | None) -> str:
    """The `tokenizer.ggml.pre` llama.cpp knows for this split. Several names share one split rule;
    a name found in the tokenizer's source (e.g. "smollm" in SmolLM2-135M-Instruct) is preferred,
    else the first name bytelevel.SCHEMES lists for it."""
    steps = _steps(spec.get("pre_tokenizer"))
    nfc, ignore_merges = _normalizer_is_nfc(spec), bool(spec["model"].get("ignore_merges"))
    exact = [name for name, s in SCHEMES.items() if (s.steps, s.nfc, s.ignore_merges) == (steps, nfc, ignore_merges)]
    candidates = exact or [name for name, s in SCHEMES.items() if s.steps == steps]
    if not candidates and steps == DEFAULT_SCHEME.steps:
        return "default"  # llama.cpp's split for files that name none (GPT-NeoX's converted vocabularies)
    if not candidates:
        warnings.warn(f"the tokenizer of {source or 'this model'} splits text in a way no llama.cpp pre-tokenizer "
                      "name describes; writing 'gpt-2', so llama.cpp may tokenize some text differently",
                      stacklevel=3)
        return "gpt-2"
    squashed = re.sub(r"[^a-z0-9]", "", (source or "").lower())
    hinted = [name for name in candidates if re.sub(r"[^a-z0-9]", "", name) in squashed]
    return max(hinted, key=len) if hinted else candidates[0]


def _byte_level(spec: dict, tokenizer: Tokenizer, tokens: list[str], added: dict[str, bool]) -> dict[str, Any]:
    return {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": pre_tokenizer_name(spec, tokenizer.source),
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": [_added_type(t, added, TokenType.NORMAL) for t in tokens],
        "tokenizer.ggml.merges": _merges(spec["model"]),
        "tokenizer.ggml.add_space_prefix": False,
    }


# -- SentencePiece BPE ------------------------------------------------------------------------


def _sentencepiece_bpe(spec: dict, tokens: list[str], added: dict[str, bool]) -> dict[str, Any]:
    model = spec["model"]
    if not model.get("byte_fallback") and "Replace" not in json.dumps(spec.get("normalizer")) \
            and "Metaspace" not in json.dumps(spec.get("pre_tokenizer")):
        raise LlmzooError("this BPE tokenizer is neither byte-level nor SentencePiece-style (no byte "
                          "fallback, no '▁' for spaces); llama.cpp has no tokenizer type for it")
    unk = model.get("unk_token")
    merges = _merges(model)
    # llama.cpp's SentencePiece tokenizer ranks merges by the merged piece's score: score = -rank.
    # Pieces no merge produces (characters, bytes, specials) rank below every merge.
    rank: dict[str, int] = {}
    for r, merge in enumerate(merges):
        left, right = merge.split(" ", 1)
        rank.setdefault(left + right, r)
    scores = [float(-rank[t]) if t in rank else float(-len(merges) - i) for i, t in enumerate(tokens)]
    types = []
    for token in tokens:
        if token == unk:
            types.append(TokenType.UNKNOWN)
        elif token in added:
            types.append(_added_type(token, added, TokenType.NORMAL))
        elif _BYTE_PIECE.match(token):
            types.append(TokenType.BYTE)
        else:
            types.append(TokenType.NORMAL)
    normalizer = json.dumps(spec.get("normalizer"))
    if any(f'"{kind}"' in normalizer for kind in ("Precompiled", "Strip", "NFKC", "NFKD", "NFC", "NFD", "Lowercase")):
        # llama.cpp's SentencePiece tokenizer only turns spaces into "▁" (LLaMA's own model normalizes nothing)
        warnings.warn("this SentencePiece model normalizes text (e.g. NFKC, whitespace clean-up), which llama.cpp's "
                      "'llama' tokenizer does not do; text that needs it may tokenize differently there",
                      stacklevel=3)
    text = normalizer + json.dumps(spec.get("pre_tokenizer"))
    prepends = '"Prepend"' in text or '"prepend_scheme": "always"' in text or '"prepend_scheme": "first"' in text
    return {
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.pre": "default",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.scores": scores,
        "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.merges": merges,
        "tokenizer.ggml.add_space_prefix": prepends,
    }


# -- WordPiece --------------------------------------------------------------------------------


def _wordpiece(tokens: list[str], added: dict[str, bool]) -> dict[str, Any]:
    """llama.cpp spells WordPiece like SentencePiece: a word start "▁word", a continuation bare
    (BERT's "##" dropped); bracketed tokens ([CLS], [unused0]) stay as they are."""
    spelled, types = [], []
    for token in tokens:
        special = added.get(token, False)
        if special or (token.startswith("[") and token.endswith("]")):
            spelled.append(token)
        elif token.startswith("##"):
            spelled.append(token[2:])
        else:
            spelled.append(SPACE_SYMBOL + token)
        types.append(TokenType.CONTROL if special else TokenType.NORMAL)
    return {
        "tokenizer.ggml.model": "bert",
        "tokenizer.ggml.tokens": spelled,
        "tokenizer.ggml.token_type": types,
    }
