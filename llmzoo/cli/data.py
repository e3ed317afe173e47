"""`llmzoo data prepare | mix | inspect | decontaminate`: build, mix and look at pretraining token shards,
and find evaluation documents that leaked into a corpus."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from llmzoo.errors import LlmzooError


def token_count(text: str) -> int:
    """A whole number of tokens as people write it: 100000000, 1e8, 100_000_000 or 100M."""
    t = text.strip().replace("_", "").replace(",", "")
    scale = {"K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9, "T": 10**12}.get(t[-1:].upper(), 1)
    digits = t[:-1] if scale != 1 else t
    try:
        value = int(digits) * scale if digits.lstrip("+-").isdigit() else float(digits) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r} (examples: 100000000, 1e8, 100M)") from None
    if not math.isfinite(value) or value != int(value):
        raise argparse.ArgumentTypeError(f"expected a whole number of tokens, got {text!r}")
    return int(value)


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="prepare pretraining data: filter, dedup, redact, tokenize, shard, mix")
    sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    _register_prepare(sub)
    _register_mix(sub)
    _register_inspect(sub)
    _register_decontaminate(sub)
    _register_self_instruct(sub)


def _register_prepare(sub: argparse._SubParsersAction) -> None:
    from llmzoo.data.readers import DOC_SEPS, ERROR_MODES, FORMATS
    from llmzoo.data.shards import DTYPES

    p = sub.add_parser(
        "prepare", help="raw text/JSONL (.gz) -> filtered, deduplicated, PII-redacted token shards",
        description="Normalise, quality-filter (Gopher/C4 rules), deduplicate (exact + MinHash LSH), redact PII, "
                    "tokenize and pack documents into memory-mapped token shards with a manifest and a report.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="files or directories (.txt/.md/.jsonl/.ndjson, or .gz)")
    p.add_argument("--tokenizer", required=True,
                   help="tokenizer source: a zoo name, a tokenizer directory or file (tokenizer.json, .gguf, .model)")
    p.add_argument("--out", required=True, type=Path, help="output directory (must not exist unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory made by llmzoo")
    g = p.add_argument_group("input")
    g.add_argument("--format", dest="fmt", choices=FORMATS, default="auto",
                   help="auto: *.jsonl/*.ndjson(.gz) are JSONL, everything else plain text")
    g.add_argument("--doc-sep", choices=DOC_SEPS, default="blankline",
                   help="plain text: documents are blocks between blank lines (default), single lines, or whole files")
    g.add_argument("--text-field", default="text", help="JSONL field with the text (default: text)")
    g.add_argument("--errors", choices=ERROR_MODES, default="strict",
                   help="binary or non-UTF-8 input: stop with an error (default) or skip the document")
    g = p.add_argument_group("quality filter")
    g.add_argument("--filter-config", metavar="YAML", help="thresholds as `name: value` (null disables a rule)")
    g.add_argument("--set-filter", action="append", default=[], metavar="NAME=VALUE",
                   help="override one threshold, e.g. --set-filter min_words=20 (repeatable)")
    g.add_argument("--no-quality-filter", action="store_true", help="keep documents regardless of quality rules")
    g = p.add_argument_group("deduplication and PII")
    g.add_argument("--no-dedup", action="store_true", help="no exact or near-duplicate removal")
    g.add_argument("--no-near-dedup", action="store_true", help="exact dedup only")
    g.add_argument("--dedup-threshold", type=float, default=0.8, help="Jaccard similarity for near-duplicates (default 0.8)")
    g.add_argument("--num-perm", type=int, default=128, help="MinHash permutations (default 128)")
    g.add_argument("--shingle-size", type=int, default=5, help="words per shingle (default 5)")
    g.add_argument("--no-pii", action="store_true", help="do not redact emails, phones, IPs, card numbers")
    g = p.add_argument_group("output")
    g.add_argument("--val-fraction", type=float, default=0.01, help="share of documents for validation (by content hash)")
    g.add_argument("--shard-tokens", type=token_count, default=100_000_000,
                   help="tokens per shard file, e.g. 1e8 or 100M (default 1e8)")
    g.add_argument("--dtype", choices=DTYPES, default="auto", help="token dtype (auto: uint16 if the vocabulary fits)")
    g.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    g.add_argument("--quiet", action="store_true", help="no progress bar and no report table")
    p.set_defaults(func=_prepare)


def _register_mix(sub: argparse._SubParsersAction) -> None:
    from llmzoo.data.mix import DEFAULT_WINDOW

    p = sub.add_parser(
        "mix", help="mix prepared directories with weights or temperature sampling",
        description="Write a mixture manifest: windows of tokens drawn from the sources by weight "
                    "(explicit, or p_i ∝ n_i^(1/T)); open_token_dataset reads it like one dataset.",
    )
    p.add_argument("sources", nargs="+", metavar="DIR", help="directories made by `llmzoo data prepare`")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--weights", type=float, nargs="+", help="one weight per source (normalised to sum to 1)")
    how.add_argument("--temperature", type=float, help="temperature T: p_i proportional to tokens_i^(1/T)")
    p.add_argument("--out", required=True, type=Path, help="output directory for the mixture manifest")
    p.add_argument("--seed", type=int, default=0, help="seed of the window draw (default 0)")
    p.add_argument("--window", type=token_count, default=DEFAULT_WINDOW,
                   help=f"tokens per sampled window (default {DEFAULT_WINDOW})")
    p.add_argument("--num-tokens", type=token_count, default=None,
                   help="length of the mixed train stream (default: the sources' total; more up-samples)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory made by llmzoo")
    p.set_defaults(func=_mix)


def _register_inspect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="summarise a prepared or mixed directory and decode its first tokens")
    p.add_argument("directory", type=Path)
    p.add_argument("--split", default="train", choices=("train", "val"))
    p.add_argument("--tokens", type=int, default=64, help="how many tokens to decode (default 64)")
    p.add_argument("--tokenizer", help="tokenizer to decode with (default: the one named in the manifest)")
    p.set_defaults(func=_inspect)


def _register_decontaminate(sub: argparse._SubParsersAction) -> None:
    from llmzoo.data.decontaminate import DEFAULT_MIN_WORDS, DEFAULT_NGRAM

    p = sub.add_parser(
        "decontaminate", help="report evaluation documents that share a 13-gram with a training corpus (GPT-3 style)",
        description="GPT-3 (Brown et al. 2020, appendix C) decontamination: a task document is contaminated when "
                    "one of its word n-grams (lowercased, punctuation dropped), or the whole document when it is "
                    "shorter, occurs in the corpus. Reports contaminated documents per task.",
    )
    p.add_argument("corpus", nargs="+", metavar="CORPUS",
                   help="text/JSONL files (.gz), directories of them, or token-shard directories from `data prepare`")
    p.add_argument("--tasks", help="comma-separated evaluation tasks whose documents to check (see `llmzoo eval --list`)")
    p.add_argument("--documents", action="append", default=[], metavar="FILE.jsonl",
                   help='documents to check, one {"text": ..., "id"?: ..., "task"?: ...} per line (repeatable)')
    p.add_argument("--ngram", type=_ngram, default=DEFAULT_NGRAM,
                   help=f"words per n-gram (default {DEFAULT_NGRAM}), or 'auto': GPT-3 appendix C's per-task N "
                        "(5th percentile document length, clamped to 8..13)")
    p.add_argument("--min-words", type=int, default=DEFAULT_MIN_WORDS,
                   help=f"documents shorter than this are not checked (default {DEFAULT_MIN_WORDS})")
    p.add_argument("--json", type=Path, metavar="OUT", help="write the full report (with every match) as JSON")
    p.add_argument("--show-documents", action="store_true",
                   help="list each contaminated document with the matching n-gram and where it occurs")
    p.add_argument("--text-field", default="text", help="JSONL corpus field with the text (default: text)")
    p.add_argument("--tokenizer", help="tokenizer to decode token shards with (default: the one in their manifest)")
    p.add_argument("--split", default="train", choices=("train", "val"), help="split of token shards (default train)")
    p.set_defaults(func=_decontaminate)


def _register_self_instruct(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "self-instruct", help="generate instruction-tuning data from seed tasks with a model (Wang et al. 2022)",
        description="Self-Instruct: prompt the model with sampled seed tasks to write new instructions, drop "
                    "near-duplicates (ROUGE-L > 0.7 with any earlier one), let the model answer each, and write "
                    "SFT-ready JSONL rows {instruction, input, output} (llmzoo finetune task=sft reads them).",
    )
    p.add_argument("--model", required=True, help="model source: zoo name, HF/llmzoo directory or .gguf")
    p.add_argument("--seeds", required=True, type=Path, help='seed tasks, one {"instruction": ...} per line')
    p.add_argument("--n", required=True, type=int, help="number of new instructions to generate")
    p.add_argument("--out", required=True, type=Path, help="output JSONL file")
    p.add_argument("--temperature", type=float, default=0.7, help="sampling temperature for new tasks (default 0.7)")
    p.add_argument("--max-new-tokens", type=int, default=96, help="tokens per generation (default 96)")
    p.add_argument("--seed", type=int, default=0, help="seed of the task sampling and generation (default 0)")
    p.set_defaults(func=_self_instruct)


def _self_instruct(args: argparse.Namespace) -> int:
    from llmzoo.data.self_instruct import run_self_instruct

    rows = run_self_instruct(args.model, args.seeds, args.n, args.out, temperature=args.temperature,
                             max_new_tokens=args.max_new_tokens, seed=args.seed)
    print(f"wrote {rows} instruction/output rows to {args.out}")
    return 0


def _ngram(text: str) -> int | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of words or 'auto', got {text!r}") from None


def _decontaminate(args: argparse.Namespace) -> int:
    import itertools
    import json

    from llmzoo.data.decontaminate import decontaminate, file_documents, format_table, task_documents

    names = [t.strip() for t in (args.tasks or "").split(",") if t.strip()]
    if not names and not args.documents:
        raise LlmzooError("nothing to check: name tasks with --tasks piqa,... or give --documents FILE.jsonl")
    if (args.ngram != "auto" and args.ngram < 1) or args.min_words < 1:
        raise LlmzooError(f"--ngram and --min-words must be at least 1, got {args.ngram} and {args.min_words}")
    if args.json is not None and (args.json.is_dir() or not args.json.parent.is_dir()):
        raise LlmzooError(f"cannot write --json {str(args.json)!r}: not a file in an existing directory")
    if names:
        from llmzoo.eval.tasks import get_task

        for name in names:
            get_task(name)  # unknown names fail here, before the corpus is read
    docs = itertools.chain(*(task_documents(n) for n in names), *(file_documents(f) for f in args.documents))
    report = decontaminate(args.corpus, docs, n=args.ngram, min_words=args.min_words, text_field=args.text_field,
                           tokenizer=args.tokenizer, split=args.split)
    print(format_table(report, show_documents=args.show_documents))
    if args.json is not None:
        try:
            args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        except OSError as e:
            raise LlmzooError(f"cannot write --json {str(args.json)!r}: {e.strerror}") from None
        print(f"wrote {args.json}")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from llmzoo.data.pipeline import PrepareOptions, prepare
    from llmzoo.data.quality import load_thresholds

    quality = None if args.no_quality_filter else load_thresholds(args.filter_config, args.set_filter)
    if args.workers is not None and args.workers < 1:
        raise LlmzooError(f"--workers must be at least 1, got {args.workers}")
    options = PrepareOptions(
        fmt=args.fmt, doc_sep=args.doc_sep, text_field=args.text_field, errors=args.errors, quality=quality,
        exact_dedup=not args.no_dedup, near_dedup=not (args.no_dedup or args.no_near_dedup),
        dedup_threshold=args.dedup_threshold, num_perm=args.num_perm, shingle_size=args.shingle_size,
        redact_pii=not args.no_pii, val_fraction=args.val_fraction, shard_tokens=args.shard_tokens,
        dtype=args.dtype, workers=args.workers, overwrite=args.overwrite, progress=not args.quiet,
    )
    report = prepare(args.inputs, args.out, args.tokenizer, options)
    if not args.quiet:
        print(report.format_table())
        print(f"wrote {args.out}")
    return 0


def _mix(args: argparse.Namespace) -> int:
    from llmzoo.data.mix import write_mixture

    if args.num_tokens is not None and args.num_tokens < 1:
        raise LlmzooError(f"--num-tokens must be positive, got {args.num_tokens}")
    manifest = write_mixture(
        args.out, args.sources, weights=args.weights, temperature=args.temperature, seed=args.seed,
        window=args.window, num_tokens={"train": args.num_tokens} if args.num_tokens else None,
        overwrite=args.overwrite,
    )
    for src in manifest["sources"]:
        print(f"{src['weight']:8.4f}  {src['train_tokens']:>14,} train tokens  {src['path']}")
    print(f"wrote {args.out} ({manifest['weighting']} weights)")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from llmzoo.data.dataset import open_token_dataset, read_manifest
    from llmzoo.data.mix import MIXTURE_FORMAT

    manifest = read_manifest(args.directory)
    if manifest["format"] == MIXTURE_FORMAT:
        print(f"mixture of {len(manifest['sources'])} sources ({manifest['weighting']}), window {manifest['window']}, "
              f"seed {manifest['seed']}")
        for src in manifest["sources"]:
            print(f"  {src['weight']:8.4f}  {src['path']}")
    else:
        print(f"token shards: dtype {manifest['dtype']}, vocab_size {manifest['vocab_size']:,}, "
              f"eos_id {manifest['eos_id']}, tokenizer {manifest['tokenizer']}")
        for split, info in manifest["splits"].items():
            print(f"  {split:<5} {info['num_tokens']:>14,} tokens {info['num_docs']:>10,} docs "
                  f"{len(info['shards']):>5} shard(s)")
        report = Path(args.directory) / "report.txt"
        if report.is_file():
            print(report.read_text(encoding="utf-8").rstrip())
    ds = open_token_dataset(args.directory, args.split)
    if ds.num_tokens == 0:
        print(f"split {args.split!r} is empty")
        return 0
    ids = ds.read(0, min(max(args.tokens, 0), ds.num_tokens)).tolist()
    print(f"first {len(ids)} tokens of {args.split}: {ids}")
    source = args.tokenizer or _manifest_tokenizer(args.directory, manifest)
    if source:
        try:
            from llmzoo.data.tokenize import load_data_tokenizer

            tokenizer = load_data_tokenizer(source)
            text = tokenizer.decode(ids)
        except (LlmzooError, AttributeError) as e:
            print(f"(cannot decode with tokenizer {source!r}: {e})", file=sys.stderr)
        else:
            print(f"decoded: {text!r}")
    return 0


def _manifest_tokenizer(directory: Path, manifest: dict) -> str | None:
    if "tokenizer" in manifest:
        return manifest["tokenizer"]
    from llmzoo.data.dataset import read_manifest

    first = manifest.get("sources", [{}])[0].get("path")
    return read_manifest(directory / first).get("tokenizer") if first else None
