"""Arrow columns (as read from Parquet) into a canonical trace frame, checking as they convert.

Numbers are cast to the schema's dtypes (a value that does not fit is an error), string
columns become Categoricals with sorted categories merged inside Arrow, and a null is ""
in a string column, NaN in `deadline_s` and an error anywhere else. Errors name the row,
counted from the `first_row` the caller gives.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from heddle.traces.chunks import code_dtype
from heddle.traces.errors import TraceValidationError
from heddle.traces.schema import COLUMNS, Column, Encoding

__all__ = ["NULLABLE", "arrow_column", "arrow_frame", "one_line"]

NULLABLE = frozenset({"deadline_s"})
"""Columns that may hold nulls: a missing deadline is null (NaN in memory)."""

READ_POOL = pa.system_memory_pool()
"""The memory a read decodes into: the C library's allocator, not Arrow's default (mimalloc on
Linux). A process's first read is what `heddle trace stats` and `heddle sim --trace` meet, and
there mimalloc commits its arenas in huge pages that the kernel first zeroes: measured on a
1M-row trace in fresh processes (2026-12-07, 2-core machine, load ~0.5), 384-434 ms by the
clock with 321-351 ms of it in the kernel, against 185-192 ms (44-100 in the kernel) with this
pool; reading again in one process, 119-121 against 128-131 ms (best of 8). Only the reader's
own work uses it (`pq.ParquetReader` takes a pool, and so does `_pool_array`); nothing
process-wide is changed."""


def one_line(exc: BaseException) -> str:
    """An Arrow error's message on one line (some span several)."""
    return " ".join(str(exc).split())


def _refuse_nulls(chunk: pa.Array, col: Column, first_row: int) -> None:
    if chunk.null_count:
        row = first_row + int(np.flatnonzero(chunk.is_null().to_numpy(zero_copy_only=False))[0])
        raise TraceValidationError("missing value", row=row, column=col.name)


def _numeric(chunks: list[pa.Array], col: Column, first_row: int) -> np.ndarray:
    target = pa.from_numpy_dtype(np.dtype(col.dtype))
    parts = []
    at = first_row
    for chunk in chunks:
        if pa.types.is_dictionary(chunk.type):
            chunk = chunk.dictionary_decode()
        if col.name not in NULLABLE:
            _refuse_nulls(chunk, col, at)
        if chunk.type != target:
            try:
                chunk = pc.cast(chunk, target, memory_pool=READ_POOL)
            except pa.ArrowInvalid as exc:
                raise TraceValidationError(f"expected values fitting {col.dtype}: "
                                           f"{one_line(exc)}", column=col.name) from None
        if chunk.null_count:  # a missing deadline: NaN, filled in Arrow (pyarrow's own way is slower)
            chunk = pc.coalesce(chunk, pa.scalar(np.nan, chunk.type), memory_pool=READ_POOL)
        parts.append(chunk)
        at += len(chunk)
    if len(parts) == 1:
        return _owned(parts[0], np.dtype(col.dtype))
    if not parts:
        return np.empty(0, dtype=col.dtype)
    return np.concatenate([p.to_numpy(zero_copy_only=False) for p in parts])


def _owned(chunk: pa.Array, dtype: np.dtype) -> np.ndarray:
    """A null-free numeric chunk as a writeable numpy array (consumers may write into a
    trace's columns), on Arrow's own buffer where that is mutable.

    Arrow's Parquet reader (and cast, fill_null) decode into a fresh buffer of their own, which
    Arrow marks mutable; this reader holds the only reference, so handing it to numpy saves a
    copy of every numeric column (~20 ms and ~40 MB of page faults per million rows). A
    buffer Arrow does not own (a memory-mapped file, a caller's bytes) is read-only: copied.
    """
    data = chunk.buffers()[1]
    if data is None or not data.is_mutable:
        return chunk.to_numpy(zero_copy_only=False).copy()
    return np.frombuffer(data, dtype, len(chunk), chunk.offset * dtype.itemsize)


