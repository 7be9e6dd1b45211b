"""Read a CSV file in blocks, convert columns vectorized, and account for every bad row.

Importers describe what they need as `Field`s (target name, CSV column, converter); `read_csv`
returns the converted columns plus the source line of each accepted row. A bad row raises
`TraceValidationError` naming the file, line and column, or with `skip_bad` is counted under
its reason in a `SkipReport`: rows read == rows kept + rows skipped, always.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from heddle.traces.errors import TraceValidationError

__all__ = [
    "Converter",
    "Field",
    "SkipReport",
    "as_choice",
    "as_float",
    "as_int",
    "as_text",
    "as_time_s",
    "read_csv",
]

BLOCK_ROWS = 65_536
"""Rows converted at once: keeps the per-block Python overhead small and memory bounded."""

Converter = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, str]]
"""strings (object array) -> (values, bad-row mask, what was expected)."""


@dataclass(frozen=True, slots=True)
class Field:
    """One target column: read from CSV column `source` through `convert`."""

    name: str
    source: str
    convert: Converter


@dataclass(slots=True)
class SkipReport:
    """What an import read, kept and skipped (reason -> count; first lines as examples)."""

    rows_read: int = 0
    rows_kept: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    example_lines: dict[str, list[int]] = field(default_factory=dict)

    @property
    def rows_skipped(self) -> int:
        return sum(self.skipped.values())

    def add(self, reason: str, line: int) -> None:
        self.skipped[reason] += 1
        examples = self.example_lines.setdefault(reason, [])
        if len(examples) < 5:
            examples.append(line)


def _numbers(raw: np.ndarray) -> np.ndarray:
    """float64 values of numeric strings, NaN where not a number (spaces around are fine)."""
    arr = pd.to_numeric(pd.Series(raw, dtype=object), errors="coerce").to_numpy(
        dtype="float64", na_value=np.nan).copy()
    retry = np.flatnonzero(np.isnan(arr))
    if len(retry):  # only the few that failed pay for stripping
        stripped = pd.Series([str(v).strip() for v in raw[retry]], dtype=object)
        arr[retry] = pd.to_numeric(stripped, errors="coerce").to_numpy(
            dtype="float64", na_value=np.nan)
    return arr


def as_int(minimum: int = 0, maximum: int = 2**31 - 1) -> Converter:
    def convert(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
        arr = _numbers(raw)
        bad = ~np.isfinite(arr) | (arr != np.round(arr)) | (arr < minimum) | (arr > maximum)
        return np.where(bad, 0, arr).astype("int64"), bad, f"an integer in [{minimum}, {maximum}]"
    return convert


def as_float(minimum: float = 0.0, allow_empty: bool = False) -> Converter:
    def convert(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
        arr = _numbers(raw)
        empty = np.zeros(len(arr), dtype=bool)
        missing = np.flatnonzero(np.isnan(arr))
        empty[missing] = [not str(v).strip() for v in raw[missing]]
        bad = ~np.isfinite(arr) | (arr < minimum)
        if allow_empty:
            bad &= ~empty
            arr = np.where(empty, np.nan, arr)
        return arr, bad, f"a number >= {minimum:g}" + (" or empty" if allow_empty else "")
    return convert


def as_time_s(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """Numbers are seconds; anything else is parsed as an ISO 8601 date-time (to epoch s)."""
    num = _numbers(raw)
    need = np.isnan(num)
    if need.any():
        text = pd.Series([str(v).strip() for v in raw[need]], dtype=object)
        stamps = pd.to_datetime(text, format="ISO8601", errors="coerce")
        ns = stamps.to_numpy(dtype="datetime64[ns]").astype("int64")
        num[need] = np.where(stamps.isna().to_numpy(), np.nan, ns / 1e9)
    bad = ~np.isfinite(num)
    return num, bad, "seconds or an ISO 8601 date-time"


def as_choice(allowed: Sequence[str], mapping: dict[str, str] | None = None) -> Converter:
    """Values must be one of `allowed` (after an optional rename through `mapping`)."""
    allowed_index = pd.Index(list(allowed))
    def convert(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
        codes, uniques = pd.factorize(np.asarray(raw, dtype=object))
        names = [str(u).strip() for u in uniques]  # few distinct values: strip those
        names = np.array([mapping.get(u, u) if mapping else u for u in names], dtype=object)
        ok = np.asarray(pd.Index(names).isin(allowed_index)) if len(names) else np.zeros(0, bool)
        return names[codes] if len(names) else np.asarray(raw, dtype=object), ~ok[codes], \
            f"one of {list(allowed)}"
    return convert


def as_text(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    return raw, np.zeros(len(raw), dtype=bool), "text"


def _open_text(path: Path) -> io.TextIOBase:
    raw = open(path, "rb")  # noqa: SIM115 - wrapped and returned; the caller closes it
    head = raw.read(2)
    raw.seek(0)
    stream = gzip.GzipFile(fileobj=raw) if head == b"\x1f\x8b" else raw
    # utf-8-sig drops a BOM that spreadsheet exports put before the header
    return io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")


def read_csv(
    path: str | Path, fields: Sequence[Field], *, skip_bad: bool = False,
    report: SkipReport | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray, SkipReport]:
    """Convert `fields` from the CSV at `path` (plain or gzip).

    Returns (columns, source line of each kept row, report). Raises TraceValidationError
    for a missing header column, or for the first bad row unless `skip_bad`.
    """
    path = Path(path)
    report = report or SkipReport()
    with _open_text(path) as f:
        reader = csv.reader(f)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise TraceValidationError("empty file: expected a header line", path=path,
                                       line=1) from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise TraceValidationError(f"unreadable header: {exc}", path=path, line=1) from None
        where = {}
        for fld in fields:
            if fld.source not in header:
                raise TraceValidationError(
                    f"header has no column {fld.source!r} (found {header})",
                    path=path, line=1, column=fld.source,
                )
            where[fld.name] = header.index(fld.source)
        parts: dict[str, list[np.ndarray]] = {f.name: [] for f in fields}
        line_parts: list[np.ndarray] = []
        for rows, lines in _blocks(reader, len(header), path, skip_bad, report):
            report.rows_read += len(rows)
            if not rows:
                continue
            table = np.array(rows, dtype=object).reshape(len(rows), len(header))
            line_arr = np.array(lines, dtype=np.int64)
            keep = np.ones(len(rows), dtype=bool)
            converted = {}
            for fld in fields:
                values, bad, expected = fld.convert(table[:, where[fld.name]])
                converted[fld.name] = values
                bad &= keep
                if bad.any():
                    first = int(np.flatnonzero(bad)[0])
                    if not skip_bad:
                        got = table[first, where[fld.name]]
                        raise TraceValidationError(f"expected {expected}, got {got!r}",
                                                   path=path, line=int(line_arr[first]),
                                                   column=fld.source)
                    for i in np.flatnonzero(bad):
                        report.add(f"column {fld.source!r}: expected {expected}",
                                   int(line_arr[i]))
                    keep &= ~bad
            for name, values in converted.items():
                parts[name].append(values[keep])
            line_parts.append(line_arr[keep])
            report.rows_kept += int(keep.sum())
    columns = {name: (np.concatenate(p) if p else np.empty(0)) for name, p in parts.items()}
    lines = np.concatenate(line_parts) if line_parts else np.empty(0, dtype=np.int64)
    return columns, lines, report


def _blocks(reader, width: int, path: Path, skip_bad: bool, report: SkipReport):
    """Yield (rows, start lines) blocks; rows with the wrong field count are handled here."""
    rows: list[list[str]] = []
    lines: list[int] = []
    previous_end = reader.line_num
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except UnicodeDecodeError as exc:
            # the text decoder cannot resume mid-file, so this stops the import even with skip_bad
            raise TraceValidationError(f"not UTF-8 text: {exc}", path=path,
                                       line=previous_end + 1) from None
        except csv.Error as exc:
            start = previous_end + 1
            previous_end = reader.line_num
            if not skip_bad:
                yield rows, lines
                raise TraceValidationError(f"unreadable row: {exc}", path=path,
                                           line=start) from None
            report.rows_read += 1
            report.add("unreadable row", start)
            continue
        start, previous_end = previous_end + 1, reader.line_num
        if not row:
            continue  # a blank line is not a request
        if len(row) != width:
            if not skip_bad:
                yield rows, lines  # earlier rows may hold an earlier error: report that first
                raise TraceValidationError(f"expected {width} fields, got {len(row)}",
                                           path=path, line=start)
            report.rows_read += 1
            report.add(f"expected {width} fields", start)
            continue
        rows.append(row)
        lines.append(start)
        if len(rows) >= BLOCK_ROWS:
            yield rows, lines
            rows, lines = [], []
    yield rows, lines
