"""The scheduling core driven by a tiny in-memory body: a node model of slots only (free
memory stays at its maximum), starts and completions as the test says."""

from __future__ import annotations

import pytest

from heddle.models import (
    Fleet,
    FleetState,
    ModelId,
    Node,
    NodeId,
    NodeStatus,
    OwnerId,
    Privacy,
    Task,
    TaskId,
    TaskKind,
    catalog,
)
from heddle.optimizer import (
    CoreSettings,
    Decision,
    DecisionStatus,
    SchedulingCore,
    SchedulingError,
    UnknownTaskError,
)
from heddle.optimizer.scheduling import DEPENDENCY_REASON


class Body:
    """A sink with a node model of slots only. `log` is every sink call, in order."""

    def __init__(self, fleet: Fleet, settings: CoreSettings | None = None, policy: str = "fast"):
        self.state = FleetState.idle(fleet)
        self.log: list[tuple] = []
        self.on: dict[str, str] = {}  # running key -> target
        self.wakes: list[float] = []
        self.core = SchedulingCore(self.state, policy, self, settings, on_wake=self.wakes.append)

    # the sink
    def start(self, key, d: Decision) -> None:
        ns = self.state.nodes.get(d.target)
        if ns is not None:
            assert ns.free_slots > 0, f"{key} started on full node {d.target}"
            ns.free_slots -= 1
        self.on[key] = d.target
        self.log.append(("start", key, d.target))

    def deferred(self, key, reason: str) -> None:
        self.log.append(("deferred", key, reason))

    def reject(self, key, reason: str) -> None:
        self.log.append(("reject", key, reason))

    def fail(self, key, reason: str) -> None:
        self.log.append(("fail", key, reason))

    # what happens on the nodes
    def _free(self, key) -> None:
        ns = self.state.nodes.get(self.on.pop(key))
        if ns is not None:
            ns.free_slots += 1

    def finish(self, now: float, key) -> None:
        self._free(key)
        self.core.completed(now, key)

    def node_fails(self, now: float, node: str) -> None:
        ns = self.state.nodes[NodeId(node)]
        ns.status = NodeStatus.DEPARTED
        lost = sorted(k for k, t in self.on.items() if t == node)
        for key in lost:
            self._free(key)
        for key in lost:
            self.core.lost(now, key, f"node {node} failed")
        self.core.node_left(now, node)

    def started(self) -> list:
        return [e[1] for e in self.log if e[0] == "start"]


def node(name: str, device: str, memory_gb: float, owner: str = "o", slots: int = 1) -> Node:
    return Node(NodeId(name), catalog.device(device), memory_gb=memory_gb, owner=OwnerId(owner), slots=slots)


def llm(name: str, model: str = "llama-3.1-8b", **kw) -> Task:
    return Task(TaskId(name), TaskKind.LLM, model=ModelId(model), quant="q4_k_m", prompt_tokens=500,
                output_tokens=200, owner=OwnerId(kw.pop("owner", "o")), **kw)


def proc(name: str, **kw) -> Task:
    return Task(TaskId(name), TaskKind.PROCESSOR, cpu_seconds=2.0, memory_gb=kw.pop("memory_gb", 0.5),
                owner=OwnerId(kw.pop("owner", "o")), **kw)


BIG_SMALL = Fleet("big-small", (node("big", "m2-ultra-60", 192.0), node("small", "m4-pro-20", 24.0)))


def test_a_freed_slot_takes_the_oldest_task_that_may_run_there() -> None:
    body = Body(BIG_SMALL)
    core = body.core
    for k in range(5):
        core.submit(0.0, f"big{k}", llm(f"big{k}", "llama-3.1-70b"))
    core.submit(1.0, "s1", llm("s1"))
    core.submit(2.0, "s2", llm("s2"))
    assert body.on == {"big0": "big", "s1": "small"}
    assert core.waiting_keys() == ["big1", "big2", "big3", "big4", "s2"]
    body.finish(9.5, "s1")  # `small` frees: the 70B tasks ahead cannot use it, s2 can
    assert body.on["s2"] == "small"
    body.finish(20.0, "big0")
    assert body.on["big1"] == "big"
    assert core.waiting_keys() == ["big2", "big3", "big4"]


