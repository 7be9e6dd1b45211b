"""Submissions are looked up concurrently and accepted in arrival order; placed at once,
answered once durable; a fresh job (the gateway's) is not looked up.

A submission's look-ups in the event log (its job, dependencies that ended long ago) no
longer hold the submissions after it; each is still accepted only after every submission
that arrived before it, so a later part may depend on an earlier one. The control plane
runs in this process against a real nats-server; the test holds one look-up open to fix
the order in which they finish.
"""

from __future__ import annotations

import asyncio
import time

import nats
import pytest

from heddle.events import TaskAggregate
from heddle.live import protocol as wire
from heddle.live.control import ControlPlane, ControlSettings
from heddle.live.control.client import ControlClient, ControlError
from heddle.live.control.messages import (
    Reply,
    SubmitRequest,
    SubmitTask,
    decode_reply,
    encode_message,
)
from heddle.live.control.streams import last_event
from tests.live.conftest import WAIT_S
from tests.live.test_control_memory import echo_job, until


@pytest.fixture
async def plane(natsd):
    nc = await nats.connect(natsd.url)
    plane = ControlPlane(nc, ControlSettings(report_interval_s=0.2))
    await plane.open()
    yield plane
    await plane.close()
    await nc.close()


def hold_lookup(plane: ControlPlane, slow_job: str, fast_job: str, *,
                fail: bool = False) -> tuple[asyncio.Event, asyncio.Event]:
    """``slow_job``'s look-up finishes only after ``fast_job``'s has (then raises if ``fail``).
    Returns (slow look-up began, fast look-up done)."""
    slow_began, fast_done = asyncio.Event(), asyncio.Event()
    recall_job = plane.journal.recall_job

    async def recall(job_id: str):
        if job_id == slow_job:
            slow_began.set()
            await asyncio.wait_for(fast_done.wait(), WAIT_S)
            if fail:
                raise ConnectionError("the log is away")
        job = await recall_job(job_id)
        if job_id == fast_job:
            fast_done.set()
        return job

    plane.journal.recall_job = recall
    return slow_began, fast_done


async def test_a_slow_lookup_holds_no_later_submission_and_order_is_kept(natsd, plane):
    slow_began, fast_done = hold_lookup(plane, "a", "b")
    client = ControlClient(await nats.connect(natsd.url), sender="tester")
    first = asyncio.create_task(client.submit("a", echo_job("a", 3)))
    await asyncio.wait_for(slow_began.wait(), WAIT_S)  # a arrived first
    second = asyncio.create_task(client.submit("b", echo_job("b", 2, after=("a-t2",))))
    # b's look-up runs while a's is still open (one at a time, a would wait for b forever)
    await asyncio.wait_for(fast_done.wait(), WAIT_S)
    assert await asyncio.wait_for(first, WAIT_S) == 3
    # b depends on a task of a: accepted because a was accepted before it, in arrival order
    assert await asyncio.wait_for(second, WAIT_S) == 2
    assert list(plane.tasks) == ["a-t0", "a-t1", "a-t2", "b-t0", "b-t1"]
    await client.close()


async def test_a_failed_lookup_answers_its_submission_and_the_next_one_goes_on(natsd, plane):
    slow_began, _ = hold_lookup(plane, "a", "b", fail=True)
    client = ControlClient(await nats.connect(natsd.url), sender="tester")
    first = asyncio.create_task(client.submit("a", echo_job("a", 2)))
    await asyncio.wait_for(slow_began.wait(), WAIT_S)
    second = asyncio.create_task(client.submit("b", echo_job("b", 2)))
    with pytest.raises(ControlError, match="cannot read the event log now"):
        await asyncio.wait_for(first, WAIT_S)
    assert await asyncio.wait_for(second, WAIT_S) == 2
    assert sorted(plane.tasks) == ["b-t0", "b-t1"]
    # a submitted again once the log answers: accepted in full
    del plane.journal.recall_job  # the log answers again
    assert await client.submit("a", echo_job("a", 2)) == 2
    await client.close()


async def _submit_raw(nc, subject: str, job: str, tasks: int, *, fresh_job: bool, placement: bool = False,
                      early: bool = False):
    request = SubmitRequest(sender="tester", seq=1, sent_at=time.time(), job_id=job, placement=placement,
                            fresh_job=fresh_job, early_placement=early, tasks=[
                                SubmitTask(task=wire.TaskSpec.from_task(t.task), executor=t.executor, payload=t.payload)
                                for t in echo_job(job, tasks)])
    return decode_reply((await nc.request(subject, encode_message(request), timeout=WAIT_S)).data, Reply)


