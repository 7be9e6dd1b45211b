"""`Trace`: a workload trace held as one canonical pandas DataFrame, plus `to_tasks`.

The frame is columnar (numpy arrays and Categoricals); nothing here builds a Python object
per row except `to_tasks`, which is a generator so a consumer holds one task at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from heddle.models.ids import AccountId, ModelId, OwnerId, Privacy, TaskId, TaskKind, Tier
from heddle.models.task import Task
from heddle.traces.schema import COLUMN_NAMES, empty_frame, normalize, validate

__all__ = ["Trace", "concat_traces", "from_tasks", "task_columns", "task_row", "to_tasks"]


@dataclass(slots=True, eq=False)
class Trace:
    """A workload trace: `df` has the schema columns (docs/traces.md), sorted by arrival.

    `meta` carries free-form provenance (source, attribution, generator parameters) and is
    written to the file header.
    """

    df: pd.DataFrame
    meta: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_frame(
        cls, df: pd.DataFrame, meta: Mapping[str, str] | None = None, *, check: bool = True
    ) -> Trace:
        """Canonicalize (and by default validate) any frame that has the schema columns."""
        canon = normalize(df)
        if check:
            validate(canon)
        return cls(canon, dict(meta or {}))

    @classmethod
    def empty(cls, meta: Mapping[str, str] | None = None) -> Trace:
        return cls(empty_frame(), dict(meta or {}))

    def __len__(self) -> int:
        return len(self.df)

    @property
    def duration_s(self) -> float:
        """Seconds from the trace start (0) to the last arrival; 0 for an empty trace."""
        return float(self.df["arrival_s"].iloc[-1]) if len(self.df) else 0.0

    def chunks(self, rows: int = 65_536) -> Iterator[Trace]:
        """Consecutive slices of at most `rows` rows (views of the same data, same meta)."""
        if rows <= 0:
            raise ValueError("rows must be > 0")
        for start in range(0, len(self.df), rows):
            yield Trace(self.df.iloc[start : start + rows].reset_index(drop=True), self.meta)

    def equals(self, other: Trace) -> bool:
        """Same rows, same values (NaN equal to NaN), same meta."""
        if self.meta != other.meta or len(self) != len(other):
            return False
        try:
            pd.testing.assert_frame_equal(self.df, other.df, check_exact=True)
        except AssertionError:
            return False
        return True

    def __repr__(self) -> str:
        return f"Trace({len(self)} rows, {self.duration_s:.0f} s)"


def concat_traces(traces: Iterable[Trace], meta: Mapping[str, str] | None = None) -> Trace:
    """Join traces end to end in arrival order (categories are unioned, not made object)."""
    parts = [t.df for t in traces]
    if not parts:
        return Trace.empty(meta)
    frame = pd.concat([p[list(COLUMN_NAMES)].astype(_object_cats(p)) for p in parts],
                      ignore_index=True)
    return Trace(normalize(frame), dict(meta or {}))


def _object_cats(df: pd.DataFrame) -> dict[str, str]:
    return {c: "object" for c in COLUMN_NAMES if isinstance(df[c].dtype, pd.CategoricalDtype)}


def _opt(value: str) -> str | None:
    return value if value else None


def to_tasks(trace: Trace) -> Iterator[Task]:
    """One `Task` per row, in arrival order. The deadline becomes absolute: arrival + relative.

    `depends_on` has no field on Task; consumers that honour pipelines read it from `trace.df`
    by task position (the i-th task is row i).
    """
    df = trace.df
    cols = {name: df[name].to_numpy(dtype=object) for name in
            ("kind", "model", "quant", "privacy", "owner", "tier", "account", "pipeline_id",
             "stage", "task_id")}
    arrival = df["arrival_s"].to_numpy()
    deadline = df["deadline_s"].to_numpy()
    prompt = df["prompt_tokens"].to_numpy()
    output = df["output_tokens"].to_numpy()
    cpu = df["cpu_seconds"].to_numpy()
    mem = df["memory_gb"].to_numpy()
    prio = df["priority"].to_numpy()
    kinds = {k.value: k for k in TaskKind}
    privacies = {p.value: p for p in Privacy}
    tiers = {t.value: t for t in Tier}
    for i in range(len(df)):
        rel = deadline[i]
        yield Task(
            id=TaskId(cols["task_id"][i]),
            kind=kinds[cols["kind"][i]],
            arrival_s=float(arrival[i]),
            model=ModelId(m) if (m := cols["model"][i]) else None,
            quant=_opt(cols["quant"][i]),
            prompt_tokens=int(prompt[i]),
            output_tokens=int(output[i]),
            cpu_seconds=float(cpu[i]),
            memory_gb=float(mem[i]),
            privacy=privacies[cols["privacy"][i]],
            owner=OwnerId(o) if (o := cols["owner"][i]) else None,
            deadline_s=None if np.isnan(rel) else float(arrival[i] + rel),
            priority=int(prio[i]),
            tier=tiers[t] if (t := cols["tier"][i]) else None,
            account=AccountId(a) if (a := cols["account"][i]) else None,
            pipeline_id=_opt(cols["pipeline_id"][i]),
            stage=_opt(cols["stage"][i]),
        )


def from_tasks(
    tasks: Iterable[Task], depends_on: Mapping[str, str] | None = None,
    meta: Mapping[str, str] | None = None,
) -> Trace:
    """The inverse of `to_tasks`: record tasks as a trace (deadlines become relative again).

    `depends_on` maps task id -> comma-separated stage names (Task has no such field).
    Rows are sorted by arrival (stable), so tasks may come in any order.
    """
    cols = task_columns(tasks, depends_on)
    if not cols["task_id"]:
        return Trace.empty(meta)
    return Trace.from_frame(pd.DataFrame(cols), meta)


def task_row(t: Task, depends_on: str = "") -> tuple:
    """One task's schema columns, in COLUMN_NAMES order (`depends_on`: comma-separated stage
    names). The live recorder builds its rows with it as tasks end."""
    return (
        t.arrival_s, TaskKind(t.kind).value, t.model or "", t.quant or "", t.prompt_tokens,
        t.output_tokens, t.cpu_seconds, t.memory_gb, Privacy(t.privacy).value, t.owner or "",
        np.nan if t.deadline_s is None else t.deadline_s - t.arrival_s,
        Tier(t.tier).value if t.tier is not None else "", t.account or "", t.priority,
        t.pipeline_id or "", t.stage or "", depends_on, t.id,
    )


def task_columns(tasks: Iterable[Task], depends_on: Mapping[str, str] | None = None) -> dict[str, list]:
    """The schema's columns of `tasks` as lists, in the order given (what `from_tasks` builds
    its frame from)."""
    deps = depends_on or {}
    rows = [task_row(t, deps.get(t.id, "")) for t in tasks]
    if not rows:
        return {name: [] for name in COLUMN_NAMES}
    return {name: list(values) for name, values in zip(COLUMN_NAMES, zip(*rows), strict=True)}
