"""`llmzoo rag index DOCS... --out INDEX` and `llmzoo rag ask INDEX --model SOURCE QUESTION`:
retrieval-augmented generation over a set of documents (llmzoo.rag)."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("rag", help="retrieval-augmented generation: index documents, ask questions with sources")
    rsub = r.add_subparsers(dest="rag_command", metavar="ACTION", required=True)

    i = rsub.add_parser("index", help="chunk, embed and index documents (files or directories of .txt/.md)")
    i.add_argument("docs", nargs="+", metavar="DOC")
    i.add_argument("--out", required=True, metavar="INDEX", help="directory to write the index to")
    i.add_argument("--embedder", default="all-minilm-l6-v2", help="sentence encoder (default all-minilm-l6-v2)")
    i.add_argument("--chunk-size", type=int, default=128, help="units per chunk (default 128)")
    i.add_argument("--chunk-overlap", type=int, default=32, help="units shared by neighbouring chunks (default 32)")
    i.add_argument("--chunk-unit", choices=("words", "tokens"), default="words",
                   help="words (whitespace-separated) or the embedder's tokens (default words)")
    i.set_defaults(func=cmd_index)

    a = rsub.add_parser("ask", help="answer a question from an index, with its sources")
    a.add_argument("index", metavar="INDEX")
    a.add_argument("question")
    a.add_argument("--model", required=True, metavar="SOURCE", help="chat model that writes the answer")
    a.add_argument("--k", type=int, default=4, help="passages retrieved (default 4)")
    a.add_argument("--embedder", help="refuse the index unless it was built with this embedder")
    a.add_argument("--max-new-tokens", type=int, default=128)
    a.add_argument("--json", action="store_true", help="print {answer, sources} as JSON")
    a.set_defaults(func=cmd_ask)


def cmd_index(args: argparse.Namespace) -> int:
    from llmzoo.rag import build_index

    index = build_index(args.docs, embedder=args.embedder, size=args.chunk_size, overlap=args.chunk_overlap,
                        unit=args.chunk_unit)
    index.save(args.out)
    print(f"indexed {len(index.chunks)} chunks from {len(index.sources)} documents into {args.out} "
          f"(embedder {index.embedder})", file=sys.stderr)
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    import llmzoo
    from llmzoo.errors import LlmzooError
    from llmzoo.rag import ask, load_index

    index = load_index(args.index)
    index.check_embedder(args.embedder)  # before loading the chat model: a wrong index is one line at once
    if args.k < 1 or args.max_new_tokens < 1:
        raise LlmzooError("--k and --max-new-tokens must be >= 1")
    model, tokenizer = llmzoo.load(args.model), llmzoo.load_tokenizer(args.model)
    if not getattr(tokenizer, "chat_template", None):
        raise LlmzooError(f"{args.model} has no chat template; `llmzoo rag ask` needs a chat model")
    answer = ask(index, model, tokenizer, args.question, k=args.k, max_new_tokens=args.max_new_tokens)
    if args.json:
        print(json.dumps({"answer": answer.text, "sources": answer.sources}, ensure_ascii=False))
        return 0
    print(answer.text.strip())
    print("\nsources:")
    unit = index.chunking.get("unit", "words").removesuffix("s")  # the chunk starts at this word / token
    for s in answer.sources:
        print(f"  [{s['n']}] {s['source']} ({unit} {s['start']}, score {s['score']:.3f})")
    return 0
