"""Workflow config validation with messages a person can act on.

`check_config` validates a config against schemas/config.schema.yaml (JSON Schema 2020-12)
and raises ConfigError listing every problem as

    config.yaml:42: sft.learning_rate: expected a number > 0, got -1 (Peak learning rate.)

naming the file and line where the key was set (when it came from a file), the key's path,
what was expected and the key's description; `with_defaults` fills the schema's defaults.
The one resolution of a config (prefalign.config.resolve) calls both, before any rule runs.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Iterable

from prefalign.errors import ConfigError
from prefalign.yamlio import load_yaml, where

SCHEMA = Path(__file__).resolve().parents[3] / "schemas" / "config.schema.yaml"
_TYPE_NAMES = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "true or false",
               "array": "a list", "object": "a mapping", "null": "null"}


def load_schema(path: Path = SCHEMA) -> dict:
    return load_yaml(path)


def _describe(schema: dict) -> str:
    kinds = schema.get("type")
    if "enum" in schema:
        return "one of " + ", ".join(repr(v) if isinstance(v, str) else str(v) for v in schema["enum"])
    if kinds is None:
        return "a valid value"
    kinds = kinds if isinstance(kinds, list) else [kinds]
    text = " or ".join(_TYPE_NAMES.get(k, k) for k in kinds)
    bounds = [f"{op} {schema[k]}" for k, op in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="),
                                                ("exclusiveMaximum", "<")) if k in schema]
    return text + (" " + " and ".join(bounds) if bounds else "")


def _expected(error) -> str:
    kind, schema = error.validator, error.schema
    if kind == "additionalProperties":
        allowed = ", ".join(sorted(schema.get("properties", {})))
        return f"no such key (allowed here: {allowed})" if allowed else "no such key"
    if kind == "required":
        return error.message
    if kind == "enum":
        return _describe({"enum": error.validator_value})
    if kind == "type":
        return _describe({"type": error.validator_value})
    if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        ops = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}
        return f"a number {ops[kind]} {error.validator_value}"
    if kind == "minItems":
        return f"at least {error.validator_value} item(s)"
    if kind == "minProperties":
        return f"at least {error.validator_value} entry(ies)"
    if kind == "uniqueItems":
        return "no repeated items"
    if kind == "pattern":
        return f"text matching {error.validator_value}"
    return error.message


def property_schema(root: dict, path: list) -> dict:
    """The schema that declares the key at `path` (where its description lives, even behind a $ref)."""
    node = root
    for key in path:
        if isinstance(key, int):
            node = node.get("items", {})
        elif key in node.get("properties", {}):
            node = node["properties"][key]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return {}
    return node


def format_errors(errors, sources: list[Path], root: dict | None = None) -> list[str]:
    messages = []
    for error in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
        path = list(error.absolute_path)
        if error.validator == "additionalProperties":
            extra = sorted(set(error.instance) - set(error.schema.get("properties", {})), key=str)
            path = path + extra[:1]
        key = ".".join(str(p) for p in path) or "<top level>"
        located = where(sources, path)
        declared = property_schema(root, list(error.absolute_path)) if root else error.schema
        description = declared.get("description") if error.validator != "additionalProperties" else None
        got = "" if error.validator in ("additionalProperties", "required") else f", got {error.instance!r}"
        text = f"{key}: expected {_expected(error)}{got}"
        if description:
            text += f" ({' '.join(description.split())})"
        messages.append(f"{located}{text}")
    return messages


def check_config(config: dict, schema: dict | None = None, sources: Iterable[Path] = ()) -> None:
    """Raise ConfigError listing every schema violation of `config` (defaults not yet filled)."""
    from jsonschema import Draft202012Validator

    schema = schema if schema is not None else load_schema()
    if not isinstance(config, dict):
        raise ConfigError(f"the config must be a mapping of keys, got {type(config).__name__}")
    sources = [Path(s) for s in sources]
    not_numbers = list(_nan_paths(config))
    if not_numbers:
        raise ConfigError("invalid config:\n  " + "\n  ".join(
            f"{where(sources, path)}{'.'.join(map(str, path))}: expected a number, got nan" for path in not_numbers))
    errors = list(Draft202012Validator(schema).iter_errors(config))
    if errors:
        lines = format_errors(errors, sources, schema)
        raise ConfigError("invalid config:\n  " + "\n  ".join(lines))


def _nan_paths(value, path=()):
    """Key paths of NaN values: JSON Schema's bounds let NaN through (every comparison is false)."""
    if isinstance(value, float) and math.isnan(value):
        yield list(path)
    elif isinstance(value, dict):
        for key, sub in value.items():
            yield from _nan_paths(sub, path + (key,))
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            yield from _nan_paths(sub, path + (i,))


def with_defaults(config: dict, schema: dict | None = None) -> dict:
    """A copy of `config` with every missing key set to its schema default (recursively)."""
    schema = schema if schema is not None else load_schema()
    return _fill(copy.deepcopy(config), schema)


def _fill(value, schema):
    if isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = _fill(value[key], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in value:
                if key not in schema.get("properties", {}):
                    value[key] = _fill(value[key], extra)
    return value
