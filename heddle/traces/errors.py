"""Errors raised by heddle.traces: one root, `TraceError`.

Callers that read user files (the CLI, the twin, the advisor) catch `TraceError` and show its
message: it names the file, the line or row and the column, and what was expected.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["TraceError", "TraceFormatError", "TraceValidationError"]


class TraceError(Exception):
    """Root of every trace error."""


class TraceFormatError(TraceError, ValueError):
    """A trace file is not in the heddle trace format, is of an unknown version, or is cut short."""

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        self.path = str(path) if path is not None else None
        super().__init__(f"{self.path}: {message}" if self.path else message)


class TraceValidationError(TraceError, ValueError):
    """A value breaks the schema. `line` is a 1-based file line, `row` a 0-based frame row."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.reason = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.row = row
        self.column = column
        where = []
        if self.path:
            where.append(self.path)
        if line is not None:
            where.append(f"line {line}")
        elif row is not None:
            where.append(f"row {row}")
        if column:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
