"""The window of ended tasks: bounded, counts everything, reads old logs' rejections."""

from __future__ import annotations

import pytest

from heddle.events import TaskAggregate
from heddle.events.envelopes import trusted_event, trusted_metadata
from heddle.live.control.book import outcome
from heddle.live.control.window import EndedTask, EndedWindow, ended_from_event, row, small_result


def event(event_type: str, version: int, **payload):
    return trusted_event(event_id=f"e{version}", event_type=event_type, aggregate_type="Task", aggregate_id="j-t1",
                         aggregate_version=version, payload=payload,
                         metadata=trusted_metadata("framework:scheduler", None, None), occurred_at_unix_s=1.0)


def test_the_window_keeps_the_latest_and_counts_all():
    forgotten = []
    window = EndedWindow(keep=3, keep_jobs=2, busy=lambda job: job == "busy", forget_job=forgotten.append)
    for i in range(10):
        window.add(EndedTask(f"j{i % 4}-t{i}", f"j{i % 4}", "completed" if i % 3 else "failed"))
    window.add(EndedTask("busy-t0", "busy", "completed"))
    window.add(EndedTask("busy-t0", "busy", "completed"))  # the same task again: counted once
    assert len(window) == 3 and window.get("j0-t0") is None and window.get("busy-t0") is not None
    assert window.totals == {"completed": 7, "failed": 4}
    assert list(window.jobs) == ["j1", "busy"]  # the latest jobs' counts; the others forgotten
    assert set(forgotten) == {"j0", "j1", "j2", "j3"} and "busy" not in forgotten
    assert row(window.get("busy-t0")).status == "completed"


@pytest.mark.parametrize(("events", "state"), [
    ([event("TaskCompleted", 4, result=[1, 2], node="n1", attempt=1)], "completed"),
    ([event("TaskRejected", 2, reason="no node")], "rejected"),
    ([event("TaskCancelled", 2, reason="cancelled by user:system:cli:ana")], "cancelled"),
    ([event("TaskFailed", 2, reason="rejected: waited too long", retryable=False)], "rejected"),  # an old log
    ([event("TaskFailed", 2, reason="cancelled: user:system:cli:ana", retryable=False)], "cancelled"),
    ([event("TaskFailed", 2, reason="boom", retryable=False)], "failed"),
    ([event("TaskFailed", 2, reason="node lost", retryable=True)], None),
    ([event("TaskPlaced", 2, target="n1")], None),
])
def test_a_tasks_last_event_says_whether_and_how_it_ended(events, state):
    ended = ended_from_event(events[-1], job_id="j")
    assert (ended.status if ended else None) == state
    aggregate = TaskAggregate("j-t1")
    aggregate.apply(event("TaskSubmitted", 1, job_id="j", model="", owner="", privacy="public"))
    if events[-1].event_type == "TaskCompleted":
        return  # needs a start first; the aggregate path is the lifecycle tests'
    aggregate.apply(events[-1])
    assert outcome(aggregate) == (state or outcome(aggregate))


def test_only_small_results_are_kept():
    assert small_result({"text": "hi"}) == {"text": "hi"}
    assert small_result("x" * 10_000) is None and small_result(["x" * 5000]) is None
    assert small_result(7) == 7
