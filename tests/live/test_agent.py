"""`heddle agent` as a separate OS process against a real nats-server; the test plays the
control plane over raw NATS with the wire protocol."""

from __future__ import annotations

import asyncio
import json

from heddle.live import protocol as p
from heddle.models.ids import NodeStatus

STEPS = "tests.live.steps"


async def test_capacity_reports_and_assignments_run_with_timings(natsd, control, spawn_agent, gate):
    spawn_agent(natsd.url, "mac-a", "--slots", "3", "--owner", "ana", "--trust", "bo",
                "--labels", "room=office,floor=2", "--processors", "tests.live,math")
    report = await control.next("capacity", lambda m: m.node_id == "mac-a")
    assert (report.v, report.device, report.owner, report.trusted_owners) == (p.PROTOCOL_VERSION, "m1-8", "ana", ("bo",))
    assert report.labels == {"room": "office", "floor": "2"}
    assert (report.slots, report.free_slots, report.status) == (3, 3, NodeStatus.ACTIVE)
    assert report.memory.total_gb > 0 and report.cpu.performance_cores >= 1
    assert report.hostname and report.os and report.arch and report.chip
    # Reports keep coming on their own (the interval), numbered by a rising sequence.
    await control.next("capacity", lambda m: m.node_id == "mac-a" and m.seq > report.seq)

    runs = {
        "echo-1": {"kind": "echo", "payload": {"x": [1, 2]}},
        "burn-1": {"kind": "burn", "payload": {"iterations": 20_000}},
        "shout-1": {"kind": "processor", "target": f"{STEPS}:shout", "payload": "hi"},
        "sqrt-neg": {"kind": "processor", "target": "math:sqrt", "payload": -1},
    }
    for task_id, fields in runs.items():
        reply = await control.assign("mac-a", task_id, **fields)
        assert reply.accepted and not reply.queued, reply
    done = {t: await control.finished(t) for t in runs}
    assert done["echo-1"].result == {"x": [1, 2]}
    assert done["burn-1"].result["iterations"] == 20_000
    assert done["shout-1"].result == "HI"
    assert done["sqrt-neg"].outcome == "failed" and "ValueError" in done["sqrt-neg"].reason
    for finished in done.values():
        t = finished.timings
        assert t.queued_at <= t.received_at <= t.started_at <= t.finished_at

    # The control plane retrying an assignment that already ran gets it acknowledged, not re-run.
    assert (await control.assign("mac-a", "echo-1", kind="echo", payload={"x": [1, 2]})).accepted
    assert (await control.assign("mac-a", "marker", payload=0)).accepted
    await control.finished("marker")  # reports leave in order: a re-run would be seen by now
    assert [m.type for m in control.seen["report"] if m.task_id == "echo-1"] == [
        "task_started", "task_finished"]

    payload, _release = gate("never")
    reply = await control.assign("mac-a", "stuck", kind="processor", target=f"{STEPS}:gate",
                                 payload=payload, timeout_s=0.5)
    assert reply.accepted
    stuck = await control.finished("stuck")
    assert stuck.outcome == "failed" and stuck.reason.startswith("timeout")

    for task_id, fields, why in [
        ("cy-personal", {"privacy": "personal", "owner": "cy"}, "privacy"),
        ("nobody-personal", {"privacy": "personal"}, "privacy"),
        ("no-executor", {"kind": "ollama"}, "no executor 'ollama'"),
        ("bad-target", {"kind": "processor", "target": "not an import path"}, "package.module:function"),
        ("not-allowed", {"kind": "processor", "target": "os:system"}, "'os' is not allowed"),
        ("look-alike", {"kind": "processor", "target": "mathx:f"}, "'mathx' is not allowed"),
        ("wrong-node", {}, "addressed to node"),
    ]:
        node = "mac-b" if task_id == "wrong-node" else "mac-a"
        a = control.assignment(node, task_id, **fields)
        raw = await control.nc.request(p.subject(p.ASSIGN, node="mac-a"), p.encode(a), timeout=30)
        reply = p.decode(raw.data, p.AssignReply)
        assert not reply.accepted and why in reply.reason, (task_id, reply)
    for task_id, fields in [("bo-personal", {"privacy": "personal", "owner": "bo"}),
                            ("ana-personal", {"privacy": "personal", "owner": "ana"}),
                            ("cy-sensitive", {"privacy": "sensitive", "owner": "cy"})]:
        assert (await control.assign("mac-a", task_id, payload=task_id, **fields)).accepted
        assert (await control.finished(task_id)).result == task_id


