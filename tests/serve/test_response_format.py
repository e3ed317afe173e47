"""response_format (JSON mode, Structured Outputs) and forced tool calls by constrained decoding,
through the official openai client: a random tiny model and the real SmolLM2 both answer with JSON
that json.loads parses and that validates against the schema (llmzoo.serve.json_schema); bad
formats are 400s naming the problem, and the server keeps serving."""

import json

import openai
import pytest

import llmzoo
from llmzoo.config import ModelConfig
from llmzoo.serve.json_schema import schema_errors
from tests.infer.test_generate import _model
from tests.serve.conftest import serve
from tests.serve.test_tools import WEATHER

ASK_JSON = [{"role": "user", "content": "Describe the river as a JSON object."}]
RIVER = {"type": "object", "properties": {"name": {"type": "string"}, "length_km": {"type": "number"},
                                          "navigable": {"type": "boolean"},
                                          "towns": {"type": "array", "items": {"type": "string"}},
                                          "kind": {"enum": ["river", "stream"]},
                                          "mouth": {"type": "object", "properties": {"sea": {"type": "string"}},
                                                    "required": ["sea"]}},
         "required": ["name", "length_km", "navigable", "kind"], "additionalProperties": False}


def schema_format(schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}


def test_json_object_replies_parse_for_every_seed(client):
    reply = client.chat.completions.create(model="tiny", messages=ASK_JSON, response_format={"type": "json_object"},
                                           temperature=1.0, seed=7, n=4, max_tokens=48)
    for choice in reply.choices:
        assert isinstance(json.loads(choice.message.content), dict), choice.message.content


def test_json_schema_replies_validate_streamed_or_not(client):
    texts = []
    for seed in range(3):
        reply = client.chat.completions.create(model="tiny", messages=ASK_JSON, response_format=schema_format(RIVER),
                                               temperature=1.0, seed=seed, max_tokens=64)
        texts.append(reply.choices[0].message.content)
    stream = client.chat.completions.create(model="tiny", messages=ASK_JSON, response_format=schema_format(RIVER),
                                            temperature=1.0, seed=0, max_tokens=64, stream=True)
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert streamed == texts[0]  # the same seed, the same constrained sample
    for text in texts:
        assert schema_errors(json.loads(text), RIVER) == [], text


def test_completions_take_response_format_too(client):
    reply = client.completions.create(model="tiny", prompt="JSON: the river", max_tokens=32, temperature=1.0, seed=3,
                                      extra_body={"response_format": {"type": "json_object"}})
    assert isinstance(json.loads(reply.choices[0].text), dict)


@pytest.mark.parametrize("fmt, messages, words", [
    ({"type": "json_object"}, [{"role": "user", "content": "Describe the river."}], "must contain the word 'json'"),
    (schema_format({"type": "string", "pattern": "^a"}), ASK_JSON, "'pattern'"),
    (schema_format({"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}}), ASK_JSON, "'minimum'"),
    (schema_format({"oneOf": [{"type": "string"}]}), ASK_JSON, "'oneOf'"),
    ({"type": "json_schema"}, ASK_JSON, "needs json_schema"),
    ({"type": "yaml"}, ASK_JSON, "'yaml'"),
])
def test_bad_formats_are_400s_and_the_server_keeps_serving(client, fmt, messages, words):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="tiny", messages=messages, response_format=fmt, max_tokens=8)
    assert words in info.value.message
    reply = client.chat.completions.create(model="tiny", messages=ASK_JSON, max_tokens=4, temperature=0)
    assert reply.choices[0].finish_reason in ("stop", "length")


@pytest.fixture(scope="module")
def long_client(tiny_dir, tmp_path_factory):
    """The tiny model with room for a prompt listing tools (the fallback system prompt is long)."""
    tokenizer = llmzoo.load_tokenizer(tiny_dir)
    model = _model(ModelConfig(vocab_size=300, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_seq_len=1024), 3)
    out = tmp_path_factory.mktemp("tiny_long") / "tiny"
    llmzoo.save(model, out, tokenizer=tokenizer)
    with serve(out, max_batch=4) as url:
        yield openai.OpenAI(base_url=url, api_key="none", max_retries=0, timeout=120)


def test_a_forced_tool_call_is_always_a_valid_call(long_client):
    client = long_client
    for choice in ("required", {"type": "function", "function": {"name": "get_weather"}}):
        reply = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "weather?"}],
                                               tools=[WEATHER], tool_choice=choice, temperature=1.0, seed=1, n=3,
                                               max_tokens=64)
        for c in reply.choices:
            assert c.finish_reason == "tool_calls", c
            (call,) = c.message.tool_calls
            arguments = json.loads(call.function.arguments)
            assert call.function.name == "get_weather"
            assert schema_errors(arguments, WEATHER["function"]["parameters"]) == []


# --- the real SmolLM2-135M-Instruct -------------------------------------------------------------

CITIES = ["Paris", "Tokyo", "Berlin", "Madrid", "Rome", "Oslo", "Cairo", "Lima", "Seoul", "Dublin"]
CITY = {"type": "object", "properties": {"city": {"type": "string"}, "country": {"type": "string"},
                                         "population": {"type": "integer"}, "capital": {"type": "boolean"}},
        "required": ["city", "country", "population", "capital"]}


@pytest.fixture
def smollm2(smollm2_client):
    return smollm2_client


@pytest.mark.asset
def test_smollm2_json_mode_and_schema(smollm2):
    ask = [{"role": "user", "content": "Give the capital of France as JSON with keys name and country."}]
    reply = smollm2.chat.completions.create(model="smollm2-135m-instruct", messages=ask, temperature=0,
                                            max_tokens=40, response_format={"type": "json_object"})
    assert isinstance(json.loads(reply.choices[0].message.content), dict)
    reply = smollm2.chat.completions.create(model="smollm2-135m-instruct", max_tokens=60, temperature=0,
                                            messages=[{"role": "user", "content": "Tell me about Paris."}],
                                            response_format=schema_format(CITY))
    value = json.loads(reply.choices[0].message.content)
    assert schema_errors(value, CITY) == [] and reply.choices[0].finish_reason == "stop"


@pytest.mark.slow  # ten forced calls, ~20 constrained tokens each
@pytest.mark.asset
def test_smollm2_forced_calls_are_valid_and_counted(smollm2):
    """docs/serving.md quotes the printed count (constrained: every call valid; correct = the city asked)."""
    correct = 0
    for city in CITIES:
        reply = smollm2.chat.completions.create(
            model="smollm2-135m-instruct", messages=[{"role": "user", "content": f"What is the weather in {city}?"}],
            tools=[WEATHER], tool_choice="required", temperature=0, max_tokens=40)
        choice = reply.choices[0]
        assert choice.finish_reason == "tool_calls"
        arguments = json.loads(choice.message.tool_calls[0].function.arguments)
        assert schema_errors(arguments, WEATHER["function"]["parameters"]) == []
        correct += arguments["city"] == city
    print(f"constrained tool_choice=required: {correct}/{len(CITIES)} calls with the city asked")


def test_a_tool_schema_outside_the_subset_falls_back_to_prefix_forcing():
    from llmzoo.serve.tool_calls import plan_tools

    bounded = {"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}}}}
    assert plan_tools([WEATHER], "required").grammar is not None
    assert plan_tools([bounded], "required").grammar is None  # prefix forcing and retries instead
    assert plan_tools([WEATHER], "auto").grammar is None  # a reply in prose stays possible