def test_tasks_of_one_class_start_in_release_order() -> None:
    body = Body(Fleet("one", (node("n0", "m4-pro-20", 64.0, slots=2),)))
    core = body.core
    for k in range(6):
        core.submit(float(k), f"t{k}", proc(f"t{k}"))
    assert body.started() == ["t0", "t1"]
    for k in range(4):
        body.finish(10.0 + k, f"t{k}")
    assert body.started() == [f"t{k}" for k in range(6)]


def test_personal_work_waits_for_its_owner_s_node() -> None:
    fleet = Fleet("two", (node("a", "m4-pro-20", 64.0, owner="alice"), node("b", "m4-pro-20", 64.0, owner="bob")))
    body = Body(fleet)
    core = body.core
    core.submit(0.0, "a1", proc("a1", privacy=Privacy.PERSONAL, owner="alice"))
    core.submit(0.0, "a2", proc("a2", privacy=Privacy.PERSONAL, owner="alice"))
    core.submit(0.0, "b1", proc("b1", privacy=Privacy.PERSONAL, owner="bob"))
    assert body.on == {"a1": "a", "b1": "b"}
    body.finish(1.0, "b1")  # bob's node frees: alice's work may not go there
    assert "a2" not in body.on and core.waiting_keys() == ["a2"]
    body.finish(2.0, "a1")
    assert body.on["a2"] == "a"


def test_dependencies_release_on_completion_and_reject_on_failure() -> None:
    body = Body(Fleet("one", (node("n0", "m4-pro-20", 64.0, slots=4),)))
    core = body.core
    core.submit(0.0, "embed", proc("embed"), after=["chunk"])  # named before it is submitted
    core.submit(0.0, "chunk", proc("chunk"))
    core.submit(0.0, "report", proc("report"), after=["embed", "chunk"])
    assert body.started() == ["chunk"]
    body.finish(1.0, "chunk")
    assert body.started() == ["chunk", "embed"]
    body.finish(2.0, "embed")
    assert body.started() == ["chunk", "embed", "report"]
    # a failed stage rejects what waits for it, and what waits for that
    core.submit(3.0, "x", proc("x"), remember=True)
    core.submit(3.0, "y", proc("y"), after=["x"])
    core.submit(3.0, "z", proc("z"), after=["y"])
    body._free("x")
    core.failed(4.0, "x", "executor raised")
    assert ("reject", "y", DEPENDENCY_REASON) in body.log and ("reject", "z", DEPENDENCY_REASON) in body.log
    # a remembered outcome answers a task submitted later
    core.submit(5.0, "late", proc("late"), after=["x"])
    assert body.log[-1] == ("reject", "late", DEPENDENCY_REASON)


def test_waiting_too_long_is_rejected_with_the_reason() -> None:
    body = Body(Fleet("one", (node("n0", "m4-pro-20", 64.0),)), CoreSettings(max_defer_s=20.0, defer_retry_s=5.0))
    core = body.core
    core.submit(0.0, "t0", proc("t0"))
    core.submit(0.0, "t1", proc("t1"))
    assert core.next_tick_s() == 5.0 and body.wakes == [5.0]
    now = 0.0
    while core.next_tick_s() is not None:
        now = core.next_tick_s()
        core.tick(now)
    assert now == 25.0
    kind, key, reason = body.log[-1]
    assert (kind, key) == ("reject", "t1") and reason.startswith("deferred for over 20 s: ")
    assert core.waiting() == 0


def test_a_lost_task_is_retried_first_then_fails_after_max_retries() -> None:
    fleet = Fleet("two", (node("n0", "m4-pro-20", 64.0), node("n1", "m4-pro-20", 64.0)))
    body = Body(fleet, CoreSettings(max_retries=1))
    core = body.core
    for k in range(3):
        core.submit(0.0, f"t{k}", proc(f"t{k}"))
    assert body.on == {"t0": "n0", "t1": "n1"}
    body.node_fails(1.0, "n0")  # t0 comes back ahead of t2, but only n1 is left and it is busy
    assert core.waiting_keys() == ["t0", "t2"]
    body.finish(2.0, "t1")
    assert body.on == {"t0": "n1"}
    body.node_fails(3.0, "n1")  # second loss: past max_retries
    assert ("fail", "t0", "failed after 1 retries: node n1 failed") in body.log


