"""`llmzoo align reward|dpo|ppo --recipe FILE|NAME [key=value ...] [--resume RUN_DIR]` and
`llmzoo align rejection-sampling --model SRC --prompts FILE --out FILE (--reward-model DIR | --judge gold)` and
`llmzoo align label-pairs --model SRC --prompts FILE --out FILE (--judge-model SRC | --judge RULE)` (RLAIF): preference
training through the one training loop (llmzoo/train/loop.py) and the finetune command's arguments
(llmzoo/cli/pretrain.py add_training_arguments / run_training). See docs/alignment.md.

- dpo: a fine-tuning recipe with `task: dpo`, run exactly as `llmzoo finetune` runs it (adapter/,
  model/, metrics.jsonl with the held-out implicit-reward accuracy and margins).
- ppo: a recipe with `task: ppo` (llmzoo/align/ppo_task.py); the policy gets a value head first, the
  loop trains it in place, and this command saves adapter/, model/ (llmzoo.load reads the
  policy; value_head.safetensors beside it is the critic), ppo_curves.png and the held-out report.
- rejection-sampling: best-of-n samples judged by a reward model or a gold-answer rule, written as SFT
  rows (llmzoo/align/best_of_n.py); the SFT itself is `llmzoo finetune`.
- reward: the base gets a value head first (the one saved with model.from, else a fresh one), the
  loop trains that model in place, and this command saves it: RUN_DIR/model is the stack's own
  directory (llmzoo.load reads it as the plain model) plus value_head.safetensors
  (llmzoo.models.value_head.load_value_model reads both). Held-out pair accuracy goes to metrics.jsonl.
"""

from __future__ import annotations

import argparse
import os
import sys

from llmzoo.cli.pretrain import add_training_arguments, run_training

