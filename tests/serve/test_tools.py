"""Function calling through the openai client, on a scripted engine whose replies are fixed, so what
is tested is the server's side: tools into the prompt, replies parsed into tool_calls, schemas
enforced, forced calls retried, tool results rendered back."""

import json
from pathlib import Path

import openai
import pytest

import llmzoo
from llmzoo.serve import create_app
from llmzoo.serve.models import ServedModel
from llmzoo.serve.tool_calls import plan_tools, render
from tests.serve.conftest import running
from tests.serve.fake_engine import ScriptedEngine

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city now.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                    "unit": {"type": "string", "enum": ["C", "F"]}},
                   "required": ["city"]}}}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
CALL = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
TEMPLATES = Path.home() / ".cache/llmzoo/assets/llama-cpp-vocab/vendor/llama.cpp/models/templates"


@pytest.fixture(scope="module")
def tokenizer(tiny_dir):
    return llmzoo.load_tokenizer(tiny_dir)


@pytest.fixture
def scripted(tokenizer):
    """(client, engine) for a server whose engine replies with engine.script."""
    engine = ScriptedEngine(tokenizer, [""])
    with running(create_app({"tiny": ServedModel("tiny", None, tokenizer, engine=engine)})) as url:
        yield openai.OpenAI(base_url=url, api_key="none", max_retries=0, timeout=30), engine


def chat(client, **kw):
    return client.chat.completions.create(model="tiny", messages=kw.pop("messages", ASK), tools=[WEATHER],
                                          temperature=0, max_tokens=512, **kw)


def test_a_scripted_call_reaches_the_client_as_tool_calls(scripted, tokenizer):
    client, engine = scripted
    engine.reply(CALL)
    reply = chat(client)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather" and call.id.startswith("call_")
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    # the tiny model's template has no tools: they went in through the fallback system message
    prompt = tokenizer.decode(engine.prompts[-1])
    assert json.dumps(WEATHER["function"]["parameters"]) in prompt and "<tool_call>" in prompt


def test_a_streamed_call_arrives_as_tool_call_deltas(scripted):
    client, engine = scripted
    engine.reply(CALL)
    chunks = list(chat(client, stream=True))
    deltas = [d for c in chunks for d in (c.choices[0].delta.tool_calls or [])]
    assert [d.function.name for d in deltas] == ["get_weather"]
    assert json.loads(deltas[0].function.arguments) == {"city": "Paris"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_arguments_against_the_schema_leave_the_reply_as_text_with_the_reason(scripted):
    client, engine = scripted
    for bad, why in (('{"name": "get_weather", "arguments": {"city": 5}}', "arguments.city should be string"),
                     ('{"name": "get_weather", "arguments": {"unit": "K"}}', "missing the required 'city'"),
                     ('{"name": "get_time", "arguments": {}}', "not among the tools"),
                     ('{"name": "get_weather", "arguments": {"city": ', "not a JSON object")):
        engine.reply(f"<tool_call>{bad}</tool_call>")
        reply = chat(client).model_dump()
        choice = reply["choices"][0]
        assert choice["finish_reason"] == "stop" and choice["message"]["tool_calls"] is None
        assert choice["message"]["content"] == engine.script[0] and why in choice["tool_call_error"]


def test_a_forced_call_starts_the_reply_and_is_retried_until_valid(scripted, tokenizer):
    client, engine = scripted
    engine.reply('{"town": "Oslo"}}</tool_call>', '{"city": "Oslo"}}</tool_call>')
    reply = chat(client, tool_choice={"type": "function", "function": {"name": "get_weather"}})
    assert json.loads(reply.choices[0].message.tool_calls[0].function.arguments) == {"city": "Oslo"}
    first, retry = (tokenizer.decode(p) for p in engine.prompts[-2:])
    assert first == retry and first.endswith('<tool_call>\n{"name": "get_weather", "arguments": ')
    engine.reply('{"town": "Oslo"}}')  # never valid: after the retries, text and the reason
    reply = chat(client, tool_choice="required").model_dump()
    assert reply["choices"][0]["finish_reason"] == "stop" and "city" in reply["choices"][0]["tool_call_error"]


def test_a_tool_result_round_trips_into_the_next_prompt(scripted, tokenizer):
    client, engine = scripted
    engine.reply(CALL)
    first = chat(client)
    call = first.choices[0].message.tool_calls[0]
    engine.reply("It is sunny in Paris.")
    history = ASK + [first.choices[0].message.model_dump(exclude_none=True),
                     {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"}]
    reply = chat(client, messages=history)
    assert reply.choices[0].message.content == "It is sunny in Paris." and reply.choices[0].finish_reason == "stop"
    prompt = tokenizer.decode(engine.prompts[-1])
    assert CALL in prompt and "<tool_response>sunny, 21 C</tool_response>" in prompt


def test_no_tool_choice_none_and_bad_tools(scripted):
    client, engine = scripted
    engine.reply(CALL)
    reply = chat(client, tool_choice="none")  # no tools rendered, nothing parsed
    assert reply.choices[0].message.content == CALL and reply.choices[0].message.tool_calls is None
    for kw in ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, {"tool_choice": "always"},
               {"tools": [{"type": "function"}]}):
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="tiny", messages=ASK, **{"tools": [WEATHER], **kw})


@pytest.mark.parametrize("name", ["Qwen-Qwen2.5-7B-Instruct", "NousResearch-Hermes-3-Llama-3.1-8B-tool_use"])
def test_templates_with_tools_render_as_transformers_renders_them(tokenizer, name):
    from transformers.utils.chat_template_utils import render_jinja_template

    path = TEMPLATES / f"{name}.jinja"
    if not path.exists():
        pytest.skip(f"{path} not fetched (llama-cpp-vocab asset)")
    template = path.read_text()
    openai_history = ASK + [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]
    hf_history = ASK + [{"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]
    old, tokenizer.chat_template = tokenizer.chat_template, template
    try:
        ours = render(tokenizer, openai_history, plan_tools([WEATHER], "auto"))
    finally:
        tokenizer.chat_template = old
    want = render_jinja_template([hf_history], tools=[WEATHER], chat_template=template, add_generation_prompt=True,
                                 **tokenizer.special_tokens_map)  # bos_token, as transformers' tokenizers pass it
    assert ours == (want[0] if isinstance(want, tuple) else want)[0]
