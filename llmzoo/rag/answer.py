"""The prompt with numbered passages, and the answer with the sources it was given."""

from __future__ import annotations

from dataclasses import dataclass

from llmzoo.rag.index import Hit, RagIndex

INSTRUCTION = ("Answer the question using the numbered passages below. Cite the passages you use as [1], [2], ... "
               "If the passages do not contain the answer, say so.")


@dataclass
class Answer:
    text: str
    sources: list[dict]  # [{"n", "source", "start", "score", "text"}], in the order they were cited


def passages_block(hits: list[Hit]) -> str:
    return "\n\n".join(f"[{n}] (from {hit.chunk.source})\n{hit.chunk.text}" for n, hit in enumerate(hits, 1))


def sources_of(hits: list[Hit]) -> list[dict]:
    return [{"n": n, "source": hit.chunk.source, "start": hit.chunk.start, "score": round(hit.score, 6),
             "text": hit.chunk.text} for n, hit in enumerate(hits, 1)]


def rag_messages(messages: list[dict], hits: list[Hit]) -> list[dict]:
    """The conversation with the passages put before the last user message (in that turn, so even a
    template without a system role carries them)."""
    last = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
    if last is None:
        return messages
    out = [dict(m) for m in messages]
    out[last]["content"] = f"{INSTRUCTION}\n\n{passages_block(hits)}\n\nQuestion: {messages[last]['content']}"
    return out


def ask(index: RagIndex, model, tokenizer, question: str, *, k: int = 4, max_new_tokens: int = 128,
        **generate_kwargs) -> Answer:
    from llmzoo.infer.generate import generate

    hits = index.search(question, k)
    messages = rag_messages([{"role": "user", "content": question}], hits)
    rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    text = generate(model, tokenizer, rendered, chat=False, _prompt_has_special_tokens=True,
                    max_new_tokens=max_new_tokens, **generate_kwargs)
    return Answer(text, sources_of(hits))
