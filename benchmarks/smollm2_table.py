"""The README's SmolLM2-135M-Instruct table: llmzoo eval's JSON results beside the model card.

    for t in piqa arc_easy arc_challenge winogrande hellaswag lambada_openai mmlu; do
      llmzoo eval smollm2-135m-instruct --tasks $t --json benchmarks/results/smollm2/$t.json
    done
    python benchmarks/smollm2_table.py [--dir benchmarks/results/smollm2]

A run too long for one sitting goes in disjoint parts, written under a folder named after the task:
`--samples` shards (`hellaswag/hellaswag_4000-5510.json`, beside `hellaswag.json` from `--limit 4000`)
or MMLU's subjects one at a time (`mmlu/mmlu_<subject>.json`, e.g. `--tasks mmlu_anatomy`). A task's
number is then the documents-weighted mean over its parts, which is what one whole run reports
(lm-eval's group accuracy weights subjects by size too).

prints a markdown table (task, metric, documents evaluated, llmzoo, model card) and saves it as a
bar chart (table.png in the same directory). The model card's numbers (HuggingFaceTB/SmolLM2-135M-
Instruct, zero-shot, lighteval with its own prompts) are published facts, not our output.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# Published by the model card for the instruct model (percent); None: the card gives none.
MODEL_CARD = {"hellaswag": 40.9, "arc": 37.3, "piqa": 66.3, "mmlu": 29.3}
# (row, task files, metric): ARC is the card's average of Easy and Challenge.
ROWS = [
    ("hellaswag", ["hellaswag"], "acc_norm"),
    ("arc", ["arc_easy", "arc_challenge"], "acc_norm"),
    ("piqa", ["piqa"], "acc_norm"),
    ("mmlu", ["mmlu"], "acc"),
    ("winogrande", ["winogrande"], "acc"),
    ("lambada_openai", ["lambada_openai"], "acc"),
]


def read_task(directory: Path, task: str, metric: str) -> tuple[float, int] | None:
    """(metric, documents) of `task`: its one-run JSON and/or its parts' (documents-weighted)."""
    paths = [directory / f"{task}.json"] + sorted((directory / task).glob("*.json"))
    parts = []
    for path in filter(Path.exists, paths):
        saved = json.loads(path.read_text())
        result = saved["results"][saved["config"]["tasks"][0]]  # a part may be one subject: mmlu_anatomy
        parts.append((result[metric], result["n"]))
    if not parts:
        return None
    n = sum(count for _, count in parts)
    return sum(value * count for value, count in parts) / n, n


def full_size(task: str) -> int | None:
    """Documents in the task's whole evaluated split (None without the data)."""
    try:
        from llmzoo.eval.tasks import get_task

        found = get_task(task)
        return sum(len(t.docs()) for t in found.subtasks() or [found])
    except Exception:  # the table still prints from the JSON files alone
        return None


def read_rows(directory: Path) -> list[dict]:
    rows = []
    for name, tasks, metric in ROWS:
        results = [read_task(directory, task, metric) for task in tasks]
        if any(r is None for r in results):
            continue
        value = 100 * sum(v for v, _ in results) / len(results)
        n = "+".join(str(count) for _, count in results)
        limited = any(count != full_size(task) for task, (_, count) in zip(tasks, results))
        rows.append({"row": name, "metric": metric, "n": n, "limited": limited, "llmzoo": value,
                     "card": MODEL_CARD.get(name)})
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| task | metric | documents | llmzoo | model card | difference |", "|---|---|---|---|---|---|"]
    for r in rows:
        card = f"{r['card']:.1f}" if r["card"] is not None else "-"
        diff = f"{r['llmzoo'] - r['card']:+.1f}" if r["card"] is not None else "-"
        n = r["n"] + (" (not all)" if r["limited"] else "")
        lines.append(f"| {r['row']} | {r['metric']} | {n} | {r['llmzoo']:.1f} | {card} | {diff} |")
    return "\n".join(lines)


def plot(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [r["llmzoo"] for r in rows], 0.4, label="llmzoo eval (lm-eval prompts)")
    ax.bar([x + 0.2 for x in xs], [r["card"] or 0 for r in rows], 0.4, label="model card (lighteval)")
    ax.set_xticks(list(xs), [r["row"] for r in rows])
    ax.set_ylabel("accuracy (%)")
    ax.set_title("SmolLM2-135M-Instruct, zero-shot (packaged Q4_1 GGUF)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path(__file__).parent / "results" / "smollm2")
    args = parser.parse_args()
    rows = read_rows(args.dir)
    print(markdown(rows))
    plot(rows, args.dir / "table.png")
    print(f"chart: {args.dir / 'table.png'}")


if __name__ == "__main__":
    main()
