"""End-to-end: nats-server, `heddle scheduler` and three `heddle agent`s as separate OS
processes; work submitted as files; what happened recounted from the JetStream event log."""

from __future__ import annotations

import json

import pytest

from heddle.live.control.client import ControlError
from heddle.live.control.privacy import privacy_allows
from heddle.live.control.submission import load_submission
from heddle.models import Node, NodeId, OwnerId, Privacy, catalog
from tests.live.clusterkit import Cluster, by_task, completions, echo_tasks, workload_file

NODES = {  # node -> (owner, trusted owners)
    "alpha": ("alice", ("bob",)),
    "beta": ("bob", ()),
    "gamma": ("carol", ()),
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    kit = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        kit.start_control()
        for node, (owner, trust) in NODES.items():
            kit.start_agent(node, owner, slots=4, trust=trust)
        yield kit
    finally:
        kit.close()


def fleet_nodes() -> dict[str, Node]:
    spec = catalog.device("m1-7")
    return {
        n: Node(id=NodeId(n), device=spec, memory_gb=16.0, owner=OwnerId(o), trusted_owners=frozenset(map(OwnerId, t)))
        for n, (o, t) in NODES.items()
    }


async def test_privacy_mix_of_300_tasks_all_complete_without_a_violation(cluster, tmp_path):
    mix = [("public", None), ("sensitive", "carol"), ("personal", "alice"), ("personal", "bob"),
           ("personal", "carol"), ("public", "bob")]
    path = workload_file(tmp_path, "mix.yaml", echo_tasks(300, privacy_owners=mix))
    tasks = load_submission(path, "mix")
    client = await cluster.client()
    await cluster.wait_nodes(client, set(NODES))
    assert await client.submit("mix", tasks) == 300
    counts = await cluster.wait_job(client, "mix", 300)
    assert counts == {"completed": 300}

    events = await cluster.job_events("mix", 300)
    nodes = fleet_nodes()
    specs = {t.task.id: t.task for t in tasks}
    violations, used = [], set()
    for task_id, history in by_task(events).items():
        for e in history:
            node = e.payload.get("target") or e.payload.get("node")
            if e.event_type == "TaskPlaced":  # each placement says why, in the optimizer's words
                assert e.payload["reason"].startswith("lowest cost"), e.payload
            if e.event_type in ("TaskPlaced", "TaskStarted", "TaskCompleted") and node:
                used.add(node)
                if not privacy_allows(specs[task_id], nodes[node]):
                    violations.append((task_id, e.event_type, node))
    assert violations == []
    assert completions(events) == {t: 1 for t in specs}
    assert used == set(NODES)  # the mix spread over the whole fleet
    personal_bob = [t for t in specs.values() if t.privacy is Privacy.PERSONAL and t.owner == "bob"]
    assert personal_bob  # bob's personal work ran only on beta (his) or alpha (trusts him)


async def run_job(cluster, tmp_path, job: str, text: str, total: int):
    """Submit ``text`` as job ``job``, wait until all ``total`` tasks completed; returns the
    tasks, their events and the client."""
    tasks = load_submission(workload_file(tmp_path, f"{job}.yaml", text), job)
    client = await cluster.client()
    await cluster.wait_nodes(client, set(NODES))
    await client.submit(job, tasks)
    assert await cluster.wait_job(client, job, total) == {"completed": total}
    events = await cluster.job_events(job, total)
    return tasks, events, client


def _ordered_by_dependencies(events, tasks) -> list[str]:
    """Stages that started before one of their dependencies completed (should be none)."""
    started = {e.aggregate_id: e.occurred_at_unix_s for e in events if e.event_type == "TaskStarted"}
    done = {e.aggregate_id: e.occurred_at_unix_s for e in events if e.event_type == "TaskCompleted"}
    return [t.task.id for t in tasks for dep in t.after if started[t.task.id] < done[dep]]


PIPELINE = """
pipelines:
{pipelines}
run:
{runs}
"""
STAGES = """  - id: etl{i}
    stages:
      - {{name: fetch, worker_type: reader, kind: processor, cpu_seconds: 0.01}}
      - {{name: left, worker_type: a, kind: processor, cpu_seconds: 0.01, input_mapping: {{x: fetch.output.x}}}}
      - {{name: right, worker_type: b, kind: processor, cpu_seconds: 0.01, input_mapping: {{x: fetch.output.x}}}}
      - {{name: join, worker_type: w, kind: processor, cpu_seconds: 0.01, input_mapping: {{a: left.output.a, b: right.output.b}}}}"""


async def test_pipelines_run_stage_by_stage_across_agents(cluster, tmp_path):
    text = PIPELINE.format(
        pipelines="\n".join(STAGES.format(i=i) for i in range(4)),
        runs="\n".join(f"  etl{i}: {{kind: sleep, payload: {{seconds: 0.1}}}}" for i in range(4)),
    )
    tasks, events, _ = await run_job(cluster, tmp_path, "etl", text, 16)
    assert _ordered_by_dependencies(events, tasks) == []
    nodes = {e.payload["node"] for e in events if e.event_type == "TaskStarted"}
    assert len(nodes) > 1


COUNCIL = """
councils:
  - id: board
    rounds: 3
    participants:
      - {name: ana, model: llama-3.1-8b}
      - {name: bo, model: qwen2.5-7b}
    synthesizer: {name: chair, model: llama-3.1-8b}
run:
  board: {kind: echo, payload: {answer: 42}}
"""


async def test_a_council_runs_its_rounds_then_the_synthesis(cluster, tmp_path):
    tasks, events, client = await run_job(cluster, tmp_path, "board", COUNCIL, 7)
    assert _ordered_by_dependencies(events, tasks) == []
    started = sorted((e.occurred_at_unix_s, e.aggregate_id) for e in events if e.event_type == "TaskStarted")
    rounds = [task_id.removeprefix("board-board_").split("_")[0] for _, task_id in started]
    assert rounds == ["r1", "r1", "r2", "r2", "r3", "r3", "synthesis"]
    status = await client.status("board")
    assert {row.result["answer"] for row in status.tasks} == {42}  # echo returned the payload


def _garbage(kind: str) -> list[bytes]:
    """Not JSON, not an object, oversized, another major version, the wrong schema."""
    header = {"sender": "mallory", "seq": 1, "sent_at": 0.0, "type": kind}
    return [
        b"\x00\xff not json",
        b"[1, 2, 3]",
        json.dumps({**header, "v": "1.0", "pad": "x" * (600 * 1024)}).encode(),
        json.dumps({**header, "v": "2.0"}).encode(),
        json.dumps({**header, "v": "1.0", "node_id": 7, "task_id": ["?"]}).encode(),
    ]


async def test_garbage_on_every_subject_is_counted_and_accepted_work_still_completes(cluster, tmp_path):
    tasks = load_submission(workload_file(tmp_path, "calm.yaml", echo_tasks(30, kind="sleep", seconds=0.2)), "calm")
    client = await cluster.client()
    await cluster.wait_nodes(client, set(NODES))
    await client.submit("calm", tasks)
    nc = client.nc
    for subject, kind in [("heddle.v1.capacity.alpha", "capacity"), ("heddle.v1.left.alpha", "left")]:
        for data in _garbage(kind):
            await nc.publish(subject, data)
    for data in _garbage("task_finished"):
        await nc.jetstream().publish("heddle.v1.report.alpha", data)
    refusals = []
    for subject, kind in [("heddle.v1.submit", "submit"), ("heddle.v1.query.status", "query"),
                          ("heddle.v1.query.fleet", "query"), ("heddle.v1.cancel", "cancel"),
                          ("heddle.v1.drain", "drain")]:
        for data in _garbage(kind):
            reply = json.loads((await nc.request(subject, data, timeout=30)).data)
            refusals.append((subject, reply["ok"], reply["error"].split(":")[0]))
    assert all(not ok for _, ok, _ in refusals)
    assert {field for *_, field in refusals} >= {"refused"}

    async def all_counted():
        refused = (await client.status()).refused_messages
        wanted = {"capacity": 5, "left": 5, "report": 5, "submit": 5, "query": 10, "cancel": 5, "drain": 5}
        return all(refused.get(k, 0) >= n for k, n in wanted.items())

    await cluster.wait_for(all_counted, "every garbage message counted")
    assert await cluster.wait_job(client, "calm", 30) == {"completed": 30}
    await cluster.wait_nodes(client, set(NODES))  # alpha was not made to leave
    assert cluster.control.poll() is None


async def test_cancel_stops_a_running_task_and_records_it_cancelled(cluster, tmp_path):
    text = "tasks:\n  - {id: long, kind: processor, cpu_seconds: 1}\nrun:\n  long: {kind: sleep, payload: {seconds: 60}}\n"
    tasks = load_submission(workload_file(tmp_path, "long.yaml", text), "long")
    client = await cluster.client()
    await cluster.wait_nodes(client, set(NODES))
    await client.submit("long", tasks)

    async def started():
        return (await client.status("long", limit=0)).jobs.get("long", {}).get("started")

    await cluster.wait_for(started, "the long task started")
    await client.cancel("long-long")
    assert (await client.status("long", limit=0)).jobs["long"] == {"cancelled": 1}
    history = await cluster.wait_for(
        lambda: _history_ending(cluster, "long-long", "TaskCancelled"), "TaskCancelled in the log")
    assert history[-1].metadata.issued_by == "user:system:cli:tester"
    assert history[-1].payload["reason"] == "cancelled by user:system:cli:tester"
    with pytest.raises(ControlError, match="already ended"):
        await client.cancel("long-long")

    async def slot_back():
        return sum(n.running for n in (await client.fleet()).nodes) == 0

    await cluster.wait_for(slot_back, "the slot freed")


async def _history_ending(cluster, task_id: str, event_type: str):
    history = by_task(await cluster.events()).get(task_id, [])
    return history if history and history[-1].event_type == event_type else None


async def test_work_no_node_may_run_is_rejected_with_its_dependents(cluster, tmp_path):
    text = """
tasks:
  - {id: orphan, kind: processor, cpu_seconds: 0.01, privacy: personal, owner: zed}
pipelines:
  - id: p
    stages:
      - {name: first, worker_type: a, kind: processor, cpu_seconds: 0.01}
      - {name: second, worker_type: b, kind: processor, cpu_seconds: 0.01, input_mapping: {x: first.output.x}}
run:
  orphan: {kind: echo}
  p: {kind: echo}
  p/first: {kind: processor, target: "tests.live.steps:no_such_step"}
"""
    tasks = load_submission(workload_file(tmp_path, "orphans.yaml", text), "orph")
    client = await cluster.client()
    await cluster.wait_nodes(client, set(NODES))
    await client.submit("orph", tasks)
    assert await cluster.wait_job(client, "orph", 2, state="rejected") == {"rejected": 2, "failed": 1}
    rows = {row.task_id: row for row in (await client.status("orph")).tasks}
    assert "privacy" in rows["orph-orphan"].reason
    assert "did not complete" in rows["orph-p_second"].reason
    for task in (t for t in tasks if t.task.id != "orph-p_first"):
        history = await cluster.wait_for(
            lambda t=task: _history_ending(cluster, t.task.id, "TaskRejected"), "TaskRejected in the log")
        assert history[-1].metadata.issued_by == "framework:scheduler"
        assert not any(e.event_type in ("TaskPlaced", "TaskFailed") for e in history)
