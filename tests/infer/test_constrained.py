"""Constrained decoding (llmzoo.infer.constrained, constrained_json): the JSON automaton against
Python's json module, the per-step token mask against a brute-force check of every token, a
random-weights model that still writes valid JSON under the constraint, and unconstrained
requests in the same batch decoding exactly as without the hook."""

import json
import random

import pytest
import torch

from llmzoo.config import ModelConfig
import llmzoo
from llmzoo.errors import AssetMissingError, LlmzooError
from llmzoo.infer.constrained import TokenTable
from llmzoo.infer.constrained_json import (V, JsonConstraint, UnsupportedSchemaError, compile_schema, complete,
                                           distance, feed)
from llmzoo.infer.engine import Engine
from llmzoo.infer.generate import generate_ids
from llmzoo.serve.json_schema import schema_errors
from llmzoo.tokenizer.train import train_tokenizer
from tests.infer.test_generate import _model

CITY = {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["C", "F"]},
                                         "days": {"type": "integer"}, "rain": {"type": "boolean"},
                                         "temps": {"type": "array", "items": {"type": "number"}},
                                         "where": {"type": "object", "properties": {"lat": {"type": "number"}},
                                                   "required": ["lat"]},
                                         "note": {"type": ["string", "null"]}},
        "required": ["city", "days"]}
TEXT = ('the weather in paris is sunny and the river flows past the old mill\n'
        '{"city": "Paris", "days": 3, "rain": false, "temps": [1.5, -2, 3e2], "note": null}\n')


def accepts(node, text: str):
    """The automaton's state after `text` (None if some byte was refused)."""
    state = ((V, node, 0),)
    for b in text.encode():
        state = feed(state, b)
        if state is None:
            return None
    return state


def random_value(rng: random.Random, depth: int = 0):
    kinds = ["int", "float", "str", "bool", "null"] + (["list", "dict"] if depth < 3 else [])
    kind = rng.choice(kinds)
    if kind == "int":
        return rng.randint(-10 ** 6, 10 ** 6)
    if kind == "float":
        return rng.uniform(-1e3, 1e3)
    if kind == "str":
        return "".join(rng.choice('ab "\\/\n\té€😀x') for _ in range(rng.randint(0, 6)))
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "list":
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {f"k{i}": random_value(rng, depth + 1) for i in range(rng.randint(0, 3))}


@pytest.mark.parametrize("seed", range(3))
def test_json_dumps_is_accepted_and_whatever_is_accepted_parses(seed):
    rng = random.Random(seed)
    anything = compile_schema(None)
    for _ in range(200):
        value = {"v": random_value(rng)}
        for text in (json.dumps(value), json.dumps(value, separators=(",", ":")), json.dumps(value, ensure_ascii=False)):
            state = accepts(anything, text)
            assert state is not None and complete(state) and distance(state) == 0, text
            # a mutation is accepted as a whole object only if json.loads takes it too
            cut = rng.randrange(len(text))
            for mutated in (text[:cut], text[:cut] + rng.choice('{}[],:"\\ 0e.-x') + text[cut:]):
                state = accepts(anything, mutated)
                if state is not None and complete(state):
                    assert isinstance(json.loads(mutated), dict), mutated


def test_only_objects_and_no_runaway_whitespace_for_json_object():
    anything = compile_schema(None)
    for text in ('[1]', '"x"', '1', ' {}', '{"a" : 1}', '{"a":      1}', '{"a":\n\n1}', '{"a":01}', '{"a":1,}'):
        state = accepts(anything, text)
        assert state is None or not complete(state), text
    assert complete(accepts(anything, '{\n  "a": [\n    1\n  ]\n}'))


def test_the_schema_subset_accepts_valid_values_and_only_them():
    node = compile_schema(CITY)
    good = [{"city": "Paris", "days": 3}, {"city": "x", "unit": "F", "days": -1, "rain": True, "temps": [],
                                           "where": {"lat": 1.5}, "note": None},
            {"city": "", "days": 0, "temps": [1, 2.5, -3e-2], "note": "n"}]
    for value in good:
        state = accepts(node, json.dumps(value))
        assert state is not None and complete(state), value
    bad = ['{"days": 3}', '{"city": "P"}', '{"city": "P", "days": 1.5}', '{"city": "P", "unit": "K", "days": 1}',
           '{"city": 1, "days": 1}', '{"city": "P", "days": 1, "x": 1}', '{"city": "P", "days": 1, "where": {}}']
    for text in bad:
        assert schema_errors(json.loads(text), CITY) or '"x"' in text  # the reference agrees they are bad
        state = accepts(node, text)
        assert state is None or not complete(state), text


@pytest.mark.parametrize("schema, keyword", [({"type": "string", "pattern": "a+"}, "pattern"),
                                             ({"anyOf": [{"type": "string"}]}, "anyOf"),
                                             ({"type": "object", "properties": {"n": {"type": "integer",
                                                                                      "minimum": 1}}}, "minimum"),
                                             ({"type": "tuple"}, "tuple")])
