"""A small JSON Schema validator for tool arguments (jsonschema is not a dependency): the subset
function-calling schemas use — type, properties, required, enum, items, additionalProperties: false
(https://json-schema.org/draft/2020-12/json-schema-validation). Keywords outside it are ignored,
so a schema using them is validated less strictly, never refused."""

from __future__ import annotations

TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _is(value, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    python = TYPES.get(kind)
    return python is None or isinstance(value, python)


def schema_errors(value, schema: dict, where: str = "arguments") -> list[str]:
    """What is wrong with `value` against `schema`, one line per problem ([] when it is valid)."""
    if not isinstance(schema, dict):
        return []
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else list(kinds)
        if not any(_is(value, k) for k in kinds):
            return [f"{where} should be {' or '.join(kinds)}, got {type(value).__name__} {value!r}"]
    errors = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where} should be one of {schema['enum']}, got {value!r}")
    if isinstance(value, dict):
        properties = schema.get("properties", {}) or {}
        errors += [f"{where} is missing the required {name!r}" for name in schema.get("required", [])
                   if name not in value]
        for name, item in value.items():
            if name in properties:
                errors += schema_errors(item, properties[name], f"{where}.{name}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{where} has the unexpected {name!r}")
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            errors += schema_errors(item, schema["items"], f"{where}[{i}]")
    return errors
