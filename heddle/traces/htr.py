"""The legacy heddle trace format (`.htr`, `.htr.gz`, `.htr.zst`), read and written for one more release.

Traces are Parquet files now (heddle.traces.parquet); this format stays so that existing files
still read, `heddle trace convert` can turn them into Parquet, and the trace benchmark can
compare the two. Layout::

    HEDDLE-TRACE 1\\n                      magic and format version, ASCII
    {"columns": [...], "meta": {...}}\\n   file header, JSON (pydantic-validated on read)
    C <u32 n> <n bytes chunk JSON> <column blocks>   one per chunk, any number
    E <u64 total rows>                     trailer: a file without it was cut short

A chunk's JSON holds its row count, each categorical column's dictionary (the distinct values
in that chunk, the codes' dtype) and the values of plain string columns. The column blocks
follow in schema order: raw little-endian numbers, or dictionary codes. A reader needs one
chunk in memory at a time; the writer likewise.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import struct
import zlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError

from heddle.traces.chunks import (
    ChunkChecker,
    code_dtype,
    merge_categorical,
    used_categories,
    validated,
)
from heddle.traces.errors import TraceFormatError
from heddle.traces.schema import COLUMNS, Encoding
from heddle.traces.trace import Trace

__all__ = [
    "HTR_SUFFIXES", "HTR_VERSION", "HtrWriter", "is_htr", "iter_htr", "read_htr", "write_htr",
]

MAGIC = b"HEDDLE-TRACE"
HTR_VERSION = 1
"""On-disk format version written in the first line; readers refuse versions they don't know."""
HTR_SUFFIXES = (".htr", ".htr.gz", ".htr.zst")
"""File names that select this format when writing."""
DEFAULT_CHUNK_ROWS = 65_536
"""Rows per chunk: big enough that per-chunk overhead is noise, small enough to stream."""
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_GZIP_LEVEL = 6
"""zlib's default trade-off; level 9 writes ~3x slower for a few percent smaller files."""
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class _ColumnHeader(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    dtype: str
    encoding: Encoding


class _FileHeader(BaseModel):
    model_config = ConfigDict(extra="forbid")
    columns: list[_ColumnHeader]
    meta: dict[str, str] = {}


def is_htr(head: bytes) -> bool:
    """Whether a file starting with `head` (its first 4 bytes or more) may be in this format.

    Compressed files count: whether they hold a trace is known only once decompressed.
    """
    return head.startswith((MAGIC[:4], _GZIP_MAGIC, _ZSTD_MAGIC))


def _open_write(path: Path, suffix: str) -> tuple[IO[bytes], IO[bytes]]:
    """(stream to write, underlying file) for `path`, compressed according to `suffix`."""
    raw = open(path, "wb")  # noqa: SIM115 - closed by HtrWriter.__exit__
    if suffix == ".gz":
        # no name and a zero mtime in the gzip header: the same trace gives the same bytes
        return gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=_GZIP_LEVEL,
                             mtime=0), raw
    if suffix == ".zst":
        try:
            import zstandard  # optional: not a dependency
        except ImportError as exc:
            raw.close()
            path.unlink(missing_ok=True)
            raise TraceFormatError(
                "writing .zst needs the 'zstandard' package; use .gz", path=path
            ) from exc
        return zstandard.ZstdCompressor().stream_writer(raw, closefd=False), raw
    return raw, raw


def _open_read(path: Path) -> IO[bytes]:
    raw = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    head = raw.read(4)
    raw.seek(0)
    if head.startswith(_GZIP_MAGIC):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if head == _ZSTD_MAGIC:
        try:
            import zstandard
        except ImportError as exc:
            raw.close()
            raise TraceFormatError(
                "file is zstd-compressed; install 'zstandard' or recompress with gzip", path=path
            ) from exc
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw))
    return raw


