"""`llmzoo adapter merge BASE ADAPTER OUT` and `llmzoo adapter info DIR`: peft-format adapters."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    a = sub.add_parser("adapter", help="adapters (LoRA, DoRA, (IA)3, ...) in peft's format: merge into a base, inspect")
    cmds = a.add_subparsers(dest="adapter_command", metavar="ACTION", required=True)
    m = cmds.add_parser("merge", help="fold an adapter into its base and write the merged model")
    m.add_argument("base", help="the base: zoo name, HF checkpoint directory, llmzoo directory or .gguf file")
    m.add_argument("adapter", help="adapter directory (adapter_config.json + adapter_model.safetensors)")
    m.add_argument("out", help="directory to write the merged model to")
    m.add_argument("--format", choices=("hf", "llmzoo", "auto"), default="hf",
                   help="hf: a directory transformers loads (default); llmzoo: llmzoo's own; auto: hf where it can")
    m.set_defaults(func=cmd_merge)
    i = cmds.add_parser("info", help="method, rank, alpha, targets, parameter count and base of an adapter")
    i.add_argument("directory", help="adapter directory")
    i.add_argument("--json", action="store_true", help="print one JSON object")
    i.set_defaults(func=cmd_info)


def cmd_merge(args: argparse.Namespace) -> int:
    import llmzoo
    from llmzoo.peft import adapter_modules, merge

    model = llmzoo.load(args.base, adapter=args.adapter)
    n = len(adapter_modules(model))
    path = llmzoo.save(merge(model), args.out, format=args.format)
    print(f"merged {n} adapted module(s) of {args.adapter} into {args.base}: wrote {path}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from llmzoo.peft.peft_format import describe_adapter

    info = describe_adapter(args.directory)
    if args.json:
        print(json.dumps(info))
        return 0
    rows = [(_LABELS.get(key, key), _shown(key, value)) for key, value in info.items()
            if value not in ({}, []) or key == "target_modules"]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


_LABELS = {"target_modules": "targets", "trainable_parameters": "trainable parameters",
           "base_model_name_or_path": "base", "task_type": "task type"}


def _shown(key: str, value: object) -> str:
    """One field of `adapter info` as text: counts with thousands separators, lists joined."""
    if key == "trainable_parameters":
        return f"{value:,}"
    if key == "base_model_name_or_path":
        return str(value or "(not recorded)")
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "-"
    if isinstance(value, dict):
        return json.dumps(value)
    return "-" if value is None else str(value)
