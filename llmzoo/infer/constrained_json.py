"""JSON by constrained decoding: a pushdown automaton over bytes (RFC 8259's grammar, optionally
narrowed by a JSON Schema subset) that allows, at each step, exactly the tokens whose bytes keep
the output a valid prefix of a value the schema accepts (the idea of Willard & Louf 2023,
"Efficient Guided Generation", here as a byte-level pushdown automaton walked over a token trie).

    grammar = compile_schema({"type": "object", "properties": {"city": {"type": "string"}}})
    engine.submit(prompt, constraint=JsonConstraint(grammar, TokenTable.for_tokenizer(tok)))

Supported schema keywords: type (object, array, string, number, integer, boolean, null, or a list
of these), properties, required, items, enum, const, additionalProperties (extra properties are
never generated), and the annotations title/description/default/examples/$schema. Anything else
is an UnsupportedSchemaError naming the keyword. Object properties are written in the schema's
order (as OpenAI's Structured Outputs do); optional ones may be left out.

Choices that keep a small or random model from running away:
- whitespace (spaces and at most one newline, MAX_WS bytes in a row) only where pretty-printed
  JSON has it: before a value or key and before ',', '}' or ']' — not at the start, nor before ':';
- numbers are at most MAX_NUMBER bytes;
- the remaining token budget is respected: a token is allowed only if the bytes still needed to
  close the value (`distance`) fit in the tokens left, so the output is complete JSON even when
  max_tokens would have cut it (every ASCII byte is a token in byte-level vocabularies). The
  distance is in bytes, so it overestimates the tokens needed; when no token fits it, the tokens
  that bring the end closest are allowed (e.g. a long literal written in its longest tokens).

State: a tuple of frames, innermost last, each a small tuple — immutable, so walking the trie
shares states between siblings without copying.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from functools import lru_cache

import numpy as np
import torch

from llmzoo.errors import LlmzooError
from llmzoo.infer.constrained import TokenTable, TrieNode

MAX_WS = 4
_NEWLINE_SEEN = 100  # added to a whitespace count once the run has its newline
MAX_NUMBER = 24
_WS = (0x20, 0x0A)
QUOTE, BACKSLASH = 0x22, 0x5C
_DIGITS = frozenset(range(0x30, 0x3A))
_HEX = frozenset(b"0123456789abcdefABCDEF")
_ESCAPES = frozenset(b'"\\/bfnrt')
ANNOTATIONS = frozenset({"title", "description", "default", "examples", "$schema", "$comment"})


class UnsupportedSchemaError(LlmzooError):
    """A JSON schema with a keyword or shape the JSON constraint does not implement."""


# --- schema nodes --------------------------------------------------------------------------------

class Lit:
    """One of several fixed byte strings (enum, const, true/false/null, an object's key)."""

    def __init__(self, texts: dict[bytes, object], extra=lambda value: 0) -> None:
        self.root = _Lit.build(texts, extra)
        self.min_len = self.root.rest


class _Lit:
    """A trie node of literal bytes; `rest`: fewest bytes (plus the value's cost) to an end."""
    __slots__ = ("children", "end", "value", "rest")

    def __init__(self) -> None:
        self.children: dict[int, _Lit] = {}
        self.end, self.value, self.rest = False, None, 0

    @classmethod
    def build(cls, texts: dict[bytes, object], extra) -> "_Lit":
        root = cls()
        for text, value in texts.items():
            node = root
            for b in text:
                node = node.children.setdefault(b, cls())
            node.end, node.value = True, value

        order, stack = [], [root]  # children before parents, without recursion (an enum may be long)
        while stack:
            node = stack.pop()
            order.append(node)
            stack.extend(node.children.values())
        for node in reversed(order):
            options = [1 + child.rest for child in node.children.values()]
            if node.end:
                options.append(extra(node.value))
            node.rest = min(options)
        return root


class Str:
    min_len = 2


class Num:
    min_len = 1

    def __init__(self, integer: bool) -> None:
        self.integer = integer


class Arr:
    def __init__(self, items) -> None:
        self.items, self.min_len = items, 2


class Obj:
    """properties None: any keys, any values (json_object mode)."""

    def __init__(self, properties: dict | None, required: frozenset) -> None:
        self.properties, self.names = properties, list(properties or {})
        self.required = [name in required for name in self.names]
        if properties is None:
            self.min_len = 2
            return
        # entry[i]: bytes of '"name":value' at its shortest; per position, the cost of the
        # required properties still ahead (their entries plus commas) and the cheapest next entry.
        self.entry = [len(_key(n)) + 1 + properties[n].min_len for n in self.names]
        k = len(self.names)
        self.req_cost, self.req_count = [0] * (k + 1), [0] * (k + 1)
        for i in range(k - 1, -1, -1):
            self.req_cost[i] = self.req_cost[i + 1] + (self.entry[i] if self.required[i] else 0)
            self.req_count[i] = self.req_count[i + 1] + self.required[i]
        self.min_len = 2 + self.req_cost[0] + max(self.req_count[0] - 1, 0)
        self._keys: dict[int, Lit | None] = {}

    def keys_from(self, pos: int) -> "Lit | None":
        """The keys that may come at position `pos`: up to and including the next required one."""
        if pos not in self._keys:
            options = {}
            for i in range(pos, len(self.names)):
                options[_key(self.names[i])] = i
                if self.required[i]:
                    break
            # a key's cost runs to the object's end: ':', its value, the required ones after it, '}'
            self._keys[pos] = Lit(options, extra=lambda i: 2 + self.properties[self.names[i]].min_len
                                  + self.req_cost[i + 1] + self.req_count[i + 1]) if options else None
        return self._keys[pos]


class Union:
    """A value of one of several types, told apart by their first byte (a type list)."""

    def __init__(self, options: list) -> None:
        self.options, self.first = options, {}
        for node in options:
            for b in _first_bytes(node):
                if b in self.first:
                    raise UnsupportedSchemaError("a type list whose types can start the same way is not supported")
                self.first[b] = node
        self.min_len = min(node.min_len for node in options)


class ToolCall:
    """`{"name": NAME, "arguments": ARGS}` where ARGS follows NAME's parameters schema: a literal
    head per function, then its arguments, then `}`."""

    def __init__(self, functions: dict[str, object]) -> None:
        heads = {b'{"name": ' + json.dumps(name, ensure_ascii=False).encode() + b', "arguments": ': node
                 for name, node in functions.items()}
        self.head = Lit(heads, extra=lambda node: node.min_len + 1)
        self.min_len = self.head.min_len


def _key(name: str) -> bytes:
    return json.dumps(name, ensure_ascii=False).encode()


def _first_bytes(node) -> set[int]:
    if isinstance(node, Str):
        return {QUOTE}
    if isinstance(node, Num):
        return set(_DIGITS) | {ord("-")}
    if isinstance(node, Lit):
        return set(node.root.children)
    if isinstance(node, Obj) or isinstance(node, ToolCall):
        return {ord("{")}
    if isinstance(node, Arr):
        return {ord("[")}
    return set(node.first)


def _literal(value) -> Lit:
    return Lit({json.dumps(value, ensure_ascii=False).encode(): value})


def any_value() -> Union:
    """Any JSON value (json_object's values, and a schema without a type)."""
    return Union([Obj(None, frozenset()), Arr(None), Str(), Num(False), Lit({b"true": True, b"false": False}),
                  _literal(None)])


ANY = None  # set below, once the classes exist


MAX_DEPTH = 32


def compile_schema(schema: dict | None, where: str = "schema", depth: int = 0):
    """A schema (the supported subset, see the module doc) as the automaton's node; None: any object."""
    if schema is None:
        return Obj(None, frozenset())
    if depth > MAX_DEPTH:
        raise UnsupportedSchemaError(f"{where} nests schemas deeper than {MAX_DEPTH} levels")
    if not isinstance(schema, dict):
        raise UnsupportedSchemaError(f"{where} must be a JSON object (a schema), got {type(schema).__name__}")
    known = ANNOTATIONS | {"type", "properties", "required", "items", "enum", "const", "additionalProperties"}
    for keyword in schema:
        if keyword not in known:
            raise UnsupportedSchemaError(f"{where} uses the JSON schema keyword {keyword!r}, which constrained "
                                         f"decoding does not support; supported: type, properties, required, "
                                         f"items, enum, const, additionalProperties")
    if "const" in schema:
        return _literal(schema["const"])
    if "enum" in schema:
        if not isinstance(schema["enum"], list) or not schema["enum"]:
            raise UnsupportedSchemaError(f"{where}.enum must be a non-empty list")
        return Lit({json.dumps(v, ensure_ascii=False).encode(): v for v in schema["enum"]})
    kinds = schema.get("type")
    if kinds is None:
        return any_value() if "properties" not in schema else _object(schema, where, depth)
    if isinstance(kinds, list):
        if not kinds or not all(isinstance(k, str) for k in kinds):
            raise UnsupportedSchemaError(f"{where}.type must be a type name or a non-empty list of them")
        nodes = [compile_schema({**schema, "type": k}, where, depth) for k in dict.fromkeys(kinds)
                 if not (k == "integer" and "number" in kinds)]
        return nodes[0] if len(nodes) == 1 else Union(nodes)
    if kinds == "object":
        return _object(schema, where, depth)
    if kinds == "array":
        items = schema.get("items")
        return Arr(None if items is None else compile_schema(items, f"{where}.items", depth + 1))
    simple = {"string": Str, "number": lambda: Num(False), "integer": lambda: Num(True),
              "boolean": lambda: Lit({b"true": True, b"false": False}), "null": lambda: _literal(None)}
    if not isinstance(kinds, str) or kinds not in simple:
        raise UnsupportedSchemaError(f"{where}.type {kinds!r} is not a JSON schema type")
    return simple[kinds]()


@lru_cache(maxsize=64)
def compile_cached(schema_json: str, where: str = "schema"):
    """compile_schema of a schema given as JSON text, kept for reuse: requests with the same schema
    share its nodes, so the token masks cached per automaton state serve all of them."""
    return compile_schema(json.loads(schema_json), where)


@lru_cache(maxsize=64)
def tool_call_cached(functions_json: str) -> "ToolCall":
    """ToolCall({name: parameters schema}) from its JSON text, kept for reuse (see compile_cached)."""
    return ToolCall({name: compile_schema(schema, f"{name}.parameters")
                     for name, schema in json.loads(functions_json).items()})


def _object(schema: dict, where: str, depth: int) -> Obj:
    properties = schema.get("properties")
    required = schema.get("required", [])
    if properties is None:
        if required:
            raise UnsupportedSchemaError(f"{where}.required names properties but there are no properties")
        return Obj(None, frozenset())
    if not isinstance(properties, dict) or not isinstance(required, list) or not all(
            isinstance(name, str) for name in required):
        raise UnsupportedSchemaError(f"{where}.properties must be an object and required a list of names")
    missing = [name for name in required if name not in properties]
    if missing:
        raise UnsupportedSchemaError(f"{where}.required names {missing[0]!r}, which is not among its properties")
    nodes = {name: compile_schema(sub, f"{where}.properties.{name}", depth + 1) for name, sub in properties.items()}
    return Obj(nodes, frozenset(required))


# --- the automaton -------------------------------------------------------------------------------
# Frames: (V, node, ws) a value to come; (S, esc, utf8) inside a free string (esc: 1 after '\',
# 10+k with k hex digits of \uXXXX to go; utf8: continuation bytes to go); (L, trie node) a literal;
# (K, trie node) an object's key; (N, integer, phase, length) a number; (O, node, phase, pos, value
# node, ws) an object; (A, node, phase, ws) an array; (T, trie node) a tool call's head.
V, S, L, K, N, O, A, T = range(8)
FIRST, KEY, COLON, AFTER = range(4)  # object phases (arrays use FIRST and AFTER)
MINUS, ZERO, INT, DOT, FRAC, EXP, ESIGN, EXPD = range(8)  # number phases
_NUM_END = frozenset({ZERO, INT, FRAC, EXPD})
_START_NUM = {ord("-"): MINUS, ord("0"): ZERO, **{d: INT for d in range(0x31, 0x3A)}}


def _start(node, b: int):
    """The frames a value of `node` becomes on its first byte b (innermost last), or None."""
    if isinstance(node, Union):
        node = node.first.get(b)
        if node is None:
            return None
    if isinstance(node, Str):
        return ((S, 0, 0),) if b == QUOTE else None
    if isinstance(node, Lit):
        child = node.root.children.get(b)
        if child is None:
            return None
        return () if child.end and not child.children else ((L, child),)
    if isinstance(node, Num):
        phase = _START_NUM.get(b)
        return None if phase is None else ((N, node.integer, phase, 1),)
    if isinstance(node, Obj):
        return ((O, node, FIRST, 0, None, 0),) if b == 0x7B else None
    if isinstance(node, Arr):
        return ((A, node, FIRST, 0),) if b == 0x5B else None
    if isinstance(node, ToolCall):
        child = node.head.root.children.get(b)
        return None if child is None else ((T, child),)
    return None


def feed(state: tuple, b: int):
    """The state after byte b, or None when b cannot come next."""
    while state:
        top = state[-1]
        kind, rest = top[0], state[:-1]
        if kind == S:
            _, esc, utf8 = top
            if utf8:
                return rest + ((S, 0, utf8 - 1),) if 0x80 <= b <= 0xBF else None
            if esc == 0:
                if b == QUOTE:
                    return rest
                if b == BACKSLASH:
                    return rest + ((S, 1, 0),)
                if 0x20 <= b < 0x80:
                    return state
                if 0xC2 <= b <= 0xF4:
                    return rest + ((S, 0, 1 if b < 0xE0 else 2 if b < 0xF0 else 3),)
                return None
            if esc == 1:
                if b in _ESCAPES:
                    return rest + ((S, 0, 0),)
                return rest + ((S, 14, 0),) if b == 0x75 else None
            return rest + ((S, 0 if esc == 11 else esc - 1, 0),) if b in _HEX else None
        if kind == V:
            if b in _WS:
                ws = _more_ws(top[2], b) if rest else None  # no whitespace before the whole value
                return None if ws is None else rest + ((V, top[1], ws),)
            frames = _start(top[1], b)
            return None if frames is None else rest + frames
        if kind == O:
            _, node, phase, pos, value, ws = top
            if b in _WS:
                ws = _more_ws(ws, b) if phase != COLON else None
                return None if ws is None else rest + ((O, node, phase, pos, value, ws),)
            if phase == COLON:
                return rest + ((O, node, AFTER, pos, None, 0), (V, value, 0)) if b == 0x3A else None
            if phase == AFTER and b == 0x2C:
                if node.properties is not None and node.keys_from(pos) is None:
                    return None
                return rest + ((O, node, KEY, pos, None, 0),)
            if b == 0x7D and phase != KEY:  # '}' once no required property is left
                return rest if node.properties is None or node.req_count[pos] == 0 else None
            if phase == AFTER or b != QUOTE:
                return None
            if node.properties is None:
                return rest + ((O, node, COLON, pos, ANY, 0), (S, 0, 0))
            keys = node.keys_from(pos)
            if keys is None:
                return None
            return rest + ((O, node, COLON, pos, None, 0), (K, keys.root.children[QUOTE]))
        if kind == K:
            child = top[1].children.get(b)
            if child is None:
                return None
            if not child.end:
                return rest + ((K, child),)
            _, node, _, _, _, _ = rest[-1]
            i = child.value
            return rest[:-1] + ((O, node, COLON, i + 1, node.properties[node.names[i]], 0),)
        if kind == L or kind == T:
            child = top[1].children.get(b)
            if child is not None:
                if kind == T and child.end:  # the head is written: the arguments, then '}'
                    return rest + ((L, _CLOSE_BRACE), (V, child.value, 0))
                return rest if child.end and not child.children else rest + ((kind, child),)
            if top[1].end:  # a literal that could have gone on (an enum's 1 before 10) ends here
                state = rest
                continue
            return None
        if kind == N:
            _, integer, phase, length = top
            nxt = _number(phase, b, integer) if length < MAX_NUMBER else None
            if nxt is not None:
                return rest + ((N, integer, nxt, length + 1),)
            if phase in _NUM_END:
                state = rest  # the number ended; b belongs to what contains it
                continue
            return None
        if kind == A:
            _, node, phase, ws = top
            if b in _WS:
                ws = _more_ws(ws, b)
                return None if ws is None else rest + ((A, node, phase, ws),)
            if b == 0x5D:
                return rest
            items = ANY if node.items is None else node.items
            if phase == AFTER:
                return rest + ((A, node, AFTER, 0), (V, items, 0)) if b == 0x2C else None
            frames = _start(items, b)
            return None if frames is None else rest + ((A, node, AFTER, 0),) + frames
        return None
    return None


def _more_ws(ws: int, b: int):
    """The whitespace count after one more whitespace byte b, None past the limit."""
    if ws % _NEWLINE_SEEN >= MAX_WS or (b == 0x0A and ws >= _NEWLINE_SEEN):
        return None
    return ws + 1 + (_NEWLINE_SEEN if b == 0x0A else 0)


def _number(phase: int, b: int, integer: bool):
    digit = b in _DIGITS
    if phase == MINUS:
        return ZERO if b == 0x30 else INT if digit else None
    if phase in (ZERO, INT, FRAC):
        if digit and phase != ZERO:
            return phase
        if integer:
            return None
        if b == 0x2E and phase != FRAC:
            return DOT
        return EXP if b in (0x65, 0x45) else None
    if phase == DOT:
        return FRAC if digit else None
    if phase == EXP:
        return ESIGN if b in (0x2B, 0x2D) else EXPD if digit else None
    return EXPD if digit else None  # ESIGN, EXPD


def distance(state: tuple) -> int:
    """Fewest bytes that complete the value from `state` (0: complete)."""
    total = 0
    for top in state:
        kind = top[0]
        if kind == V:
            total += top[1].min_len
        elif kind == S:
            esc = top[1]
            total += 1 + top[2] + (1 if esc == 1 else esc - 10 if esc else 0)
        elif kind in (L, K, T):
            total += top[1].rest
        elif kind == N:
            total += top[2] not in _NUM_END
        elif kind == A:
            total += 1
        else:
            _, node, phase, pos, value, _ = top
            if node.properties is None:
                total += (1, 5, 3, 1)[phase]
                continue
            ahead, count = node.req_cost[pos], node.req_count[pos]
            if phase == FIRST:
                total += 1 + ahead + max(count - 1, 0)
            elif phase == KEY:
                total += ahead + count if count else min(node.entry[pos:]) + 1
            elif phase == COLON:  # while its key is written (value None) the key's cost covers the rest
                total += 0 if value is None else 1 + value.min_len + ahead + count + 1
            else:
                total += ahead + count + 1
    return total


def complete(state: tuple) -> bool:
    """The bytes so far are a whole value (a number or literal at the top may still go on)."""
    return not state or (len(state) == 1 and ((state[0][0] == N and state[0][2] in _NUM_END)
                                              or (state[0][0] == L and state[0][1].end)))


ANY = any_value()
_CLOSE_BRACE = Lit({b"}": None}).root


# --- over a tokenizer's vocabulary ---------------------------------------------------------------

def _string_safe_prefix(data: bytes) -> int:
    """Length of the longest prefix of whole characters that a free string takes as they are (no
    quote, backslash or control byte; complete UTF-8): such bytes leave its state unchanged."""
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if 0x20 <= b < 0x80 and b != QUOTE and b != BACKSLASH:
            i += 1
            continue
        width = 2 if 0xC2 <= b <= 0xDF else 3 if 0xE0 <= b <= 0xEF else 4 if 0xF0 <= b <= 0xF4 else 0
        if not width or i + width > n or not all(0x80 <= c <= 0xBF for c in data[i + 1:i + width]):
            break
        i += width
    return i


class JsonTokens:
    """What JSON needs beyond the token trie: inside a free string most tokens are plain text that
    changes nothing (`safe`, a mask taken whole); the others are walked from their first special
    byte on (`tails`, a trie of those suffixes), since their plain prefix changes nothing either."""

    def __init__(self, table: TokenTable) -> None:
        self.table = table
        safe = np.zeros(table.size, dtype=bool)
        self.tails = TrieNode()
        for i, data in enumerate(table.bytes):
            if data is None:
                continue
            cut = _string_safe_prefix(data)
            if cut == len(data):
                safe[i] = True
            else:
                self.tails.insert(data[cut:], i)
        self.safe = torch.from_numpy(safe)
        self.cache: OrderedDict = OrderedDict()  # state -> (ids, distances) of its allowed tokens

    @classmethod
    def for_table(cls, table: TokenTable) -> "JsonTokens":
        if getattr(table, "json_tokens", None) is None:
            table.json_tokens = cls(table)
        return table.json_tokens

    CACHE_SIZE = 1024

    def allowed(self, state: tuple) -> tuple[bool, np.ndarray, np.ndarray]:
        """(safe mask applies, token ids, their distance after the token) for a state."""
        hit = self.cache.get(state)
        if hit is not None:
            self.cache.move_to_end(state)
            return hit
        in_string = state[-1][0] == S and state[-1][1] == 0 and state[-1][2] == 0
        ids: list[int] = []
        dists: list[int] = []
        _walk(state, self.tails if in_string else self.table.trie, ids, dists)
        hit = (in_string, np.asarray(ids, dtype=np.int64), np.asarray(dists, dtype=np.int32))
        self.cache[state] = hit
        if len(self.cache) > self.CACHE_SIZE:
            self.cache.popitem(last=False)
        return hit


def _walk(state: tuple, node: TrieNode, ids: list[int], dists: list[int]) -> None:
    for b, child in node.children.items():
        after = feed(state, b)
        if after is None:
            continue
        if child.ids:
            d = distance(after)
            ids.extend(child.ids)
            dists.extend([d] * len(child.ids))
        if child.children:
            _walk(after, child, ids, dists)


class JsonConstraint:
    """One request's JSON constraint (llmzoo.infer.constrained.TokenConstraint)."""

    def __init__(self, node, table: TokenTable) -> None:
        self.tokens = JsonTokens.for_table(table)
        self.state: tuple = ((V, node, 0),)
        self.text = bytearray()

    @property
    def complete(self) -> bool:
        return complete(self.state)

    @property
    def finished(self) -> bool:
        return not self.state

    def allowed(self, remaining: int, vocab_size: int) -> torch.Tensor:
        mask = torch.zeros(vocab_size, dtype=torch.bool)
        if not self.state:
            return mask
        limit = remaining - 1  # tokens left after this one, each at least one byte
        in_string, ids, dists = self.tokens.allowed(self.state)
        here = distance(self.state) if in_string else None  # the plain-text tokens' distance
        keep = ids < vocab_size
        ids, dists = ids[keep], dists[keep]
        if not ((here is not None and here <= limit) or (dists <= limit).any()):  # none fits: closest to the end
            options = ([here] if here is not None else []) + ([int(dists.min())] if dists.size else [])
            limit = min(options, default=limit)
        size = min(vocab_size, self.tokens.table.size)
        if here is not None and here <= limit:
            mask[:size] = self.tokens.safe[:size]
        chosen = ids[dists <= limit]
        if chosen.size:
            mask[torch.from_numpy(chosen)] = True
        return mask

    def advance(self, token_id: int) -> None:
        data = self.tokens.table.bytes[token_id] if token_id < self.tokens.table.size else None
        state = self.state
        for b in data or b"":
            state = feed(state, b)
            if state is None:
                raise LlmzooError(f"token {token_id} ({data!r}) breaks the JSON constraint after "
                                  f"{bytes(self.text)!r}")
        if data is None:
            raise LlmzooError(f"token {token_id} has no text and cannot continue the JSON")
        self.state = state
        self.text += data
