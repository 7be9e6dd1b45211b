"""Traces as Parquet files: the schema's columns, and the trace's meta in the key-value metadata.

A heddle trace is an ordinary Parquet file (written with pyarrow) that pandas, polars and
DuckDB read as they are: one column per schema column under the same name, numbers as Parquet
numbers, categorical columns as dictionary-encoded strings, `deadline_s` null where there is
no deadline, rows sorted by `arrival_s`. Two key-value metadata entries make it a heddle
trace: `heddle.schema_version` and `heddle.meta` (the trace's meta as a JSON object). Row
groups hold ROW_GROUP_ROWS rows, so a reader streams a file one row group at a time. A
directory of Parquet files (say one per day) is one trace: its files in name order.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Generic, Self, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from heddle.traces.arrowframe import NULLABLE, READ_POOL, arrow_column, arrow_frame, one_line
from heddle.traces.chunks import ChunkChecker, used_categories, validated
from heddle.traces.distinct import KeyGroups, grouped_keys, joined
from heddle.traces.errors import TraceFormatError, TraceValidationError
from heddle.traces.schema import (
    COLUMN_NAMES,
    COLUMNS,
    Column,
    Encoding,
    dependency_breach,
    repeated_ids,
)
from heddle.traces.trace import Trace

__all__ = [
    "PARQUET_SUFFIX",
    "ROW_GROUP_ROWS",
    "SCHEMA_VERSION",
    "TraceWriter",
    "iter_parquet",
    "parquet_files",
    "read_parquet",
]

SCHEMA_VERSION = 1
"""Version of the column schema (docs/traces.md), in `heddle.schema_version`; a reader refuses
versions it does not know. Bumped when a column is added, dropped or changes meaning."""
VERSION_KEY = "heddle.schema_version"
META_KEY = "heddle.meta"
PARQUET_SUFFIX = ".parquet"
ROW_GROUP_ROWS = 65_536
"""Rows per row group: ~8 MB in memory at ~120 bytes a row, so a reader streaming a trace
holds little; the per-group overhead (footer entry, dictionaries) is noise at this size."""
USE_THREADS = False
"""pyarrow's own threads off: on the 2-core machines heddle runs on, shared with the twin or
other jobs, they cost ~10% more CPU and were slower by the clock. `read_parquet` splits a
read between two threads of its own instead, one task each, so it never takes more CPU."""
PRE_BUFFER = False
"""Arrow's pre-buffering off: it reads a file's byte ranges on Arrow's I/O thread pool while the
reading thread waits, which helps on a remote filesystem; for a local file it only adds a
thread to wake and schedule for every row group, so a read on a busy machine waited longer
(measured: best of 8 at load 14, 96-112 ms against 102-108 ms, medians 103-141 against 123-158)."""
COMPRESSION = {c.name: "lz4" for c in COLUMNS} | {"task_id": "zstd"}
"""Per column: LZ4 (LZ4_RAW) decodes ~3x faster than zstd, which mattered: decompression was a
third of reading a trace; task ids take zstd, which keeps them 2.5x smaller than LZ4 does
for ~8 ms per million rows, so the file stays ~0.28 of the legacy format's size (goal: at
most a third; all-LZ4 files were 0.33, all-zstd 0.21). Every current Parquet reader
(pyarrow, DuckDB, polars, Spark 3.5) decodes both (benchmarks/bench_traces.py)."""
TASK_IDS = next(c for c in COLUMNS if c.name == "task_id")
"""The column `read_parquet` reads and checks unique on a second thread."""
_OTHER_NAMES = [c.name for c in COLUMNS if c is not TASK_IDS]
TASK_ID_TYPE = pa.large_string()
"""The task ids' Arrow type in the file's Arrow schema: pandas' own type for strings (its "str"
dtype holds large_string), so the reader decodes them straight into the frame's type. As
`string`, each read cast them after decoding (a new 8-byte offset per row, ~8 MB of fresh
memory per million rows) and decoded them ~5 ms slower. The Parquet column is the same
either way (BYTE_ARRAY, UTF8): only Arrow readers see the difference, and only in the type."""
DICTIONARY_COLUMNS = [c.name for c in COLUMNS if c.encoding is Encoding.CATEGORY]
"""Dictionary-encoded in the file. Numbers and task ids are not: a dictionary of (nearly)
unique values is abandoned half-built, which made files ~25% bigger and writes ~20% slower."""


def _arrow_type(col: Column) -> pa.DataType:
    if col.encoding is Encoding.NUMERIC:
        return pa.from_numpy_dtype(np.dtype(col.dtype))
    if col.encoding is Encoding.CATEGORY:
        return pa.dictionary(pa.int32(), pa.string())
    return TASK_ID_TYPE


ARROW_SCHEMA = pa.schema([
    pa.field(c.name, _arrow_type(c), nullable=c.name in NULLABLE, metadata={"doc": c.doc})
    for c in COLUMNS
])
"""The file's columns, in schema order; each field's `doc` metadata says what it holds."""


def _file_metadata(meta: Mapping[str, str]) -> dict[str, str]:
    try:
        text = json.dumps(dict(meta), ensure_ascii=False, sort_keys=True)
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate: escaped JSON still round-trips
        text = json.dumps(dict(meta), sort_keys=True)
    return {VERSION_KEY: str(SCHEMA_VERSION), META_KEY: text}


def _record_batch(df: pd.DataFrame) -> pa.RecordBatch:
    """One canonical frame as Arrow arrays of ARROW_SCHEMA (categoricals stay codes)."""
    arrays = []
    for col, field in zip(COLUMNS, ARROW_SCHEMA, strict=True):
        values = df[col.name]
        if col.encoding is Encoding.NUMERIC:
            arrays.append(pa.array(values.to_numpy(), type=field.type,
                                   from_pandas=col.name in NULLABLE))
        elif col.encoding is Encoding.CATEGORY:
            cat = values.array
            if not isinstance(cat, pd.Categorical):
                cat = pd.Categorical(values.to_numpy(dtype=object))
            codes, used = used_categories(cat)
            arrays.append(pa.DictionaryArray.from_arrays(
                pa.array(codes.astype(np.int32, copy=False)), pa.array(used, type=pa.string())))
        else:
            arrays.append(pa.array(values, type=field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=ARROW_SCHEMA)


class TraceWriter:
    """Write a trace chunk by chunk as Parquet. Use as a context manager; the file appears on close.

    Chunks of any size are gathered into row groups of `row_group_rows`. Writes go to
    `<path>.partial`, renamed over `path` only once the footer is written, so an interrupted
    write never leaves a file that looks complete.
    """

    def __init__(self, path: str | Path, meta: Mapping[str, str] | None = None, *,
                 row_group_rows: int = ROW_GROUP_ROWS) -> None:
        if row_group_rows <= 0:
            raise ValueError("row_group_rows must be > 0")
        self.path = Path(path)
        self._tmp = self.path.with_name(self.path.name + ".partial")
        self._meta = {str(k): str(v) for k, v in (meta or {}).items()}
        self._group_rows = row_group_rows
        self._writer: pq.ParquetWriter | None = None
        self._checker = ChunkChecker(self.path)
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self.rows = 0

    def __enter__(self) -> Self:
        self._writer = pq.ParquetWriter(
            self._tmp, ARROW_SCHEMA.with_metadata(_file_metadata(self._meta)),
            compression=COMPRESSION, write_page_checksum=True, use_dictionary=DICTIONARY_COLUMNS,
            sorting_columns=[pq.SortingColumn(COLUMN_NAMES.index("arrival_s"))],
        )
        return self

    def write(self, chunk: Trace | pd.DataFrame) -> None:
        """Append rows (already in arrival order relative to earlier chunks)."""
        if self._writer is None:
            raise RuntimeError("TraceWriter.write outside 'with'")
        df = self._checker.check(chunk)
        start = 0
        while start < len(df):
            take = min(len(df) - start, self._group_rows - self._pending_rows)
            self._pending.append(_record_batch(df.iloc[start : start + take]))
            self._pending_rows += take
            start += take
            if self._pending_rows == self._group_rows:
                self._flush()

    def _flush(self) -> None:
        assert self._writer is not None
        if not self._pending_rows:
            return
        table = pa.Table.from_batches(self._pending)
        if len(self._pending) > 1:
            # one dictionary per column in the row group, holding what its rows use
            table = table.unify_dictionaries().combine_chunks()
        self._writer.write_table(table, row_group_size=self._group_rows)
        self.rows += self._pending_rows
        self._pending, self._pending_rows = [], 0

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._writer is not None
        try:
            if exc_type is None:
                self._flush()
        finally:
            self._writer.close()
            self._writer = None
        if exc_type is None:
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)


@dataclass(slots=True)
class _Opened:
    """One trace file, open: the handle, Parquet's view of it and the trace's meta."""

    path: Path
    source: pa.NativeFile
    parquet: pq.ParquetReader
    meta: dict[str, str]

    def reader(self) -> pq.ParquetReader:
        """Another reader of the same open file (for another thread: reads at positions,
        which Arrow's files allow at once), so a file deleted or replaced by name since
        (the live recorder compacts its parts) is still the one read; the footer is not
        parsed again."""
        return _parquet_reader(self.source, self.parquet.metadata)


def _parquet_reader(source: pa.NativeFile,
                    metadata: pq.FileMetaData | None = None) -> pq.ParquetReader:
    """Parquet's reader of `source`, decoding into READ_POOL (`pq.ParquetFile` takes no pool).
    Closing it would close `source` (which `_opened` closes), so it is left to be collected."""
    reader = pq.ParquetReader(memory_pool=READ_POOL)
    reader.open(source, metadata=metadata, page_checksum_verification=True, pre_buffer=PRE_BUFFER)
    return reader


T = TypeVar("T")


class _Shared(Generic[T]):
    """A task of a read that either thread runs once: the second thread in its turn, or the
    calling thread if it needs the result before the second thread has started it (then the
    second thread's turn finds it done). So when the second thread runs late (its CPU time
    for the same work varies by half from run to run, docs/traces.md), the calling thread
    does the rest of its tasks instead of waiting for them. An error is raised to each caller."""

    def __init__(self, fn: Callable[[], T]) -> None:
        self._fn: Callable[[], T] | None = fn
        self._lock = threading.Lock()
        self._value: T | None = None
        self._error: BaseException | None = None

    def __call__(self) -> T:
        with self._lock:  # held while it runs: the other thread waits for the result
            if self._fn is not None:
                fn, self._fn = self._fn, None
                try:
                    self._value = fn()
                except BaseException as exc:  # noqa: BLE001 - raised again to each caller
                    self._error = exc
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


def _shared(pool: ThreadPoolExecutor, fn: Callable[[], T]) -> _Shared[T]:
    """`fn` queued on the second thread, run by the calling thread if it gets there first."""
    task = _Shared(fn)
    pool.submit(task)
    return task


@contextmanager
def _opened(path: Path) -> Iterator[_Opened]:
    """The file, once its metadata and columns are checked; closed on leaving."""
    try:
        source = pa.OSFile(str(path))
    except FileNotFoundError:
        raise
    except (pa.ArrowException, OSError) as exc:
        raise TraceFormatError(f"unreadable: {one_line(exc)}", path=path) from None
    with source:
        try:
            pf = _parquet_reader(source)
            schema = pf.schema_arrow
        except (pa.ArrowException, OSError) as exc:
            raise TraceFormatError(f"unreadable Parquet (cut short or corrupt?): "
                                   f"{one_line(exc)}", path=path) from None
        yield _Opened(path, source, pf, _checked_meta(schema, path))


def _checked_meta(schema: pa.Schema, path: Path) -> dict[str, str]:
    kv = {k.decode(errors="replace"): v for k, v in (schema.metadata or {}).items()}
    if VERSION_KEY not in kv:
        raise TraceFormatError(
            f"a Parquet file but not a heddle trace: no {VERSION_KEY!r} in its key-value "
            "metadata (docs/traces.md, 'Traces from other tools')", path=path)
    version = kv[VERSION_KEY].decode(errors="replace")
    if version != str(SCHEMA_VERSION):
        raise TraceFormatError(
            f"trace schema version {version!r} is not supported (this heddle reads "
            f"{SCHEMA_VERSION})", path=path)
    try:
        meta = json.loads(kv.get(META_KEY, b"{}"))
        if not isinstance(meta, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
            raise ValueError("expected a JSON object of strings")
    except ValueError as exc:
        raise TraceFormatError(f"metadata {META_KEY!r}: {one_line(exc)}", path=path) from None
    missing = [c for c in COLUMN_NAMES if c not in schema.names]
    if missing:
        raise TraceFormatError(f"missing column(s): {', '.join(missing)}", path=path)
    for col in COLUMNS:
        kind = schema.field(col.name).type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        ok = (pa.types.is_integer(kind) or pa.types.is_floating(kind)
              if col.encoding is Encoding.NUMERIC
              else pa.types.is_string(kind) or pa.types.is_large_string(kind)
              or pa.types.is_string_view(kind))
        if not ok:
            expected = "numbers" if col.encoding is Encoding.NUMERIC else "strings"
            raise TraceFormatError(f"column {col.name!r} holds {kind}, expected {expected}",
                                   path=path)
    return meta


def _trace(columns: dict[str, list[pa.Array] | Callable[[], object]], meta: dict[str, str],
           path: Path, first_row: int | None, check: bool,
           repeated: Callable[[], np.ndarray] | None = None,
           pool: ThreadPoolExecutor | None = None) -> Trace:
    """A Trace of the columns: the whole file, or (given its `first_row`) one chunk of it.
    Given a `pool`, the dependency rule is checked there while this thread checks the others."""
    try:
        trace = Trace(arrow_frame(columns, first_row or 0), meta)
    except TraceValidationError as exc:
        raise TraceValidationError(exc.reason, path=path, row=exc.row, column=exc.column) from None
    if not check:
        return trace
    whole = first_row is None
    breach = _shared(pool, lambda: dependency_breach(trace.df)) if pool and whole else None
    return validated(trace, path, first_row=first_row or 0, whole=whole, repeated=repeated,
                     breached_dependency=breach)


def parquet_files(path: Path) -> list[Path]:
    """The trace files of a directory, in name order (the order their rows are read)."""
    files = sorted(p for p in path.iterdir() if p.name.endswith(PARQUET_SUFFIX) and p.is_file())
    if not files:
        raise TraceFormatError(f"a directory without {PARQUET_SUFFIX} files", path=path)
    return files


def _read_columns(pf: pq.ParquetReader, path: Path,
                  names: Sequence[str]) -> dict[str, list[pa.Array]]:
    """The schema's columns as Arrow arrays, for `arrow_frame` (not `Table.to_pandas`, which
    gives categories in the order first seen rather than sorted and, measured, took twice
    the CPU of building the canonical frame here).

    The rules are then checked on the values, never on the row groups' min/max statistics,
    although they would settle the range rules without a pass over the data. Statistics are
    what the writer claims: page checksums cover the pages, not the footer that holds them;
    another tool (or a script that edited a heddle trace with pyarrow, which carries our
    key-value metadata along) writes its own; so no marker in the file can say they were
    computed by us from these values. Trusting them would let a negative token count through
    for the ~3 ms per million rows the range rules cost in numpy (of ~60 ms for all rules).
    """
    try:
        table = pf.read_all(column_indices=[pf.column_name_idx(n) for n in names],
                            use_threads=USE_THREADS)
    except (pa.ArrowException, OSError) as exc:
        raise TraceFormatError(f"corrupt Parquet data: {one_line(exc)}", path=path) from None
    return {name: list(table.column(name).chunks) for name in names}


def _task_ids(file: _Opened) -> list[pa.Array]:
    """The file's task-id column (read on the reader's second thread)."""
    return _read_columns(file.reader(), file.path, [TASK_IDS.name])[TASK_IDS.name]


def read_parquet(path: str | Path, *, check: bool = True) -> Trace:
    """Read a whole Parquet trace, or a directory of them as one trace (the first file's meta).

    Two threads share a read. A second thread decodes the task ids and checks them unique:
    it decodes a file's ids and keys them (numpy, see heddle.traces.distinct) while this one
    decodes the file's other columns (Arrow lets go of the GIL for the whole decode), then
    proves all the keys distinct with hash tables while this one builds the frame, and
    checks the dependency rule while this one checks the others. Arrow, numpy and pandas'
    hash table release the GIL, so with a core free a read takes about the longer of the
    two, and on a busy machine about the sum, as on one thread. One file is open at a time
    (a recorded directory holds thousands); the rules and errors are those of one thread
    (see `validate`).
    """
    path = Path(path)
    files = parquet_files(path) if path.is_dir() else [path]
    columns: dict[str, list[pa.Array] | Callable[[], object]] = {n: [] for n in _OTHER_NAMES}
    ids: list[pa.Array] = []
    keys: list[_Shared[KeyGroups | None]] = []
    starts, meta = [], {}
    with ThreadPoolExecutor(1, thread_name_prefix="heddle-trace-ids") as pool:
        for i, file in enumerate(files):
            with _opened(file) as opened:
                file_ids = pool.submit(_task_ids, opened)
                if check:  # keyed on the second thread as soon as read, while this one reads
                    keys.append(_shared(pool, lambda ids=file_ids: grouped_keys(ids.result())))
                try:
                    others = _read_columns(opened.parquet, file, _OTHER_NAMES)
                finally:
                    wait([file_ids])  # the second thread is done with the file before it closes
                chunks = file_ids.result()
                meta = opened.meta if i == 0 else meta
            ids.extend(chunks)
            starts.append(sum(len(c) for c in columns["arrival_s"]))
            for name, file_chunks in others.items():
                columns[name].extend(file_chunks)
            # `columns` alone holds the chunks now: arrow_frame frees each column as it goes
            del others, file_chunks
        task_ids = _shared(pool, lambda: arrow_column(ids, TASK_IDS, 0))
        columns[TASK_IDS.name] = task_ids
        repeated = _shared(pool, lambda: repeated_ids(
            pd.Series(task_ids(), copy=False), joined([k() for k in keys]))
        ) if check else None
        try:
            return _trace(columns, meta, path, None, check, repeated=repeated, pool=pool)
        except TraceValidationError as exc:
            if len(files) == 1 or exc.row is None:
                raise
            # name the file the bad row is in, and the row within it
            k = int(np.searchsorted(starts, exc.row, side="right")) - 1
            raise TraceValidationError(exc.reason, path=files[k], row=exc.row - starts[k],
                                       column=exc.column) from None


def iter_parquet(path: str | Path, *, check: bool = True,
                 rows: int = ROW_GROUP_ROWS) -> Iterator[Trace]:
    """Yield a Parquet trace (or a directory of them) in chunks of at most `rows` rows.

    One chunk is in memory at a time. Rows must be in arrival order across chunks and files.
    """
    path = Path(path)
    files = parquet_files(path) if path.is_dir() else [path]
    last_arrival_s = 0.0
    for file in files:
        with _opened(file) as opened:
            row = 0
            for chunk in _chunks(opened.parquet, opened.meta, file, rows, check):
                if len(chunk) and check and chunk.df["arrival_s"].iloc[0] < last_arrival_s:
                    raise TraceValidationError(
                        "expected rows sorted by arrival (a directory's files are read in "
                        f"name order), got {chunk.df['arrival_s'].iloc[0]!r} after "
                        f"{last_arrival_s!r}", path=file, row=row, column="arrival_s")
                if len(chunk):
                    last_arrival_s = float(chunk.df["arrival_s"].iloc[-1])
                row += len(chunk)
                yield chunk


def _chunks(pf: pq.ParquetReader, meta: dict[str, str], path: Path, rows: int,
            check: bool) -> Iterator[Trace]:
    batches = pf.iter_batches(rows, range(pf.num_row_groups),
                              column_indices=[pf.column_name_idx(n) for n in COLUMN_NAMES],
                              use_threads=USE_THREADS)
    first_row = 0
    while True:
        try:
            batch = next(batches, None)
        except (pa.ArrowException, OSError) as exc:
            raise TraceFormatError(f"corrupt Parquet data: {one_line(exc)}", path=path) from None
        if batch is None:
            return
        yield _trace({n: [batch.column(n)] for n in COLUMN_NAMES}, meta, path, first_row, check)
        first_row += batch.num_rows