class HtrWriter:
    """Write a trace chunk by chunk. Use as a context manager; the file appears on close.

    Writes go to `<path>.partial`, renamed over `path` only after the trailer is written,
    so an interrupted write never leaves a file that looks complete.
    """

    def __init__(self, path: str | Path, meta: Mapping[str, str] | None = None) -> None:
        self.path = Path(path)
        self._tmp = self.path.with_name(self.path.name + ".partial")
        self._meta = {str(k): str(v) for k, v in (meta or {}).items()}
        self._file: IO[bytes] | None = None
        self._raw: IO[bytes] | None = None
        self._checker = ChunkChecker(self.path)
        self.rows = 0

    def __enter__(self) -> Self:
        # the compressor is chosen by the final name's suffix, not the .partial one
        self._file, self._raw = _open_write(self._tmp, self.path.suffix)
        header = _FileHeader(
            columns=[_ColumnHeader(name=c.name, dtype=c.dtype, encoding=c.encoding)
                     for c in COLUMNS],
            meta=self._meta,
        )
        self._file.write(MAGIC + b" " + str(HTR_VERSION).encode() + b"\n")
        self._file.write(header.model_dump_json().encode() + b"\n")
        return self

    def write(self, chunk: Trace | pd.DataFrame) -> None:
        """Append rows (already in arrival order relative to earlier chunks)."""
        if self._file is None:
            raise RuntimeError("HtrWriter.write outside 'with'")
        df = self._checker.check(chunk)
        for start in range(0, len(df), DEFAULT_CHUNK_ROWS):
            self._write_chunk(df.iloc[start : start + DEFAULT_CHUNK_ROWS])

    def _write_chunk(self, df: pd.DataFrame) -> None:
        assert self._file is not None
        dicts: dict[str, list[str]] = {}
        codes: dict[str, str] = {}
        strings: dict[str, list[str]] = {}
        blocks: list[bytes] = []
        for col in COLUMNS:
            values = df[col.name]
            if col.encoding is Encoding.NUMERIC:
                blocks.append(np.ascontiguousarray(values.to_numpy(), dtype="<" + col.dtype[0]
                                                   + str(np.dtype(col.dtype).itemsize)).tobytes())
            elif col.encoding is Encoding.CATEGORY:
                cat = values.array
                if not isinstance(cat, pd.Categorical):
                    cat = pd.Categorical(values.to_numpy(dtype=object))
                chunk_codes, values_used = used_categories(cat)
                dicts[col.name] = values_used
                dt = code_dtype(len(values_used))
                codes[col.name] = dt.name
                blocks.append(chunk_codes.astype(dt.newbyteorder("<"), copy=False).tobytes())
            else:
                strings[col.name] = values.to_numpy(dtype=object).tolist()
        head = json.dumps({"rows": len(df), "dicts": dicts, "codes": codes, "strings": strings})
        head_bytes = head.encode("ascii")
        self._file.write(b"C" + _U32.pack(len(head_bytes)) + head_bytes)
        for block in blocks:
            self._file.write(block)
        self.rows += len(df)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._file is not None
        try:
            if exc_type is None:
                self._file.write(b"E" + _U64.pack(self.rows))
        finally:
            self._file.close()
            if self._raw is not None and self._raw is not self._file:
                self._raw.close()
            self._file = self._raw = None
        if exc_type is None:
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)


def write_htr(
    trace: Trace | Iterable[Trace], path: str | Path, meta: Mapping[str, str] | None = None
) -> int:
    """Write a trace (or an iterable of chunks, streamed) to `path`; return the rows written.

    The suffix picks compression: `.gz` gzip, `.zst` zstd (needs `zstandard`), else none.
    `meta` defaults to the (first) trace's meta.
    """
    if isinstance(trace, Trace):
        chunks: Iterable[Trace] = [trace]
        meta = trace.meta if meta is None else meta
    else:
        chunks = trace
    with HtrWriter(path, meta) as writer:
        for chunk in chunks:
            writer.write(chunk)
    return writer.rows


def _read_exact(f: IO[bytes], n: int, path: Path, what: str) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = f.readinto(view[got:])
        if not k:
            raise TraceFormatError(f"file ends inside {what} (cut short?)", path=path)
        got += k
    return buf


def _read_header(f: IO[bytes], path: Path) -> _FileHeader:
    first = f.readline(64)
    if not first.startswith(MAGIC):
        raise TraceFormatError(
            "not a heddle trace (expected the line 'HEDDLE-TRACE <version>'); "
            "import CSV files with 'heddle trace import'", path=path,
        )
    try:
        version = int(first[len(MAGIC):].strip())
    except ValueError as exc:
        raise TraceFormatError(f"unreadable format version in {first!r}", path=path) from exc
    if version != HTR_VERSION:
        raise TraceFormatError(
            f"format version {version} is not supported (this heddle reads {HTR_VERSION})",
            path=path,
        )
    line = f.readline()
    try:
        header = _FileHeader.model_validate_json(line)
    except ValidationError as exc:
        # pydantic's own text names its classes and links its docs: say what is wrong instead
        e = exc.errors(include_url=False)[0]
        if e["type"] == "json_invalid":
            what = "not valid JSON" + ("" if line.endswith(b"\n") else " (cut short?)")
        else:
            what = f"field {'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
        raise TraceFormatError(f"line 2 (file header): {what}", path=path) from None
    expected = [(c.name, c.dtype, c.encoding) for c in COLUMNS]
    found = [(c.name, c.dtype, c.encoding) for c in header.columns]
    if found != expected:
        raise TraceFormatError(f"line 2 (file header): columns {found} != {expected}", path=path)
    return header


