"""The part of JSON Schema that step contracts use, checked without a JSON Schema library.

A worker's ``input_schema`` / ``output_schema`` describe small JSON objects (a summary and its
key points, a label and a score). This module checks a schema itself (`schema_problems`: only
the keywords below, each of the right type, so a misspelt or unsupported keyword is an error
rather than a constraint silently ignored) and a value against it (`violations`).

Supported: ``type`` (one name or a list), ``properties``, ``required``,
``additionalProperties`` (bool or schema), ``items``, ``enum``, ``const``, ``minimum``,
``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum``, ``minLength``, ``maxLength``,
``pattern``, ``minItems``, ``maxItems``, ``anyOf``; annotations ``title``, ``description``,
``default``, ``examples``, ``$schema``, ``$id`` are accepted and not checked.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["SUPPORTED_KEYWORDS", "schema_problems", "violations"]

Path = tuple[str | int, ...]

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "boolean": (bool,),
    "integer": (int,), "number": (int, float), "null": (type(None),),
}
_NUMBER_KEYWORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
_COUNT_KEYWORDS = ("minLength", "maxLength", "minItems", "maxItems")
_ANNOTATIONS = ("title", "description", "default", "examples", "$schema", "$id")
SUPPORTED_KEYWORDS = frozenset((
    "type", "properties", "required", "additionalProperties", "items", "enum", "const",
    "pattern", "anyOf", *_NUMBER_KEYWORDS, *_COUNT_KEYWORDS, *_ANNOTATIONS,
))


def _is_type(value: Any, name: str) -> bool:
    if isinstance(value, bool) and name in ("integer", "number"):
        return False  # JSON true is not 1
    if name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES[name])


def _json_name(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _is_type(value, name):
            return name
    return type(value).__name__


def schema_problems(schema: Any, path: Path = ()) -> list[tuple[Path, str]]:
    """(path inside the schema, what is wrong) for every problem of ``schema`` itself."""
    if not isinstance(schema, dict):
        return [(path, f"expected a JSON Schema object, got {_json_name(schema)}")]
    out: list[tuple[Path, str]] = []
    for key, value in schema.items():
        at = (*path, key)
        if key not in SUPPORTED_KEYWORDS:
            out.append((at, (f"unsupported keyword {key!r}; expected one of "
                             f"{', '.join(sorted(SUPPORTED_KEYWORDS - set(_ANNOTATIONS)))}")))
        elif key == "type":
            names = value if isinstance(value, list) else [value]
            bad = [n for n in names if not isinstance(n, str) or n not in _TYPES]
            if bad or not names:
                out.append((at, (f"unknown type {bad[0] if bad else value!r}; expected one of "
                                 f"{', '.join(_TYPES)}")))
        elif key == "properties":
            if not isinstance(value, dict):
                out.append((at, "expected a mapping of property name: schema"))
            else:
                for name, sub in value.items():
                    out += schema_problems(sub, (*at, name))
        elif key == "required":
            if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                out.append((at, "expected a list of property names"))
        elif key in ("additionalProperties", "items"):
            if not isinstance(value, bool):
                out += schema_problems(value, at)
        elif key == "anyOf":
            if not (isinstance(value, list) and value):
                out.append((at, "expected a non-empty list of schemas"))
            else:
                for i, sub in enumerate(value):
                    out += schema_problems(sub, (*at, i))
        elif key == "enum" and not (isinstance(value, list) and value):
            out.append((at, "expected a non-empty list of allowed values"))
        elif key in _NUMBER_KEYWORDS and not _is_type(value, "number"):
            out.append((at, f"expected a number, got {value!r}"))
        elif key in _COUNT_KEYWORDS and not (_is_type(value, "integer") and value >= 0):
            out.append((at, f"expected a count (an integer >= 0), got {value!r}"))
        elif key == "pattern":
            try:
                re.compile(value)
            except (re.error, TypeError) as exc:
                out.append((at, f"not a regular expression: {exc}"))
    return out


def _where(path: Path) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def violations(value: Any, schema: dict[str, Any], path: Path = ()) -> list[str]:
    """What in ``value`` breaks ``schema`` (a schema `schema_problems` found nothing wrong
    with), one line each naming the place, e.g. ``$.points[2]: expected a string, got 3``."""
    where = _where(path)
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(value, n) for n in names):
            return [f"{where}: expected {' or '.join(names)}, got {_json_name(value)} {_short(value)}"]
    if "anyOf" in schema and not any(not violations(value, s, path) for s in schema["anyOf"]):
        return [f"{where}: matches none of the anyOf schemas ({_short(value)})"]
    out: list[str] = []
    if "const" in schema and value != schema["const"]:
        out.append(f"{where}: expected {schema['const']!r}, got {_short(value)}")
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{where}: expected one of {schema['enum']!r}, got {_short(value)}")
    if _is_type(value, "number"):
        for key, ok, word in (("minimum", lambda v, b: v >= b, ">="), ("maximum", lambda v, b: v <= b, "<="),
                              ("exclusiveMinimum", lambda v, b: v > b, ">"),
                              ("exclusiveMaximum", lambda v, b: v < b, "<")):
            if key in schema and not ok(value, schema[key]):
                out.append(f"{where}: expected a number {word} {schema[key]}, got {value}")
    if isinstance(value, str):
        out += _length(value, schema, where, "Length", "characters")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            out.append(f"{where}: expected text matching {schema['pattern']!r}, got {_short(value)}")
    if isinstance(value, list):
        out += _length(value, schema, where, "Items", "items")
        if isinstance(schema.get("items"), dict):
            for i, item in enumerate(value):
                out += violations(item, schema["items"], (*path, i))
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        out += [f"{_where((*path, name))}: required field is missing"
                for name in schema.get("required", ()) if name not in value]
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                out += violations(item, properties[name], (*path, name))
            elif extra is False:
                out.append(f"{_where((*path, name))}: field not allowed (expected only "
                           f"{', '.join(properties) or 'no fields'})")
            elif isinstance(extra, dict):
                out += violations(item, extra, (*path, name))
    return out


def _length(value: str | list, schema: dict[str, Any], where: str, suffix: str, unit: str) -> list[str]:
    """minLength/maxLength (text) or minItems/maxItems (arrays)."""
    low, high = schema.get(f"min{suffix}"), schema.get(f"max{suffix}")
    if low is not None and len(value) < low:
        return [f"{where}: expected at least {low} {unit}, got {len(value)}"]
    if high is not None and len(value) > high:
        return [f"{where}: expected at most {high} {unit}, got {len(value)}"]
    return []


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
