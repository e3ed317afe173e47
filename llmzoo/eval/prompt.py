"""Building a document's prompt: few-shot examples, description, optional chat template.

As lm-eval-harness renders a prompt in plain text (lm_eval/api/task.py `fewshot_context`):

    description + (q_1 + target_delimiter + a_1 + fewshot_delimiter) * k + q

with lm-eval's defaults target_delimiter " " and fewshot_delimiter "\\n\\n"; the target
delimiter of the document itself goes at the front of each continuation, not the context.
With the chat template, the description becomes the system message, the few-shot text and
the question one user message, the template adds the assistant turn's opening, and the
continuation carries no delimiter (lm-eval's `apply_chat_template` without `gen_prefix`).

Few-shot examples are drawn by `random.Random(seed).sample`, one generator per task used
through the documents in order (lm-eval's ContextSampler, seed 1234 by default). When the
examples come from the evaluated split itself (our data ships validation/test splits only),
k + 1 are drawn and the evaluated document is removed, as lm-eval does in that case.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from llmzoo.errors import LlmzooError

DEFAULT_FEWSHOT_SEED = 1234  # lm-eval's fewshot_random_seed default (lm_eval/defaults.py)


class Context(str):
    """The full prompt of one document (a str), plus what a task needs to build variants of it:
    `render(text)` is the same prompt with `text` as the final question (WinoGrande scores one
    context per choice), `target_delimiter` goes between the prompt and a continuation."""

    def __new__(cls, text: str, prefix: str, target_delimiter: str, wrap=None) -> Context:
        self = super().__new__(cls, wrap(prefix + text) if wrap else prefix + text)
        self.prefix = prefix
        self.target_delimiter = target_delimiter
        self._wrap = wrap
        return self

    def render(self, text: str) -> str:
        return self._wrap(self.prefix + text) if self._wrap else self.prefix + text


class PromptBuilder:
    def __init__(self, task, num_fewshot: int, tokenizer=None, chat: bool = False,
                 seed: int = DEFAULT_FEWSHOT_SEED) -> None:
        if num_fewshot < 0:
            raise LlmzooError(f"--num-fewshot must be >= 0, got {num_fewshot}")
        self.task = task
        self.k = num_fewshot
        self.rnd = random.Random(seed)
        self.pool: Sequence[dict] = task.fewshot_docs() if num_fewshot else []
        self.same_split = task.fewshot_split is not None and task.fewshot_split == getattr(task, "eval_split", None)
        available = len(self.pool) - (1 if self.same_split else 0)
        if num_fewshot and available < num_fewshot:
            where = f"its {task.fewshot_split} split" if task.fewshot_split else "no few-shot split"
            raise LlmzooError(f"task {task.name!r} has {max(available, 0)} few-shot examples ({where}), "
                              f"fewer than --num-fewshot {num_fewshot}")
        self.chat = chat
        self.tokenizer = tokenizer
        if chat and (tokenizer is None or not getattr(tokenizer, "chat_template", None)):
            raise LlmzooError("--chat needs a tokenizer with a chat template; this model's tokenizer has none")

    def sample(self, doc: dict) -> list[dict]:
        if not self.k:
            return []
        if getattr(self.task, "fewshot_sampler", "random") == "first_n":  # MMLU: the canonical first k
            pool = [d for d in self.pool if d != doc] if self.same_split else list(self.pool)
            return pool[:self.k]
        if self.same_split:
            drawn = [d for d in self.rnd.sample(list(self.pool), self.k + 1) if d != doc][:self.k]
            if len(drawn) < self.k:  # duplicates of the document in the pool
                drawn = self.rnd.sample([d for d in self.pool if d != doc], self.k)
            return drawn
        return self.rnd.sample(list(self.pool), self.k)

    def context(self, doc: dict) -> Context:
        task = self.task
        description = task.description(doc)
        shots = "".join(task.fewshot_text(d) + task.target_delimiter + task.doc_to_target(d) + task.fewshot_delimiter
                        for d in self.sample(doc))
        text = task.doc_to_text(doc)
        if not self.chat:
            return Context(text, description + shots, task.target_delimiter)

        def wrap(user: str) -> str:
            messages = ([{"role": "system", "content": description}] if description else []) + \
                       [{"role": "user", "content": user}]
            return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True)

        return Context(text, shots, "", wrap)
