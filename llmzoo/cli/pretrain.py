"""`llmzoo pretrain --recipe FILE|NAME [key=value ...] [--resume RUN_DIR]`: train a model from scratch.

Multi-process: `llmzoo pretrain --nproc-per-node 2 --recipe R parallel=ddp` (or zero1, zero2, fsdp,
tp, pp) starts the processes itself; `torchrun --nproc_per_node 2 -m llmzoo pretrain ...` works too.
`llmzoo finetune` (llmzoo/cli/finetune.py) is the same command for fine-tuning recipes: both run
through add_training_arguments and run_training below.
"""

from __future__ import annotations

import argparse
import os
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "pretrain", help="pretrain a model from a YAML recipe (checkpoints, exact resume, spike recovery, DDP/FSDP/TP/PP)",
        description="Train a model described by a recipe: a YAML file or a built-in name (e.g. `shakespeare`, which "
                    "trains its own tokenizer and data on first use). Settings are overridden with key=value, "
                    "e.g. max_steps=200 model.n_layers=4 parallel=ddp.",
        epilog="Several processes: llmzoo pretrain --nproc-per-node 2 --recipe R parallel=MODE (or, e.g. on a "
               "cluster, torchrun --nproc_per_node 2 -m llmzoo pretrain --recipe R parallel=MODE), with MODE "
               "ddp, zero1 (DDP + sharded optimizer state), zero2 (FSDP, parameters kept gathered), fsdp (ZeRO-3), "
               "tp (tensor parallel) or pp (pipeline parallel). Outputs in run_dir: metrics.jsonl, loss_curve.png, "
               "checkpoints/step_XXXXXXX/, model/ (loadable with llmzoo.load / llmzoo generate).",
    )
    add_training_arguments(p)
    p.add_argument("--objective", help="pretraining objective (default clm; any name of llmzoo.objectives, e.g. prefix_lm, "
                                       "t5_span); the same as objective=NAME")
    p.set_defaults(func=_pretrain)


def add_training_arguments(p: argparse.ArgumentParser) -> None:
    """--recipe, KEY=VALUE overrides, --resume and --nproc-per-node: shared by pretrain and finetune."""
    p.add_argument("--recipe", help="recipe YAML file or built-in recipe name (default with --resume: the run's own)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="recipe settings to override")
    p.add_argument("--resume", metavar="DIR", help="continue from the latest complete checkpoint of this run dir "
                                                   "(or from this checkpoint directory)")
    p.add_argument("--nproc-per-node", type=int, metavar="N",
                   help="train in N local processes (with parallel=ddp, zero1, zero2, fsdp, tp, pp or ep), started "
                        "through torch.distributed's launcher, as torchrun would")


def _recipe(args: argparse.Namespace, command: str):
    from llmzoo.errors import ConfigError
    from llmzoo.train import checkpoint as ckpt_io
    from llmzoo.train.recipe import apply_overrides, load_recipe, recipe_from_dict

    if args.recipe:
        recipe = load_recipe(args.recipe, args.overrides)
    elif args.resume:
        saved = ckpt_io.read_recipe(ckpt_io.find_checkpoint(args.resume))
        recipe = recipe_from_dict(apply_overrides(saved, args.overrides))
    else:
        example = "shakespeare" if command == "pretrain" else "a fine-tuning recipe (see `llmzoo finetune --help`)"
        raise ConfigError(f"give --recipe FILE (or a built-in name: {example}), or --resume RUN_DIR")
    if command == "pretrain" and recipe.is_finetune and not recipe.trains_from_scratch:
        raise ConfigError(f"recipe {recipe.name!r} fine-tunes (task={recipe.task}); run it with `llmzoo finetune`")
    if command == "finetune" and recipe.trains_from_scratch:
        raise ConfigError(f"recipe {recipe.name!r} trains a new model from scratch (task={recipe.task}); run it with "
                          f"`llmzoo pretrain`")
    if command == "finetune" and not recipe.is_finetune:
        raise ConfigError(f"recipe {recipe.name!r} has no `task:`, so it pretrains; run it with `llmzoo pretrain`, "
                          f"or set task=NAME (see docs/finetune.md)")
    return recipe


def _pretrain(args: argparse.Namespace) -> int:
    if args.objective:
        args.overrides = [*args.overrides, f"objective={args.objective}"]
    return run_training(args, "pretrain")


def run_training(args: argparse.Namespace, command: str) -> int:
    """Read the recipe, train (in --nproc-per-node processes if asked) and report what the run left."""
    from llmzoo.train.loop import train

    recipe = _recipe(args, command)
    if args.nproc_per_node is not None:
        return _launch(args, recipe, command)
    result = train(recipe, resume=args.resume)
    if os.environ.get("RANK", "0") != "0":  # torchrun: rank 0 reports
        return 0
    if result.sample is not None and result.sample_continues_prompt:
        print(f"--- sample ---\n{recipe.sample_prompt}{result.sample}\n--------------")
    elif result.sample is not None:  # an encoder-decoder wrote this for the prompt it read
        print(f"--- sample ---\ninput: {recipe.sample_prompt!r}\noutput: {result.sample}\n--------------")
    last = result.losses.get(result.steps)
    line = f"done: {result.steps} steps"
    if last is not None:
        line += f", train loss {last:.4f}"
    if result.val_loss is not None:
        line += f", val loss {result.val_loss:.4f}"
        if result.val_perplexity is not None:  # None for summed losses (ELECTRA, MLM + NSP): exp() means nothing
            line += f" (perplexity {result.val_perplexity:.2f})"
    if result.rewinds:
        line += f", {len(result.rewinds)} spike rewind(s)"
    print(line)
    for label, path in (("checkpoint", result.checkpoint), ("loss curve", result.curve), ("adapter", result.adapter_dir),
                        ("model", result.model_dir)):
        if path is not None:
            print(f"{label}: {path}")
    sys.stdout.flush()
    return 0


def _launch(args: argparse.Namespace, recipe, command: str) -> int:
    """The same command in --nproc-per-node processes; the layout is checked before any starts."""
    from llmzoo.errors import ConfigError
    from llmzoo.train.launch import launch

    if args.nproc_per_node > 1 and recipe.parallel == "none":
        raise ConfigError(f"--nproc-per-node {args.nproc_per_node} needs a parallel layout: add parallel=ddp "
                          "(or zero1, zero2, fsdp, tp, pp, ep)")
    argv = [command, *(["--recipe", args.recipe] if args.recipe else []),
            *(["--resume", str(args.resume)] if args.resume else []), *args.overrides]
    return launch(args.nproc_per_node, argv)