async def test_slot_limit_local_queue_cancel_and_garbage(natsd, control, spawn_agent):
    agent = spawn_agent(natsd.url, "mac-s", "--slots", "2")
    await control.next("capacity", lambda m: m.node_id == "mac-s")
    forever = {"seconds": 3600}
    replies = [await control.assign("mac-s", f"long-{i}", kind="sleep", payload=forever)
               for i in range(5)]
    assert [(r.accepted, r.queued) for r in replies] == [
        (True, False), (True, False), (True, True), (True, True), (False, False)]
    assert "no free slot" in replies[4].reason
    full = await control.next("capacity", lambda m: m.node_id == "mac-s" and m.queued == 2)
    assert full.free_slots == 0
    assert {r.task_id for r in full.running} == {"long-0", "long-1"}
    # A repeated assignment (the control plane retrying) is accepted again, not run twice.
    assert (await control.assign("mac-s", "long-0", kind="sleep", payload=forever)).accepted

    assert (await control.control("mac-s", "cancel", task_id="long-0")).ok
    cancelled = await control.finished("long-0")
    assert cancelled.outcome == "cancelled"
    await control.started("long-2")  # the freed slot goes to the first queued attempt
    assert (await control.control("mac-s", "cancel", task_id="long-3")).ok
    assert (await control.finished("long-3")).outcome == "cancelled"
    assert not (await control.control("mac-s", "cancel", task_id="no-such-task")).ok
    # A cancel that overtook its assignment (they come on different subjects, in no order
    # between them): the attempt is refused when it comes, not run in a slot counted free.
    assert not (await control.control("mac-s", "cancel", task_id="overtaken", attempt=1)).ok
    late = await control.assign("mac-s", "overtaken", kind="sleep", payload=forever, attempt=1)
    assert not late.accepted and "cancelled before it arrived (cancel requested)" in late.reason

    good = json.loads(p.encode(control.assignment("mac-s", "x")))
    garbage = [
        b"\x00\x01 not json", b"[]", b"{}", b"x" * (p.MAX_MESSAGE_BYTES + 10),
        json.dumps({**good, "v": "2.0"}).encode(),
        json.dumps({**good, "task": {"id": "x", "kind": "quantum"}}).encode(),
        json.dumps({**good, "type": "capacity"}).encode(),
    ]
    for subject in (p.subject(p.ASSIGN, node="mac-s"), p.subject(p.CONTROL, node="mac-s")):
        for data in garbage:
            await control.nc.publish(subject, data)
    counted = await control.next(
        "capacity", lambda m: m.node_id == "mac-s" and m.refused_messages == 2 * len(garbage))
    assert counted.queued == 0 and {r.task_id for r in counted.running} == {"long-1", "long-2"}
    log = agent.log()
    assert "v: protocol major version '2.0'" in log and "task.kind" in log
    # Still serving, and nothing it had accepted was lost.
    assert (await control.assign("mac-s", "after-garbage", kind="sleep", payload=forever)).queued
    for task_id in ("long-1", "long-2", "after-garbage"):
        assert (await control.control("mac-s", "cancel", task_id=task_id)).ok
    for task_id in ("long-1", "long-2", "after-garbage"):
        assert (await control.finished(task_id)).outcome == "cancelled"
    assert agent.process.poll() is None

    # An assignment and its cancel sent together reach the agent in one read: their handlers
    # run in one turn of its loop, the cancel before the attempt's runner has begun. The
    # attempt still ends and gives its slot back (a node that kept it queued every later
    # assignment: gateway requests to it timed out).
    for i in range(5):
        assigned, cancelled = await asyncio.gather(
            control.assign("mac-s", f"hasty-{i}", kind="sleep", payload=forever, attempt=1),
            control.control("mac-s", "cancel", task_id=f"hasty-{i}", attempt=1))
        if assigned.accepted:  # the assignment came first: it ends cancelled, as asked
            assert cancelled.ok and (await control.finished(f"hasty-{i}")).outcome == "cancelled"
        else:  # the cancel came first
            assert "cancelled before it arrived" in assigned.reason, assigned
    both = [await control.assign("mac-s", f"then-{i}", kind="sleep", payload=forever) for i in range(2)]
    assert [(r.accepted, r.queued) for r in both] == [(True, False), (True, False)], agent.log()[-2000:]


