"""The control plane's recording: every task that ends is a row of a trace under the data dir.

A row holds the task as heddle's trace format has it (docs/traces.md: arrival, kind, model
and quant, tokens, cpu seconds, privacy, owner, account, deadline, pipeline and stage) and,
in the columns of OUTCOME_COLUMNS after them, what happened: target, placement, start, first
token and finish, status and reason, attempts, the CPU seconds the step used, its cost, and
the twin's shadow prediction. `heddle twin check` replays the first part and compares the
second; any trace reader reads the first part as it reads every trace.

Layout: `<data dir>/recorded/`, a directory of Parquet files that reads as one trace at any
moment. Every FLUSH_EVERY_S the rows ready are written as one part, `<UTC day>-p<n>.parquet`
(days rotate by name); every COMPACT_PARTS parts of a day become one `<day>-c<n>.parquet`.
Rows must stay sorted by arrival across files, and tasks end out of arrival order, so a row
waits until every task that arrived before it has ended (a long task holds back the rows
after it). A task still running when the control plane stopped and ending after its restart
goes to `recorded/late/` if rows after its arrival are already written. `arrival_s` counts
from ORIGIN_KEY in the files' meta: midnight UTC of the first recorded day.

On the per-task path a task that ends becomes a row: a tuple of plain values (a few
microseconds, and nothing of the task stays referenced). Turning rows into columns and
writing them happens off the event loop, in a thread, in pyarrow calls that hold the GIL
for well under a millisecond each (building a pandas frame there held it for ~0.05 ms a
row, which the event loop waited for: the tail of submit->start).

It also notes, every SPEED_EVERY_S, each node's running burn totals from its capacity reports
(`speeds_since`, `speed_profiles_since`): `heddle fleet export --since` writes each node's
core speed over the window a recording covers, and over time within it, as the node's own
burn steps measured it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from heddle.live.control.book import LiveTask
from heddle.live.control.export import measured_node
from heddle.live.control.shadow import Shadow
from heddle.models import Node
from heddle.traces.parquet import ARROW_SCHEMA
from heddle.traces.recorded import (
    LATE_DIR,
    ORIGIN_KEY,
    OUTCOME_COLUMNS,
    PART_NAME,
    file_meta,
    write_part,
)
from heddle.traces.schema import COLUMN_NAMES, COLUMNS, Encoding
from heddle.traces.trace import task_row

if TYPE_CHECKING:
    from heddle.live.control.plane import ControlPlane

__all__ = ["FLUSH_EVERY_S", "RECORDED_DIR", "Recorder"]

logger = logging.getLogger(__name__)

RECORDED_DIR = "recorded"
"""The recording's directory under the data dir."""
FLUSH_EVERY_S = 2.0
"""How often ready rows are written: a part every 2 s at most (a growing trace stays current
within seconds; a day holds at most 43,200 parts before compaction)."""
_ENDING = {"RejectTask": "rejected", "CancelTask": "cancelled"}
"""Commands that end a task other than by completing it (a FailTask ends it when not retryable)."""
COMPACT_PARTS = 32
"""Parts of one day merged into one file once there are this many."""
SPEED_EVERY_S = 1.0
"""How often each node's burn totals are noted: the resolution of its speed over time
(`speed_profiles_since`). A machine shared with other work runs seconds-long slow spells
that queue a busy node up; the twin replays them at this resolution (docs/fidelity.md)."""
PROFILE_POINTS = 1_000
"""Most entries of a node's speed over time in one export: a longer window's readings are
merged in runs of consecutive ones (2 h: one entry per ~7 s), so a fleet of ten nodes still
answers in well under the bus's 1 MB message."""
SPEED_SAMPLES = 86_400
"""Burn-total readings kept per node: a day of them at one per SPEED_EVERY_S (a reading is
kept only when the totals moved: an idle node adds none)."""
_ARRIVAL = COLUMN_NAMES.index("arrival_s")
_PIPELINE = COLUMN_NAMES.index("pipeline_id")
_CATEGORIES = frozenset(c.name for c in COLUMNS if c.encoding is Encoding.CATEGORY)
_TYPES: tuple[pa.DataType, ...] = (
    *(pa.string() if c.name in _CATEGORIES else ARROW_SCHEMA.field(c.name).type for c in COLUMNS),
    *(pa.string() if dtype == "str" else pa.from_numpy_dtype(np.dtype(dtype)) for _, dtype, _ in OUTCOME_COLUMNS),
)
"""Arrow type of each value of a row (category columns are dictionary-encoded after)."""
_NAMES = (*COLUMN_NAMES, *(name for name, _, _ in OUTCOME_COLUMNS))

