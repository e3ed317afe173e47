"""Reading supervised fine-tuning data: JSONL rows in the common shapes, normalised to chat messages.

Every row becomes a list of `{"role": "system" | "user" | "assistant", "content": str}` messages,
whatever shape it came in:

    messages      {"messages": [{"role": "user", "content": ...}, {"role": "assistant", ...}]}  (OpenAI chat)
    sharegpt      {"conversations": [{"from": "human", "value": ...}, {"from": "gpt", ...}]}  (ShareGPT/Vicuna)
    alpaca        {"instruction": ..., "input": ..., "output": ...}                           (Taori et al. 2023)
    prompt_completion  {"prompt": ..., "completion": ...}                                     (OpenAI fine-tuning)

A row that is not a JSON object of one of these shapes, or that has no assistant turn (nothing
to learn from), is an error naming the file and line, so a broken file never trains silently.
"""

from __future__ import annotations

import json
from pathlib import Path

from llmzoo.errors import LlmzooError

FORMATS = ("auto", "messages", "sharegpt", "alpaca", "prompt_completion")
ROLES = ("system", "user", "assistant")
# ShareGPT dumps name their speakers in several ways; these are the ones in circulation.
_SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user",
                   "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant", "model": "assistant"}

Messages = list[dict[str, str]]


def detect_format(row: dict) -> str | None:
    """The shape of one row by its keys, or None when it has none of the known ones."""
    if "messages" in row:
        return "messages"
    if "conversations" in row:
        return "sharegpt"
    if "instruction" in row and "output" in row:
        return "alpaca"
    if "prompt" in row and "completion" in row:
        return "prompt_completion"
    return None


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {type(value).__name__}")
    return value


def _from_messages(row: dict) -> Messages:
    turns = row["messages"]
    if not isinstance(turns, list) or not turns:
        raise ValueError("'messages' must be a non-empty list of {role, content} objects")
    out = []
    for i, m in enumerate(turns):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise ValueError(f"messages[{i}] must be an object with 'role' and 'content'")
        if m["role"] not in ROLES:
            raise ValueError(f"messages[{i}] has role {m['role']!r}; expected one of {', '.join(ROLES)}")
        out.append({"role": m["role"], "content": _text(m["content"], f"messages[{i}].content")})
    return out


def _from_sharegpt(row: dict) -> Messages:
    turns = row["conversations"]
    if not isinstance(turns, list) or not turns:
        raise ValueError("'conversations' must be a non-empty list of {from, value} objects")
    out = []
    for i, m in enumerate(turns):
        if not isinstance(m, dict) or "from" not in m or "value" not in m:
            raise ValueError(f"conversations[{i}] must be an object with 'from' and 'value'")
        role = _SHAREGPT_ROLES.get(str(m["from"]).lower())
        if role is None:
            raise ValueError(f"conversations[{i}] is from {m['from']!r}; expected one of "
                             f"{', '.join(sorted(_SHAREGPT_ROLES))}")
        out.append({"role": role, "content": _text(m["value"], f"conversations[{i}].value")})
    return out


def _from_alpaca(row: dict) -> Messages:
    # Alpaca's own prompt puts the input after the instruction; as a chat turn both are the user's.
    instruction = _text(row["instruction"], "'instruction'")
    extra = _text(row.get("input") or "", "'input'")
    user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    out = [{"role": "system", "content": _text(row["system"], "'system'")}] if row.get("system") else []
    return out + [{"role": "user", "content": user}, {"role": "assistant", "content": _text(row["output"], "'output'")}]


def _from_prompt_completion(row: dict) -> Messages:
    return [{"role": "user", "content": _text(row["prompt"], "'prompt'")},
            {"role": "assistant", "content": _text(row["completion"], "'completion'")}]


_READERS = {"messages": _from_messages, "sharegpt": _from_sharegpt, "alpaca": _from_alpaca,
            "prompt_completion": _from_prompt_completion}


def normalise_row(row: object, fmt: str = "auto") -> Messages:
    """One row of any supported shape as chat messages; ValueError says what is wrong with it."""
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
    shape = detect_format(row) if fmt == "auto" else fmt
    if shape is None:
        raise ValueError(f"unrecognised row with keys {sorted(row)[:6]}; expected 'messages', 'conversations', "
                         "'instruction'+'output' or 'prompt'+'completion'")
    if fmt != "auto" and detect_format(row) != fmt:
        raise ValueError(f"row is not in format {fmt!r} (keys {sorted(row)[:6]})")
    messages = _READERS[shape](row)
    if not any(m["role"] == "assistant" for m in messages):
        raise ValueError("no assistant turn: nothing to train on")
    return messages


def read_sft_jsonl(path: str | Path, fmt: str = "auto") -> list[Messages]:
    """Every conversation of a JSONL file; LlmzooError naming the file and line of the first bad row."""
    if fmt not in FORMATS:
        raise LlmzooError(f"unknown SFT data format {fmt!r}; choose one of {', '.join(FORMATS)}")
    path = Path(path)
    if not path.is_file():
        raise LlmzooError(f"SFT data file {path} does not exist")
    conversations = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                conversations.append(normalise_row(json.loads(line), fmt))
            except json.JSONDecodeError as e:
                raise LlmzooError(f"{path} line {number}: not valid JSON ({e.msg} at column {e.colno})") from None
            except ValueError as e:
                raise LlmzooError(f"{path} line {number}: {e}") from None
    if not conversations:
        raise LlmzooError(f"{path} holds no conversations")
    return conversations