async def _agent_running_a_gated_task(url, control, spawn_agent, gate, node, task_id, slots,
                                      agent=None):
    """An agent up and reporting, with ``task_id`` started and held until ``release()``."""
    agent = agent or spawn_agent(url, node, "--slots", str(slots))
    await control.next("capacity", lambda m: m.node_id == node)
    payload, release = gate(task_id)
    assert (await control.assign(node, task_id, kind="processor", target=f"{STEPS}:gate",
                                 payload=payload)).accepted
    await control.started(task_id)
    return agent, release


async def test_sigterm_drains_in_flight_work_then_leaves(natsd, control, spawn_agent, gate):
    agent, release = await _agent_running_a_gated_task(
        natsd.url, control, spawn_agent, gate, "mac-d", "in-flight", slots=2)
    assert (await control.assign("mac-d", "stuck", kind="sleep", payload={"seconds": 3600})).accepted
    await control.started("stuck")
    agent.terminate()
    await control.next("capacity", lambda m: m.node_id == "mac-d" and m.status is NodeStatus.DRAINING)
    refused = await control.assign("mac-d", "too-late")
    assert not refused.accepted and "draining" in refused.reason
    retried = await control.assign("mac-d", "in-flight", kind="processor", target=f"{STEPS}:gate")
    assert retried.accepted  # a retry of work it already has is acknowledged, even now
    await release("finished during the drain")
    finished = await control.finished("in-flight")
    assert (finished.outcome, finished.result) == ("ok", "finished during the drain")
    # "stuck" would hold the drain for its 30 s deadline: a second SIGTERM cuts it now.
    agent.terminate()
    left = await control.next("left", lambda m: m.node_id == "mac-d")
    assert [r.task_id for r in left.abandoned] == ["stuck"]
    cut = await control.finished("stuck")
    assert cut.outcome == "cancelled" and "second signal" in cut.reason
    assert await agent.wait_exit() == 0


async def test_drain_request_cuts_work_at_the_deadline(natsd, control, spawn_agent, gate):
    agent, _release = await _agent_running_a_gated_task(
        natsd.url, control, spawn_agent, gate, "mac-r", "slow", slots=1)
    assert (await control.assign("mac-r", "waiting", kind="sleep", payload={"seconds": 3600})).queued
    assert (await control.control("mac-r", "drain", deadline_s=0.5, reason="maintenance")).ok
    again = await control.control("mac-r", "drain", deadline_s=0.5)  # a retried request
    assert again.ok and again.reason == "already draining"
    left = await control.next("left", lambda m: m.node_id == "mac-r")
    assert left.reason == "maintenance"
    assert {r.task_id for r in left.abandoned} == {"slow", "waiting"}
    for task_id in ("slow", "waiting"):
        finished = await control.finished(task_id)
        assert finished.outcome == "cancelled" and "deadline" in finished.reason
    assert await agent.wait_exit() == 0


