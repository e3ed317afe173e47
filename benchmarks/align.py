"""Alignment speed: a DPO step llmzoo vs trl, and PPO rollouts through llmzoo's decoding vs
transformers' generate, on SmolLM2-135M-Instruct (the offline asset's real weights).

    .venv/bin/python benchmarks/align.py [--pairs 4] [--answer 96] [--steps 3] [--threads 1]
                                         [--rollouts 8] [--new-tokens 64] [--skip dpo|rollout]

DPO workers (each its own process, so its peak RSS is its own), the same text pairs, LoRA r 8 /
alpha 16 on q_proj and v_proj, the reference being the same network with its adapters disabled
(one model in memory on both sides), beta 0.1, sigmoid loss, AdamW over the adapter, fp32:
  trl      trl 1.16's DPOTrainer (peft's LoRA on transformers' LlamaForCausalLM): its collated
           batch and its own `compute_loss`, then backward and the optimizer step
  llmzoo   `llmzoo align dpo`'s task (llmzoo/align/dpo_task.py) on llmzoo.peft's LoRA: the same
           pairs rendered by its preference data, forward, loss, backward, step
tokens/s counts the real (unpadded) tokens of both sides of every pair per step.

Rollout workers: the prompts PPO samples from (chat-templated questions), one sampled response
each (temperature 1, seed 0), up to --new-tokens:
  hf       transformers' generate (do_sample, KV cache, left padding), batched
  llmzoo   llmzoo.align.ppo_rollout.sample_responses, what `llmzoo align ppo` runs (generate_ids)
tokens/s counts the response tokens actually produced (rows end at their own stop token).
Targets (issue 15): DPO >= 1.5x trl's tokens/s; rollouts >= 3x transformers'.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOURCE = "smollm2-135m-instruct"
TARGETS = ["q_proj", "v_proj"]
QUESTIONS = ["What is the capital of France?", "Name a primary colour.", "How many legs does a spider have?",
             "What is 7 times 8?", "Which planet is closest to the sun?", "What do bees make?",
             "What is the boiling point of water in Celsius?", "Who wrote Hamlet?"]


def _pairs(n: int, answer_words: int) -> list[dict]:
    """Preference pairs with answers of about `answer_words` words: a long chosen and rejected side."""
    words = ("the river runs past the old mill where the children play in the summer sun and the "
             "garden grows by the water").split()
    out = []
    for i in range(n):
        text = [words[(i + k) % len(words)] for k in range(answer_words)]
        # conversational rows (trl's format): both sides render them through the model's chat template
        out.append({"prompt": [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}],
                    "chosen": [{"role": "assistant", "content": " ".join(text)}],
                    "rejected": [{"role": "assistant", "content": " ".join(reversed(text))}]})
    return out


def _dpo_trl(args, pairs) -> tuple[callable, int]:
    import datasets
    import peft
    import torch
    import trl
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(args.weights, dtype=torch.float32, attn_implementation="sdpa")
    tokenizer = AutoTokenizer.from_pretrained(args.weights)
    config = trl.DPOConfig(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=len(pairs), beta=0.1,
                           report_to=[], use_cpu=True, max_steps=1, max_length=None)
    lora = peft.LoraConfig(r=8, lora_alpha=16, target_modules=TARGETS, lora_dropout=0.0, task_type="CAUSAL_LM")
    trainer = trl.DPOTrainer(model=model, args=config, processing_class=tokenizer, peft_config=lora,
                             train_dataset=datasets.Dataset.from_list(pairs))
    batch = next(iter(trainer.get_train_dataloader()))
    policy = trainer.model
    policy.train()
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-5)

    def step() -> float:
        loss = trainer.compute_loss(policy, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss)

    return step, int(batch["attention_mask"].sum())


def _dpo_llmzoo(args, pairs) -> tuple[callable, int]:
    import torch

    import llmzoo
    import llmzoo.peft
    from llmzoo.align.dpo_task import DPOTask, Reference
    from llmzoo.align.preference_data import PairRows, pair_from_row
    from llmzoo.finetune.sft_template import resolve_template

    model = llmzoo.load(args.weights, dtype=torch.float32)
    tokenizer = llmzoo.load_tokenizer(args.weights)
    llmzoo.peft.apply(model, "lora", target_modules=TARGETS, r=8, lora_alpha=16)
    template = resolve_template(None, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    rows = PairRows([pair_from_row(p, f"pair {i}") for i, p in enumerate(pairs)], template, tokenizer,
                    model.config.max_seq_len, pad)
    batch = rows.rows(range(len(pairs)))
    task = DPOTask(Reference("adapters"), beta=0.1, loss_type="sigmoid", label_smoothing=0.0)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def step() -> float:
        loss = task.loss(task.forward(model, batch), batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss)

    return step, task.token_count(batch)


def _rollout(args) -> dict:
    import torch

    import llmzoo

    tokenizer = llmzoo.load_tokenizer(args.weights)
    chats = [[{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}] for i in range(args.rollouts)]
    prompts = [tokenizer.encode(tokenizer.apply_chat_template(c, add_generation_prompt=True), add_special_tokens=False)
               for c in chats]
    stops = set(getattr(tokenizer, "stop_token_ids", None) or ()) | {tokenizer.eos_token_id}
    if args.worker == "rollout-hf":
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(args.weights, dtype=torch.float32, attn_implementation="sdpa")
        width = max(map(len, prompts))
        ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])

        def run() -> int:
            torch.manual_seed(0)
            out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=1.0, top_k=0,
                                 max_new_tokens=args.new_tokens, eos_token_id=sorted(stops), pad_token_id=0)
            new = out[:, width:].tolist()
            return sum(next((k + 1 for k, t in enumerate(row) if t in stops), len(row)) for row in new)
    else:
        from llmzoo.align.ppo_rollout import sample_responses

        model = llmzoo.load(args.weights, dtype=torch.float32).eval()

        def run() -> int:
            with torch.no_grad():
                responses = sample_responses(model, prompts, max_new_tokens=args.new_tokens, temperature=1.0,
                                             top_k=None, stop_ids=stops, pad_id=0, seed=0)
            return sum(map(len, responses))

    run()  # warm-up (and, for llmzoo, any compiled decode step)
    times, tokens = [], []
    for _ in range(args.steps):
        start = time.perf_counter()
        tokens.append(run())
        times.append(time.perf_counter() - start)
    return {"seconds": times, "tokens": tokens}


def _worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.worker.startswith("rollout"):
        out = _rollout(args)
    else:
        pairs = _pairs(args.pairs, args.answer)
        step, tokens = (_dpo_trl if args.worker == "dpo-trl" else _dpo_llmzoo)(args, pairs)
        first = step()  # warm-up
        times = []
        for _ in range(args.steps):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        out = {"seconds": times, "tokens": [tokens] * len(times), "first_loss": first}
    out["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print("RESULT " + json.dumps(out), flush=True)


def run_worker(name: str, args: argparse.Namespace, weights: Path) -> dict:
    cmd = [sys.executable, __file__, "--worker", name, "--weights", str(weights), "--threads", str(args.threads),
           "--pairs", str(args.pairs), "--answer", str(args.answer), "--steps", str(args.steps),
           "--rollouts", str(args.rollouts), "--new-tokens", str(args.new_tokens)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    results = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not results:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"worker {name} failed (exit code {proc.returncode})")
    return json.loads(results[-1][len("RESULT "):])


def report(title: str, rows: dict[str, dict], reference: str, target: float) -> list[dict]:
    print(f"\n{title}\n{'worker':<16} {'tokens/s best':>14} {'median':>8} {'ratio':>7} {'peak RSS':>9}")
    rates = {n: sorted(t / s for t, s in zip(r["tokens"], r["seconds"])) for n, r in rows.items()}
    table = []
    for name, r in rows.items():
        ratio = rates[name][-1] / rates[reference][-1]
        median = rates[name][len(rates[name]) // 2]
        print(f"{name:<16} {rates[name][-1]:>14.1f} {median:>8.1f} {ratio:>6.2f}x {r['max_rss_mb']:>6.0f} MB")
        table.append({"worker": name, "tokens_per_s": rates[name][-1], "median": median, "ratio": ratio,
                      "max_rss_mb": r["max_rss_mb"], **{k: v for k, v in r.items() if k == "first_loss"}})
    print(f"ratio: best step against {reference}'s best; target >= {target:g}x")
    return table


def save_chart(tables: dict[str, list[dict]], path: Path, machine: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tables), figsize=(4.5 * len(tables), 3.4), squeeze=False)
    for ax, (title, table) in zip(axes[0], tables.items()):
        bars = ax.bar([r["worker"] for r in table], [r["tokens_per_s"] for r in table], color=["#999", "#3a7"])
        ax.bar_label(bars, labels=[f"{r['tokens_per_s']:.0f} ({r['ratio']:.2f}x)" for r in table], fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("tokens / s")
    fig.suptitle(machine.splitlines()[0][:110], fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=4, help="preference pairs per DPO step")
    parser.add_argument("--answer", type=int, default=96, help="words per answer")
    parser.add_argument("--steps", type=int, default=3, help="timed steps (DPO) / timed batches (rollouts)")
    parser.add_argument("--rollouts", type=int, default=8, help="prompts per rollout batch")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip", choices=("dpo", "rollout"))
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return _worker(args)

    import llmzoo

    from _machine import describe_machine  # benchmarks/ is on sys.path when this script runs

    machine = describe_machine()
    print(machine, flush=True)
    weights = Path(tempfile.mkdtemp(prefix="llmzoo-align-bench-")) / "model"
    llmzoo.save(llmzoo.load(SOURCE), weights, format="hf")  # one set of weights both sides read
    tables = {}
    if args.skip != "dpo":
        print(f"DPO: {args.pairs} pairs of ~{args.answer}-word answers, LoRA r 8 on {'+'.join(TARGETS)}, fp32, "
              f"{args.threads} thread(s), {args.steps} timed steps after one warm-up", flush=True)
        rows = {name: run_worker(name, args, weights) for name in ("dpo-trl", "dpo-llmzoo")}
        print("first-step loss: " + ", ".join(f"{n} {r['first_loss']:.5f}" for n, r in rows.items())
              + "; tokens per step: " + ", ".join(f"{n} {r['tokens'][0]}" for n, r in rows.items()))
        tables["DPO step"] = report("DPO step (both sides of every pair)", rows, "dpo-trl", 1.5)
    if args.skip != "rollout":
        print(f"\nrollouts: {args.rollouts} prompts, up to {args.new_tokens} sampled tokens each, fp32, "
              f"{args.threads} thread(s), {args.steps} timed batches after one warm-up", flush=True)
        rows = {name: run_worker(name, args, weights) for name in ("rollout-hf", "rollout-llmzoo")}
        tables["PPO rollouts"] = report("PPO rollouts (response tokens)", rows, "rollout-hf", 3.0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "align.json").write_text(json.dumps({"machine": machine, "tables": tables}, indent=1))
    save_chart(tables, out / "align.png", machine)
    print(f"wrote {out / 'align.json'} and {out / 'align.png'}")


if __name__ == "__main__":
    main()
