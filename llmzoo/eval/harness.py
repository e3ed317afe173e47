"""`evaluate`: run tasks on a model and return lm-eval-shaped results.

    evaluate(model, tokenizer, tasks=["piqa", "arc_easy"], num_fewshot=0, limit=None)
    -> {"results": {"piqa": {"acc": .., "acc_norm": .., "n": ..}, ...}, "config": {...}}

Metric names carry no lm-eval ",none" filter suffix. A group task (mmlu) adds one entry per
member task besides its own. With log_samples=True, "samples" holds per-document records
(prompt, requests, answers, metrics).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from torch import nn

import llmzoo
from llmzoo.errors import LlmzooError
from llmzoo.eval.lm import EvalLM
from llmzoo.eval.prompt import DEFAULT_FEWSHOT_SEED, PromptBuilder
from llmzoo.eval.requests import GenerateUntil, Loglikelihood, LoglikelihoodRolling
from llmzoo.eval.tasks import Task, get_task


def _check_limit(limit: Any) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise LlmzooError(f"--limit must be a whole number >= 1 (the first N documents), got {limit!r}")
    return limit


def _check_samples(samples: Any, limit: int | None, resolved: list[Task]) -> dict[str, list[int]] | None:
    """lm-eval's --samples: {task: [document indices]} evaluates just those documents of each named
    task (e.g. one shard of a long run), in the order given; a task it does not name runs whole."""
    if samples is None:
        return None
    if limit is not None:
        raise LlmzooError("--samples and --limit do not go together: give one of them")
    if not isinstance(samples, dict) or not samples:
        raise LlmzooError('--samples takes a JSON object of task names to document indices, e.g. {"piqa": [0, 1, 2]}')
    names = {leaf.name: leaf for task in resolved for leaf in (task.subtasks() or [task])}
    for name, indices in samples.items():
        if name not in names:
            raise LlmzooError(f"--samples names task {name!r}, which is not among the evaluated tasks "
                              f"({', '.join(sorted(names)[:8])}{', ...' if len(names) > 8 else ''})")
        n_docs = len(names[name].docs())
        if (not isinstance(indices, list) or not indices
                or any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n_docs for i in indices)):
            raise LlmzooError(f"--samples for {name!r} must be a non-empty list of document indices 0..{n_docs - 1}")
        if len(set(indices)) != len(indices):
            raise LlmzooError(f"--samples for {name!r} repeats a document index")
    return samples


def resolve_tasks(tasks: str | Sequence[str | Task]) -> list[Task]:
    if isinstance(tasks, str):
        tasks = [t for t in tasks.split(",") if t.strip()]
    if not tasks:
        raise LlmzooError("no tasks given; name some with --tasks (see `llmzoo eval --list`)")
    return [t if isinstance(t, Task) else get_task(t.strip()) for t in tasks]


def preflight(tasks: str | Sequence[str | Task], num_fewshot: int = 0, limit: int | None = None,
              samples: dict[str, list[int]] | None = None) -> list[Task]:
    """Everything that can be checked without a model: task names, data fetched, --limit /
    --samples, and enough few-shot examples. The CLI runs it before loading the model, so mistakes
    fail fast."""
    _check_limit(limit)
    if isinstance(num_fewshot, bool) or not isinstance(num_fewshot, int) or num_fewshot < 0:
        raise LlmzooError(f"--num-fewshot must be a whole number >= 0, got {num_fewshot!r}")
    resolved = resolve_tasks(tasks)
    for task in resolved:
        for leaf in task.subtasks() or [task]:
            if not leaf.docs():
                raise LlmzooError(f"task {leaf.name!r} has no documents")
            if leaf.output not in ("loglikelihood_rolling", "embedding"):
                PromptBuilder(leaf, num_fewshot)  # raises if the few-shot pool is too small
    _check_samples(samples, limit, resolved)
    return resolved


def evaluate(model: nn.Module, tokenizer, tasks: str | Sequence[str | Task], num_fewshot: int = 0,
             limit: int | None = None, *, batch_size: int = 8, chat: bool = False, log_samples: bool = False,
             fewshot_seed: int = DEFAULT_FEWSHOT_SEED, progress: bool | None = None,
             samples: dict[str, list[int]] | None = None) -> dict:
    """Evaluate `model` on `tasks` (names or Task objects). progress=None shows a progress bar
    on stderr (redrawn once a minute when stderr is not a terminal); True always, False never.
    samples={task: [indices]} evaluates only those documents of a task (lm-eval's --samples)."""
    resolved = preflight(tasks, num_fewshot, limit, samples)
    picks = samples or {}
    # an encoder without an LM head can still run embedding tasks: the LM side is built only when needed
    lm = EvalLM(model, tokenizer, batch_size=batch_size) if any(t.output != "embedding" for t in resolved) else None
    results: dict[str, dict[str, float]] = {}
    logs: dict[str, list[dict]] = {}
    for task in resolved:
        members = task.subtasks()
        if task.output == "embedding":
            docs = list(task.docs())
            docs = [docs[i] for i in picks[task.name]] if task.name in picks else docs[:limit]
            results[task.name] = {**task.evaluate_embeddings(model, tokenizer, docs), "n": len(docs)}
            logs[task.name] = []
            continue
        if not members:
            results[task.name], logs[task.name] = _run(task, lm, num_fewshot, limit, chat, fewshot_seed, progress,
                                                       picks.get(task.name))
            continue
        parts = []
        for member in members:
            res, member_logs = _run(member, lm, num_fewshot, limit, chat, fewshot_seed, progress,
                                    picks.get(member.name))
            results[member.name], logs[member.name] = res, member_logs
            parts.append(res)
        results[task.name] = _group(parts)
    out: dict[str, Any] = {
        "results": results,
        "config": {"model": getattr(model.config, "name", None), "tasks": [t.name for t in resolved],
                   "num_fewshot": num_fewshot, "limit": limit, "batch_size": batch_size, "chat": chat,
                   "fewshot_seed": fewshot_seed, "llmzoo_version": llmzoo.__version__},
    }
    if samples:
        out["config"]["samples"] = {name: len(indices) for name, indices in samples.items()}
    if log_samples:
        out["samples"] = logs
    return out


def _group(parts: list[dict[str, float]]) -> dict[str, float]:
    """lm-eval's group aggregation with weight_by_size (acc over all documents), plus the plain
    mean over member tasks."""
    n = sum(p["n"] for p in parts)
    return {"acc": sum(p["acc"] * p["n"] for p in parts) / n,
            "acc_macro": sum(p["acc"] for p in parts) / len(parts), "n": n}


def _run(task: Task, lm: EvalLM, num_fewshot: int, limit: int | None, chat: bool, seed: int,
         progress: bool | None, indices: list[int] | None = None) -> tuple[dict[str, float], list[dict]]:
    docs = list(task.docs())
    if not docs:
        raise LlmzooError(f"task {task.name!r} has no documents")
    ids = indices if indices is not None else list(range(len(docs) if limit is None else min(limit, len(docs))))
    docs = [docs[i] for i in ids]
    rolling = task.output == "loglikelihood_rolling"  # a whole text: no prompt, no few-shot examples
    builder = PromptBuilder(task, 0 if rolling else num_fewshot, lm.tokenizer, chat and not rolling, seed)
    contexts = [builder.context(doc) for doc in docs]
    per_doc_requests = [task.requests(doc, ctx) for doc, ctx in zip(docs, contexts)]
    flat = [(d, j, r) for d, reqs in enumerate(per_doc_requests) for j, r in enumerate(reqs)]
    answers: dict[tuple[int, int], Any] = {}
    bar = _progress_bar(task.name, len(docs), progress)
    per_request = len(docs) / max(len(flat), 1)  # progress counts documents: each request is a share of one
    tick = (lambda n: bar.update(n * per_request)) if bar is not None else None
    for kind, method in ((Loglikelihood, lm.loglikelihood), (LoglikelihoodRolling, lm.loglikelihood_rolling),
                         (GenerateUntil, lm.generate_until)):
        picked = [(d, j, r) for d, j, r in flat if isinstance(r, kind)]
        if picked:
            for (d, j, _), a in zip(picked, method([r for _, _, r in picked], tick)):
                answers[d, j] = a
    if bar is not None:
        bar.close()
    per_doc, logs = [], []
    for d, (doc, ctx, reqs) in enumerate(zip(docs, contexts, per_doc_requests)):
        got = [answers[d, j] for j in range(len(reqs))]
        scores = task.score(doc, got)
        per_doc.append(scores)
        logs.append({"doc_id": ids[d], "prompt": str(ctx), "target": _target(task, doc),
                     "requests": [_request_log(r, a) for r, a in zip(reqs, got)], "metrics": scores})
    aggregated = task.aggregate(per_doc)
    aggregated["n"] = len(docs)
    return aggregated, logs


def _target(task: Task, doc: dict) -> str | None:
    try:
        return task.doc_to_target(doc)
    except NotImplementedError:  # ppl: a whole text has no target
        return None


def _request_log(request: Any, answer: Any) -> dict:
    entry = {k: v for k, v in vars(request).items() if k != "options"}
    entry["answer"] = answer if isinstance(answer, list) else vars(answer)
    return entry


def _progress_bar(name: str, total: int, progress: bool | None):
    if progress is False:
        return None
    from tqdm import tqdm

    # Not a terminal (a run logged to a file, a background job): still report, once a minute, so a
    # multi-hour run shows how far it is and its ETA instead of nothing until the end.
    quiet_log = progress is None and not sys.stderr.isatty()
    return tqdm(total=total, desc=name, unit="doc", file=sys.stderr, mininterval=60 if quiet_log else 0.1,
                bar_format="{desc}: {n:.0f}/{total} docs [{elapsed}<{remaining}, {rate_fmt}]")
