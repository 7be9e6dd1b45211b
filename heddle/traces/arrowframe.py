"""Arrow columns (as read from Parquet) into a canonical trace frame, checking as they convert.

Numbers are cast to the schema's dtypes (a value that does not fit is an error), string
columns become Categoricals with sorted categories merged inside Arrow, and a null is ""
in a string column, NaN in `deadline_s` and an error anywhere else. Errors name the row,
counted from the `first_row` the caller gives.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from heddle.traces.chunks import code_dtype
from heddle.traces.errors import TraceValidationError
from heddle.traces.schema import COLUMNS, Column, Encoding

__all__ = ["NULLABLE", "arrow_frame", "one_line"]

NULLABLE = frozenset({"deadline_s"})
"""Columns that may hold nulls: a missing deadline is null (NaN in memory)."""


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
                chunk = chunk.cast(target)
            except pa.ArrowInvalid as exc:
                raise TraceValidationError(f"expected values fitting {col.dtype}: "
                                           f"{one_line(exc)}", column=col.name) from None
        parts.append(chunk.to_numpy(zero_copy_only=False))
        at += len(chunk)
    if len(parts) == 1:
        # zero-copy arrays are read-only; consumers may write into a trace's columns
        return parts[0] if parts[0].flags.writeable else parts[0].copy()
    return np.concatenate(parts) if parts else np.empty(0, dtype=col.dtype)


def _categorical(chunks: list[pa.Array], col: Column, first_row: int) -> pd.Categorical:
    """A string column's chunks as one canonical Categorical, merged and sorted inside Arrow.

    A null is the schema's "none", "". Per-chunk dictionaries (one per row group) are unified
    and sorted in C: a Python loop over them would cost as much as reading the file.
    """
    if not sum(len(c) for c in chunks):
        return pd.Categorical.from_codes(
            np.empty(0, np.int8), categories=pd.Index(list(col.fixed_categories), dtype="str"))
    arr = pa.chunked_array(chunks)
    if not pa.types.is_dictionary(arr.type) or arr.null_count or any(
            c.dictionary.null_count for c in arr.chunks):
        arr = pc.dictionary_encode(pc.fill_null(_decoded(arr), ""))
    if arr.num_chunks > 1:
        arr = pa.table({"c": arr}).unify_dictionaries().column("c")
    combined = arr.combine_chunks()
    dictionary, indices = combined.dictionary, combined.indices.to_numpy(zero_copy_only=False)
    if col.fixed_categories:
        where = pc.index_in(dictionary, value_set=pa.array(col.fixed_categories))
        lookup = where.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        codes = lookup[indices] if len(lookup) else indices
        if len(codes) and codes.min() < 0:
            row = int(np.flatnonzero(codes < 0)[0])
            raise TraceValidationError(
                f"{dictionary[indices[row]].as_py()!r} is not one of {list(col.fixed_categories)}",
                row=first_row + row, column=col.name)
        categories = pa.array(col.fixed_categories, pa.string())
    elif _canonical(dictionary, indices):
        # as heddle writes a row group: its used values, sorted; nothing to redo
        codes, categories = indices, dictionary
    else:
        used = np.bincount(indices, minlength=len(dictionary)) > 0
        # sorted by UTF-8 bytes, which is Python's str order: as normalize() sorts them
        order = pc.array_sort_indices(dictionary).to_numpy(zero_copy_only=False)
        order = order[used[order]]
        rank = np.full(len(dictionary), -1, dtype=np.int64)
        rank[order] = np.arange(len(order))
        codes = rank[indices]
        categories = dictionary.take(pa.array(order, pa.int64()))
    dt = code_dtype(len(categories))
    return pd.Categorical.from_codes(codes.astype(dt, copy=False),
                                     categories=pd.Index(pd.array(categories, dtype="str")),
                                     validate=False)


def _canonical(dictionary: pa.Array, indices: np.ndarray) -> bool:
    """Whether the dictionary is strictly increasing (so sorted, no repeats) and all used."""
    if len(dictionary) > 1 and not pc.all(pc.less(dictionary[:-1], dictionary[1:])).as_py():
        return False
    return bool((np.bincount(indices, minlength=len(dictionary)) > 0).all())


def _decoded(arr: pa.ChunkedArray) -> pa.ChunkedArray:
    return arr.cast(arr.type.value_type) if pa.types.is_dictionary(arr.type) else arr


def _strings(chunks: list[pa.Array], col: Column, first_row: int) -> pd.api.extensions.ExtensionArray:
    at = first_row
    parts = []
    for chunk in chunks:
        if pa.types.is_dictionary(chunk.type):
            chunk = chunk.dictionary_decode()
        _refuse_nulls(chunk, col, at)
        parts.append(chunk if chunk.type == pa.string() else chunk.cast(pa.string()))
        at += len(chunk)
    return pd.array(pa.chunked_array(parts, type=pa.string()), dtype="str")


def arrow_frame(columns: dict[str, list[pa.Array]], first_row: int) -> pd.DataFrame:
    """A canonical frame from each schema column's Arrow chunks; errors name the row.

    Each column's chunks are taken out of `columns` as it is converted, so the Arrow memory
    of a column is freed once pandas has its copy: the peak is the frame plus one column.
    """
    data: dict[str, object] = {}
    for col in COLUMNS:
        chunks = columns.pop(col.name)
        if col.encoding is Encoding.NUMERIC:
            data[col.name] = _numeric(chunks, col, first_row)
        elif col.encoding is Encoding.CATEGORY:
            data[col.name] = _categorical(chunks, col, first_row)
        else:
            data[col.name] = _strings(chunks, col, first_row)
    return pd.DataFrame(data, copy=False)