def _categorical(chunks: list[pa.Array], col: Column, first_row: int) -> pd.Categorical:
    """A string column's chunks as one canonical Categorical, built from the chunks' dictionaries.

    A null is the schema's "none", "". Each chunk (a row group) has its own small dictionary;
    one sort of all of them gives the canonical categories and each dictionary entry's code, so
    a row costs one integer lookup and no string is hashed or compared per row.
    """
    rows = sum(len(c) for c in chunks)
    if not rows:
        return pd.Categorical.from_codes(
            np.empty(0, np.int8), categories=pd.Index(list(col.fixed_categories), dtype="str"))
    if not all(_clean_dictionary(c) for c in chunks):
        # plain strings or nulls (from another writer): dictionary-encode them here
        arr = pa.chunked_array(chunks)
        chunks = pc.dictionary_encode(pc.fill_null(_decoded(arr), "")).chunks
    dictionaries = [c.dictionary for c in chunks]
    values = pa.concat_arrays([d if d.type == pa.string() else d.cast(pa.string())
                               for d in dictionaries])
    if col.fixed_categories:
        categories = pa.array(col.fixed_categories, pa.string())
        lookup = pc.index_in(values, value_set=categories).fill_null(-1).to_numpy(
            zero_copy_only=False)
    else:
        categories, lookup = _sorted_codes(values)
    dt = code_dtype(len(categories))
    lookup = lookup.astype(dt, copy=False)
    codes = _pool_array(rows, dt)
    at = start = 0
    for chunk, dictionary in zip(chunks, dictionaries, strict=True):
        indices = chunk.indices.to_numpy(zero_copy_only=False)
        chunk_lookup = lookup[start : start + len(dictionary)]
        if _identity(chunk_lookup):
            # the dictionary is the categories' start (indices are in its bounds: Arrow's
            # Parquet decoder refuses others)
            codes[at : at + len(chunk)] = indices
        else:
            part = chunk_lookup[indices]
            if col.fixed_categories and len(part) and part.min() < 0:  # a value outside the list
                row = int(np.argmax(part < 0))
                raise TraceValidationError(
                    f"{dictionary[indices[row]].as_py()!r} is not one of "
                    f"{list(col.fixed_categories)}", row=first_row + at + row, column=col.name)
            codes[at : at + len(chunk)] = part
        at += len(chunk)
        start += len(dictionary)
    if not col.fixed_categories:
        present = _used(codes, len(categories))
        if not present.all():  # a writer's dictionary held values no row uses: drop them
            codes, categories = _drop_unused(codes, categories, present)
    return pd.Categorical.from_codes(codes, dtype=_dtype(categories), validate=False)


def _pool_array(rows: int, dtype: np.dtype) -> np.ndarray:
    """An uninitialised writeable array from READ_POOL rather than numpy's allocator.

    Measured while reads used Arrow's default pool (mimalloc): that pool reused at once the
    memory of the Arrow columns converted before (their dictionary indices, 4 bytes a row),
    where numpy's allocator mapped fresh memory in for each column wherever memory had gone
    back to the kernel since the last read (a process that read other formats in between:
    ~3,800 page faults building the frame of a million rows instead of ~950, ~6 ms of the
    calling thread's ~33). READ_POOL is the C library's allocator, as numpy's is: measured
    against `np.empty` since (2026-12-07, fresh processes and repeated reads), the same
    within the noise."""
    if not rows:
        return np.empty(0, dtype)
    return np.frombuffer(pa.allocate_buffer(rows * dtype.itemsize, memory_pool=READ_POOL), dtype)


def _dtype(categories: pa.Array) -> pd.CategoricalDtype:
    """The categories (distinct and sorted by construction) as a pandas dtype. The public
    constructor checks them distinct again (~6 ms for the ~80k pipeline ids of a million-row
    trace); pandas' private fast path would skip that, not worth reaching into its internals."""
    return pd.CategoricalDtype(pd.Index(pd.array(categories, dtype="str")), ordered=False)


def _identity(lookup: np.ndarray) -> bool:
    return bool((lookup == np.arange(len(lookup))).all())


