"""The recorder's files, without a cluster: parts merged 32 to a file per day, names that sort
in time order, days rotating by name, rows held back until every earlier arrival has ended,
and rows that end after a restart behind rows already written going to late/."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from heddle.live.control.book import LiveTask
from heddle.live.control.recorder import COMPACT_PARTS, Recorder, Row
from heddle.models.ids import TaskKind
from heddle.models.task import Task
from heddle.traces import read_trace
from heddle.traces.recorded import LATE_DIR, ORIGIN_KEY, PART_NAME, file_meta, load_recorded

DAY1 = datetime(2026, 12, 6, 23, 0, tzinfo=UTC).timestamp()
DAY2 = datetime(2026, 12, 7, 0, 0, 5, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def plane(tasks: dict[str, LiveTask] | None = None, now: float = DAY1) -> SimpleNamespace:
    """What the recorder reads of a control plane when it writes: its tasks and its clock."""
    return SimpleNamespace(tasks=tasks if tasks is not None else {}, now=lambda: now)


def live(n: int, arrival_s: float, *, terminal: bool = True) -> LiveTask:
    task = Task(id=f"j{n}-t{n}", kind=TaskKind.PROCESSOR, arrival_s=arrival_s, cpu_seconds=0.1)
    return LiveTask(spec=None, task=task, job_id=f"j{n}", attempt=1, node="alpha", terminal=terminal)  # type: ignore[arg-type]


def ended(rec: Recorder, task: LiveTask) -> Row:
    at = task.task.arrival_s
    timings = {"started_at": at + 0.01, "finished_at": at + 0.11, "cpu_s": 0.005}
    return rec.row(task, "completed", "", "alpha", at, at + 0.005, timings, {"ok": 1}, None)


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if PART_NAME.match(p.name))


def write_rows(rec: Recorder, first: int, count: int, arrival0: float) -> None:
    """`count` parts of one row each, arrivals a second apart (what `flush` hands to `write`)."""
    for n in range(first, first + count):
        rec.write([ended(rec, live(n, arrival0 + n))])


def test_every_32_parts_of_a_day_become_one_file_that_reads_as_the_parts_did(tmp_path):
    clock = Clock(DAY1)
    rec = Recorder(plane(), tmp_path, clock=clock)
    write_rows(rec, 0, COMPACT_PARTS - 1, DAY1)
    assert files(tmp_path) == [f"2026-12-06-p{n:06d}.parquet" for n in range(1, COMPACT_PARTS)]
    write_rows(rec, COMPACT_PARTS - 1, 1, DAY1)
    assert files(tmp_path) == [f"2026-12-06-c{COMPACT_PARTS + 1:06d}.parquet"]  # the 32 parts, merged
    write_rows(rec, COMPACT_PARTS, 2, DAY1)
    names = files(tmp_path)
    assert names == [f"2026-12-06-c{COMPACT_PARTS + 1:06d}.parquet",
                     f"2026-12-06-p{COMPACT_PARTS + 2:06d}.parquet", f"2026-12-06-p{COMPACT_PARTS + 3:06d}.parquet"]
    run = load_recorded(tmp_path)
    assert list(run.trace.df["task_id"]) == [f"j{n}-t{n}" for n in range(COMPACT_PARTS + 2)]
    assert run.origin_unix_s == pytest.approx(DAY1)  # the first arrival: midnight + 23 h
    assert float(file_meta(tmp_path / names[0])[ORIGIN_KEY]) == rec.origin_s == datetime(2026, 12, 6, tzinfo=UTC).timestamp()
    assert len(read_trace(tmp_path)) == COMPACT_PARTS + 2  # a plain trace reader reads it too


def test_names_sort_in_time_order_across_merges_days_and_restarts(tmp_path):
    clock = Clock(DAY1)
    rec = Recorder(plane(), tmp_path, clock=clock)
    write_rows(rec, 0, COMPACT_PARTS + 3, DAY1 - 3600)  # a merged file and three parts on day 1
    clock.now = DAY2
    write_rows(rec, COMPACT_PARTS + 3, 2, DAY1 - 3600)
    day1 = [n for n in files(tmp_path) if n.startswith("2026-12-06")]
    day2 = [n for n in files(tmp_path) if n.startswith("2026-12-07")]
    assert len(day1) == 4 and len(day2) == 2  # day 2's parts are named by day 2, not merged with day 1's
    # a restarted recorder numbers on from the newest file and keeps the first day's origin
    again = Recorder(plane(), tmp_path, clock=clock)
    assert again.origin_s == rec.origin_s
    write_rows(again, COMPACT_PARTS + 5, 1, DAY1 - 3600)
    names = files(tmp_path)
    assert names[-1] == f"2026-12-07-p{COMPACT_PARTS + 7:06d}.parquet"
    arrivals = [list(load_recorded(tmp_path).outcomes["task_id"])]
    by_name = [t for name in names for t in read_trace(tmp_path / name).df["task_id"]]
    assert by_name == arrivals[0] == [f"j{n}-t{n}" for n in range(COMPACT_PARTS + 6)]


def test_a_day_merges_its_own_parts_only(tmp_path):
    clock = Clock(DAY1)
    rec = Recorder(plane(), tmp_path, clock=clock)
    write_rows(rec, 0, COMPACT_PARTS - 1, DAY1 - 3600)
    clock.now = DAY2
    write_rows(rec, COMPACT_PARTS - 1, COMPACT_PARTS, DAY1 - 3600)
    names = files(tmp_path)
    assert sum(n.startswith("2026-12-06-p") for n in names) == COMPACT_PARTS - 1
    assert [n for n in names if n.startswith("2026-12-07")] == [f"2026-12-07-c{2 * COMPACT_PARTS:06d}.parquet"]
    assert len(load_recorded(tmp_path).trace) == 2 * COMPACT_PARTS - 1


def test_a_row_waits_until_every_task_that_arrived_before_it_has_ended(tmp_path):
    early, later = live(0, DAY1, terminal=False), live(1, DAY1 + 1)
    tasks = {"j0-t0": early, "j1-t1": later}
    rec = Recorder(plane(tasks), tmp_path)
    rec._ended.append((later.task.arrival_s, ended(rec, later)))

    async def flush() -> int:
        return await rec.flush()

    assert asyncio.run(flush()) == 0 and files(tmp_path) == []  # j0 still runs: j1 waits
    early.terminal = True
    rec._ended.append((early.task.arrival_s, ended(rec, early)))
    assert asyncio.run(flush()) == 2
    assert list(load_recorded(tmp_path).outcomes["task_id"]) == ["j0-t0", "j1-t1"]


def test_a_task_ending_after_a_restart_behind_written_rows_goes_to_late(tmp_path):
    clock = Clock(DAY1)
    rec = Recorder(plane(), tmp_path, clock=clock)
    write_rows(rec, 5, 3, DAY1)  # arrivals DAY1+5 .. DAY1+7 written
    late_dir = tmp_path / LATE_DIR
    # the control plane restarts; a task that arrived at DAY1+2 (before written rows) ends now
    again = Recorder(plane(), tmp_path, clock=clock)
    again.write([ended(again, live(2, DAY1 + 2))])
    assert files(late_dir) == ["2026-12-06-p000004.parquet"]
    assert read_trace(late_dir / "2026-12-06-p000004.parquet").df["task_id"].tolist() == ["j2-t2"]
    # a third start numbers after the late part too (no file is ever overwritten); a row that
    # arrived after the written ones goes to the main files
    third = Recorder(plane(), tmp_path, clock=clock)
    third.write([ended(third, live(3, DAY1 + 3)), ended(third, live(9, DAY1 + 9))])
    assert files(late_dir) == ["2026-12-06-p000004.parquet", "2026-12-06-p000005.parquet"]
    assert files(tmp_path)[-1] == "2026-12-06-p000006.parquet"
    run = load_recorded(tmp_path)
    assert list(run.outcomes["task_id"]) == ["j2-t2", "j3-t3", "j5-t5", "j6-t6", "j7-t7", "j9-t9"]  # by arrival
    assert list(load_recorded(tmp_path, since_unix_s=DAY1 + 6).outcomes["task_id"]) == ["j6-t6", "j7-t7", "j9-t9"]


def test_every_task_that_ends_is_written_once_in_arrival_order_with_what_happened(tmp_path):
    """The hooks the control plane calls (`observe`, on its loop) keep a row per ended task;
    the flush (rows to columns and Parquet, in a thread) writes them all, by arrival."""
    tasks = {t.key: t for t in (live(n, DAY1 + n) for n in range(6))}
    rec = Recorder(plane(tasks), tmp_path)
    for n in (4, 1, 5, 0):  # ending out of arrival order
        at = DAY1 + n
        rec.observe(f"j{n}-t{n}", "CompleteTask", {}, {"node": "beta", "result": {"cost_usd": 0.25},
                                                        "timings": {"started_at": at + 1, "finished_at": at + 3}})
    rec.observe("j2-t2", "FailTask", {"reason": "lost", "retryable": True}, None)  # retried: not an end
    rec.observe("j2-t2", "FailTask", {"reason": "boom", "retryable": False}, None)
    rec.observe("j3-t3", "RejectTask", {"reason": "no node"}, None)
    assert asyncio.run(rec.flush()) == 6
    out = load_recorded(tmp_path).outcomes
    assert list(out["task_id"]) == [f"j{n}-t{n}" for n in range(6)]
    assert list(out["status"]) == ["completed", "completed", "failed", "rejected", "completed", "completed"]
    assert list(out["reason"])[2:4] == ["boom", "no node"]
    assert list(out["target"]) == ["beta", "beta", "", "", "beta", "beta"]
    assert list(out["cost_usd"]) == [0.25, 0.25, 0.0, 0.0, 0.25, 0.25]
    started = out["start_s"].to_numpy()
    assert list(started[[0, 1, 4, 5]] - out["released_s"].to_numpy()[[0, 1, 4, 5]]) == [1.0] * 4
    assert rec.rows_written == 6 and asyncio.run(rec.flush()) == 0  # each once
