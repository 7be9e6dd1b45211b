"""What every trace file format shares: checking chunks on write, rebuilding categoricals on read.

A writer takes a trace in chunks that must come in arrival order and hold the schema columns
only (`ChunkChecker`). A reader gets each categorical column as per-chunk (codes, dictionary)
pairs and merges them into one canonical Categorical (`merge_categorical`); `validated` runs
the schema's rules and names the file and the row in the whole trace.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from heddle.traces.errors import TraceValidationError
from heddle.traces.schema import COLUMN_NAMES, Column, normalize, validate
from heddle.traces.trace import Trace

__all__ = ["ChunkChecker", "code_dtype", "merge_categorical", "used_categories", "validated"]

_SCHEMA_NAMES = frozenset(COLUMN_NAMES)


def code_dtype(n_values: int) -> np.dtype:
    """The smallest signed integer dtype that numbers `n_values` categories."""
    for dt in (np.int8, np.int16, np.int32):
        if n_values <= np.iinfo(dt).max:
            return np.dtype(dt)
    return np.dtype(np.int64)


def used_categories(cat: pd.Categorical) -> tuple[np.ndarray, list[str]]:
    """Codes renumbered over only the categories this chunk uses, and those categories.

    A slice of a big trace keeps the whole trace's categories (say 100k pipeline ids);
    writing them all with every chunk would make files and reads grow with the square.
    """
    codes = cat.codes
    if not len(codes):
        return codes, []
    present = np.bincount(codes, minlength=len(cat.categories)) > 0
    if present.all():
        return codes, [str(v) for v in cat.categories]
    used = np.flatnonzero(present)
    renumber = np.full(len(present), -1, dtype=np.int64)
    renumber[used] = np.arange(len(used))
    return renumber[codes], [str(v) for v in np.asarray(cat.categories)[used]]


def merge_categorical(
    parts: list[tuple[np.ndarray, list[str]]], col: Column, *, first_row: int = 0
) -> pd.Categorical:
    """Merge per-chunk (codes, dictionary) pairs into one Categorical with canonical categories.

    A value outside a fixed-category column's list is an error naming its row (counted from
    `first_row`); unused categories are dropped, as `normalize` would.
    """
    if col.fixed_categories:
        cats = list(col.fixed_categories)
    else:
        cats = sorted({v for _, d in parts for v in d})
    pos = {v: i for i, v in enumerate(cats)}
    dt = code_dtype(len(cats))
    out = np.empty(sum(len(c) for c, _ in parts), dtype=dt)
    at = 0
    for codes, dictionary in parts:
        if len(codes) and (codes.min() < 0 or codes.max() >= len(dictionary)):
            raise TraceValidationError("dictionary code out of range", column=col.name)
        lookup = np.array([pos.get(v, -1) for v in dictionary], dtype=np.int64)
        mapped = lookup[codes] if len(lookup) else codes
        if len(mapped) and mapped.min() < 0:  # only a fixed-category column can get here
            row = int(np.flatnonzero(mapped < 0)[0])
            raise TraceValidationError(f"{dictionary[codes[row]]!r} is not one of {cats}",
                                       row=first_row + at + row, column=col.name)
        out[at : at + len(codes)] = mapped
        at += len(codes)
    cat = pd.Categorical.from_codes(out, categories=pd.Index(cats, dtype="str"), validate=False)
    if not col.fixed_categories and len(cats) and not (
            np.bincount(out, minlength=len(cats)) > 0).all():
        cat = cat.remove_unused_categories()
    return cat


def validated(trace: Trace, path: Path, *, first_row: int = 0, whole: bool = True,
              repeated: Callable[[], np.ndarray] | None = None,
              breached_dependency: Callable[[], TraceValidationError | None] | None = None,
              ) -> Trace:
    """`trace` after the schema's rules; a breach names `path` and the row in the whole file.

    A chunk that is not the `whole` trace skips the dependency rule: a pipeline may straddle
    two chunks. `repeated`, `breached_dependency`: the unique-id and dependency rules worked
    out elsewhere (see `validate`).
    """
    try:
        validate(trace.df, dependencies=whole, repeated=repeated,
                 breached_dependency=breached_dependency)
    except TraceValidationError as exc:
        row = None if exc.row is None else first_row + exc.row
        raise TraceValidationError(exc.reason, path=path, row=row, column=exc.column) from None
    return trace


@dataclass(slots=True)
class ChunkChecker:
    """A writer's guard: chunks hold the schema columns only and come in arrival order."""

    path: Path
    rows: int = 0
    last_arrival_s: float = 0.0

    def check(self, chunk: Trace | pd.DataFrame) -> pd.DataFrame:
        """The chunk as a canonical frame, or TraceValidationError naming what is wrong."""
        df = chunk.df if isinstance(chunk, Trace) else normalize(chunk)
        extra = [c for c in df.columns if c not in _SCHEMA_NAMES]
        if extra:
            # refuse rather than drop them silently
            raise TraceValidationError(
                f"a trace file holds the schema columns only; drop {extra} before writing",
                path=self.path, column=extra[0],
            )
        if not len(df):
            return df
        first = float(df["arrival_s"].iloc[0])
        if first < self.last_arrival_s:
            raise TraceValidationError(
                f"chunk starts at {first} s, before the previous chunk's last arrival "
                f"{self.last_arrival_s} s: chunks must come in arrival order",
                path=self.path, row=self.rows, column="arrival_s",
            )
        self.last_arrival_s = float(df["arrival_s"].iloc[-1])
        self.rows += len(df)
        return df
