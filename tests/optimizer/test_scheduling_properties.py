"""Properties of the scheduling core on random instances whose structure hypothesis draws (and
shrinks): fleets of owners' nodes with memory that fits only some models, personal and
shared work, dependencies, and event sequences with completions, lost attempts, drains,
failures and rejoins.

After every event: no node with a free slot idles while a waiting task would be placed
there (work conservation, judged by `place()` itself), and no start breaks privacy. At the
end every task is in exactly one terminal state. The same events give the same sink calls.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from heddle.models import (
    Fleet,
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
from heddle.optimizer import CoreSettings, DecisionStatus, place
from tests.optimizer.test_scheduling import Body

OWNERS = ("alice", "bob", "carol")
DEVICES = ("m4-pro-20", "m2-ultra-60", "m3-max-40")
MODELS = ("llama-3.1-8b", "qwen2.5-32b", "llama-3.1-70b")  # ~5, ~20, ~40 GB at q4_k_m
MEMORY_GB = (16.0, 48.0, 192.0)


@st.composite
def fleets(draw) -> Fleet:
    nodes = []
    for k in range(draw(st.integers(1, 4))):
        owner = draw(st.sampled_from(OWNERS))
        trusted = draw(st.sets(st.sampled_from(OWNERS), max_size=1))
        nodes.append(Node(NodeId(f"n{k}"), catalog.device(draw(st.sampled_from(DEVICES))),
                          memory_gb=draw(st.sampled_from(MEMORY_GB)), owner=OwnerId(owner),
                          slots=draw(st.integers(1, 2)), trusted_owners=frozenset(OwnerId(o) for o in trusted)))
    return Fleet("prop", tuple(nodes))


@st.composite
def tasks(draw, k: int) -> Task:
    privacy = draw(st.sampled_from([Privacy.PUBLIC, Privacy.SENSITIVE, Privacy.PERSONAL]))
    owner = OwnerId(draw(st.sampled_from(OWNERS)))
    if draw(st.booleans()):
        return Task(TaskId(f"t{k}"), TaskKind.LLM, model=ModelId(draw(st.sampled_from(MODELS))), quant="q4_k_m",
                    prompt_tokens=draw(st.integers(10, 4000)), output_tokens=draw(st.integers(1, 500)),
                    privacy=privacy, owner=owner)
    return Task(TaskId(f"t{k}"), TaskKind.PROCESSOR, cpu_seconds=draw(st.floats(0.1, 30.0)),
                memory_gb=draw(st.sampled_from([0.5, 2.0, 20.0])), privacy=privacy, owner=owner)


OPS = st.one_of(
    st.tuples(st.just("arrive"), st.integers(0, 0), st.booleans()),  # (.., depends on the previous?)
    st.tuples(st.just("finish"), st.integers(0, 50), st.just(False)),
    st.tuples(st.just("lose"), st.integers(0, 50), st.just(False)),
    st.tuples(st.sampled_from(["fail", "drain", "join"]), st.integers(0, 3), st.just(False)),
    st.tuples(st.just("tick"), st.integers(0, 0), st.just(False)),
)


@st.composite
def instances(draw):
    fleet = draw(fleets())
    ops = draw(st.lists(OPS, min_size=1, max_size=40))
    n_arrivals = sum(op[0] == "arrive" for op in ops)
    work = [draw(tasks(k)) for k in range(n_arrivals)]
    cfg = CoreSettings(max_retries=draw(st.integers(0, 2)), max_defer_s=draw(st.sampled_from([8.0, 1000.0])),
                       defer_retry_s=3.0)
    return fleet, work, ops, cfg


def _check_privacy(body: Body, fleet: Fleet, work: dict[str, Task]) -> None:
    for event in body.log:
        if event[0] == "start":
            task, node = work[event[1]], fleet.node(event[2])
            if task.privacy is Privacy.PERSONAL:
                assert node.may_hold_personal_of(task.owner), event


def _check_conservation(body: Body) -> None:
    for key in body.core.waiting_keys():
        d = place(body.state, [body.core.task(key)], "fast").decisions[0]
        assert d.status is not DecisionStatus.PLACED, f"{key} waits while {d.target} could run it"


def _run(fleet: Fleet, work: list[Task], ops: list, cfg: CoreSettings, check: bool) -> Body:
    body = Body(fleet, cfg)
    core = body.core
    by_key = {t.id: t for t in work}
    now, arrived, done = 0.0, 0, []
    for op, arg, flag in ops:
        now += 1.0
        while core.next_tick_s() is not None and core.next_tick_s() <= now:
            core.tick(core.next_tick_s())
        running = sorted(body.on)
        if op == "arrive":
            key = f"t{arrived}"
            after = [f"t{arrived - 1}"] if flag and arrived else []
            core.submit(now, key, by_key[key], after=after, remember=True)
            arrived += 1
        elif op == "finish" and running:
            key = running[arg % len(running)]
            body.finish(now, key)
            done.append(key)
        elif op == "lose" and running:
            key = running[arg % len(running)]
            body._free(key)
            core.lost(now, key, "dispatch not acknowledged")
        elif op in ("fail", "drain", "join"):
            name = f"n{arg % len(fleet.nodes)}"
            ns = body.state.nodes[NodeId(name)]
            if op == "fail" and ns.status is not NodeStatus.DEPARTED:
                body.node_fails(now, name)
            elif op == "drain" and ns.status is NodeStatus.ACTIVE:
                ns.status = NodeStatus.DRAINING
                core.node_changed(now, name)
            elif op == "join" and ns.status is not NodeStatus.ACTIVE:
                ns.status = NodeStatus.ACTIVE
                core.node_joined(now, name)
        elif op == "tick":
            core.tick(now)
        if check:
            _check_conservation(body)
            _check_privacy(body, fleet, by_key)
    # wind down: nodes come back, running work finishes, the rest waits out its maximum wait
    for name, ns in body.state.nodes.items():
        if ns.status is not NodeStatus.ACTIVE:
            ns.status = NodeStatus.ACTIVE
            core.node_joined(now, name)
    for _ in range(10 * len(work) + 10):
        if body.on:
            now += 1.0
            key = min(body.on)
            body.finish(now, key)
            done.append(key)
        elif core.next_tick_s() is not None:
            now = max(now, core.next_tick_s())
            core.tick(now)
        else:
            break
    body.done = done
    body.arrived = arrived
    return body


@settings(max_examples=300, deadline=None)
@given(instances())
def test_work_conservation_privacy_and_one_terminal_state(instance) -> None:
    fleet, work, ops, cfg = instance
    body = _run(fleet, work, ops, cfg, check=True)
    ends: dict[str, list[str]] = {}
    for key in body.done:
        ends.setdefault(key, []).append("completed")
    for kind, key, _ in body.log:
        if kind in ("reject", "fail"):
            ends.setdefault(key, []).append(kind)
    assert sorted(ends) == sorted(f"t{k}" for k in range(body.arrived))
    assert all(len(v) == 1 for v in ends.values()), ends
    assert body.core.waiting() == 0 and not body.core.running_keys()


@settings(max_examples=40, deadline=None)
@given(instances())
def test_the_same_events_give_the_same_decisions(instance) -> None:
    fleet, work, ops, cfg = instance
    assert _run(fleet, work, ops, cfg, check=False).log == _run(fleet, work, ops, cfg, check=False).log
