"""`llmzoo convert` (any loadable source -> an HF, llmzoo or GGUF checkpoint) and `llmzoo quantize`
(any loadable source -> a quantized GGUF file that llama.cpp runs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llmzoo.errors import LlmzooError

DTYPES = ("float32", "bfloat16", "float16")
QUANT_HELP = ("q8_0 (8-bit, near lossless), q4_0 / q4_1 (4-bit blocks of 32), q4_k_m (llama.cpp's 4-bit "
              "k-quant mixture: Q4_K, with Q6_K for the head and part of attn_v/ffn_down)")
_GGUF_FROM_DTYPE = {None: "f32", "float32": "f32", "float16": "f16", "bfloat16": "bf16"}


def register(sub: argparse._SubParsersAction) -> None:
    v = sub.add_parser("convert", help="convert any loadable source to an HF/llmzoo directory or a GGUF file",
                       description="Convert any loadable source (zoo name, HF or llmzoo directory, .gguf file) to "
                                   "an HF checkpoint directory (default), llmzoo's own directory, or a GGUF file "
                                   "with the tokenizer in its metadata, which llama.cpp and transformers load.")
    v.add_argument("source")
    v.add_argument("outdir")
    v.add_argument("--format", choices=("hf", "llmzoo", "gguf"), default=None,
                   help="hf (default): config.json + model.safetensors that transformers loads; llmzoo: llmzoo's "
                        "own directory, for models with no transformers layout (llmzoo.load reads it); gguf: "
                        "OUTDIR/NAME.gguf for llama.cpp (f32, or f16/bf16 with --dtype, or --quant)")
    v.add_argument("--dtype", choices=DTYPES, default=None)
    v.add_argument("--quant", metavar="TYPE", help=f"quantize the GGUF (implies --format gguf): {QUANT_HELP}")
    v.set_defaults(func=cmd_convert)

    q = sub.add_parser("quantize", help="write a quantized GGUF file (q8_0, q4_0, q4_1, q4_k_m) that llama.cpp runs",
                       description="Quantize any loadable source into a llama.cpp GGUF file, tokenizer included. "
                                   "OUT is a .gguf file name, or a directory that receives NAME-TYPE.gguf.")
    q.add_argument("source")
    q.add_argument("out")
    q.add_argument("--quant", metavar="TYPE", required=True, help=QUANT_HELP)
    q.set_defaults(func=cmd_quantize)


def _check_quant(quant: str) -> str:
    from llmzoo.convert.gguf_quants import QUANTS

    name = quant.lower()
    if name not in QUANTS:
        raise LlmzooError(f"unknown quantization {quant!r}; supported: {', '.join(QUANTS)}")
    return name


def _load(source: str, dtype: str | None):
    import torch

    import llmzoo

    model = llmzoo.load(source, dtype=getattr(torch, dtype) if dtype else None)
    try:
        return model, llmzoo.load_tokenizer(source)
    except (LlmzooError, ImportError):
        print(f"note: no tokenizer found in {source}; writing weights and config only", file=sys.stderr)
        return model, None


def cmd_convert(args: argparse.Namespace) -> int:
    import llmzoo
    from llmzoo.convert.save import save_model

    quant = _check_quant(args.quant) if args.quant else None
    fmt = args.format or ("gguf" if quant else "hf")
    if quant and fmt != "gguf":
        raise LlmzooError(f"--quant makes a GGUF file; use --format gguf (or leave --format out), not --format {fmt}")
    model, tokenizer = _load(args.source, args.dtype)
    if fmt == "gguf":
        saved = save_model(model, args.outdir, format="gguf", tokenizer=tokenizer,
                           gguf_type=quant or _GGUF_FROM_DTYPE[args.dtype])
        out = saved.path
    else:
        out = llmzoo.save(model, args.outdir, format=fmt, tokenizer=tokenizer)
    print(f"wrote {out}")
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    from llmzoo.convert.save import save_model

    quant = _check_quant(args.quant)
    model, tokenizer = _load(args.source, None)
    out = Path(args.out)
    if out.suffix == ".gguf":
        saved = save_model(model, out.parent, format="gguf", tokenizer=tokenizer, gguf_type=quant, gguf_file=out)
    else:
        saved = save_model(model, out, format="gguf", tokenizer=tokenizer, gguf_type=quant)
    print(f"wrote {saved.path}")
    return 0
