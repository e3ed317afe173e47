"""`llmzoo chat --tools tools.py`: schemas from the user's signatures, the tool loop on a scripted
generator (replies fixed, so what is tested is the loop: calls run, results fed back, rounds capped),
bad tools files as one line and exit 2, and the CLI end to end on the tiny random model."""

import io
import json
import re
from pathlib import Path

import pytest

from llmzoo.cli import main
from llmzoo.cli.chat_tools import MAX_ROUNDS, call_tool, function_schema, load_tools, run_turn, tool_plan
from llmzoo.serve.json_schema import schema_errors

DOCS = Path(__file__).resolve().parents[2] / "docs" / "serving.md"
CALL = '<tool_call>{{"name": "{name}", "arguments": {args}}}</tool_call>'


def docs_tools_source() -> str:
    """The example tools.py of docs/serving.md's `llmzoo chat --tools` section."""
    section = DOCS.read_text(encoding="utf-8").split("## Tool use in `llmzoo chat`")[1]
    return re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)


@pytest.fixture
def tools_file(tmp_path):
    path = tmp_path / "tools.py"
    path.write_text(docs_tools_source() + '''
def add(a: int, b: float, tags: list[str], opts: dict, flag: bool = False, note=None):
    """Add two numbers.

    More text that is not the description."""
    return a + b


def fails(x: int):
    raise ValueError("x is too large")


def _private():
    pass


from json import dumps  # imported, not defined here: not a tool
''', encoding="utf-8")
    return path


