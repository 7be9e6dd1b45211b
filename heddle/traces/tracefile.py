"""Reading and writing trace files: Parquet, and the legacy `.htr` format for one more release.

Readers tell the formats apart by content, not by name: a Parquet file starts with `PAR1`,
a legacy file with `HEDDLE-TRACE` (or a gzip/zstd header); a directory is a trace made of
the Parquet files in it. Writers write Parquet unless the name ends in a legacy suffix.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from heddle.traces.errors import TraceFormatError
from heddle.traces.htr import HTR_SUFFIXES, is_htr, iter_htr, read_htr, write_htr
from heddle.traces.parquet import (
    PARQUET_SUFFIX,
    ROW_GROUP_ROWS,
    TraceWriter,
    iter_parquet,
    read_parquet,
)
from heddle.traces.trace import Trace

__all__ = ["convert_trace", "is_legacy", "iter_trace", "read_trace", "write_trace"]

_PARQUET_MAGIC = b"PAR1"


def is_legacy(path: str | Path) -> bool:
    """Whether `path` is a file in the legacy `.htr` format (`heddle trace convert` it)."""
    path = Path(path)
    return path.is_file() and _kind(path) == "htr"


def _kind(path: Path) -> str:
    """"dir", "parquet" or "htr"; anything else is TraceFormatError naming the file."""
    if path.is_dir():
        return "dir"
    with open(path, "rb") as f:
        head = f.read(4)
    if head == _PARQUET_MAGIC:
        return "parquet"
    if is_htr(head):
        return "htr"
    raise TraceFormatError(
        "not a heddle trace (expected a Parquet file, or the legacy format starting "
        "'HEDDLE-TRACE'); import CSV files with 'heddle trace import'", path=path)


def read_trace(path: str | Path, *, check: bool = True) -> Trace:
    """Read a whole trace: a Parquet file, a directory of them, or a legacy `.htr` file.

    Raises TraceFormatError for what is not a heddle trace, has an unknown schema version,
    lacks columns or is cut short or corrupt, and TraceValidationError (naming the file, row
    and column) for bad values.
    """
    path = Path(path)
    if _kind(path) == "htr":
        return read_htr(path, check=check)
    return read_parquet(path, check=check)


def iter_trace(path: str | Path, *, check: bool = True,
               rows: int = ROW_GROUP_ROWS) -> Iterator[Trace]:
    """Yield a trace in chunks (at most `rows` rows each from Parquet), one in memory at a time."""
    path = Path(path)
    if _kind(path) == "htr":
        return iter_htr(path, check=check)
    return iter_parquet(path, check=check, rows=rows)


def write_trace(
    trace: Trace | Iterable[Trace], path: str | Path, meta: Mapping[str, str] | None = None
) -> int:
    """Write a trace (or an iterable of chunks, streamed) to `path`; return the rows written.

    Parquet (`.parquet`), or the legacy format if the name ends in `.htr`, `.htr.gz` or
    `.htr.zst` (for tools that read only that). `meta` defaults to the trace's meta.
    """
    path = Path(path)
    if path.name.endswith(HTR_SUFFIXES):
        return write_htr(trace, path, meta)
    if not path.name.endswith(PARQUET_SUFFIX):
        raise TraceFormatError(
            f"trace files are Parquet: name it *{PARQUET_SUFFIX} (or *.htr.gz for the legacy "
            "format)", path=path)
    if isinstance(trace, Trace):
        chunks: Iterable[Trace] = [trace]
        meta = trace.meta if meta is None else meta
    else:
        chunks = trace
    with TraceWriter(path, meta) as writer:
        for chunk in chunks:
            writer.write(chunk)
    return writer.rows


def convert_trace(source: str | Path, target: str | Path | None = None) -> tuple[int, Path]:
    """Rewrite a trace (legacy `.htr`, or a directory of Parquet files) as one Parquet file.

    `target` defaults to the source's name with `.parquet` for its `.htr*` suffix. The
    source is read and validated whole first, so a bad source writes nothing. Returns
    (rows, target).
    """
    source = Path(source)
    if target is None:
        name = source.name
        stem = next((name[: -len(s)] for s in HTR_SUFFIXES if name.endswith(s)), name)
        target = source.with_name(stem + PARQUET_SUFFIX)
    target = Path(target)
    if target.resolve() == source.resolve():
        raise TraceFormatError("converting a file onto itself; name another target", path=source)
    trace = read_trace(source)
    return write_trace(trace, target), target
