"""Load YAML while remembering the line of every value, and turn pydantic errors into messages.

Every file heddle reads (catalog, fleet, workload, config) goes through here so that a bad
value is reported as `file:line: field.path: what was wrong (expected ...)`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

Path_ = tuple[str | int, ...]

__all__ = ["YamlDoc", "format_validation_error", "load_yaml", "read_text", "validate_doc"]

_M = TypeVar("_M", bound=BaseModel)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader when PyYAML was built with it (about 10x faster: the shipped catalog
loads on every `heddle catalog`/`sim` start), else the pure-Python one; same nodes and marks."""


class YamlDoc:
    """Parsed YAML data plus the 1-based line of every mapping key and sequence item."""

    def __init__(self, data: Any, lines: dict[Path_, int], source: str) -> None:
        self.data = data
        self.lines = lines
        self.source = source

    def line_of(self, path: Iterable[str | int]) -> int | None:
        """Line of the deepest known prefix of `path` (pydantic paths can go below YAML nodes)."""
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return self.lines.get((), None)

    def where(self, path: Iterable[str | int]) -> str:
        line = self.line_of(path)
        return f"{self.source}:{line}" if line is not None else self.source


def _walk(node: yaml.Node, path: Path_, lines: dict[Path_, int], source: str, error: type[Exception]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if path + (key,) in lines:  # YAML itself would silently keep the last one
                raise error(
                    f"{source}:{line}: {key!r} is given twice in the same mapping "
                    f"(first on line {lines[path + (key,)]}); expected each key once"
                )
            lines[path + (key,)] = line
            _walk(value_node, path + (key,), lines, source, error)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[path + (i,)] = item.start_mark.line + 1
            _walk(item, path + (i,), lines, source, error)


def load_yaml(text: str, source: str, error: type[Exception]) -> YamlDoc:
    """Parse `text`; a syntax error becomes `error` naming `source` and the line."""
    loader = _LOADER(text)
    try:
        node = loader.get_single_node()  # parsed once: the nodes give lines, then the data
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise error(f"{source}{line}: not valid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise error(f"{source}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    lines: dict[Path_, int] = {}
    if node is not None:
        _walk(node, (), lines, source, error)
    return YamlDoc(data, lines, source)


def _field_name(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def format_validation_error(
    exc: ValidationError, doc: YamlDoc, prefix: Path_ = (), limit: int = 5
) -> str:
    """One line per problem: `file:line: field: message (got value)`."""
    parts = []
    for err in exc.errors()[:limit]:
        loc = prefix + tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (not allowed here; check the spelling)"
        elif err["type"] == "missing":
            msg = "required field is missing"
        elif "input" in err and err["type"] not in ("value_error",) and not isinstance(err["input"], dict | list):
            msg = f"{msg} (got {err['input']!r})"
        parts.append(f"{doc.where(loc)}: {_field_name(loc)}: {msg}")
    more = len(exc.errors()) - limit
    if more > 0:
        parts.append(f"... and {more} more problem(s)")
    return "\n".join(parts)


def read_text(path: Path, error: type[Exception], what: str) -> str:
    """The file's text; an unreadable file becomes `error` naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror or exc}") from None


def validate_doc(
    schema: type[_M], doc: YamlDoc, error: type[Exception], expected: str, *, allow_empty: bool = False
) -> _M:
    """Validate the document's top-level mapping against `schema`; errors name file:line: field."""
    data = doc.data
    if data is None and allow_empty:
        data = {}
    if not isinstance(data, dict):
        raise error(f"{doc.where(())}: expected a mapping with {expected} at the top level")
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise error(format_validation_error(exc, doc)) from None
