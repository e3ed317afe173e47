"""`llmzoo finetune --recipe FILE|NAME [key=value ...] [--resume RUN_DIR] [--nproc-per-node N]`:
fine-tune a model (full or PEFT) with the one training loop; the arguments and the report are
`llmzoo pretrain`'s (llmzoo/cli/pretrain.py)."""

from __future__ import annotations

import argparse
import textwrap

from llmzoo.cli.pretrain import add_training_arguments, run_training


def register(subparsers: argparse._SubParsersAction) -> None:
    from llmzoo.train.recipe import builtin_finetune_recipes

    builtin = builtin_finetune_recipes()
    p = subparsers.add_parser(
        "finetune", help="fine-tune a model from a YAML recipe (task + base + optional peft; checkpoints, exact resume)",
        formatter_class=argparse.RawDescriptionHelpFormatter,  # recipe names must not break at their hyphens
        description=_fill("Fine-tune the base model a recipe names (model.from=SOURCE: a zoo name with weights, an "
                          "HF or llmzoo directory, a .gguf file) on a fine-tuning task (task=NAME, with its data.* "
                          "settings), fully or through a PEFT method (peft.method=lora peft.r=8 ...). Settings are "
                          "overridden with key=value. See docs/finetune.md."),
        epilog=_fill(f"Built-in fine-tuning recipes: {', '.join(builtin) if builtin else 'none yet'}.") + "\n\n" +
        _fill("Outputs in run_dir: metrics.jsonl, loss_curve.png, checkpoints/step_XXXXXXX/ (a PEFT run's hold only "
              "the trainable tensors), adapter/ (PEFT runs, peft's format: llmzoo.load(BASE, adapter=DIR)) and "
              "model/ (the merged or fully fine-tuned model, llmzoo.load reads it)."),
    )
    add_training_arguments(p)
    p.set_defaults(func=lambda args: run_training(args, "finetune"))


def _fill(text: str) -> str:
    return textwrap.fill(text, width=100, break_on_hyphens=False)