COMMANDS = {"reward": "train a reward model (value head, Bradley-Terry loss) on preference pairs",
            "dpo": "DPO / IPO / hinge / robust on preference pairs, against a frozen or adapters-disabled reference",
            "ppo": "RLHF with PPO: rollouts scored by a judge or reward model, a KL penalty to the reference, a "
                   "value head on the policy"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("align", help="align a model: reward models and DPO on preference pairs, PPO",
                              description="Alignment from a YAML recipe (task reward, dpo or ppo) through the "
                                          "one training loop; see docs/alignment.md.")
    sub = p.add_subparsers(dest="align_command", metavar="METHOD", required=True)
    for name, help_text in COMMANDS.items():
        q = sub.add_parser(name, help=help_text, description=help_text + ". Settings are overridden with key=value "
                           "(e.g. data.beta=0.2 max_steps=10).")
        add_training_arguments(q)
        q.set_defaults(func=_run, align_command=name)
    _register_rejection_sampling(sub)
    _register_label_pairs(sub)


def _register_label_pairs(sub) -> None:
    q = sub.add_parser("label-pairs", help="RLAIF: sample two answers per prompt, let an AI judge (or a rule) pick "
                                           "the better, write preference pairs",
                       description="Preference pairs from AI feedback (RLAIF, llmzoo/align/rlaif.py): for each prompt "
                                   "of a JSONL file, two answers sampled from --model, labelled by a judge model shown "
                                   "a rubric (--judge-model SRC [--rubric TEXT]; both orders averaged) or by a rule "
                                   "judge (--judge gold|mentions-gold|contains:TEXT); written as prompt/chosen/rejected "
                                   "rows that `llmzoo align dpo|reward data.train=FILE` trains on.")
    q.add_argument("--model", required=True, help="the policy that answers: anything llmzoo.load reads")
    q.add_argument("--prompts", required=True, help="JSONL rows with 'prompt' (string or chat messages) [+ 'answer']")
    q.add_argument("--out", required=True, help="where the labelled pairs go (JSONL)")
    q.add_argument("--judge-model", help="judge: an instruction-tuned model prompted with the rubric")
    q.add_argument("--rubric", help="the judge model's rubric (text, or @FILE); default: correct, on-topic, brief")
    q.add_argument("--judge", help="judge: a rule, gold | mentions-gold | contains:TEXT (rows need 'answer' for gold)")
    q.add_argument("--min-confidence", type=float, default=0.0,
                   help="drop pairs whose preference is within this of 0.5 (default 0: keep every decided pair)")
    q.add_argument("--max-new-tokens", type=int, default=64)
    q.add_argument("--temperature", type=float, default=1.0)
    q.add_argument("--top-k", type=int, default=50)
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(func=_label_pairs)


def _label_pairs(args: argparse.Namespace) -> int:
    from pathlib import Path

    import llmzoo
    from llmzoo.align.best_of_n import read_prompts
    from llmzoo.align.rlaif import DEFAULT_RUBRIC, RubricJudge, label_pairs, write_pairs
    from llmzoo.errors import LlmzooError

    if (args.judge_model is None) == (args.judge is None):
        raise LlmzooError("give one judge: --judge-model SRC (a model prompted with the rubric) or --judge RULE")
    if args.rubric is not None and args.judge_model is None:
        raise LlmzooError("--rubric is the judge model's prompt; it needs --judge-model")
    rows = read_prompts(args.prompts)
    tokenizer = llmzoo.load_tokenizer(args.model)
    if args.judge_model is not None:
        rubric = args.rubric or DEFAULT_RUBRIC
        if rubric.startswith("@"):
            try:
                rubric = Path(rubric[1:]).read_text(encoding="utf-8")
            except OSError as e:
                raise LlmzooError(f"cannot read the rubric {rubric[1:]}: {e.strerror or e}") from None
        labeller = RubricJudge(llmzoo.load(args.judge_model), llmzoo.load_tokenizer(args.judge_model), rubric)
        name = f"rubric:{args.judge_model}"
    else:
        from llmzoo.align.ppo_judge import make_judge

        labeller, name = make_judge(args.judge, None, tokenizer, ""), args.judge
    pairs, dropped = label_pairs(llmzoo.load(args.model), tokenizer, rows, labeller, max_new_tokens=args.max_new_tokens,
                                 temperature=args.temperature, top_k=args.top_k, seed=args.seed,
                                 min_confidence=args.min_confidence)
    write_pairs(pairs, args.out, name)
    mean = sum(p.preference for p in pairs) / len(pairs) if pairs else float("nan")
    print(f"{len(rows)} prompts: {len(pairs)} pairs written to {args.out} (mean preference {mean:.3f}); dropped "
          + ", ".join(f"{n} {why}" for why, n in dropped.items()))
    return 0


def _register_rejection_sampling(sub) -> None:
    q = sub.add_parser("rejection-sampling", help="best-of-n: sample n answers per prompt, keep the one a judge scores "
                                                  "highest, write them as SFT rows",
                       description="Rejection-sampling data (LLaMA-2-Chat): for each prompt of a JSONL file, sample n "
                                   "answers from --model, score them with a reward model (--reward-model DIR, saved by "
                                   "`llmzoo align reward`) or the gold-answer rule (--judge gold, rows with 'answer'), "
                                   "and write the best as `messages` rows for `llmzoo finetune` (task sft).")
    q.add_argument("--model", required=True, help="the policy: anything llmzoo.load reads")
    q.add_argument("--prompts", required=True, help="JSONL rows with 'prompt' (string or chat messages) [+ 'answer']")
    q.add_argument("--out", required=True, help="where the kept answers go (JSONL, task sft's messages rows)")
    q.add_argument("--n", type=int, default=4, help="samples per prompt (default 4)")
    q.add_argument("--reward-model", help="judge: a reward model directory (value_head.safetensors beside the stack)")
    q.add_argument("--judge", choices=["gold"], help="judge: gold = the answer's first word is the row's 'answer'")
    q.add_argument("--min-score", type=float, help="reject prompts whose best score is below this")
    q.add_argument("--max-new-tokens", type=int, default=64)
    q.add_argument("--temperature", type=float, default=0.8)
    q.add_argument("--top-k", type=int, default=50)
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(func=_rejection_sampling)


def _rejection_sampling(args: argparse.Namespace) -> int:
    import llmzoo
    from llmzoo.align.best_of_n import best_of_n, judge_from, read_prompts, write_sft_rows
    from llmzoo.finetune.sft_template import resolve_template

    rows = read_prompts(args.prompts)
    tokenizer = llmzoo.load_tokenizer(args.model)
    template = resolve_template(None, tokenizer, args.model)
    judge = judge_from(args.reward_model, args.judge == "gold", tokenizer, template)
    model = llmzoo.load(args.model)
    results = best_of_n(model, tokenizer, rows, judge, n=args.n, template=template, max_new_tokens=args.max_new_tokens,
                        temperature=args.temperature, top_k=args.top_k, seed=args.seed)
    kept = write_sft_rows(results, args.out, args.min_score)
    mean_best = sum(r.score for r in results) / len(results)
    mean_all = sum(sum(r.scores) / len(r.scores) for r in results) / len(results)
    print(f"{len(results)} prompts x {args.n} samples: mean score of the best {mean_best:.4g} (of all samples "
          f"{mean_all:.4g}); {kept} rows written to {args.out}")
    return 0


def _checked_recipe(args: argparse.Namespace):
    from llmzoo.cli.pretrain import _recipe
    from llmzoo.errors import ConfigError
    from llmzoo.finetune.registry import _key

    if args.align_command == "ppo":
        import llmzoo.align.ppo_task  # noqa: F401  registers task ppo (not yet in the registry's TASK_MODULES)
    recipe = _recipe(args, "finetune")
    if _key(recipe.task) != args.align_command:
        raise ConfigError(f"recipe {recipe.name!r} has task {recipe.task!r}; `llmzoo align {args.align_command}` runs "
                          f"task={args.align_command} recipes")
    if args.nproc_per_node is not None:
        raise ConfigError("llmzoo align runs in one process; drop --nproc-per-node")
    return recipe


def _run(args: argparse.Namespace) -> int:
    recipe = _checked_recipe(args)
    if args.align_command == "dpo":
        return run_training(args, "finetune")
    if args.align_command == "ppo":
        return _train_ppo(args, recipe)
    return _train_reward(args, recipe)


def _train_reward(args: argparse.Namespace, recipe) -> int:
    import torch

    from llmzoo import peft
    from llmzoo.models.value_head import attach_value_head, save_value_model, value_head_tensors
    from llmzoo.train import finetune as ft
    from llmzoo.train.loop import Trainer
    from llmzoo.train.metrics import MetricsLog

    model = ft.load_base(recipe)
    source = ft.base_source(recipe)
    saved = value_head_tensors(source) if os.path.isdir(source) else None
    attach_value_head(model, saved[1] if saved else None, seed=recipe.seed)
    if saved is not None:  # continue training a saved reward model
        with torch.no_grad():
            model.score.weight.copy_(saved[0].float())
    from llmzoo.train.distributed import shutdown

    threads = torch.get_num_threads()  # the recipe's `threads` is process-wide: give it back, as train() does
    trainer = Trainer(recipe, resume=args.resume, model=model)  # Trainer, not train(): its task holds the held-out rows
    try:
        result = trainer.run()
    finally:
        shutdown(trainer.env)
        torch.set_num_threads(threads)
    tokenizer = trainer.tokenizer
    report = trainer.task.task.held_out_report(model)
    if recipe.peft is not None:
        peft.merge(model)  # the adapter folds into the stack; the value head trained in full beside it
    model.eval()
    model_dir = save_value_model(model, result.run_dir / "model", tokenizer)
    if report:
        MetricsLog(result.run_dir).write({"kind": "held_out", "step": result.steps, **report})
        print("held-out " + ", ".join(f"{k} {v:.4g}" for k, v in report.items()))
    last = result.losses.get(result.steps)
    print(f"done: {result.steps} steps" + (f", train loss {last:.4f}" if last is not None else "")
          + (f", val loss {result.val_loss:.4f}" if result.val_loss is not None else ""))
    for label, path in (("checkpoint", result.checkpoint), ("loss curve", result.curve), ("model", model_dir)):
        if path is not None:
            print(f"{label}: {path}")
    sys.stdout.flush()
    return 0


def _train_ppo(args: argparse.Namespace, recipe) -> int:
    """Like reward: the policy gets its value head (the critic: the one saved beside model.from, else a
    fresh one), trains in place, and is saved here (the loop's own export knows no value head)."""
    import torch

    from llmzoo import peft
    from llmzoo.align.ppo_plot import plot_ppo_curves
    from llmzoo.models.value_head import attach_value_head, save_value_model, value_head_tensors
    from llmzoo.train import finetune as ft
    from llmzoo.train.distributed import shutdown
    from llmzoo.train.loop import Trainer
    from llmzoo.train.metrics import MetricsLog, read_metrics

    model = ft.load_base(recipe)
    source = ft.base_source(recipe)
    saved = value_head_tensors(source) if os.path.isdir(source) else None
    attach_value_head(model, saved[1] if saved else None, seed=recipe.seed)
    if saved is not None:
        with torch.no_grad():
            model.score.weight.copy_(saved[0].float())
    threads = torch.get_num_threads()
    trainer = Trainer(recipe, resume=args.resume, model=model)
    try:
        result = trainer.run()
    finally:
        shutdown(trainer.env)
        torch.set_num_threads(threads)
    task = trainer.task.task
    report = task.held_out_report(model)  # before any merge: the reference may be the disabled adapters
    adapter_dir = None
    if recipe.peft is not None:
        adapter_dir = peft.save_adapter(model, result.run_dir / "adapter", base_model_name_or_path=source)
        peft.merge(model)
    model.eval()
    model_dir = save_value_model(model, result.run_dir / "model", trainer.tokenizer)
    if report:
        MetricsLog(result.run_dir).write({"kind": "held_out", "step": result.steps, **report})
        print("held-out " + ", ".join(f"{k} {v:.4g}" for k, v in report.items()))
    rollouts = [r for r in read_metrics(result.run_dir) if r.get("kind") == "train" and "reward" in r]
    curves = plot_ppo_curves(result.run_dir, title=f"{recipe.name}: PPO, {result.steps} updates")
    line = f"done: {result.steps} PPO updates"
    if rollouts:
        first, last = rollouts[0], rollouts[-1]
        line += (f" over {last['rollout'] + 1} rollouts; judge's mean reward {first['reward']:.3f} (first rollout) -> "
                 f"{last['reward']:.3f} (last), KL to the reference {last['kl']:.4f}")
    print(line)
    for label, path in (("checkpoint", result.checkpoint), ("curves", curves), ("adapter", adapter_dir),
                        ("model", model_dir)):
        if path is not None:
            print(f"{label}: {path}")
    sys.stdout.flush()
    return 0
