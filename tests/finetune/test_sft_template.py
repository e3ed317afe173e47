"""Which tokens carry a target: exactly the assistant's words and the end-of-turn token the chat
template writes after them, checked on SmolLM2-Instruct's real tokenizer and template."""

from __future__ import annotations

import pytest

from llmzoo.errors import LlmzooError
from llmzoo.finetune.sft_rows import IGNORE, PackedRows
from llmzoo.finetune.sft_template import resolve_template, tokenize_conversation
from tests.finetune.sft_helpers import smollm2_tokenizer

CONVERSATION = [
    {"role": "system", "content": "You answer briefly."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "And of Italy?"},
    {"role": "assistant", "content": "Rome, since 1871."},
]


def _runs(ids: list[int], targets: list[bool]) -> list[list[int]]:
    """The maximal runs of consecutive target tokens."""
    runs, current = [], []
    for token, is_target in zip(ids, targets):
        if is_target:
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    return runs + ([current] if current else [])


@pytest.mark.asset
def test_targets_are_the_assistant_turns_and_their_end_of_turn_token():
    tokenizer = smollm2_tokenizer()
    template = resolve_template("auto", tokenizer)
    assert template == tokenizer.chat_template
    tokenized = tokenize_conversation(CONVERSATION, template, tokenizer)
    # the token ids are the template's rendering, tokenized as a whole (nothing added, nothing lost)
    rendered = tokenizer.apply_chat_template(CONVERSATION, add_generation_prompt=False)
    assert tokenized.ids == tokenizer.encode(rendered, add_special_tokens=False)
    # each run of target tokens is one assistant reply followed by <|im_end|>, as the template writes it
    runs = [tokenizer.decode(run) for run in _runs(tokenized.ids, tokenized.targets)]
    assert runs == ["Paris.<|im_end|>", "Rome, since 1871.<|im_end|>"]
    # the assistant header, the user's words and the newline after <|im_end|> are not targets
    prompt = tokenizer.decode([t for t, m in zip(tokenized.ids, tokenized.targets) if not m])
    assert prompt == rendered.replace("Paris.<|im_end|>", "").replace("Rome, since 1871.<|im_end|>", "")


@pytest.mark.asset
def test_labels_predict_each_target_token_from_the_one_before():
    tokenizer = smollm2_tokenizer()
    tokenized = tokenize_conversation(CONVERSATION, resolve_template("auto", tokenizer), tokenizer)
    row = PackedRows([tokenized], seq_len=len(tokenized.ids) + 3, pad_id=0).rows([0])
    labels, ids = row["labels"][0].tolist(), row["input_ids"][0].tolist()
    for i, label in enumerate(labels):
        expected = ids[i + 1] if i + 1 < len(tokenized.ids) and tokenized.targets[i + 1] else IGNORE
        assert label == expected
    assert tokenizer.decode([t for t in labels if t != IGNORE]) == "Paris.<|im_end|>Rome, since 1871.<|im_end|>"


@pytest.mark.asset
def test_named_chatml_template_marks_the_same_targets():
    tokenizer = smollm2_tokenizer()
    tokenized = tokenize_conversation(CONVERSATION, resolve_template("chatml", tokenizer), tokenizer)
    assert [tokenizer.decode(r) for r in _runs(tokenized.ids, tokenized.targets)] == [
        "Paris.<|im_end|>", "Rome, since 1871.<|im_end|>"]


@pytest.mark.asset
def test_named_alpaca_template_ends_each_response_with_eos():
    tokenizer = smollm2_tokenizer()
    tokenized = tokenize_conversation(CONVERSATION, resolve_template("alpaca", tokenizer), tokenizer)
    eos = tokenizer.eos_token
    assert [tokenizer.decode(r) for r in _runs(tokenized.ids, tokenized.targets)] == [
        f"Paris.{eos}", f"Rome, since 1871.{eos}"]
    # Taori et al. 2023's layout, the system message in place of the default preamble
    assert tokenizer.decode(tokenized.ids).startswith(
        "You answer briefly.\n\n### Instruction:\nWhat is the capital of France?\n\n### Response:\nParis.")


@pytest.mark.asset
def test_unknown_template_name_and_missing_template_are_one_line_errors():
    tokenizer = smollm2_tokenizer()
    with pytest.raises(LlmzooError, match="unknown chat template 'vicuna'"):
        resolve_template("vicuna", tokenizer)
    tokenizer.chat_template = None
    with pytest.raises(LlmzooError, match="has no chat template.*set data.template to one of chatml, alpaca"):
        resolve_template("auto", tokenizer)
