"""Few-shot prompts as lm-eval builds them: separators, seeded draws, the document never its own example."""

from __future__ import annotations

import random

import pytest

from llmzoo.errors import LlmzooError
from llmzoo.eval.prompt import PromptBuilder
from llmzoo.eval.tasks.multiple_choice import MultipleChoiceTask


class Toy(MultipleChoiceTask):
    name = "toy"

    def docs(self):
        return [{"q": f"q{i}", "a": f"a{i}"} for i in range(6)]

    def doc_to_text(self, doc):
        return f"Question: {doc['q']}\nAnswer:"

    def doc_to_choice(self, doc):
        return [doc["a"], "other"]

    def gold(self, doc):
        return 0


def test_fewshot_separators_and_seeded_draw():
    task = Toy()
    docs = task.docs()
    contexts = [PromptBuilder(task, 2).context(d) for d in docs[:1]]
    # lm-eval's ContextSampler: Random(1234).sample(pool, k + 1) with the evaluated doc removed
    # (pool = the evaluated split), then the first k; " " before answers, "\n\n" after each example.
    drawn = [d for d in random.Random(1234).sample(docs, 3) if d != docs[0]][:2]
    expected = "".join(f"Question: {d['q']}\nAnswer: {d['a']}\n\n" for d in drawn) + "Question: q0\nAnswer:"
    assert str(contexts[0]) == expected


def test_the_generator_runs_through_the_documents_in_order():
    task = Toy()
    docs = task.docs()
    builder = PromptBuilder(task, 3)
    rnd = random.Random(1234)
    for doc in docs:
        got = builder.sample(doc)
        assert got == [d for d in rnd.sample(docs, 4) if d != doc][:3]
        assert doc not in got


def test_more_shots_than_the_split_holds_is_an_error():
    with pytest.raises(LlmzooError, match="5 few-shot examples .* fewer than --num-fewshot 6"):
        PromptBuilder(Toy(), 6)
    with pytest.raises(LlmzooError, match=">= 0"):
        PromptBuilder(Toy(), -1)


def test_chat_wraps_the_whole_prompt_and_drops_the_target_delimiter():
    class Tok:
        chat_template = "x"

        def apply_chat_template(self, messages, add_generation_prompt):
            assert add_generation_prompt
            return "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages) + "<assistant>"

    task = Toy()
    context = PromptBuilder(task, 1, Tok(), chat=True).context(task.docs()[0])
    assert str(context).startswith("<user>Question: ") and str(context).endswith("Question: q0\nAnswer:</user><assistant>")
    assert [r.continuation for r in task.requests(task.docs()[0], context)] == ["a0", "other"]


def test_chat_without_a_template_is_an_error():
    class Tok:
        chat_template = None

    with pytest.raises(LlmzooError, match="chat template"):
        PromptBuilder(Toy(), 0, Tok(), chat=True)