def _decode_chunk(f: IO[bytes], path: Path) -> dict | None:
    tag = f.read(1)
    if tag == b"E":
        return None
    if tag != b"C":
        raise TraceFormatError(
            "file ends without its trailer (cut short?)" if not tag
            else f"expected a chunk marker, found {tag!r}", path=path,
        )
    (n,) = _U32.unpack(_read_exact(f, 4, path, "a chunk header"))
    try:
        head = json.loads(_read_exact(f, n, path, "a chunk header"))
        rows = int(head["rows"])
        for col in COLUMNS:
            if col.encoding is Encoding.CATEGORY:
                np.dtype(head["codes"][col.name])
                if not isinstance(head["dicts"][col.name], list):
                    raise TypeError(f"dictionary of {col.name!r} is not a list")
            elif col.encoding is Encoding.STRING and not isinstance(head["strings"][col.name],
                                                                     list):
                raise TypeError(f"values of {col.name!r} are not a list")
        if rows < 0:
            raise ValueError("negative row count")
    except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
        raise TraceFormatError(f"corrupt chunk header: {exc!r}", path=path) from None
    sizes = []
    for col in COLUMNS:
        if col.encoding is Encoding.NUMERIC:
            sizes.append(np.dtype(col.dtype).itemsize * rows)
        elif col.encoding is Encoding.CATEGORY:
            sizes.append(np.dtype(head["codes"][col.name]).itemsize * rows)
        else:
            sizes.append(0)
    buf = _read_exact(f, sum(sizes), path, "a chunk's columns")
    arrays: dict[str, object] = {"__rows__": rows}
    offset = 0
    for col, size in zip(COLUMNS, sizes, strict=True):
        if col.encoding is Encoding.NUMERIC:
            arrays[col.name] = np.frombuffer(buf, np.dtype(col.dtype).newbyteorder("<"),
                                             rows, offset)
        elif col.encoding is Encoding.CATEGORY:
            dt = np.dtype(head["codes"][col.name]).newbyteorder("<")
            arrays[col.name] = (np.frombuffer(buf, dt, rows, offset), head["dicts"][col.name])
        else:
            values = head["strings"][col.name]
            if len(values) != rows:
                raise TraceFormatError(f"chunk column {col.name!r} has {len(values)} values, "
                                       f"expected {rows}", path=path)
            arrays[col.name] = values
        offset += size
    return arrays


def _assemble(chunks: list[dict], meta: dict[str, str], path: Path, check: bool,
              first_row: int | None = None) -> Trace:
    """The chunks as one Trace: the whole file, or (given its `first_row`) one chunk of it."""
    if not chunks:
        return Trace.empty(meta)
    data: dict[str, object] = {}
    for col in COLUMNS:
        parts = [c[col.name] for c in chunks]
        if col.encoding is Encoding.NUMERIC:
            arr = np.concatenate(parts) if len(parts) > 1 else np.array(parts[0])
            data[col.name] = arr.astype(col.dtype, copy=False)
        elif col.encoding is Encoding.CATEGORY:
            data[col.name] = merge_categorical(parts, col, first_row=first_row or 0)
        else:
            flat = parts[0] if len(parts) == 1 else [v for p in parts for v in p]
            data[col.name] = pd.array(flat, dtype="str")
    trace = Trace(pd.DataFrame(data, copy=False), meta)
    if not check:
        return trace
    return validated(trace, path, first_row=first_row or 0, whole=first_row is None)


def iter_htr(path: str | Path, *, check: bool = True) -> Iterator[Trace]:
    """Yield the file's chunks as Traces, one chunk in memory at a time."""
    path = Path(path)
    with _open_read(path) as f, _translated(path):
        header = _read_header(f, path)
        total = 0
        while (chunk := _decode_chunk(f, path)) is not None:
            yield _assemble([chunk], header.meta, path, check, first_row=total)
            total += chunk["__rows__"]
        _check_trailer(f, path, total)


@contextmanager
def _translated(path: Path) -> Iterator[None]:
    """Turn decompression and I/O failures inside a file into TraceFormatError."""
    try:
        yield
    except FileNotFoundError:
        raise
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise TraceFormatError(f"cannot read: {exc}", path=path) from exc


def _check_trailer(f: IO[bytes], path: Path, total: int) -> None:
    (rows,) = _U64.unpack(_read_exact(f, 8, path, "the trailer"))
    if rows != total:
        raise TraceFormatError(f"trailer says {rows} rows, chunks hold {total}", path=path)


def read_htr(path: str | Path, *, check: bool = True) -> Trace:
    """Read a whole trace file (plain, gzip or zstd: detected from the first bytes).

    Raises TraceFormatError for a file that is not a heddle trace, has an unknown version or
    is cut short, and TraceValidationError (naming the row and column) for bad values.
    """
    path = Path(path)
    with _open_read(path) as f, _translated(path):
        header = _read_header(f, path)
        chunks = []
        while (chunk := _decode_chunk(f, path)) is not None:
            chunks.append(chunk)
        _check_trailer(f, path, sum(c["__rows__"] for c in chunks))
    return _assemble(chunks, header.meta, path, check)