def _clean_dictionary(chunk: pa.Array) -> bool:
    return (pa.types.is_dictionary(chunk.type) and not chunk.null_count
            and not chunk.dictionary.null_count)


def _sorted_codes(values: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """The distinct values sorted, and each value's position among them.

    Sorted by UTF-8 bytes, which is Python's str order: as normalize() sorts them.
    """
    order = pc.array_sort_indices(values).to_numpy(zero_copy_only=False)
    ordered = values.take(pa.array(order))
    first = np.ones(len(order), dtype=bool)  # where a new value starts in sorted order
    if len(order) > 1:
        first[1:] = pc.not_equal(ordered[1:], ordered[:-1]).to_numpy(zero_copy_only=False)
    lookup = np.empty(len(order), dtype=np.int64)
    lookup[order] = np.cumsum(first) - 1
    return ordered.filter(pa.array(first)), lookup


USED_SLICE_ROWS = 16_384
"""Codes counted at a time while looking for the categories in use."""


def _used(codes: np.ndarray, n_categories: int) -> np.ndarray:
    """Which categories some row uses, counted a slice of rows at a time until all are seen.

    A few values (owners, models) all turn up in the first slice, so the rest of a million
    rows is not counted (counting them all cost ~2 ms per column); a column of many values
    (pipeline ids) is counted to the end, in slices of several rows per category.
    """
    present = np.zeros(n_categories, dtype=bool)
    step = max(USED_SLICE_ROWS, 8 * n_categories)  # a count per category costs as much as a row
    for start in range(0, len(codes), step):
        present |= np.bincount(codes[start : start + step], minlength=n_categories) > 0
        if present.all():
            break
    return present


def _drop_unused(codes: np.ndarray, categories: pa.Array,
                 present: np.ndarray) -> tuple[np.ndarray, pa.Array]:
    renumber = np.cumsum(present) - 1
    kept = categories.filter(pa.array(present))
    return renumber[codes].astype(code_dtype(len(kept))), kept


def _decoded(arr: pa.ChunkedArray) -> pa.ChunkedArray:
    return arr.cast(arr.type.value_type) if pa.types.is_dictionary(arr.type) else arr


def _strings(chunks: list[pa.Array], col: Column, first_row: int) -> pd.api.extensions.ExtensionArray:
    at = first_row
    parts = []
    for chunk in chunks:
        if pa.types.is_dictionary(chunk.type):
            chunk = chunk.dictionary_decode()
        _refuse_nulls(chunk, col, at)
        # pandas' "str" holds large_string: as the Parquet writer's task ids come, uncast
        parts.append(chunk if chunk.type == pa.large_string() else chunk.cast(pa.large_string()))
        at += len(chunk)
    return pd.array(pa.chunked_array(parts, type=pa.large_string()), dtype="str")


def arrow_column(chunks: list[pa.Array], col: Column, first_row: int) -> object:
    """One schema column's Arrow chunks in canonical form (numpy, Categorical or strings)."""
    if col.encoding is Encoding.NUMERIC:
        return _numeric(chunks, col, first_row)
    if col.encoding is Encoding.CATEGORY:
        return _categorical(chunks, col, first_row)
    return _strings(chunks, col, first_row)


def arrow_frame(columns: dict[str, list[pa.Array] | Callable[[], object]],
                first_row: int) -> pd.DataFrame:
    """A canonical frame from each schema column's Arrow chunks; errors name the row.

    A column may instead come as a function that returns it converted (by `arrow_column`,
    on another thread). Each column's chunks are taken out of `columns` as it is converted,
    so the Arrow memory of a column is freed once pandas has its copy: the peak is the frame
    plus one column. The arrays are the caller's to give away: a numeric column may become
    the frame's on Arrow's own buffer (see `_owned`), so nothing else may hold them.
    """
    data: dict[str, object] = {}
    for col in COLUMNS:
        chunks = columns.pop(col.name)
        data[col.name] = chunks() if callable(chunks) else arrow_column(chunks, col, first_row)
    return pd.DataFrame(data, copy=False)
