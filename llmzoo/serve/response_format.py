"""`response_format` (OpenAI's JSON mode and Structured Outputs) as a JSON constraint on decoding.

- `{"type": "text"}` (or none): no constraint.
- `{"type": "json_object"}`: any JSON object. As OpenAI, the prompt must mention JSON (a model not
  told to write JSON fights the constraint: long strings, or whitespace until max_tokens).
- `{"type": "json_schema", "json_schema": {"name": ..., "schema": {...}, "strict": ...}}`: a value
  matching the schema, within the subset llmzoo.infer.constrained_json supports; any other keyword
  is a 400 that names it.
https://platform.openai.com/docs/guides/structured-outputs
"""

from __future__ import annotations

import json

from llmzoo.infer.constrained_json import UnsupportedSchemaError, compile_cached
from llmzoo.serve.errors import APIError

JSON_SCHEMA_FIELDS = {"name", "description", "schema", "strict"}


def response_format_node(response_format: dict | None, texts: list[str], where: str):
    """The automaton node a request's output must match, or None (plain text). `texts`: the
    prompt's texts, which must mention JSON for json_object; `where`: their parameter's name."""
    if response_format is None:
        return None
    kind = response_format.get("type")
    extra = set(response_format) - {"type", "json_schema"}
    if extra:
        raise APIError(400, f"response_format has the unknown field {sorted(extra)[0]!r}", param="response_format")
    if kind == "text":
        return None
    if kind == "json_object":
        if not any("json" in text.lower() for text in texts):
            raise APIError(400, f"'{where}' must contain the word 'json' in some form, to use 'response_format' "
                                f"of type 'json_object'", param="response_format")
        return compile_cached("null")
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise APIError(400, "response_format of type 'json_schema' needs json_schema: {'name': ..., "
                                "'schema': {...}}", param="response_format.json_schema")
        unknown = set(spec) - JSON_SCHEMA_FIELDS
        if unknown:
            raise APIError(400, f"response_format.json_schema has the unknown field {sorted(unknown)[0]!r}",
                           param="response_format.json_schema")
        try:
            return compile_cached(json.dumps(spec["schema"], sort_keys=False), "response_format.json_schema.schema")
        except UnsupportedSchemaError as error:
            raise APIError(400, str(error), param="response_format.json_schema.schema",
                           code="unsupported_schema") from None
    raise APIError(400, f"response_format.type must be 'text', 'json_object' or 'json_schema', got {kind!r}",
                   param="response_format.type")