def test_the_schema_comes_from_the_signature_and_docstring(tools_file):
    tools = load_tools(tools_file)
    assert sorted(tools) == ["add", "fails", "get_weather"]
    assert function_schema(tools["add"]) == {
        "name": "add", "description": "Add two numbers.",
        "parameters": {"type": "object",
                       "properties": {"a": {"type": "integer"}, "b": {"type": "number"},
                                      "tags": {"type": "array", "items": {"type": "string"}},
                                      "opts": {"type": "object"}, "flag": {"type": "boolean"}, "note": {}},
                       "required": ["a", "b", "tags", "opts"], "additionalProperties": False}}
    assert function_schema(tools["get_weather"]) == {
        "name": "get_weather", "description": "The weather in a city now.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                       "required": ["city"], "additionalProperties": False}}
    # the schema is one the server's validator enforces
    schema = function_schema(tools["add"])["parameters"]
    assert schema_errors({"a": 1, "b": 2.5, "tags": ["x"], "opts": {}}, schema) == []
    assert schema_errors({"a": "1", "b": 2, "tags": [], "opts": {}}, schema)
    assert schema_errors({"a": 1, "b": 2, "tags": [], "opts": {}, "extra": 1}, schema)


def test_a_raising_function_returns_its_error_text(tools_file):
    tools = load_tools(tools_file)
    assert call_tool(tools["fails"], {"x": 1}) == "error: ValueError: x is too large"
    assert json.loads(call_tool(tools["get_weather"], {"city": "Paris"})) == {"city": "Paris", "temperature": 21,
                                                                            "unit": "C"}


class Scripted:
    """A `generate(messages) -> str` that replies with its script in order and keeps what it was shown."""

    def __init__(self, *replies: str) -> None:
        self.replies, self.seen = list(replies), []

    def __call__(self, messages: list[dict]) -> str:
        self.seen.append([dict(m) for m in messages])
        return self.replies.pop(0)


def test_a_call_is_run_and_its_result_fed_back(tools_file):
    tools = load_tools(tools_file)
    generate = Scripted(CALL.format(name="get_weather", args='{"city": "Paris"}'), "It is 21 C in Paris.")
    history = [{"role": "user", "content": "Weather in Paris?"}]
    lines = []
    assert run_turn(history, generate, tools, tool_plan(tools), report=lines.append) == "It is 21 C in Paris."
    assert [m["role"] for m in history] == ["user", "assistant", "tool", "assistant"]
    (call,) = history[1]["tool_calls"]
    assert call["function"]["name"] == "get_weather" and json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert history[2]["tool_call_id"] == call["id"]
    assert json.loads(history[2]["content"]) == {"city": "Paris", "temperature": 21, "unit": "C"}
    assert generate.seen[1] == history[:3]  # the second generation saw the call and its result
    assert len(lines) == 1 and lines[0].startswith("tool: get_weather(")


def test_an_exception_goes_back_to_the_model_and_bad_calls_are_not_run(tools_file):
    tools = load_tools(tools_file)
    generate = Scripted(CALL.format(name="fails", args='{"x": 3}'),
                        CALL.format(name="fails", args='{"x": "three"}'))  # breaks the schema: not run
    history = [{"role": "user", "content": "go"}]
    lines = []
    reply = run_turn(history, generate, tools, tool_plan(tools), report=lines.append)
    assert history[2] == {"role": "tool", "tool_call_id": history[1]["tool_calls"][0]["id"], "name": "fails",
                          "content": "error: ValueError: x is too large"}
    assert history[-1] == {"role": "assistant", "content": reply}
    assert "arguments.x should be integer" in lines[-1]


def test_tool_rounds_are_capped_per_turn(tools_file):
    tools = load_tools(tools_file)
    call = CALL.format(name="get_weather", args='{"city": "Oslo"}')
    generate = Scripted(*[call] * (MAX_ROUNDS + 1))
    history = [{"role": "user", "content": "loop"}]
    lines = []
    run_turn(history, generate, tools, tool_plan(tools), report=lines.append)
    assert len(generate.seen) == MAX_ROUNDS + 1 and not generate.replies
    assert [m["role"] for m in history].count("tool") == MAX_ROUNDS
    assert f"stopped after {MAX_ROUNDS} tool rounds" in lines[-1]


@pytest.mark.parametrize("content, why", [(None, "no such file"), ("import nonexistent_module_xyz\n", "failed to import"),
                                          ("X = 1\n", "defines no public functions")])
def test_bad_tools_files_are_one_line_exit_2(tmp_path, capsys, content, why):
    path = tmp_path / "tools.py"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    # the file is checked before the model loads: a source that does not exist is never reached
    assert main(["chat", str(tmp_path / "no-model"), "--tools", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and why in err


@pytest.fixture(scope="module")
def long_context_tiny_dir(tiny_dir, tmp_path_factory):
    """tiny_dir's tokenizer on a random model with room for the tools' system prompt (~940 of its tokens)."""
    import llmzoo
    from llmzoo.config import ModelConfig
    from tests.infer.test_generate import _model

    model = _model(ModelConfig(vocab_size=300, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_seq_len=2048), 3)
    out = tmp_path_factory.mktemp("tiny-long") / "tiny"
    llmzoo.save(model, out, tokenizer=llmzoo.load_tokenizer(tiny_dir))
    return out


def test_cli_chat_with_tools_on_the_tiny_model(long_context_tiny_dir, tools_file, capsys, monkeypatch):
    # the command in docs/serving.md; a random model calls no tool, so this is the plumbing end to end
    monkeypatch.setattr("sys.stdin", io.StringIO("hi\n"))
    assert main(["chat", str(long_context_tiny_dir), "--tools", str(tools_file), "--max-new-tokens", "4"]) == 0
    assert capsys.readouterr().out.strip()


def test_cli_chat_runs_a_scripted_call_and_prints_the_answer(long_context_tiny_dir, tools_file, capsys,
                                                             monkeypatch):
    # the model's replies scripted at the CLI's one generation seam; rendering, parsing, running are real
    replies = [CALL.format(name="get_weather", args='{"city": "Paris", "unit": "F"}'), "Sunny."]
    prompts = []

    def scripted(model, tokenizer, rendered, stream, kwargs):
        prompts.append(rendered)
        return replies.pop(0)

    monkeypatch.setattr("llmzoo.cli.generate._complete_rendered", scripted)
    monkeypatch.setattr("sys.stdin", io.StringIO("Weather in Paris?\n"))
    assert main(["chat", str(long_context_tiny_dir), "--tools", str(tools_file)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == "Sunny."
    assert 'tool: get_weather({"city": "Paris", "unit": "F"})' in captured.err
    # the tools were in the first prompt; the result, as a <tool_response>, in the second
    assert '"name": "get_weather"' in prompts[0]
    assert '<tool_response>{"city": "Paris", "temperature": 21, "unit": "F"}</tool_response>' in prompts[1]