def test_batch_windows_place_what_arrived_together() -> None:
    calls = []
    body = Body(Fleet("one", (node("n0", "m4-pro-20", 64.0, slots=3),)), CoreSettings(batch_window_s=2.0))
    core = body.core
    place_keys = core.place_keys
    core._decide = lambda now, keys: calls.append(list(keys)) or place_keys(now, keys)
    for k, t in enumerate((0.3, 1.1, 1.7)):
        core.submit(t, f"t{k}", proc(f"t{k}"))
    assert body.started() == [] and core.next_tick_s() == pytest.approx(2.3)
    core.tick(2.3)
    assert calls == [["t0", "t1", "t2"]] and body.started() == ["t0", "t1", "t2"]
    assert core.next_tick_s() is None


def test_a_stale_start_is_declined_and_offered_again_later() -> None:
    body = Body(Fleet("one", (node("n0", "m4-pro-20", 64.0),)))
    core = body.core
    real_start = body.start

    def stale(key, d):  # the node stopped taking work between the decision and the start
        real_start(key, d)
        body._free(key)
        core.declined(0.0, key, "node n0 is draining")

    body.start = stale
    core.submit(0.0, "t0", proc("t0"))
    assert core.waiting_keys() == ["t0"] and body.log[-1] == ("deferred", "t0", "node n0 is draining")
    body.start = real_start
    core.tick(core.next_tick_s())
    assert body.on == {"t0": "n0"}


def test_cancel_and_bad_events() -> None:
    body = Body(Fleet("one", (node("n0", "m4-pro-20", 64.0),)))
    core = body.core
    core.submit(0.0, "t0", proc("t0"))
    core.submit(0.0, "t1", proc("t1"))
    assert core.cancel(1.0, "t1") and not core.cancel(1.0, "t1") and core.waiting() == 0
    with pytest.raises(SchedulingError, match="submitted twice"):
        core.submit(1.0, "t0", proc("t0"))
    with pytest.raises(UnknownTaskError, match="'t1' is not running"):
        core.completed(2.0, "t1")


def test_a_placer_with_an_unknown_status_is_an_error() -> None:
    body = Body(Fleet("one", (node("n0", "m4-pro-20", 64.0),)))
    body.core._decide = lambda now, keys: [Decision(TaskId(k), "maybe") for k in keys]  # type: ignore[arg-type]
    with pytest.raises(SchedulingError, match="unknown status 'maybe'"):
        body.core.submit(0.0, "t0", proc("t0"))


def test_unplaceable_work_is_rejected_at_once() -> None:
    body = Body(Fleet("one", (node("small", "m4-pro-20", 24.0),)))
    body.core.submit(0.0, "t0", llm("t0", "llama-3.1-70b"))
    assert body.log[-1][:2] == ("reject", "t0") and body.core.waiting() == 0
    assert DecisionStatus.REJECTED  # (the reason is place()'s, checked in the optimizer's tests)


def test_a_slot_freed_by_a_lost_or_failed_attempt_goes_to_waiting_work() -> None:
    fleet = Fleet("two", (node("small", "m4-pro-20", 16.0), node("big", "m4-pro-20", 64.0)))
    body = Body(fleet, CoreSettings(max_retries=0))
    core = body.core
    core.submit(0.0, "a", proc("a"))
    core.submit(0.0, "b", proc("b"))
    core.submit(0.0, "large", proc("large", memory_gb=20.0))  # only `big` holds 20 GB
    busy_big = next(k for k, t in body.on.items() if t == "big")
    assert core.waiting_keys() == ["large"]
    body._free(busy_big)
    core.lost(1.0, busy_big, "dispatch not acknowledged")  # no retries left: it fails ...
    assert body.on.get("large") == "big"  # ... and its slot goes to the task that needs it
    body._free("large")
    core.failed(2.0, "large", "executor raised")
    assert ("fail", busy_big, "failed after 0 retries: dispatch not acknowledged") in body.log