async def test_nats_restart_reports_survive_and_the_agent_reconnects(natsd, control, spawn_agent, gate):
    # Started before its nats-server is up (say at boot), the agent keeps trying.
    natsd.stop()
    early = spawn_agent(natsd.url, "mac-n", "--slots", "2")
    given_up = spawn_agent(natsd.url, "mac-x")  # ... and stops cleanly if told to meanwhile
    await early.wait_log("cannot reach nats")
    await given_up.wait_log("cannot reach nats")
    given_up.terminate()
    assert await given_up.wait_exit() == 0
    natsd.start()
    agent, release = await _agent_running_a_gated_task(
        natsd.url, control, spawn_agent, gate, "mac-n", "across-outage", slots=2, agent=early)
    natsd.stop()
    await release("done while the server was down")  # finishes while nats-server is down
    await agent.wait_log("not acknowledged")
    natsd.start()
    await control.next("capacity", lambda m: m.node_id == "mac-n" and m.free_slots == 2)
    # The report made while the server was down is in the stream, once.
    js = control.nc.jetstream()
    sub = await js.subscribe(p.all_nodes(p.REPORT), ordered_consumer=True)
    stored = []
    while not any(m.type == "task_finished" and m.task_id == "across-outage" for m in stored):
        stored.append(p.decode((await sub.next_msg(timeout=30)).data))
    info = await js.stream_info(p.REPORT_STREAM)
    assert info.state.messages == 2  # started + finished, each stored once
    assert stored[-1].result == "done while the server was down"
    assert (await control.assign("mac-n", "after-restart", payload=1)).accepted
    assert (await control.finished("after-restart")).result == 1


async def test_a_batch_of_assignments_gets_one_answer_each_in_order(natsd, control, spawn_agent):
    spawn_agent(natsd.url, "mac-b", "--slots", "2")
    report = await control.next("capacity", lambda m: m.node_id == "mac-b")
    assert "assign_batch" in report.accepts
    forever = {"seconds": 3600}
    batch = p.AssignBatch(**control._header(), node_id="mac-b", assignments=(
        control.assignment("mac-b", "b-0", kind="sleep", payload=forever),
        control.assignment("mac-b", "b-1", kind="sleep", payload=forever),
        control.assignment("mac-b", "b-2", kind="sleep", payload=forever),
        control.assignment("mac-b", "b-3", kind="sleep", payload=forever),
        control.assignment("mac-b", "b-4", kind="sleep", payload=forever),
        control.assignment("mac-b", "b-5", kind="no-such-executor"),
        control.assignment("mac-b", "b-0", kind="sleep", payload=forever),  # a repeat
    ))
    data = (await control.nc.request(p.subject(p.ASSIGN, node="mac-b"), p.encode(batch), timeout=30)).data
    replies = p.decode(data, p.AssignBatchReply).replies
    assert [(r.task_id, r.accepted, r.queued) for r in replies] == [
        ("b-0", True, False), ("b-1", True, False), ("b-2", True, True), ("b-3", True, True),
        ("b-4", False, False), ("b-5", False, False), ("b-0", True, False)]
    assert "no free slot" in replies[4].reason
    await control.started("b-1")
    for task_id in ("b-0", "b-1", "b-2", "b-3"):
        assert (await control.control("mac-b", "cancel", task_id=task_id)).ok


async def test_reports_waiting_together_go_out_as_one_message_each_once(natsd, control, spawn_agent):
    spawn_agent(natsd.url, "mac-r", "--slots", "64")
    await control.next("capacity", lambda m: m.node_id == "mac-r")
    batch = p.AssignBatch(**control._header(), node_id="mac-r", assignments=tuple(
        control.assignment("mac-r", f"r-{i}", payload=i) for i in range(120)))  # slots + queue
    await control.nc.request(p.subject(p.ASSIGN, node="mac-r"), p.encode(batch), timeout=30)
    for i in range(120):
        assert (await control.finished(f"r-{i}")).result == i
    reports = [(m.task_id, m.type) for m in control.seen["report"] if m.node_id == "mac-r"]
    assert sorted(reports) == sorted((f"r-{i}", t) for i in range(120) for t in ("task_started", "task_finished"))
    assert control.merged  # 120 echo tasks end faster than one publish round: merged
