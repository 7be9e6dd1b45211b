"""The workload as the twin sees it: columnar arrays plus the pipeline dependency graph.

A trace (or a list of `Task`s) becomes one `Workload`: numpy columns sorted by arrival, string
columns interned, and for pipeline stages the number of stages each one waits for and the
stages it releases. `Task` objects are built one at a time when a task is released, so a
million-row trace never exists as a million Python objects.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from heddle.models import AccountId, ModelId, OwnerId, Privacy, Task, TaskKind, Tier
from heddle.sim.errors import WorkloadError

__all__ = ["PRIVACY_CODES", "TRACE_COLUMNS", "TaskRow", "Workload", "as_workload"]


class TaskRow(NamedTuple):
    """One row as `Task` field values, in `Task` field order (`Task(*row)` is the task; its
    `depends_on` is not a row field: the twin hands dependencies to the scheduling core)."""

    id: str
    kind: TaskKind
    arrival_s: float
    model: ModelId | None
    quant: str | None
    prompt_tokens: int
    output_tokens: int
    cpu_seconds: float
    memory_gb: float
    privacy: Privacy
    owner: OwnerId | None
    deadline_s: float | None
    priority: int
    tier: Tier | None
    account: AccountId | None
    pipeline_id: str | None
    stage: str | None

TRACE_COLUMNS: tuple[str, ...] = (
    "arrival_s", "kind", "model", "quant", "prompt_tokens", "output_tokens", "cpu_seconds",
    "memory_gb", "privacy", "owner", "deadline_s", "tier", "account", "priority",
    "pipeline_id", "stage", "depends_on", "task_id",
)
"""The trace schema (ARCHITECTURE / common brief, traces contract)."""

PRIVACY_CODES: dict[str, int] = {"public": 0, "sensitive": 1, "personal": 2}
_PRIVACY_BY_CODE = (Privacy.PUBLIC, Privacy.SENSITIVE, Privacy.PERSONAL)
_KIND_CODES = {"llm": 0, "processor": 1}
_KIND_BY_CODE = (TaskKind.LLM, TaskKind.PROCESSOR)
_CHUNK_ROWS = 65536
"""Rows converted to Python values at a time when building Tasks (memory vs speed)."""
_DENSE_ROWS = 1024
"""Rows of one chunk converted alone before `Workload.row` converts the whole chunk (~110 ms):
a row alone costs ~6 µs, a row in a chunk ~1.7 µs, so a chunk pays only when a good part of
its rows are used (the reference twin reads every row; the express twin a few per thousand)."""
_TIERS = {"": None, "local": Tier.LOCAL, "standard": Tier.STANDARD, "frontier": Tier.FRONTIER}


def _lookup(table, codes: np.ndarray) -> list:
    """`[table[c] for c in codes]` in one numpy gather (the values stay the same objects)."""
    if len(table) == 0:  # no codes can point into an empty table (an empty column)
        return [None] * len(codes)
    objects = np.empty(len(table), dtype=object)
    objects[:] = list(table)
    return objects[codes].tolist()


def _ranked(codes: np.ndarray, names: list[str]) -> tuple[np.ndarray, list[str]]:
    """Codes into `names` (distinct strings, any order) recoded into `sorted(names)`."""
    table = sorted(names)
    rank = {name: k for k, name in enumerate(table)}
    return np.array([rank[name] for name in names], dtype=np.int32)[codes], table


def _text(df: pd.DataFrame, column: str, default: str = "") -> tuple[np.ndarray, list[str]]:
    """A text column as (int32 code per row, its distinct strings in sorted order), exactly as
    `pd.Categorical(values.fillna("").astype(str))` codes it (missing values read as "",
    anything else as `str(value)`); `default` on every row when the trace lacks the column."""
    interned = _interned(df, column, default)
    if interned is not None:
        return interned
    codes, uniques = pd.factorize(df[column].fillna("").astype(str))  # row by row, as pandas does
    return _ranked(codes, uniques.tolist())


def _interned(df: pd.DataFrame, column: str, default: str) -> tuple[np.ndarray, list[str]] | None:
    """`_text` computed from the distinct values, not row by row. None when a value is neither
    a plain `str` nor missing (a number, a str subclass, a missing categorical value): `_text`
    then converts row by row. Most columns hold one repeated value, which `list.count` confirms
    faster than a hash pass (equal strings are usually the same object)."""
    if column not in df.columns:
        return np.zeros(len(df), dtype=np.int32), [default] if len(df) else []
    values = df[column]
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy()
        names = values.cat.categories.tolist()
        if (codes < 0).any() or any(type(c) is not str for c in names):
            return None  # fillna("") refuses a missing value unless "" is a category
        used = np.flatnonzero(np.bincount(codes, minlength=len(names)))  # unused ones drop out
        keep = np.zeros(len(names), dtype=np.int64)
        keep[used] = np.arange(len(used))
        return _ranked(keep[codes], [names[k] for k in used.tolist()])
    array = values.to_numpy()
    if array.dtype != object:
        return None
    items = array.tolist()
    try:
        if items and type(items[0]) is str and items.count(items[0]) == len(items):
            return np.zeros(len(items), dtype=np.int32), [items[0]]
    except TypeError:  # pd.NA == "x" is NA, which has no truth value: the general path below
        pass
    codes, uniques = pd.factorize(array)  # missing values (None, NaN, pd.NA) get code -1
    names = uniques.tolist()
    if any(type(u) is not str for u in names):
        return None
    if (codes < 0).any():  # missing reads as "", which may be there already
        if "" not in names:
            names.append("")
        codes = np.where(codes < 0, names.index(""), codes)
    return _ranked(codes, names)


def _row_text(df: pd.DataFrame, column: str) -> np.ndarray:
    """`df[column].fillna("").astype(str)` as an object array, gathered from `_text`."""
    codes, names = _text(df, column)
    return np.array(names, dtype=object)[codes]


def _numbers(df: pd.DataFrame, column: str, dtype: type, default: float) -> np.ndarray:
    """A numeric column as `dtype`, or `default` on every row when the trace lacks it."""
    if column in df.columns:
        return df[column].to_numpy(dtype=dtype)
    return np.full(len(df), default, dtype=dtype)


@dataclass(slots=True)
class Workload:
    """Columnar workload, sorted by arrival. Row index = the twin's task index."""

    n: int
    task_id: list[str]
    arrival_s: np.ndarray  # float64, seconds from trace start
    kind: np.ndarray  # int8: 0 llm, 1 processor
    model_code: np.ndarray  # int32 into models
    models: list[str]
    quant_code: np.ndarray
    quants: list[str]
    prompt_tokens: np.ndarray  # int64
    output_tokens: np.ndarray
    cpu_seconds: np.ndarray  # float64
    memory_gb: np.ndarray
    privacy: np.ndarray  # int8, PRIVACY_CODES
    owner_code: np.ndarray
    owners: list[str]
    deadline_rel_s: np.ndarray  # float64, NaN = none
    tier_code: np.ndarray
    tiers: list[str]
    account_code: np.ndarray
    accounts: list[str]
    priority: np.ndarray  # int64
    pipeline_code: np.ndarray
    pipelines: list[str]
    stage: list[str]
    deps_left: np.ndarray  # int32: unfinished dependencies at start
    dependents: dict[int, list[int]] = field(default_factory=dict)

    _chunk_start: int = -1
    _chunk: list[tuple] = field(default_factory=list)
    _alone_chunk: int = -1  # the chunk whose rows `row` has been converting alone ...
    _alone_count: int = 0  # ... and how many
    _tables: tuple | None = None  # per-code Python values, for `row_alone`

    def _load_chunk(self, i: int) -> None:
        """Python rows for a slice around `i`: list indexing beats numpy scalar access ~10x,
        and a slice (not the whole trace) keeps memory flat on million-row traces."""
        lo = (i // _CHUNK_ROWS) * _CHUNK_ROWS
        self._chunk = self._rows(lo, min(lo + _CHUNK_ROWS, self.n))
        self._chunk_start = lo

    def _rows(self, lo: int, hi: int) -> list[TaskRow]:
        """Rows lo..hi-1 as `TaskRow`s."""
        sl = slice(lo, hi)
        kind = self.kind[sl]
        llm = kind == 0
        arrival = self.arrival_s[sl]
        deadline = (arrival + self.deadline_rel_s[sl]).astype(object)  # Python floats
        deadline[np.isnan(self.deadline_rel_s[sl])] = None
        return list(map(TaskRow._make, zip(
            self.task_id[sl],
            _lookup(_KIND_BY_CODE, kind),
            arrival.tolist(),
            _lookup([None] + [ModelId(m) if m else None for m in self.models],
                    np.where(llm, self.model_code[sl] + 1, 0)),
            _lookup([None] + [q or None for q in self.quants], np.where(llm, self.quant_code[sl] + 1, 0)),
            self.prompt_tokens[sl].tolist(),
            self.output_tokens[sl].tolist(),
            self.cpu_seconds[sl].tolist(),
            self.memory_gb[sl].tolist(),
            _lookup(_PRIVACY_BY_CODE, self.privacy[sl]),
            _lookup([OwnerId(o) if o else None for o in self.owners], self.owner_code[sl]),
            deadline.tolist(),
            self.priority[sl].tolist(),
            _lookup([_TIERS.get(t) for t in self.tiers], self.tier_code[sl]),
            _lookup([AccountId(a) if a else None for a in self.accounts], self.account_code[sl]),
            _lookup([p or None for p in self.pipelines], self.pipeline_code[sl]),
            [st or None for st in self.stage[sl]],
        )))

    def row(self, i: int) -> TaskRow:
        """Row `i` as a `TaskRow` (`Task(*row)` is the task). Rows are
        converted alone until `_DENSE_ROWS` rows of one chunk have been asked for, then that
        chunk at once; a row behind the current chunk (a pipeline stage released late) is
        converted alone, so the chunk never moves backwards."""
        k = i - self._chunk_start
        if self._chunk_start < 0 or not 0 <= k < len(self._chunk):
            if self._chunk_start >= 0 and i < self._chunk_start:
                return self.row_alone(i)
            chunk = i // _CHUNK_ROWS
            if chunk != self._alone_chunk:
                self._alone_chunk, self._alone_count = chunk, 0
            self._alone_count += 1
            if self._alone_count <= _DENSE_ROWS:
                return self.row_alone(i)
            self._load_chunk(i)
            k = i - self._chunk_start
        return self._chunk[k]

    def row_alone(self, i: int) -> TaskRow:
        """Row `i` like `row(i)`, converted alone (no chunk): the same values, read one
        scalar at a time."""
        tables = self._tables
        if tables is None:
            tables = self._tables = (
                [ModelId(m) if m else None for m in self.models], [q or None for q in self.quants],
                [OwnerId(o) if o else None for o in self.owners], [_TIERS.get(t) for t in self.tiers],
                [AccountId(a) if a else None for a in self.accounts], [p or None for p in self.pipelines])
        models, quants, owners, tiers, accounts, pipelines = tables
        kind = int(self.kind[i])
        llm = kind == 0
        rel = self.deadline_rel_s[i]
        return TaskRow(
            self.task_id[i], _KIND_BY_CODE[kind], float(self.arrival_s[i]),
            models[self.model_code[i]] if llm else None, quants[self.quant_code[i]] if llm else None,
            int(self.prompt_tokens[i]), int(self.output_tokens[i]),
            float(self.cpu_seconds[i]), float(self.memory_gb[i]),
            _PRIVACY_BY_CODE[self.privacy[i]], owners[self.owner_code[i]],
            None if math.isnan(rel) else float(self.arrival_s[i] + rel),
            int(self.priority[i]), tiers[self.tier_code[i]], accounts[self.account_code[i]],
            pipelines[self.pipeline_code[i]], self.stage[i] or None,
        )

    def depends_on(self) -> dict[int, list[int]]:
        """Row -> the rows it waits for (only rows that wait for some)."""
        out: dict[int, list[int]] = {}
        for j, dependents in self.dependents.items():
            for i in dependents:
                out.setdefault(i, []).append(j)
        return out

    def make_task(self, i: int) -> Task:
        """Build the `Task` for row `i` (absolute deadline = arrival + relative deadline)."""
        return Task(*self.row(i))


def _tasks_frame(tasks: Iterable[Task]) -> pd.DataFrame:
    rows = []
    for t in tasks:
        rows.append({
            "arrival_s": t.arrival_s, "kind": t.kind.value, "model": t.model or "",
            "quant": t.quant or "", "prompt_tokens": t.prompt_tokens,
            "output_tokens": t.output_tokens, "cpu_seconds": t.cpu_seconds,
            "memory_gb": t.memory_gb, "privacy": t.privacy.value, "owner": t.owner or "",
            "deadline_s": np.nan if t.deadline_s is None else t.deadline_s - t.arrival_s,
            "tier": t.tier.value if t.tier else "", "account": t.account or "",
            "priority": t.priority, "pipeline_id": t.pipeline_id or "", "stage": t.stage or "",
            "depends_on": ",".join(t.depends_on), "task_id": t.id,
        })
    return pd.DataFrame(rows, columns=list(TRACE_COLUMNS))


def _frame_of(source: Any) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        return source
    if hasattr(source, "df") and isinstance(source.df, pd.DataFrame):  # heddle.traces.Trace
        return source.df
    if isinstance(source, (str, Path)):
        from heddle.traces import read_trace  # the traces package owns the file format

        return read_trace(Path(source)).df
    return _tasks_frame(source)


def _codes(df: pd.DataFrame, column: str, table: dict[str, int], ids: list[str], default: str = "") -> np.ndarray:
    """A text column as codes into `table`; a value not in it is an error naming the task."""
    text_code, names = _text(df, column, default)
    codes = np.array([table.get(name, -1) for name in names], dtype=np.int16)[text_code]
    bad = codes < 0
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise WorkloadError(
            f"task {ids[i]!r}: field {column!r} is {names[text_code[i]]!r}, expected one of "
            f"{sorted(table)}"
        )
    return codes.astype(np.int8)


def _dependencies(pipes: np.ndarray, deps: np.ndarray, stages: np.ndarray,
                  ids: list[str]) -> tuple[np.ndarray, dict[int, list[int]]]:
    """Count each stage's dependencies and list who each stage releases; reject cycles. The
    pipeline_id, depends_on and stage columns come as per-row strings ("" for none)."""
    n = len(ids)
    deps_left = np.zeros(n, dtype=np.int32)
    dependents: dict[int, list[int]] = {}
    rows = np.flatnonzero(pipes != "")
    if len(rows) == 0:
        return deps_left, dependents
    index: dict[tuple[str, str], int] = {}
    for i in rows.tolist():
        key = (pipes[i], stages[i])
        if key in index:
            raise WorkloadError(f"task {ids[i]!r}: stage {stages[i]!r} appears twice in pipeline {pipes[i]!r}")
        index[key] = i
    for i in np.flatnonzero(deps != "").tolist():
        if not pipes[i]:
            raise WorkloadError(f"task {ids[i]!r}: field 'depends_on' is set but 'pipeline_id' is empty")
        for name in deps[i].split(","):
            name = name.strip()
            if not name:
                continue
            j = index.get((pipes[i], name))
            if j is None:
                raise WorkloadError(
                    f"task {ids[i]!r}: field 'depends_on' names stage {name!r}, which pipeline "
                    f"{pipes[i]!r} does not have"
                )
            deps_left[i] += 1
            dependents.setdefault(j, []).append(i)
    # Kahn's algorithm: every stage must become releasable, or the pipeline has a cycle.
    left = deps_left.copy()
    ready = deque(i for i in rows.tolist() if left[i] == 0)
    seen = 0
    while ready:
        j = ready.popleft()
        seen += 1
        for k in dependents.get(j, ()):
            left[k] -= 1
            if left[k] == 0:
                ready.append(k)
    if seen < len(rows):
        stuck = [f"{pipes[i]}/{stages[i]}" for i in rows.tolist() if left[i] > 0][:5]
        raise WorkloadError(f"pipeline dependency cycle among stages {stuck}")
    return deps_left, dependents


def as_workload(source: Any) -> Workload:
    """A `Workload` from a Trace, a trace DataFrame, a trace path, or an iterable of Tasks."""
    if isinstance(source, Workload):
        return source
    df = _frame_of(source)
    missing = [c for c in ("arrival_s", "kind", "task_id") if c not in df.columns]
    if missing:
        raise WorkloadError(f"trace is missing column(s) {missing}; expected {list(TRACE_COLUMNS)}")
    # Columns the trace lacks read as their defaults (model "", privacy "public", deadline
    # NaN, ...) in `_text`, `_codes` and `_numbers`: never added to the DataFrame.
    arrival = df["arrival_s"].to_numpy(dtype=np.float64)
    if np.isnan(arrival).any() or (arrival < 0).any():
        i = int(np.flatnonzero(np.isnan(arrival) | (arrival < 0))[0])
        raise WorkloadError(f"task {df['task_id'].iloc[i]!r}: field 'arrival_s' must be >= 0")
    if len(arrival) > 1 and (np.diff(arrival) < 0).any():
        df = df.iloc[np.argsort(arrival, kind="stable")]
        arrival = df["arrival_s"].to_numpy(dtype=np.float64)
    ids = df["task_id"].astype(str).tolist()
    if len(set(ids)) != len(ids):
        dup = pd.Series(ids)[pd.Series(ids).duplicated()].iloc[0]
        raise WorkloadError(f"task id {dup!r} appears more than once (field 'task_id')")
    kind = _codes(df, "kind", _KIND_CODES, ids)
    privacy = _codes(df, "privacy", PRIVACY_CODES, ids, default="public")
    tier_codes, tiers = _text(df, "tier")
    for t in tiers:
        if t not in _TIERS:
            raise WorkloadError(f"field 'tier' has value {t!r}; expected one of {sorted(_TIERS)}")
    pipeline_code, pipelines = _text(df, "pipeline_id")
    stages = _row_text(df, "stage")
    if any(pipelines):
        deps_left, dependents = _dependencies(np.array(pipelines, dtype=object)[pipeline_code],
                                              _row_text(df, "depends_on"), stages, ids)
    else:  # no row belongs to a pipeline: no stage waits for another
        deps_left, dependents = np.zeros(len(df), dtype=np.int32), {}
    model_code, models = _text(df, "model")
    quant_code, quants = _text(df, "quant")
    owner_code, owners = _text(df, "owner")
    account_code, accounts = _text(df, "account")
    return Workload(
        n=len(df), task_id=ids, arrival_s=arrival, kind=kind,
        model_code=model_code, models=models, quant_code=quant_code, quants=quants,
        prompt_tokens=_numbers(df, "prompt_tokens", np.int64, 0),
        output_tokens=_numbers(df, "output_tokens", np.int64, 0),
        cpu_seconds=_numbers(df, "cpu_seconds", np.float64, 0.0),
        memory_gb=_numbers(df, "memory_gb", np.float64, 0.0),
        privacy=privacy, owner_code=owner_code, owners=owners,
        deadline_rel_s=_numbers(df, "deadline_s", np.float64, np.nan),
        tier_code=tier_codes, tiers=tiers, account_code=account_code, accounts=accounts,
        priority=_numbers(df, "priority", np.int64, 0),
        pipeline_code=pipeline_code, pipelines=pipelines,
        stage=stages.tolist(),
        deps_left=deps_left, dependents=dependents,
    )
