"""Self-Instruct (Wang et al. 2022, "Self-Instruct: Aligning Language Models with Self-Generated
Instructions"), the recipe Alpaca and Code Llama's instruction data came from:

1. prompt the model with instructions sampled from the pool (seed tasks plus those generated so
   far) as a numbered list, "Task 1: ... Task k:", and read the new tasks it writes after them;
2. keep a new instruction only if its ROUGE-L F-measure with every instruction in the pool is at
   most 0.7 (the paper's near-duplicate filter), and it is neither too short nor too long, nor
   about images or files a text model cannot handle (the paper's keyword filter);
3. have the model answer each kept instruction (through its chat template when it has one);
4. write SFT-ready JSONL rows {"instruction", "input", "output"} (llmzoo.finetune reads them).

Quality is the model's: a 135M model writes poor tasks. The mechanics are the point here.
"""

from __future__ import annotations

import json
import random
import re
import sys
from collections.abc import Callable
from pathlib import Path

from llmzoo.errors import LlmzooError

ROUGE_L_THRESHOLD = 0.7  # Wang et al. 2022, section 2.3
# The paper drops tasks a language model cannot do (images, graphs, files, ...) by keyword.
BLOCKED_WORDS = ("image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps",
                 "draw", "plot", "go to", "video", "audio", "music", "flowchart", "diagram")
PROMPT_HEADER = "Come up with a series of tasks:\n\n"


def read_seed_instructions(path: str | Path) -> list[str]:
    """Instructions of a seeds JSONL: rows with an "instruction" (Alpaca and Self-Instruct's seed_tasks.jsonl)."""
    path = Path(path)
    if not path.is_file():
        raise LlmzooError(f"seed file {path} does not exist")
    seeds = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise LlmzooError(f"{path} line {number}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict) or not isinstance(row.get("instruction"), str) or not row["instruction"].strip():
                raise LlmzooError(f"{path} line {number}: a seed row needs a non-empty \"instruction\" string")
            seeds.append(row["instruction"].strip())
    if not seeds:
        raise LlmzooError(f"{path} holds no seed instructions")
    return seeds


class NearDuplicateFilter:
    """The pool of instructions so far; `admit` adds an instruction unless it is a near-duplicate
    (ROUGE-L F-measure above the threshold with one already in the pool)."""

    def __init__(self, pool: list[str], threshold: float = ROUGE_L_THRESHOLD) -> None:
        from rouge_score import rouge_scorer

        self.scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
        self.threshold = threshold
        self.pool = list(pool)

    def most_similar(self, instruction: str) -> float:
        return max((self.scorer.score(seen, instruction)["rougeL"].fmeasure for seen in self.pool), default=0.0)

    def admit(self, instruction: str) -> bool:
        if self.most_similar(instruction) > self.threshold:
            return False
        self.pool.append(instruction)
        return True


def task_prompt(instructions: list[str]) -> str:
    """The paper's instruction-generation prompt: the sampled tasks numbered, then the next number."""
    listed = "".join(f"Task {i}: {text}\n" for i, text in enumerate(instructions, start=1))
    return f"{PROMPT_HEADER}{listed}Task {len(instructions) + 1}:"


def parse_tasks(completion: str) -> list[str]:
    """New instructions from a completion of `task_prompt` (the first runs on from "Task k:")."""
    pieces = re.split(r"\n\s*Task \d+\s*:", completion.split("\n\n")[0])
    return [re.sub(r"\s+", " ", p).strip() for p in pieces if p.strip()]


def acceptable(instruction: str) -> bool:
    """The paper's heuristic filters: 3 to 150 words, no blocked keyword, starts with a letter or digit."""
    words = instruction.split()
    if not 3 <= len(words) <= 150 or not instruction[0].isalnum():
        return False
    lowered = f" {instruction.lower()} "
    return not any(re.search(rf"\b{re.escape(w)}\b", lowered) for w in BLOCKED_WORDS)


def self_instruct(complete: Callable[[str, int], str], answer: Callable[[str], str], seeds: list[str], n: int, *,
                  prompt_tasks: int = 8, max_rounds: int | None = None, seed: int = 0,
                  progress=None) -> list[dict[str, str]]:
    """`n` new instruction/output pairs. complete(prompt, round) continues a task list;
    answer(instruction) is the model's response. Stops after `max_rounds` prompts (default 20 n)."""
    rng = random.Random(seed)
    pool = NearDuplicateFilter(seeds)
    generated: list[str] = []
    rounds = max_rounds if max_rounds is not None else 20 * n
    for r in range(rounds):
        if len(generated) >= n:
            break
        # Mostly seeds, some generated tasks (the paper: 6 human-written + 2 generated of 8).
        from_generated = min(len(generated), prompt_tasks // 4)
        shown = rng.sample(seeds, min(len(seeds), prompt_tasks - from_generated)) + rng.sample(generated, from_generated)
        for candidate in parse_tasks(complete(task_prompt(shown), r)):
            if len(generated) < n and acceptable(candidate) and pool.admit(candidate):
                generated.append(candidate)
        if progress is not None:
            print(f"round {r + 1}: {len(generated)}/{n} instructions", file=progress)
    if len(generated) < n:
        print(f"note: {len(generated)} of {n} instructions after {rounds} prompts (the rest were near-duplicates "
              f"or filtered)", file=progress or sys.stderr)
    return [{"instruction": text, "input": "", "output": answer(text).strip()} for text in generated]


def run_self_instruct(model_source: str, seeds_path: str | Path, n: int, out: str | Path, *, temperature: float = 0.7,
                      top_p: float = 0.9, max_new_tokens: int = 96, seed: int = 0) -> int:
    """`llmzoo data self-instruct`: generate with a model, write JSONL; returns the number of rows."""
    import llmzoo
    from llmzoo.infer.generate import generate

    if n < 1:
        raise LlmzooError(f"--n must be at least 1, got {n}")
    seeds = read_seed_instructions(seeds_path)
    model = llmzoo.load(model_source).eval()
    tokenizer = llmzoo.load_tokenizer(getattr(model, "tokenizer_source", None) or model_source)
    chat = bool(tokenizer.chat_template)

    def complete(prompt: str, round_: int) -> str:
        return generate(model, tokenizer, prompt, max_new_tokens=max_new_tokens, temperature=temperature,
                        top_p=top_p, seed=seed + round_, stop=["\n\n"])

    def answer(instruction: str) -> str:
        return generate(model, tokenizer, instruction, max_new_tokens=max_new_tokens, temperature=0.0, chat=chat)

    rows = self_instruct(complete, answer, seeds, n, seed=seed, progress=sys.stderr)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return len(rows)
