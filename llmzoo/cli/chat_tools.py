"""`llmzoo chat --tools tools.py`: the user's Python functions as tools the model can call.

Every public function defined in tools.py becomes an OpenAI-shaped function tool: its JSON schema
comes from the signature's type hints (a parameter with a default is not required) and its
description from the docstring's first line. Rendering the tools into the prompt and parsing
`<tool_call>` replies (validated against the schema) is the server's code, llmzoo/serve/tool_calls.py,
so `chat` and `serve` read a model's calls the same way. Each call is run, its result appended as a
`tool` message, and the model asked again, at most MAX_ROUNDS times per user turn.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import sys
import typing
from collections.abc import Callable
from pathlib import Path

from llmzoo.errors import LlmzooError
from llmzoo.serve.tool_calls import ToolCall, ToolPlan

MAX_ROUNDS = 4
# JSON Schema types (https://json-schema.org/understanding-json-schema/reference/type) of the hints
# a tool's parameters may carry; a parameter without a hint (or with another one) accepts any JSON.
JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "object"}


class ToolsFileError(LlmzooError):
    """A --tools file that is missing, fails to import or defines no functions."""


def load_tools(path: str | Path) -> dict[str, Callable]:
    """The public functions defined in the Python file at `path`, by name."""
    path = Path(path)
    if not path.is_file():
        raise ToolsFileError(f"--tools {path}: no such file; give the path of a Python file defining functions")
    spec = importlib.util.spec_from_file_location(f"llmzoo_user_tools_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ToolsFileError(f"--tools {path} is not a Python file; give a .py file defining functions")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as e:  # the user's code: what it raises is theirs to fix, said in one line
        raise ToolsFileError(f"--tools {path} failed to import ({type(e).__name__}: {e}); fix the file") from None
    tools = {name: fn for name, fn in vars(module).items()
             if inspect.isfunction(fn) and not name.startswith("_") and fn.__module__ == module.__name__}
    if not tools:
        raise ToolsFileError(f"--tools {path} defines no public functions; define at least one `def name(...)`")
    return tools


def _json_type(hint) -> dict:
    origin = typing.get_origin(hint) or hint
    if origin in JSON_TYPES:
        schema = {"type": JSON_TYPES[origin]}
        args = typing.get_args(hint)
        if origin is list and len(args) == 1 and args[0] in JSON_TYPES:
            schema["items"] = {"type": JSON_TYPES[args[0]]}
        return schema
    return {}


def function_schema(fn: Callable) -> dict:
    """The OpenAI function object (name, description, parameters) of `fn`."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # a hint naming something undefined: the parameter just accepts any JSON
        hints = {}
    properties, required = {}, []
    for name, p in inspect.signature(fn).parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        properties[name] = _json_type(hints.get(name))
        if p.default is p.empty:
            required.append(name)
    doc = inspect.getdoc(fn) or ""
    return {"name": fn.__name__, "description": doc.strip().splitlines()[0] if doc.strip() else "",
            "parameters": {"type": "object", "properties": properties, "required": required,
                           "additionalProperties": False}}


def tool_plan(tools: dict[str, Callable]) -> ToolPlan:
    """The tools offered on every turn, the model free to call them or not ("auto")."""
    return ToolPlan({name: function_schema(fn) for name, fn in tools.items()}, "auto")


def call_tool(fn: Callable, arguments: dict) -> str:
    """The function's result as the `tool` message's text; an exception's text is the result, so the
    model (not the user) sees what went wrong."""
    try:
        result = fn(**arguments)
    except (Exception, SystemExit) as e:  # a tool calling sys.exit() must not end the chat
        return f"error: {type(e).__name__}: {e}"
    if isinstance(result, str):
        return result
    try:
        return json.dumps(result, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(result)


def run_turn(history: list[dict], generate: Callable[[list[dict]], str], tools: dict[str, Callable],
             plan: ToolPlan, max_rounds: int = MAX_ROUNDS,
             report: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> str:
    """Answer the last user message in `history` (appended to in place): generate, run the calls
    the reply makes, feed their results back, until a reply calls no tool or max_rounds ran."""
    for round_ in range(max_rounds + 1):
        reply = generate(history)
        content, calls, error = plan.parse(reply)
        if error:
            report(f"note: the reply looked like a tool call but was not run: {error}")
        if not calls:
            history.append({"role": "assistant", "content": reply})
            return reply
        if round_ == max_rounds:
            report(f"note: stopped after {max_rounds} tool rounds in this turn; the model's last calls were not "
                   "run (ask again or /reset)")
            history.append({"role": "assistant", "content": reply})
            return content or ""
        history.append({"role": "assistant", "content": content, "tool_calls": [c.openai() for c in calls]})
        for call in calls:
            history.append(_tool_message(call, tools))
            report(f"tool: {call.name}({json.dumps(call.arguments, ensure_ascii=False)}) -> "
                   f"{history[-1]['content'][:200]}")
    raise AssertionError("unreachable")


def _tool_message(call: ToolCall, tools: dict[str, Callable]) -> dict:
    return {"role": "tool", "tool_call_id": call.id, "name": call.name,
            "content": call_tool(tools[call.name], call.arguments)}
