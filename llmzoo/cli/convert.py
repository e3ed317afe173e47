"""`llmzoo convert`: write any loadable source as an HF, llmzoo or GGUF checkpoint."""

from __future__ import annotations

import argparse
import sys

from llmzoo.errors import LlmzooError

DTYPES = ("float32", "bfloat16", "float16")


def register(sub: argparse._SubParsersAction) -> None:
    # Until the GGUF writer carries the vocabulary, say so here rather than promise a llama.cpp file.
    gguf_caveat = ("gguf: weights, hyper-parameters and special-token ids only, no tokenizer metadata "
                   "(tokenizer.ggml.model/tokens), so llama.cpp refuses the file for now; llmzoo.load reads its "
                   "weights back")
    v = sub.add_parser("convert", help="convert any loadable source to an HF/llmzoo (or GGUF) directory",
                       description=f"Convert any loadable source to an HF checkpoint directory (default) or a GGUF "
                                   f"file. The GGUF output is incomplete: {gguf_caveat.removeprefix('gguf: ')}.")
    v.add_argument("source")
    v.add_argument("outdir")
    v.add_argument("--format", choices=("hf", "llmzoo", "gguf"), default="hf",
                   help=f"hf (default): config.json + model.safetensors that transformers loads; llmzoo: llmzoo's "
                        f"own directory, for models with no transformers layout (llmzoo.load reads it); {gguf_caveat}")
    v.add_argument("--dtype", choices=DTYPES, default=None)
    v.set_defaults(func=cmd_convert)


def _dtype(name: str | None):
    import torch

    return getattr(torch, name) if name else None


def cmd_convert(args: argparse.Namespace) -> int:
    import llmzoo

    model = llmzoo.load(args.source, dtype=_dtype(args.dtype))
    tokenizer = None
    try:
        tokenizer = llmzoo.load_tokenizer(args.source)
    except (LlmzooError, ImportError):
        print(f"note: no tokenizer found in {args.source}; writing weights and config only", file=sys.stderr)
    out = llmzoo.save(model, args.outdir, format=args.format, tokenizer=tokenizer if args.format != "gguf" else None)
    print(f"wrote {out}")
    return 0
