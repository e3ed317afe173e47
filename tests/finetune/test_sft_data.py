"""SFT data: the four common JSONL shapes become the same chat messages; bad rows name file and line."""

from __future__ import annotations

import re

import pytest

from llmzoo.errors import LlmzooError
from llmzoo.finetune.sft_data import normalise_row, read_sft_jsonl
from tests.finetune.sft_helpers import CHATS, write_jsonl


def test_every_shape_normalises_to_role_content_messages(tmp_path):
    conversations = read_sft_jsonl(write_jsonl(tmp_path / "mixed.jsonl", CHATS))
    assert conversations[0] == CHATS[0]["messages"]
    assert conversations[1] == [
        {"role": "system", "content": "Answer in one word."}, {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris"}, {"role": "user", "content": "And of Italy?"},
        {"role": "assistant", "content": "Rome"}]
    # Alpaca: the input follows the instruction in the user's turn, as in Alpaca's own prompt
    assert conversations[2] == [{"role": "user", "content": "Add the numbers.\n\n2 and 3"},
                                {"role": "assistant", "content": "5"}]
    assert conversations[3] == [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi!"}]


def test_an_alpaca_row_without_input_is_the_instruction_alone():
    assert normalise_row({"instruction": "Say hi.", "input": "", "output": "Hi"})[0] == {"role": "user", "content": "Say hi."}


@pytest.mark.parametrize("row, message", [
    ('{"messages": [{"role": "user", "content": "hi"}]}', "line 2: no assistant turn"),
    ('{"messages": [{"role": "user", "content": "hi"', "line 2: not valid JSON"),
    ('{"text": "plain"}', "line 2: unrecognised row"),
    ('{"messages": [{"role": "robot", "content": "hi"}]}', "line 2: messages[0] has role 'robot'"),
    ('{"conversations": [{"from": "human", "value": 3}]}', "line 2: conversations[0].value must be a string"),
    ('[1, 2]', "line 2: expected a JSON object"),
])
def test_a_bad_row_names_the_file_and_line(tmp_path, row, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [CHATS[0], row])
    with pytest.raises(LlmzooError, match=re.escape(message)) as e:
        read_sft_jsonl(path)
    assert str(path) in str(e.value)


def test_a_forced_format_refuses_rows_of_another_shape(tmp_path):
    with pytest.raises(LlmzooError, match=r"line 1: row is not in format 'alpaca'"):
        read_sft_jsonl(write_jsonl(tmp_path / "chat.jsonl", CHATS[:1]), fmt="alpaca")