Row = tuple
"""One ended task: its trace columns, then OUTCOME_COLUMNS (plain values, times relative to
the recording's origin)."""


def _day(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, UTC).strftime("%Y-%m-%d")


def _midnight(unix_s: float) -> float:
    d = datetime.fromtimestamp(unix_s, UTC)
    return d.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


class Recorder:
    """Records the tasks of one control plane; `observe` is its hook in `ControlPlane.record`."""

    def __init__(self, plane: ControlPlane, directory: Path, *, flush_every_s: float = FLUSH_EVERY_S,
                 clock: Callable[[], float] = time.time) -> None:
        self.plane = plane
        self.clock = clock  # Unix s: names each part by its UTC day
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.flush_every_s = flush_every_s
        self.shadow = Shadow()
        self.rows_written = 0
        self._placed: dict[str, tuple[float, str]] = {}  # task -> (placed at, node), last attempt
        self._released: dict[str, float] = {}  # task -> when it reached the scheduler
        self._ended: list[tuple[float, Row]] = []  # (arrival, Unix s; the row)
        self._open: dict[str, float] = {}  # task -> arrival, not yet ended
        self._newest: str | None = None  # newest task id already looked at
        self._nodes: dict[str, tuple[Node, float | None, Node]] = {}  # node -> (node, speed, measured)
        self._task: asyncio.Task | None = None
        self._writing = asyncio.Lock()  # one write at a time (the periodic one and the last)
        self._burn: dict[str, deque[tuple[float, int, float]]] = {}  # node -> (at, iterations, seconds)
        parts = sorted(p for p in self.directory.iterdir() if PART_NAME.match(p.name))
        self.origin_s = float(file_meta(parts[0]).get(ORIGIN_KEY, 0.0)) if parts else _midnight(clock())
        late = self.directory / LATE_DIR
        # one numbering for both directories: a late part must never take an existing name
        every = [*parts, *(p for p in late.iterdir() if PART_NAME.match(p.name))] if late.is_dir() else parts
        self._seq = max((int(PART_NAME.match(p.name)[3]) for p in every), default=0)
        self._max_written_s = self._last_arrival(parts[-1]) if parts else -math.inf

    @staticmethod
    def _last_arrival(path: Path) -> float:
        column = pq.read_table(path, columns=["arrival_s"])["arrival_s"]
        return float(column[-1].as_py()) if len(column) else -math.inf

    # -- the hooks (per event: cheap) ------------------------------------------------------------
    def released(self, key: str, now: float) -> None:
        """The task reached the scheduler (its submission is durable; the twin's clock for it
        starts here). The first time counts: a held task waited in the scheduler."""
        self._released.setdefault(key, now)

    def observe(self, key: str, command: str, payload: Mapping[str, Any], extra: Mapping[str, Any] | None) -> None:
        if command == "PlaceTask":
            self._on_placed(key, str(payload.get("target", "")), bool(extra and extra.get("offer")))
        elif command == "CompleteTask":
            self._on_ended(key, "completed", "", extra or {})
        elif command in _ENDING or (command == "FailTask" and not payload.get("retryable", False)):
            self._on_ended(key, _ENDING.get(command, "failed"), str(payload.get("reason", "")), extra or {})

    def _on_placed(self, key: str, node_id: str, cloud: bool = False) -> None:
        now = self.plane.now()
        self._placed[key] = (now, node_id)
        live, fleet = self.plane.tasks.get(key), self.plane.fleet
        known = fleet.nodes.get(node_id)  # type: ignore[call-overload]
        if live is None or known is None or cloud:  # a cloud call: the node only relays it
            return
        self.shadow.placed(key, live.task, self._measured(node_id, known), fleet.state.nodes.get(known.node.id),
                           now, len(known.running))

    def _measured(self, node_id: str, known: Any) -> Node:
        cached = self._nodes.get(node_id)
        speed = known.report.cpu.speed_relative
        if cached is None or cached[0] is not known.node or cached[1] != speed:
            cached = self._nodes[node_id] = (known.node, speed, measured_node(known.node, known.report))
        return cached[2]

    def _on_ended(self, key: str, status: str, reason: str, extra: Mapping[str, Any]) -> None:
        live = self.plane.tasks.get(key)
        if live is None:
            return
        placed_at, node = self._placed.pop(key, (math.nan, ""))
        node = str(extra.get("node") or node)
        timings = extra.get("timings") or {}
        prediction = self.shadow.prediction(key)
        released = self._released.pop(key, live.task.arrival_s)
        if status == "completed":
            result = extra.get("result")  # a burn step's says how long it burnt (worker_main.burn)
            burnt = live.spec is not None and live.spec.executor.kind == "burn" and isinstance(result, dict)
            inside = result.get("wall_s") if burnt else None
            self.shadow.completed(key, node, timings.get("started_at"), timings.get("finished_at"),
                                  float(inside) if isinstance(inside, int | float) else None)
        else:
            self.shadow.ended(key)
        self._ended.append((live.task.arrival_s, self.row(live, status, reason, node, released, placed_at,
                                                          timings, extra.get("result"), prediction)))

    def row(self, live: LiveTask, status: str, reason: str, target: str, released_at: float, placed_at: float,
            timings: Mapping[str, Any], result: Any, prediction: tuple[float, float, float] | None) -> Row:
        """The task's row: what it asked for (trace columns) and what happened (OUTCOME_COLUMNS)."""
        origin, nan = self.origin_s, math.nan

        def rel(unix_s: Any) -> float:
            return float(unix_s) - origin if unix_s is not None else nan

        t = live.task
        trace = list(task_row(t, ",".join(t.depends_on)))
        trace[_ARRIVAL] = t.arrival_s - origin
        if t.pipeline_id:  # a pipeline id is the submission's: unique only within its job
            trace[_PIPELINE] = f"{live.job_id}/{t.pipeline_id}"
        tm = timings
        predicted = prediction or (None, None, None)
        cpu = tm.get("cpu_s")
        cost = result.get("cost_usd", 0.0) if isinstance(result, dict) else 0.0
        return (
            *trace, target, "node" if target else "", status, reason, live.attempt, rel(released_at),
            rel(placed_at), rel(tm.get("started_at")), rel(tm.get("first_token_at")), rel(tm.get("finished_at")),
            rel(predicted[0]), rel(predicted[1]), rel(predicted[2]), float(cpu) if cpu is not None else nan,
            float(cost) if isinstance(cost, int | float) else 0.0,
        )

    # -- flushing (off the per-task path) ----------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._flusher(), name="recorder")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush(everything=True)

    async def _flusher(self) -> None:
        loop = asyncio.get_running_loop()
        every = min(SPEED_EVERY_S, self.flush_every_s)
        flushed = loop.time()
        while True:
            await asyncio.sleep(every)  # a period, not synchronisation
            self.sample_speeds()
            if loop.time() - flushed < self.flush_every_s - every / 2:
                continue
            flushed = loop.time()
            try:
                await self.flush()
            except Exception:  # a full disk must not stop the control plane
                logger.exception("recording failed; rows are kept for the next try")

    # -- the nodes' measured speed over a window ------------------------------------------------------
    def sample_speeds(self) -> None:
        """Note each node's running burn totals from its last capacity report, as of when the
        agent sent it (a report follows a step's end within the agent's CHANGE_GAP_S)."""
        now = self.plane.now()
        for node_id, known in self.plane.fleet.nodes.items():
            cpu = known.report.cpu
            if cpu.burn_iterations is None or cpu.burn_seconds is None:
                continue
            samples = self._burn.setdefault(node_id, deque(maxlen=SPEED_SAMPLES))
            if not samples or samples[-1][1:] != (cpu.burn_iterations, cpu.burn_seconds):
                at = min(known.report.sent_at, now)  # a clock ahead of ours does not count
                samples.append((max(at, samples[-1][0]) if samples else at, cpu.burn_iterations, cpu.burn_seconds))

    def _burnt_since(self, since_unix_s: float) -> dict[str, list[tuple[float, int, float]]]:
        """Per node, (from, iterations, seconds) burnt between consecutive readings since
        `since_unix_s` (from the last reading at or before it, or the first there is) to its
        last report's totals (an agent that restarted counts from zero again)."""
        self.sample_speeds()
        out = {}
        for node_id, samples in self._burn.items():
            first = max((i for i, s in enumerate(samples) if s[0] <= since_unix_s), default=0)
            rows = list(samples)[first:]
            spans = []
            for (t0, it0, s0), (_, it1, s1) in itertools.pairwise(rows):
                restarted = it1 < it0 or s1 < s0
                spans.append((t0, it1 if restarted else it1 - it0, s1 if restarted else s1 - s0))
            out[node_id] = spans
        return out

    def speeds_since(self, since_unix_s: float) -> dict[str, float]:
        """Each node's core speed over its burn steps since `since_unix_s` (to SPEED_EVERY_S);
        nodes that burnt nothing since are left out."""
        from heddle.live.agent.speed import speed_between  # that module imports this package

        out = {}
        for node_id, spans in self._burnt_since(since_unix_s).items():
            speed = speed_between(sum(s[1] for s in spans), sum(s[2] for s in spans))
            if speed is not None:
                out[node_id] = speed
        return out

    def speed_profiles_since(self, since_unix_s: float) -> dict[str, list[tuple[float, float]]]:
        """Each node's core speed over time since `since_unix_s`: (from Unix s, speed) per
        interval between two readings (SPEED_EVERY_S apart; runs of them merged into at most
        PROFILE_POINTS) in which it burnt something, the speed of the burn steps that ended in
        it; nodes that burnt nothing since are left out."""
        from heddle.live.agent.speed import speed_between  # that module imports this package

        out = {}
        for node_id, spans in self._burnt_since(since_unix_s).items():
            run = max(1, math.ceil(len(spans) / PROFILE_POINTS))
            merged = [(spans[k][0], sum(s[1] for s in spans[k:k + run]), sum(s[2] for s in spans[k:k + run]))
                      for k in range(0, len(spans), run)]
            profile = [(t, speed) for t, iterations, seconds in merged
                       if (speed := speed_between(iterations, seconds)) is not None]
            if profile:
                out[node_id] = profile
        return out

    def watermark(self) -> float:
        """The earliest arrival (Unix s) of a task that has not ended; +inf if none."""
        tasks = self.plane.tasks
        for key in reversed(tasks):  # new tasks since the last look
            if key == self._newest:
                break
            live = tasks[key]
            if not live.terminal:
                self._open[key] = live.task.arrival_s
        self._newest = next(reversed(tasks), None) if tasks else None
        for key in [k for k in self._open if k not in tasks or tasks[k].terminal]:
            del self._open[key]
        return min(self._open.values(), default=math.inf)

    async def flush(self, *, everything: bool = False) -> int:
        """Write the rows that may be written now (all of them when stopping); returns how many."""
        async with self._writing:
            limit = math.inf if everything else self.watermark()
            ready = [row for arrival, row in self._ended if arrival < limit]
            if not ready:
                return 0
            self._ended = [e for e in self._ended if e[0] >= limit]
            await asyncio.get_running_loop().run_in_executor(None, self.write, ready)
            return len(ready)

    def write(self, rows: list[Row]) -> None:
        """Write rows as the next part (in a thread: rows sorted by arrival, a table, Parquet).
        Rows that arrived before rows already written go to late/."""
        rows = sorted(rows, key=itemgetter(_ARRIVAL))  # stable: equal arrivals keep their order
        late = next((i for i, row in enumerate(rows) if row[_ARRIVAL] >= self._max_written_s), len(rows))
        if late:
            self._write_part(rows[:late], self.directory / LATE_DIR)
        if late < len(rows):
            self._write_part(rows[late:], self.directory)
            self._max_written_s = float(rows[-1][_ARRIVAL])
        self.rows_written += len(rows)

    def _write_part(self, rows: list[Row], directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        day = _day(self.clock())
        path = directory / f"{day}-p{self._seq:06d}.parquet"
        write_part(self.table(rows), path, self._meta())
        if directory == self.directory:
            self._compact(day)

    def _meta(self) -> dict[str, str]:
        return {"source": "heddle live control plane", ORIGIN_KEY: repr(self.origin_s)}

    def _compact(self, day: str) -> None:
        parts = sorted(p for p in self.directory.glob(f"{day}-p*.parquet") if PART_NAME.match(p.name))
        if len(parts) < COMPACT_PARTS:
            return
        table = pa.concat_tables([pq.read_table(p) for p in parts], promote_options="permissive")
        self._seq += 1
        write_part(table, self.directory / f"{day}-c{self._seq:06d}.parquet", self._meta())
        for p in parts:  # a reader in between sees these rows twice: load_recorded drops repeats
            p.unlink(missing_ok=True)

    @staticmethod
    def table(rows: list[Row]) -> pa.Table:
        """Rows as a table: one pyarrow conversion per column (the trace's category columns
        dictionary-encoded, as a trace file has them)."""
        columns = zip(*rows, strict=True) if rows else ([] for _ in _NAMES)
        arrays = []
        for name, kind, values in zip(_NAMES, _TYPES, columns, strict=True):
            array = pa.array(values, type=kind)
            arrays.append(array.dictionary_encode() if name in _CATEGORIES else array)
        return pa.Table.from_arrays(arrays, names=list(_NAMES))
