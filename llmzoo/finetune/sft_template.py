"""Rendering conversations for training, and which tokens carry a loss (assistant turns only).

The conversation is rendered with a chat template (the model's own, or a named one for base
models). Each assistant turn's text is located by rendering: the conversation up to the turn
with the generation prompt (`<|im_start|>assistant\\n`) is where the model starts speaking at
inference, and the conversation through the turn ends after the template's end-of-turn token
(`<|im_end|>`, `<|eot_id|>`, ...). The loss covers exactly that span, end-of-turn token included,
so the model learns to stop (the recipe of InstructGPT, Ouyang et al. 2022, and Vicuna: loss on
the assistant's words only, never on the user's).

Tokenisation goes segment by segment (prompt text, assistant text, prompt text, ...), so every
token belongs to one side: what the model reads at inference is tokenised as the prompt it
will be given, and the target tokens decode to exactly the assistant's words.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmzoo.errors import LlmzooError
from llmzoo.tokenizer.chat import render_chat_template

# ChatML (OpenAI 2023; Qwen and SmolLM use it), without any default system prompt.
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# Alpaca's prompt (Taori et al. 2023), turn after turn; a system message replaces its preamble.
ALPACA = (
    "{% if messages and messages[0]['role'] == 'system' %}{{ messages[0]['content'] + '\\n\\n' }}"
    "{% set turns = messages[1:] %}{% else %}"
    "{{ 'Below is an instruction that describes a task. Write a response that appropriately completes the request.\\n\\n' }}"
    "{% set turns = messages %}{% endif %}"
    "{% for message in turns %}{% if message['role'] == 'user' %}{{ '### Instruction:\\n' + message['content'] + '\\n\\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ '### Response:\\n' + message['content'] + eos_token + '\\n\\n' }}"
    "{% else %}{{ raise_exception('the alpaca template has no place for role ' + message['role']) }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '### Response:\\n' }}{% endif %}"
)
TEMPLATES = {"chatml": CHATML, "alpaca": ALPACA}


def resolve_template(template: str | None, tokenizer, source: str = "the model") -> str:
    """The jinja2 template to train with: the tokenizer's own (None / "auto"), a named one, or inline jinja2."""
    if template in (None, "", "auto"):
        if not tokenizer.chat_template:
            raise LlmzooError(f"the tokenizer of {source} has no chat template, so chat data cannot be rendered; "
                              f"set data.template to one of {', '.join(TEMPLATES)} (or a jinja2 template)")
        return tokenizer.chat_template
    if template in TEMPLATES:
        return TEMPLATES[template]
    if "{{" in template or "{%" in template:
        return template
    raise LlmzooError(f"unknown chat template {template!r}; use auto (the model's own), "
                      f"{', '.join(TEMPLATES)} or a jinja2 template string")


@dataclass(frozen=True)
class TokenizedConversation:
    ids: list[int]
    targets: list[bool]  # True where the token is assistant text (or its end-of-turn token): the loss covers it


def assistant_spans(messages: list[dict], template: str, special_tokens: dict[str, str]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character span of each assistant turn in it."""
    def render(turns: list[dict], generation_prompt: bool) -> str:
        return render_chat_template(template, turns, add_generation_prompt=generation_prompt,
                                    special_tokens=special_tokens)

    full = render(messages, False)
    spans = []
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render(messages[:k], True)
        through = render(messages[:k + 1], False)
        if not (through.startswith(before) and full.startswith(through)):
            raise LlmzooError(
                f"the chat template renders the conversation up to assistant turn {k} differently from the whole "
                "conversation, so the assistant's tokens cannot be located (does it start with an assistant turn, "
                "or rewrite earlier turns?); set data.template to chatml or alpaca")
        # The end-of-turn token is the assistant's to produce; the whitespace the template writes
        # between turns is not.
        spans.append((len(before), len(through.rstrip())))
    return full, spans


def tokenize_conversation(messages: list[dict], template: str, tokenizer) -> TokenizedConversation:
    """Token ids of the rendered conversation and which of them carry a training target."""
    text, spans = assistant_spans(messages, template, tokenizer.special_tokens_map)
    ids: list[int] = []
    targets: list[bool] = []
    cursor = 0
    for start, end in spans:
        for piece, is_target in ((text[cursor:start], False), (text[start:end], True)):
            if piece:
                # the template writes BOS and friends itself: no tokenizer-added specials (as transformers)
                piece_ids = tokenizer.encode(piece, add_special_tokens=False)
                ids += piece_ids
                targets += [is_target] * len(piece_ids)
        cursor = end
    if cursor < len(text):
        tail = tokenizer.encode(text[cursor:], add_special_tokens=False)
        ids += tail
        targets += [False] * len(tail)
    return TokenizedConversation(ids, targets)
