"""`llmzoo eval`: benchmarks (lm-eval-harness's tasks and formulations) on any loadable model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from llmzoo.cli.generate import add_adapter_arg, add_quant_arg
from llmzoo.errors import LlmzooError


def register(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("eval", help="evaluate a model on benchmarks (piqa, arc_easy, mmlu, lambada_openai, ...)",
                       description="Evaluate a model on benchmarks, with lm-eval-harness's prompts and metrics.")
    e.add_argument("source", nargs="?", help="zoo name, HF checkpoint directory, llmzoo directory or .gguf file")
    e.add_argument("--tasks", help="comma-separated task names (see --list); ppl:PATH for a text file's perplexity")
    e.add_argument("--num-fewshot", type=int, default=0, help="few-shot examples per prompt (default 0)")
    e.add_argument("--limit", type=int, help="evaluate only the first N documents of each task")
    e.add_argument("--samples", metavar="JSON|FILE",
                   help='only these documents, as lm-eval\'s --samples: {"task": [indices]} as JSON or a JSON '
                        'file (e.g. one shard of a long run); not with --limit')
    e.add_argument("--batch-size", type=int, default=8)
    e.add_argument("--chat", action="store_true", help="wrap prompts in the model's chat template")
    e.add_argument("--json", metavar="OUT", help="write the results as JSON to OUT")
    e.add_argument("--log-samples", metavar="OUT", help="write per-document records (prompt, requests, answers, "
                                                        "metrics) as JSON lines to OUT")
    e.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default=None)
    e.add_argument("--device", default="cpu", help="torch device to run on (cpu, cuda, cuda:1, mps; default cpu)")
    add_adapter_arg(e)
    add_quant_arg(e)
    e.add_argument("--list", action="store_true", help="list the tasks with their data source and metrics")
    e.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    if args.list:
        print(task_listing())
        return 0
    if not args.source:
        raise LlmzooError("give a model to evaluate: llmzoo eval SOURCE --tasks piqa,... (or --list)")
    if not args.tasks:
        raise LlmzooError("name the tasks with --tasks, e.g. --tasks piqa,arc_easy (see `llmzoo eval --list`)")
    if args.batch_size < 1:
        raise LlmzooError(f"--batch-size must be >= 1, got {args.batch_size}")
    for out in (args.json, args.log_samples):
        if out and not Path(out).resolve().parent.is_dir():
            raise LlmzooError(f"cannot write {out}: {Path(out).parent} is not a directory")
    import torch

    from llmzoo.cli.generate import _load
    from llmzoo.eval.harness import evaluate, preflight

    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise LlmzooError(f"--device {args.device!r} is not a torch device (cpu, cuda, cuda:1, mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LlmzooError(f"--device {args.device}: no CUDA device is available here")
    samples = _read_samples(args.samples)
    tasks = preflight(args.tasks, args.num_fewshot, args.limit, samples)  # before the model loads: fail fast
    model, tokenizer = _load(args.source, args.dtype, args.adapter, args.quant)
    model = model.to(device)
    result = evaluate(model, tokenizer, tasks, num_fewshot=args.num_fewshot, limit=args.limit,
                      batch_size=args.batch_size, chat=args.chat, log_samples=bool(args.log_samples),
                      samples=samples)
    result["config"].update(source=args.source, device=str(device), dtype=args.dtype or "float32", quant=args.quant)
    samples = result.pop("samples", None)
    print(format_table(result))
    if args.json:
        _write(args.json, json.dumps(result, indent=2) + "\n")
    if samples is not None:
        lines = [json.dumps({"task": task, **row}) for task, rows in samples.items() for row in rows]
        _write(args.log_samples, "\n".join(lines) + "\n")
    return 0


def _read_samples(value: str | None) -> dict | None:
    """--samples: inline JSON, or the path of a file holding it."""
    if value is None:
        return None
    text = value
    if not value.lstrip().startswith("{"):
        try:
            text = Path(value).read_text()
        except OSError as e:
            raise LlmzooError(f"--samples {value!r} is neither JSON nor a readable file: {e.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise LlmzooError(f"--samples is not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None


def _write(path: str, text: str) -> None:
    try:
        Path(path).write_text(text)
    except OSError as e:
        raise LlmzooError(f"cannot write {path}: {e.strerror}") from None


def format_table(result: dict) -> str:
    rows = [("task", "metric", "value", "n")]
    for task, metrics in result["results"].items():
        first = True
        for name, value in metrics.items():
            if name == "n":
                continue
            rows.append((task if first else "", name, f"{value:.4f}", str(metrics["n"]) if first else ""))
            first = False
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def task_listing() -> str:
    from llmzoo.eval.tasks import TASK_PREFIXES, all_tasks

    tasks = all_tasks()
    members = {m.name for t in tasks.values() for m in t.subtasks()}
    rows = [("task", "metrics", "data")]
    for task in tasks.values():
        if task.name in members:
            continue
        name = task.name + (f" (+ {len(task.subtasks())} {task.name}_<subject> tasks)" if task.subtasks() else "")
        rows.append((name, ", ".join(task.metrics), task.source))
    if "ppl" in TASK_PREFIXES:
        rows.append(("ppl:PATH", "word_perplexity, byte_perplexity, bits_per_byte", "any UTF-8 text file"))
    w0, w1 = (max(len(r[i]) for r in rows) for i in range(2))
    return "\n".join(f"{a.ljust(w0)}  {b.ljust(w1)}  {c}".rstrip() for a, b, c in rows)


