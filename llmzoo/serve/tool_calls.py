"""Function calling in the OpenAI shape: `tools` into the prompt, the model's reply parsed back
into `tool_calls` whose arguments are checked against each tool's JSON schema.

Rendering: a chat template that uses a `tools` variable (Qwen 2.5, Hermes, Llama 3.1, ... in
llama.cpp's template collection) renders them itself, with assistant `tool_calls` and `tool`
messages as HF templates expect. A template without one (SmolLM2's) gets the fallback: a system
message listing the tools as JSON and asking for `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`
(the Hermes format many small models were tuned on); earlier calls are rendered that way in the
assistant turn and tool results as user turns wrapped in `<tool_response>`.

Forcing (tool_choice "required" or a named function) is constrained decoding: the assistant turn
is started with `<tool_call>\n` (Hermes-style templates) and the model's output is restricted,
token by token, to `{"name": NAME, "arguments": ARGS}` with NAME among the allowed functions and
ARGS matching that function's parameters schema (llmzoo.infer.constrained_json.ToolCall), so a
forced call always parses and validates. A parameters schema outside the constraint's subset
falls back to prefix forcing — the call's start `{"name": "NAME", "arguments": ` put in the
prompt — and rejection: arguments that are not JSON or break the schema are sampled again
(temperature 0.7, up to RETRIES times).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field

from llmzoo.infer.constrained_json import UnsupportedSchemaError, tool_call_cached
from llmzoo.serve.errors import APIError
from llmzoo.serve.json_schema import schema_errors

OPEN, CLOSE = "<tool_call>", "</tool_call>"
RETRIES = 2
FALLBACK_SYSTEM = ("You can call functions. The available functions, as JSON schemas:\n{tools}\n"
                   "To call one, reply with only <tool_call>{{\"name\": <function name>, \"arguments\": "
                   "<arguments as a JSON object>}}</tool_call>. Otherwise reply normally.")


@dataclass
class ToolCall:
    name: str
    arguments: dict
    id: str = field(default_factory=lambda: "call_" + uuid.uuid4().hex[:24])

    def openai(self) -> dict:
        return {"id": self.id, "type": "function",
                "function": {"name": self.name, "arguments": json.dumps(self.arguments, ensure_ascii=False)}}


@dataclass
class ToolPlan:
    """What one request asked for: its functions (name -> OpenAI function object) and tool_choice
    ("auto", "required" or a function's name)."""
    functions: dict[str, dict]
    choice: str
    prefix: str = ""  # the forced start of the assistant turn
    grammar: object = None  # forced calls: the constraint's node (None: prefix forcing, see the module doc)

    @property
    def forced(self) -> bool:
        return self.choice != "auto"

    def parse(self, generated: str) -> tuple[str | None, list[ToolCall], str | None]:
        """(content, tool calls, error) of a reply; error names why a call-shaped reply was not a valid call."""
        return parse_reply(self.prefix + generated, self.functions)


def plan_tools(tools: list[dict] | None, tool_choice) -> ToolPlan | None:
    """Check `tools` and `tool_choice` (400 naming the problem); None when no call can happen."""
    if tool_choice is None:
        tool_choice = "auto" if tools else "none"
    if isinstance(tool_choice, dict):
        name = (tool_choice.get("function") or {}).get("name") if tool_choice.get("type") == "function" else None
        if not isinstance(name, str):
            raise APIError(400, "tool_choice is 'none', 'auto', 'required' or {'type': 'function', 'function': "
                                "{'name': NAME}}", param="tool_choice")
        tool_choice = name
    elif tool_choice not in ("none", "auto", "required"):
        raise APIError(400, f"tool_choice {tool_choice!r} is not 'none', 'auto', 'required' or a named function",
                       param="tool_choice")
    if tool_choice == "none":
        return None
    if not tools:
        raise APIError(400, f"tool_choice {tool_choice!r} needs tools", param="tools")
    functions = {}
    for i, tool in enumerate(tools):
        function = tool.get("function") if tool.get("type") == "function" else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise APIError(400, f"tools[{i}] is not {{'type': 'function', 'function': {{'name': ..., "
                                f"'parameters': {{...}}}}}}", param=f"tools[{i}]")
        if not isinstance(function.get("parameters", {}), dict):
            raise APIError(400, f"tools[{i}].function.parameters must be a JSON schema object",
                           param=f"tools[{i}]")
        functions[function["name"]] = function
    if tool_choice not in ("auto", "required") and tool_choice not in functions:
        raise APIError(400, f"tool_choice names {tool_choice!r}, which is not among the tools "
                            f"({', '.join(functions)})", param="tool_choice")
    plan = ToolPlan(functions, tool_choice)
    if plan.forced:
        names = list(functions) if tool_choice == "required" else [tool_choice]
        try:
            plan.grammar = tool_call_cached(json.dumps({name: functions[name].get("parameters") or {"type": "object"}
                                                        for name in names}))
        except UnsupportedSchemaError:  # parameters outside the constraint's subset: prefix forcing
            pass
    return plan


def supports_tools(template: str | None) -> bool:
    return bool(template) and re.search(r"\btools\b", template) is not None


def _arguments(call: dict):
    args = call.get("function", call).get("arguments", "{}")
    if isinstance(args, str):
        try:
            return json.loads(args or "{}")
        except ValueError:
            raise APIError(400, f"tool call {call.get('id')!r}: arguments are not JSON", param="messages") from None
    return args


def template_messages(messages: list[dict]) -> list[dict]:
    """OpenAI messages in the shape HF chat templates read (tool_calls' arguments as objects)."""
    out = []
    for m in messages:
        m = {k: v for k, v in m.items() if v is not None}
        if m.get("tool_calls"):
            m["tool_calls"] = [{"id": c.get("id"), "type": "function",
                                "function": {"name": c.get("function", {}).get("name"), "arguments": _arguments(c)}}
                               for c in m["tool_calls"]]
            m.setdefault("content", "")
        out.append(m)
    return out


def fallback_messages(messages: list[dict], plan: ToolPlan | None) -> list[dict]:
    """For templates without tools: the tools in a system message, calls and results as text."""
    out = []
    for m in messages:
        if m.get("tool_calls"):
            calls = "".join(OPEN + json.dumps({"name": c.get("function", {}).get("name"), "arguments": _arguments(c)})
                            + CLOSE for c in m["tool_calls"])
            out.append({"role": "assistant", "content": (m.get("content") or "") + calls})
        elif m["role"] == "tool":
            out.append({"role": "user", "content": f"<tool_response>{m.get('content') or ''}</tool_response>"})
        else:
            out.append({"role": m["role"], "content": m.get("content") or ""})
    if plan is not None:
        listing = "\n".join(json.dumps({"name": f["name"], "description": f.get("description", ""),
                                        "parameters": f.get("parameters", {})}) for f in plan.functions.values())
        system = FALLBACK_SYSTEM.format(tools=listing)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": out[0]["content"] + "\n\n" + system}
        else:
            out.insert(0, {"role": "system", "content": system})
    return out


def render(tokenizer, messages: list[dict], plan: ToolPlan | None) -> str:
    """The prompt text (generation prompt and forced prefix included); sets plan.prefix."""
    template = getattr(tokenizer, "chat_template", None)
    if supports_tools(template):
        tools = [{"type": "function", "function": f} for f in plan.functions.values()] if plan else None
        text = tokenizer.apply_chat_template(template_messages(messages), add_generation_prompt=True, tools=tools)
        hermes = OPEN in template
    else:
        text = tokenizer.apply_chat_template(fallback_messages(messages, plan), add_generation_prompt=True)
        hermes = True
    if plan is not None and plan.forced:
        start = OPEN + "\n" if hermes else ""
        if plan.grammar is not None:  # the constraint writes the call itself
            plan.prefix = start
            return text + start
        names = [plan.choice] if plan.choice != "required" else list(plan.functions)
        plan.prefix = (start + '{"name": ' + json.dumps(names[0]) + ', "arguments": ' if len(names) == 1
                       else start + '{"name": "')
    return text + (plan.prefix if plan else "")


def _decode_object(body: str):
    decoder = json.JSONDecoder()
    body = body.strip().removeprefix("```json").removeprefix("```").strip()
    for attempt in (body, body + "}", body + "}}"):  # a forced call the model closed one brace short
        try:
            return decoder.raw_decode(attempt)[0]
        except ValueError:
            continue
    return None


def parse_reply(text: str, functions: dict[str, dict]) -> tuple[str | None, list[ToolCall], str | None]:
    blocks = re.findall(re.escape(OPEN) + r"(.*?)(?:" + re.escape(CLOSE) + r"|$)", text, flags=re.S)
    stripped = text.strip()
    if not blocks and stripped.startswith("{") and '"name"' in stripped:
        blocks = [stripped]  # a bare JSON call (Llama 3.1's shape)
    if not blocks:
        return text, [], None
    calls = []
    for body in blocks:
        obj = _decode_object(body)
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            return text, [], f"the tool call is not a JSON object with a name: {body.strip()[:200]!r}"
        name = obj["name"]
        if name not in functions:
            return text, [], f"the model called {name!r}, which is not among the tools ({', '.join(functions)})"
        args = obj.get("arguments", obj.get("parameters", {}))
        if isinstance(args, str):
            args = _decode_object(args)
        if not isinstance(args, dict):
            return text, [], f"the arguments of {name!r} are not a JSON object"
        problems = schema_errors(args, functions[name].get("parameters", {}))
        if problems:
            return text, [], f"the arguments of {name!r} do not match its schema: {'; '.join(problems)}"
        calls.append(ToolCall(name, args))
    content = text[:text.find(OPEN)].strip() if OPEN in text else ""
    return content or None, calls, None
