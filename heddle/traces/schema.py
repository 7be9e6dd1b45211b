"""The trace schema: column names, in-memory dtypes, categorical encodings and validation.

One row is one request or one pipeline stage. `normalize()` turns any DataFrame that has the
columns into the canonical in-memory form (fixed dtypes, low-cardinality strings as pandas
Categoricals with sorted categories), so two traces with the same content compare equal.
`validate()` checks a canonical frame and raises `TraceValidationError` naming the first bad
row and column.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.arrays import ArrowStringArray

from heddle.traces.distinct import KeyGroups, keys_distinct
from heddle.traces.errors import TraceValidationError

__all__ = [
    "COLUMNS",
    "COLUMN_NAMES",
    "KINDS",
    "PRIVACIES",
    "TIERS",
    "Column",
    "Encoding",
    "dependency_breach",
    "empty_frame",
    "normalize",
    "repeated_ids",
    "validate",
]


class Encoding(str, Enum):
    """How a column is held in memory and on disk."""

    NUMERIC = "numeric"  # a numpy array of `dtype`
    CATEGORY = "category"  # a pandas Categorical of strings: few distinct values
    STRING = "string"  # plain strings: (nearly) unique values such as task ids


@dataclass(frozen=True, slots=True)
class Column:
    """One schema column."""

    name: str
    dtype: str  # numpy dtype name for NUMERIC; "str" otherwise
    encoding: Encoding
    doc: str
    fixed_categories: tuple[str, ...] = ()  # the only values allowed ("" included if allowed)


KINDS: tuple[str, ...] = ("llm", "processor")
"""Task kinds: `heddle.models.TaskKind` values."""
PRIVACIES: tuple[str, ...] = ("public", "sensitive", "personal")
"""Privacy tags: `heddle.models.Privacy` values, least to most restricted."""
TIERS: tuple[str, ...] = ("", "local", "standard", "frontier")
"""Tier preferences: "" (none) then `heddle.models.Tier` values."""

_N, _C, _S = Encoding.NUMERIC, Encoding.CATEGORY, Encoding.STRING

COLUMNS: tuple[Column, ...] = (
    Column("arrival_s", "float64", _N, "seconds from trace start; rows sorted by it"),
    Column("kind", "str", _C, '"llm" | "processor"', KINDS),
    Column("model", "str", _C, 'catalog model id ("" for processor steps)'),
    Column("quant", "str", _C, 'quantization such as "q4_k_m" ("" = default)'),
    Column("prompt_tokens", "int32", _N, "LLM input tokens"),
    Column("output_tokens", "int32", _N, "LLM generated tokens"),
    Column("cpu_seconds", "float32", _N, "processor work, seconds on one reference core"),
    Column("memory_gb", "float32", _N, "processor working memory"),
    Column("privacy", "str", _C, '"public" | "sensitive" | "personal"', PRIVACIES),
    Column("owner", "str", _C, "owner id (personal work runs only on the owner's nodes)"),
    Column("deadline_s", "float64", _N, "deadline RELATIVE to arrival (NaN = none)"),
    Column("tier", "str", _C, 'tier preference ("" = none)', TIERS),
    Column("account", "str", _C, "budget account charged for cloud spend"),
    Column("priority", "int8", _N, "higher first"),
    Column("pipeline_id", "str", _C, 'pipeline or council id ("" = not in one)'),
    Column("stage", "str", _C, "stage name inside the pipeline"),
    Column("depends_on", "str", _C, "comma-separated stage names of the same pipeline_id"),
    Column("task_id", "str", _S, "unique task id"),
)
"""The column contract (docs/traces.md). Order is the on-disk order."""

COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
_BY_NAME = {c.name: c for c in COLUMNS}


def _categorical(values: object, column: Column) -> pd.Categorical:
    """A Categorical with canonical categories: the fixed list, else the sorted distinct values."""
    if isinstance(values, pd.Series):
        values = values.array
    if isinstance(values, pd.Categorical) and not column.fixed_categories:
        cat = values.remove_unused_categories()
        cats = cat.categories.astype(str)
        if cats.is_monotonic_increasing and cats.equals(cat.categories):
            return cat
        return cat.rename_categories(cats).reorder_categories(pd.Index(sorted(cats), dtype="str"))
    if column.fixed_categories:
        cats = pd.Index(list(column.fixed_categories), dtype="str")
        return pd.Categorical(np.asarray(values, dtype=object), categories=cats)
    codes, uniques = pd.factorize(np.asarray(values, dtype=object), sort=False)
    # sort the (few) distinct values with Python's ordering so every path agrees
    names = [str(u) for u in uniques]
    order = sorted(range(len(names)), key=names.__getitem__)
    remap = np.empty(len(names), dtype=np.int64)
    remap[order] = np.arange(len(names))
    cats = pd.Index([names[i] for i in order], dtype="str")
    codes = remap[codes] if len(names) else codes
    dt = next(t for t in (np.int8, np.int16, np.int32, np.int64)
              if len(names) < np.iinfo(t).max)
    return pd.Categorical.from_codes(codes.astype(dt), categories=cats, validate=False)


def empty_frame() -> pd.DataFrame:
    """A canonical DataFrame with every column and no rows."""
    data: dict[str, object] = {}
    for col in COLUMNS:
        if col.encoding is Encoding.NUMERIC:
            data[col.name] = np.empty(0, dtype=col.dtype)
        elif col.encoding is Encoding.CATEGORY:
            data[col.name] = pd.Categorical(
                [], categories=pd.Index(list(col.fixed_categories), dtype="str"))
        else:
            data[col.name] = pd.Series([], dtype="str")
    return pd.DataFrame(data)


def normalize(df: pd.DataFrame, *, sort: bool = True) -> pd.DataFrame:
    """Return `df` in canonical form: schema columns in order, schema dtypes, sorted by arrival.

    Raises TraceValidationError if a column is missing or a value cannot take the column's
    dtype (the message names the row and column). Extra columns are kept after the schema
    columns. Missing strings become "" (the schema's "none"), except task_id.
    """
    missing = [c for c in COLUMN_NAMES if c not in df.columns]
    if missing:
        raise TraceValidationError(f"missing column(s): {', '.join(missing)}", column=missing[0])
    out: dict[str, object] = {}
    for col in COLUMNS:
        values = df[col.name]
        if col.encoding is Encoding.NUMERIC:
            out[col.name] = _numeric(values, col)
        elif col.encoding is Encoding.CATEGORY:
            out[col.name] = _category_column(values, col)
        else:
            arr = values.to_numpy(dtype=object)
            missing_mask = pd.isna(arr)
            if missing_mask.any():
                row = int(np.flatnonzero(missing_mask)[0])
                raise TraceValidationError("missing value", row=row, column=col.name)
            out[col.name] = arr if values.dtype == "str" else pd.array(arr, dtype="str")
    extra = [c for c in df.columns if c not in _BY_NAME]
    result = pd.DataFrame(out)
    for name in extra:
        result[name] = df[name].to_numpy()
    if sort and len(result) and not result["arrival_s"].is_monotonic_increasing:
        result = result.sort_values("arrival_s", kind="stable", ignore_index=True)
    return result


def _category_column(values: pd.Series, col: Column) -> pd.Categorical:
    if isinstance(values.dtype, pd.CategoricalDtype):
        cat = values.array
        if not col.fixed_categories:
            return _categorical(cat, col)
        if set(cat.categories) <= set(col.fixed_categories) and not cat.isna().any():
            return cat.set_categories(pd.Index(list(col.fixed_categories), dtype="str"))
    arr = values.to_numpy(dtype=object)
    missing = pd.isna(arr)
    if missing.any():
        arr = arr.copy()
        arr[missing] = ""
    if col.fixed_categories:
        bad_mask = ~np.asarray(pd.Index(arr).isin(pd.Index(col.fixed_categories)))
        if bad_mask.any():
            row = int(np.flatnonzero(bad_mask)[0])
            raise TraceValidationError(
                f"{arr[row]!r} is not one of {list(col.fixed_categories)}",
                row=row, column=col.name,
            )
    return _categorical(arr, col)


def _numeric(values: pd.Series, col: Column) -> np.ndarray:
    arr = values.to_numpy()
    if arr.dtype == np.dtype(col.dtype):
        return arr
    if col.dtype.startswith("int"):
        num = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        info = np.iinfo(col.dtype)
        bad = ~np.isfinite(num) | (num != np.round(num)) | (num < info.min) | (num > info.max)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise TraceValidationError(
                f"expected an integer fitting {col.dtype}, got {values.iloc[row]!r}",
                row=row, column=col.name,
            )
        return num.astype(col.dtype)
    num = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    bad = np.isnan(num) & values.notna().to_numpy() & (values.astype(str) != "nan").to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise TraceValidationError(
            f"expected a number, got {values.iloc[row]!r}", row=row, column=col.name
        )
    return num.astype(col.dtype)


def _first(mask: np.ndarray) -> int | None:
    """The first True row; a rule is usually kept, and `any` says so without listing rows."""
    return int(mask.argmax()) if mask.any() else None


def _empty_ids(ids: pd.Series) -> np.ndarray:
    """Rows with an empty id; Arrow-backed strings are measured without a Python object each."""
    if isinstance(ids.array, ArrowStringArray):
        return pc.equal(pc.binary_length(pa.array(ids.array)), 0).to_numpy(zero_copy_only=False)
    return ids.to_numpy(dtype=object) == ""


def repeated_ids(ids: pd.Series, keys: KeyGroups | None = None) -> np.ndarray:
    """The unique-id rule: rows whose id appeared before; one hash pass when (as usual) all
    ids are unique. `keys`: the ids' `grouped_keys`, if already known."""
    if isinstance(ids.array, ArrowStringArray):
        # integer keys settle the usual case; strings are compared only if two keys coincide
        values = pa.array(ids.array)
        unique = keys_distinct(values, keys) or len(pc.unique(values)) == len(ids)
    else:
        unique = pd.Index(ids.array).is_unique
    if unique:
        return np.zeros(len(ids), dtype=bool)
    return ids.duplicated().to_numpy()


def validate(df: pd.DataFrame, *, dependencies: bool = True,
             repeated: Callable[[], np.ndarray] | None = None,
             breached_dependency: Callable[[], TraceValidationError | None] | None = None,
             ) -> None:
    """Check the semantic rules of a canonical frame; raise on the first bad row.

    Rules: arrival finite, >= 0 and sorted; token counts and CPU work >= 0; deadlines > 0 or
    NaN; task ids unique and non-empty; an LLM row names a model; depends_on names stages of
    the same pipeline (unless `dependencies` is False: a chunk of a trace may hold only part
    of a pipeline). `repeated`, if given, returns `repeated_ids(df["task_id"])` worked out
    elsewhere: the Parquet reader does it on a second thread while this one checks the other
    rules, so it is asked for after them (a breach is still reported in the order above).
    `breached_dependency`, likewise, returns `dependency_breach(df)` worked out elsewhere.
    """
    arrival = df["arrival_s"].to_numpy()
    ids_repeated = repeated or (lambda: repeated_ids(df["task_id"]))
    checks: list[tuple[str, np.ndarray | Callable[[], np.ndarray], str]] = [
        ("arrival_s", ~np.isfinite(arrival) | (arrival < 0), "a finite time >= 0"),
        ("prompt_tokens", df["prompt_tokens"].to_numpy() < 0, "tokens >= 0"),
        ("output_tokens", df["output_tokens"].to_numpy() < 0, "tokens >= 0"),
        ("cpu_seconds", ~(df["cpu_seconds"].to_numpy() >= 0), "seconds >= 0"),
        ("memory_gb", ~(df["memory_gb"].to_numpy() >= 0), "GB >= 0"),
        ("deadline_s", df["deadline_s"].to_numpy() <= 0, "a deadline > 0 s, or none"),
        ("task_id", _empty_ids(df["task_id"]), "a non-empty task id"),
        ("task_id", ids_repeated, "a unique task id"),  # asked for last
        ("model", ((df["kind"] == "llm") & (df["model"] == "") & (df["tier"] == "")).to_numpy(), "a model id (or a tier)"),
    ]
    if len(arrival) > 1:
        # compared in place rather than through np.diff: no 8-byte temporary per row
        unsorted = np.zeros(len(arrival), dtype=bool)
        np.less(arrival[1:], arrival[:-1], out=unsorted[1:])
        checks.append(("arrival_s", unsorted, "rows sorted by arrival"))
    broken_dependency = None
    if dependencies and breached_dependency is None:
        broken_dependency = dependency_breach(df)
    for name, bad, expected in checks:
        row = _first(bad() if callable(bad) else bad)
        if row is not None:
            got = df[name].iloc[row]
            raise TraceValidationError(f"expected {expected}, got {got!r}", row=row, column=name)
    if dependencies and breached_dependency is not None:
        broken_dependency = breached_dependency()
    if broken_dependency is not None:
        raise broken_dependency


def dependency_breach(df: pd.DataFrame) -> TraceValidationError | None:
    """The dependency rule of `validate` on a canonical frame: the error for the first row
    that breaks it, or None."""
    try:
        _validate_dependencies(df)
    except TraceValidationError as exc:
        return exc
    return None


def _validate_dependencies(df: pd.DataFrame) -> None:
    """Every name in depends_on is a stage of the same pipeline (vectorized over codes).

    Each pipeline's stages are a row of bits, each depends_on value the bits of the stages it
    names; a row is good when its value's bits are all among its pipeline's. That looks at
    each row once, whatever the number of distinct values (grouping the rows by value first
    cost ~2x more).
    """
    dep = df["depends_on"].array
    pipe = df["pipeline_id"].array
    stage = df["stage"].array
    if not isinstance(dep, pd.Categorical):
        dep, pipe, stage = (pd.Categorical(np.asarray(a, dtype=object)) for a in (dep, pipe, stage))
    stage_pos = {name: i for i, name in enumerate(stage.categories)}
    unknown = len(stage_pos)  # the bit of a name that is no row's stage: never set
    # the bits of each value ("" names nothing); a last row of none for a missing value (code -1)
    need = np.zeros((len(dep.categories) + 1, unknown + 1), dtype=bool)
    for code, value in enumerate(dep.categories):
        if value:
            need[code, [stage_pos.get(name, unknown) for name in value.split(",")]] = True
    # each pipeline's stages; "" (not in a pipeline) and a missing pipeline (-1: the last
    # row) have none, so a dependency there always fails
    has = np.zeros((len(pipe.categories) + 1, unknown + 1), dtype=bool)
    for rows in _slices(len(pipe)):
        pairs = pipe.codes[rows].astype(np.intp) * has.shape[1]  # (pipeline, stage), flat
        pairs += stage.codes[rows]
        if (stage.codes[rows] < 0).any():
            pairs = pairs[stage.codes[rows] >= 0]
        has.reshape(-1)[pairs] = True  # a pipeline of -1 wraps to the last row, cleared below
    if len(pipe.categories) and pipe.categories[0] == "":  # sorted: "" can only come first
        has[0] = False
    has[-1] = False
    need_bits, has_bits = (_bit_words(a) for a in (need, has))
    row = None
    for rows in _slices(len(dep)):
        bad = np.zeros(rows.stop - rows.start, dtype=bool)
        for word in range(need_bits.shape[1]):
            bad |= (np.take(need_bits[:, word], dep.codes[rows])
                    & ~np.take(has_bits[:, word], pipe.codes[rows])) != 0
        if (row := _first(bad)) is not None:
            row += rows.start
            break
    if row is None:
        return
    have = has[pipe.codes[row]]
    name = next(n for n in dep[row].split(",") if not have[stage_pos.get(n, unknown)])
    raise TraceValidationError(
        f"depends on stage {name!r}, which pipeline {pipe[row]!r} does not have",
        row=row, column="depends_on",
    )


SLICE_ROWS = 65_536
"""Rows a vectorized check looks at at a time: its temporaries (a few arrays of 8-byte
values) stay in the CPU's cache instead of being fresh memory the kernel maps in for each
check; on a million rows that halved the dependency check's CPU time."""


def _slices(rows: int) -> Iterator[slice]:
    return (slice(start, min(start + SLICE_ROWS, rows)) for start in range(0, rows, SLICE_ROWS))


def _bit_words(flags: np.ndarray) -> np.ndarray:
    """Each row of booleans as little-endian 64-bit words (bit i is column i)."""
    packed = np.packbits(flags, axis=1, bitorder="little")
    padded = np.zeros((len(flags), -(-packed.shape[1] // 8) * 8), dtype=np.uint8)
    padded[:, : packed.shape[1]] = packed
    return padded.view("<u8")
