"""`llmzoo tokenizer train | encode | decode | info`: train a tokenizer, or look at what one does."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from llmzoo.errors import LlmzooError


def register(subparsers: argparse._SubParsersAction) -> None:
    tok = subparsers.add_parser("tokenizer", help="train a tokenizer (BPE, WordPiece, Unigram) or inspect one")
    sub = tok.add_subparsers(dest="tokenizer_command", metavar="SUBCOMMAND", required=True)

    p = sub.add_parser("train", help="train a tokenizer on text / .jsonl files (.gz too)",
                       description="Train a byte-level BPE (default), BERT WordPiece or SentencePiece-style Unigram "
                                   "tokenizer and write tokenizer.json + tokenizer_config.json to --out. "
                                   "Input must be UTF-8 text; a directory stands for the .txt/.text/.md/.jsonl/"
                                   ".ndjson files (and .gz) inside it, as for `llmzoo data prepare`.")
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="plain text or .jsonl (\"text\" field) files, their .gz, or directories of them")
    p.add_argument("--kind", choices=("bpe", "wordpiece", "unigram"), default="bpe", help="tokenizer model (default bpe)")
    p.add_argument("--vocab-size", type=int, required=True, help="number of token ids, special tokens included")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--special-tokens", nargs="*", default=[], metavar="TOKEN",
                   help="extra special tokens, e.g. '<|im_start|>' '<|im_end|>' (the kind's own are always added)")
    p.add_argument("--min-frequency", type=int, default=2, help="merges/pieces seen fewer times are not learned (bpe, wordpiece)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_train)

    p = sub.add_parser("encode", help="print the token ids of TEXT",
                       description="Tokenize TEXT with a tokenizer (zoo name, directory, tokenizer.json, .gguf, .model).")
    p.add_argument("source", help="zoo name, tokenizer directory, tokenizer.json, .gguf or SentencePiece .model")
    p.add_argument("text", nargs="?", help="text to encode (default: read stdin)")
    p.add_argument("--no-special", action="store_true", help="do not add BOS/EOS/[CLS]... tokens")
    p.add_argument("--tokens", action="store_true", help="also print each id's token string")
    p.set_defaults(func=_encode)

    p = sub.add_parser("decode", help="print the text of token IDS")
    p.add_argument("source", help="zoo name, tokenizer directory, tokenizer.json, .gguf or SentencePiece .model")
    p.add_argument("ids", nargs="+", type=int, metavar="ID")
    p.add_argument("--skip-special", action="store_true", help="leave special tokens out")
    p.set_defaults(func=_decode)

    p = sub.add_parser("info", help="vocabulary size, special tokens, stop ids, chat template")
    p.add_argument("source", help="zoo name, tokenizer directory, tokenizer.json, .gguf or SentencePiece .model")
    p.set_defaults(func=_info)


def _train(args: argparse.Namespace) -> int:
    from llmzoo.tokenizer.train import train_tokenizer

    with warnings.catch_warnings(record=True) as caught:  # a short corpus: one "warning:" line, not a source dump
        warnings.simplefilter("always", UserWarning)
        tok = train_tokenizer(args.files, kind=args.kind, vocab_size=args.vocab_size,
                              special_tokens=args.special_tokens, out_dir=args.out,
                              min_frequency=args.min_frequency, progress=not args.quiet)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    print(f"trained a {args.kind} tokenizer with {tok.vocab_size} tokens -> {args.out}")
    return 0


def _encode(args: argparse.Namespace) -> int:
    from llmzoo.tokenizer import load_tokenizer

    tok = load_tokenizer(args.source)
    text = args.text if args.text is not None else sys.stdin.read()
    ids = tok.encode(text, add_special_tokens=not args.no_special)
    if args.tokens:
        for i in ids:
            print(f"{i}\t{tok.id_to_token(i)!r}")
    else:
        print(" ".join(map(str, ids)))
    return 0


def _decode(args: argparse.Namespace) -> int:
    from llmzoo.tokenizer import load_tokenizer

    tok = load_tokenizer(args.source)
    bad = [i for i in args.ids if not 0 <= i < tok.vocab_size]
    if bad:
        raise LlmzooError(f"token ids {bad} are outside the vocabulary (0..{tok.vocab_size - 1})")
    print(tok.decode(args.ids, skip_special_tokens=args.skip_special))
    return 0


def _info(args: argparse.Namespace) -> int:
    from llmzoo.tokenizer import load_tokenizer

    tok = load_tokenizer(args.source)
    info = {
        "model": type(tok.backend.model).__name__,
        "vocab_size": tok.vocab_size,
        "special_tokens": tok.special_tokens_map,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
        "stop_token_ids": sorted(tok.stop_token_ids),
        "adds": tok.decode(tok.encode("")) or None,
        "chat_template": (tok.chat_template[:200] + "...") if tok.chat_template and len(tok.chat_template) > 200
        else tok.chat_template,
    }
    print(json.dumps(info, indent=2, ensure_ascii=False))
    return 0