def test_an_unsupported_schema_names_the_keyword(schema, keyword):
    with pytest.raises(UnsupportedSchemaError, match=keyword) as info:
        compile_schema(schema)
    assert isinstance(info.value, LlmzooError) and "\n" not in str(info.value)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    corpus = tmp_path_factory.mktemp("corpus") / "c.txt"
    corpus.write_text(TEXT * 30, encoding="utf-8")
    return train_tokenizer([corpus], vocab_size=300, progress=False)


def brute_force(constraint: JsonConstraint, remaining: int) -> set[int]:
    """Every token fed byte by byte from the constraint's state: the tokens that stay valid and
    leave at most remaining-1 bytes to close the value."""
    table = constraint.tokens.table
    ok = {}
    for i, data in enumerate(table.bytes):
        state = constraint.state
        for b in data or b"":
            state = None if state is None else feed(state, b)
        if data and state is not None:
            ok[i] = distance(state)
    fits = {i for i, d in ok.items() if d <= remaining - 1}
    if not fits and ok:  # none fits: the ones closest to the end (JsonConstraint.allowed)
        best = min(ok.values())
        fits = {i for i, d in ok.items() if d == best}
    return fits


def test_the_mask_equals_checking_every_token(tokenizer):
    table = TokenTable(tokenizer)
    rng = random.Random(0)
    for schema in (None, CITY):
        constraint = JsonConstraint(compile_schema(schema), table)
        for step in range(60):
            remaining = rng.choice([3, 8, 100])
            mask = constraint.allowed(remaining, tokenizer.vocab_size)
            assert set(torch.nonzero(mask).flatten().tolist()) == brute_force(constraint, remaining), bytes(
                constraint.text)
            if constraint.finished or not mask.any():
                break
            constraint.advance(rng.choice(torch.nonzero(mask).flatten().tolist()))


@pytest.fixture(scope="module")
def engine(tokenizer):
    model = _model(ModelConfig(vocab_size=tokenizer.vocab_size, d_model=32, n_layers=2, n_heads=4, d_ff=64,
                               max_seq_len=256), 5)
    with Engine(model, tokenizer, max_batch=4, compile=False) as engine:
        yield engine


@pytest.mark.parametrize("schema", [None, CITY])
def test_a_random_model_under_the_constraint_writes_valid_json(engine, tokenizer, schema):
    table = TokenTable.for_tokenizer(tokenizer)
    node = compile_schema(schema)
    requests = [engine.submit("the weather", max_tokens=60, temperature=1.0, seed=seed,
                              constraint=JsonConstraint(node, table)) for seed in range(6)]
    for request in requests:
        done = request.result()
        value = json.loads(done.text)  # complete even where max_tokens cut in: the budget closes it
        assert isinstance(value, dict) and done.finish_reason in ("stop", "length")
        if schema is not None:
            assert schema_errors(value, schema) == []


def test_unconstrained_requests_decode_as_without_the_hook(engine, tokenizer):
    prompts = [tokenizer.encode("the river"), tokenizer.encode("sunny and the")]
    alone = [generate_ids(engine.model, [p], max_new_tokens=20, compile=False)[0].token_ids for p in prompts]
    table = TokenTable.for_tokenizer(tokenizer)
    constrained = engine.submit("the weather", max_tokens=30, constraint=JsonConstraint(compile_schema(None), table))
    plain = [engine.submit(p, max_tokens=20) for p in prompts]
    assert [r.result().token_ids for r in plain] == alone
    json.loads(constrained.result().text)


@pytest.mark.asset
def test_smollm2_token_bytes_and_mask():
    """The real 49k vocabulary: each token's bytes joined decode as the tokenizer decodes, and the
    mask equals the brute-force check in a structural state and inside a string."""
    try:
        smollm2 = llmzoo.load_tokenizer("smollm2-135m-instruct")
    except AssetMissingError as e:
        pytest.skip(str(e))
    table = TokenTable.for_tokenizer(smollm2)
    text = '{"city": "Zürich 😀", "note": "a\\"b\\n", "n": [1, -2.5e3]}\n'
    ids = smollm2.encode(text, add_special_tokens=False)
    assert b"".join(table.bytes[i] for i in ids).decode() == smollm2.decode(ids) == text
    constraint = JsonConstraint(compile_schema(CITY), table)
    for i in smollm2.encode('{"city": "Par', add_special_tokens=False):
        if constraint.text in (b"", b'{"city":'):
            mask = constraint.allowed(100, smollm2.vocab_size)
            assert set(torch.nonzero(mask).flatten().tolist()) == brute_force(constraint, 100)
        constraint.advance(i)
    mask = constraint.allowed(100, smollm2.vocab_size)  # inside the string: the safe-token shortcut
    assert set(torch.nonzero(mask).flatten().tolist()) == brute_force(constraint, 100)
