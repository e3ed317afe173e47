"""`llmzoo adapter merge BASE ADAPTER OUT` and `llmzoo adapter info DIR`: peft-format adapters."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    a = sub.add_parser("adapter", help="LoRA/DoRA adapters in peft's format: merge into a base, inspect")
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
    from llmzoo.peft import lora_modules, merge

    model = llmzoo.load(args.base, adapter=args.adapter)
    n = len(lora_modules(model))
    path = llmzoo.save(merge(model), args.out, format=args.format)
    print(f"merged {n} adapted module(s) of {args.adapter} into {args.base}: wrote {path}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from llmzoo.peft.peft_format import describe_adapter

    info = describe_adapter(args.directory)
    if args.json:
        print(json.dumps(info))
        return 0
    targets = info["target_modules"]
    rows = [
        ("method", info["method"]), ("r", info["r"]), ("lora_alpha", info["lora_alpha"]),
        ("lora_dropout", info["lora_dropout"]),
        ("targets", targets if isinstance(targets, str) else ", ".join(targets)),
        ("modules", info["modules"]), ("trainable parameters", f"{info['trainable_parameters']:,}"),
        ("base", info["base_model_name_or_path"] or "(not recorded)"), ("task type", info["task_type"] or "-"),
    ]
    rows += [(name, json.dumps(info[name])) for name in ("rank_pattern", "alpha_pattern") if info[name]]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0