async def test_a_fresh_job_is_not_looked_up_in_the_log_unless_a_user_claims_it(natsd, plane):
    looked_up = []
    recall_job = plane.journal.recall_job

    async def recall(job_id: str):
        looked_up.append(job_id)
        return await recall_job(job_id)

    plane.journal.recall_job = recall
    nc = await nats.connect(natsd.url)
    assert (await _submit_raw(nc, wire.SUBMIT, "gw-fresh", 1, fresh_job=True)).detail["accepted"] == 1
    assert (await _submit_raw(nc, wire.SUBMIT, "plain", 1, fresh_job=False)).detail["accepted"] == 1
    # on a cluster user's own subject the claim is not taken on trust: the log is asked
    user_submit = wire.subject(wire.USER, user="ana", what="submit")
    assert (await _submit_raw(nc, user_submit, "ana-fresh", 1, fresh_job=True)).detail["accepted"] == 1
    assert looked_up == ["plain", "ana-fresh"]
    await nc.close()


async def test_placement_does_not_wait_for_the_submission_to_be_durable_but_the_reply_does(natsd, plane):
    held = asyncio.get_running_loop().create_future()
    durable, core_submit = plane.journal.durable, plane.core_submit
    offered = []

    def held_durable(envelopes):
        return asyncio.gather(durable(envelopes), held)

    def spy_submit(live, now):
        offered.append(live.key)
        core_submit(live, now)

    plane.journal.durable, plane.core_submit = held_durable, spy_submit
    nc = await nats.connect(natsd.url)
    reply = asyncio.create_task(_submit_raw(nc, wire.SUBMIT, "quick", 1, fresh_job=True, placement=True))

    async def offered_to_the_core() -> bool:
        return offered == ["quick-t0"]

    await until(offered_to_the_core, "quick-t0 offered to the core before its submission is durable")
    assert not reply.done()  # the submitter hears only once the log has the task
    held.set_result(None)
    answer = await asyncio.wait_for(reply, WAIT_S)
    assert answer.ok and answer.detail["accepted"] == 1 and "quick-t0" in answer.detail["placement"]
    await nc.close()


async def test_an_early_placement_is_answered_before_the_submission_is_durable(natsd, plane):
    """The gateway's submissions (protocol 1.8): the placement comes back while the log still
    holds the TaskSubmitted; the event reaches the log all the same."""
    held = asyncio.get_running_loop().create_future()
    durable = plane.journal.durable
    plane.journal.durable = lambda envelopes: asyncio.gather(durable(envelopes), held)
    nc = await nats.connect(natsd.url)
    answer = await _submit_raw(nc, wire.SUBMIT, "early", 1, fresh_job=True, placement=True, early=True)
    assert answer.ok and answer.detail["accepted"] == 1
    assert answer.detail["placement"]["early-t0"]["status"] in ("placed", "waiting")
    assert not held.done()

    async def in_the_log() -> bool:
        return await last_event(plane.js, TaskAggregate.aggregate_type, "early-t0") is not None

    await until(in_the_log, "the early-placed task's events appended")
    held.set_result(None)
    await nc.close()


async def test_a_new_jobs_tasks_are_listed_in_its_jobsubmitted_and_later_ones_in_jobtasksadded(natsd, plane):
    """One event fewer per new job (a gateway request is one); the job still knows its tasks
    when rebuilt from the log, so a re-sent submission is not run twice."""
    nc = await nats.connect(natsd.url)
    assert (await _submit_raw(nc, wire.SUBMIT, "jl", 2, fresh_job=True)).detail["accepted"] == 2
    assert (await _submit_raw(nc, wire.SUBMIT, "jl", 3, fresh_job=False)).detail["accepted"] == 1
    listed = []

    async def both_in_the_log() -> bool:  # (the JobTasksAdded may trail the reply)
        listed[:] = [(e.event_type, e.payload["task_ids"])
                     async for e in plane.journal.log.load("Job", "jl")]
        return len(listed) == 2

    await until(both_in_the_log, "the job's two events in the log")
    assert listed == [("JobSubmitted", ["jl-t0", "jl-t1"]), ("JobTasksAdded", ["jl-t2"])]
    plane.journal.jobs.pop("jl")
    assert (await plane.journal.recall_job("jl")).children == {"Task": {"jl-t0", "jl-t1", "jl-t2"}}
    await nc.close()
