"""The control plane's memory stays bounded on a long run: ended tasks leave its working set
for a bounded window, older ones are found in the event log.

The control plane runs in this process (its memory is what is measured) against a real
nats-server, with a real agent process doing the work.
"""

from __future__ import annotations

import asyncio
import time

import nats
import pytest

from heddle.live.control import ControlPlane, ControlSettings
from heddle.live.control.client import ControlClient, ControlError
from heddle.live.control.submission import SubmittedTask
from heddle.live.protocol import ExecutorSpec
from heddle.models import Task, TaskId, TaskKind
from tests.live.conftest import WAIT_S

JOBS = 12
JOB_TASKS = 100
KEEP_ENDED = 50
KEEP_JOBS = 3


def echo_job(job: str, n: int, after: tuple[str, ...] = ()) -> list[SubmittedTask]:
    echo = ExecutorSpec(kind="echo")
    return [SubmittedTask(Task(id=TaskId(f"{job}-t{i}"), kind=TaskKind.PROCESSOR), echo, after=after, payload=i)
            for i in range(n)]


async def until(check, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class Sizes:
    """The largest size seen of each per-task structure of the control plane."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.max: dict[str, int] = {}

    def sample(self) -> None:
        plane = self.plane
        for name, size in {
            "working set": len(plane.tasks), "aggregates": len(plane.journal.tasks),
            "jobs": len(plane.journal.jobs), "window": len(plane.window),
            "timeouts": len(plane._timeouts), "job counts": len(plane.window.jobs),
        }.items():
            self.max[name] = max(self.max.get(name, 0), size)


@pytest.fixture
async def plane(natsd):
    nc = await nats.connect(natsd.url)
    plane = ControlPlane(nc, ControlSettings(report_interval_s=0.2, keep_ended=KEEP_ENDED, keep_jobs=KEEP_JOBS))
    await plane.open()
    yield plane
    await plane.close()
    await nc.close()


async def test_a_long_run_keeps_the_control_planes_memory_bounded(natsd, plane, spawn_agent):
    spawn_agent(natsd.url, "worker", "--slots", "16")
    client = ControlClient(await nats.connect(natsd.url), sender="tester")
    await until(lambda: _active(client, "worker"), "the agent reported")
    sizes = Sizes(plane)

    async def done(total: int) -> bool:
        sizes.sample()
        return (await client.status(limit=0)).counts.get("completed", 0) >= total

    for j in range(JOBS):  # one job at a time: the working set is at most one job
        assert await client.submit(f"j{j}", echo_job(f"j{j}", JOB_TASKS)) == JOB_TASKS
        await until(lambda j=j: done((j + 1) * JOB_TASKS), f"job j{j} completed")
    await until(lambda: _settled(plane), "the journal appended everything")
    sizes.sample()

    total = JOBS * JOB_TASKS
    assert (await client.status(limit=0)).counts == {"completed": total}  # every task counted...
    assert sizes.max["working set"] <= JOB_TASKS  # ...but never more than one job's in memory
    assert sizes.max["aggregates"] <= JOB_TASKS
    assert sizes.max["window"] == KEEP_ENDED
    assert sizes.max["timeouts"] <= 2 * JOB_TASKS + 1024
    assert sizes.max["job counts"] <= KEEP_JOBS + 1
    assert len(plane.journal.jobs) <= KEEP_JOBS + 1
    assert (len(plane.tasks), len(plane.journal.tasks)) == (0, 0)

    # The latest tasks are still shown one by one; an old job is in the log only.
    last = await client.status(f"j{JOBS - 1}")
    assert last.jobs[f"j{JOBS - 1}"] == {"completed": JOB_TASKS}
    assert len(last.tasks) == KEEP_ENDED and {row.status for row in last.tasks} == {"completed"}
    assert last.tasks[-1].result == JOB_TASKS - 1
    with pytest.raises(ControlError, match="event log"):
        await client.status("j0")
    # What left memory is still known from the log: resubmitting an old job adds nothing,
    # and a new task may depend on a task that ended long ago.
    assert await client.submit("j0", echo_job("j0", JOB_TASKS)) == 0
    assert await client.submit("late", echo_job("late", 1, after=("j0-t5",))) == 1
    await until(lambda: done(total + 1), "the late task completed")
    with pytest.raises(ControlError, match="already ended"):
        await client.cancel("j0-t7")
    await client.close()


async def _active(client: ControlClient, node: str) -> bool:
    return any(n.node_id == node and n.status == "active" for n in (await client.fleet()).nodes)


async def _settled(plane: ControlPlane) -> bool:
    return plane.journal.pending() == 0
