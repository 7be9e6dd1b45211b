"""End-to-end failures: an agent killed -9, nats-server restarted, the control plane killed -9
and restarted, nodes drained by command and by SIGTERM. One cluster (separate OS processes)
serves the module; each test leaves it with all three agents present again."""

from __future__ import annotations

import signal
import time

import pytest

from heddle.live.control.submission import load_submission
from tests.live.clusterkit import Cluster, completions, echo_tasks, workload_file

NODES = {"north": "ann", "south": "ann", "east": "ann"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    kit = Cluster(tmp_path_factory.mktemp("faults"))
    try:
        kit.start_control("--max-retries", "5")
        for node, owner in NODES.items():
            kit.start_agent(node, owner, slots=4)
        yield kit
    finally:
        kit.close()


async def submit_sleepers(cluster, tmp_path, job: str, n: int, seconds: float):
    tasks = load_submission(workload_file(tmp_path, f"{job}.yaml", echo_tasks(n, kind="sleep", seconds=seconds)), job)
    client = await cluster.client()
    await cluster.wait_nodes(client, set(NODES))
    await client.submit(job, tasks)
    return client, tasks


async def running_on(client, node: str) -> int:
    return next((n.running for n in (await client.fleet()).nodes if n.node_id == node), 0)


async def events_of(cluster, job: str, total: int) -> list:
    """The job's events once the log holds ``total`` completions (the journal may lag the
    status reply by a batch)."""
    return await cluster.job_events(job, total)


def restart_agent(cluster, node: str) -> None:
    cluster.agents[node].wait(timeout=60)
    cluster.start_agent(node, NODES[node], slots=4)


async def test_an_agent_killed_mid_run_has_its_work_replaced_and_each_task_completes_once(cluster, tmp_path):
    client, tasks = await submit_sleepers(cluster, tmp_path, "kill", 60, 0.3)
    await cluster.wait_for(lambda: running_on(client, "north"), "work running on north")
    cluster.kill(cluster.agents["north"])
    assert await cluster.wait_job(client, "kill", 60) == {"completed": 60}
    events = await events_of(cluster, "kill", 60)
    assert completions(events) == {t.task.id: 1 for t in tasks}
    retried = [e for e in events if e.event_type == "TaskFailed" and "north" in e.payload["reason"]]
    assert retried and all(e.payload["retryable"] for e in retried)
    restart_agent(cluster, "north")


async def test_nats_server_restart_loses_nothing_and_everyone_reconnects(cluster, tmp_path):
    client, tasks = await submit_sleepers(cluster, tmp_path, "bounce", 60, 0.2)
    await cluster.wait_for(lambda: _completed(client, "bounce", 5), "5 tasks completed")
    cluster.nats.stop()
    cluster.nats.start()  # same port, same store
    assert await cluster.wait_job(client, "bounce", 60) == {"completed": 60}
    assert completions(await events_of(cluster, "bounce", 60)) == {t.task.id: 1 for t in tasks}
    reconnected_after = time.time()

    async def all_report_again():
        nodes = (await client.fleet()).nodes
        return len(nodes) == 3 and all(n.status == "active" and time.time() - n.last_report_s_ago > reconnected_after
                                       for n in nodes)

    await cluster.wait_for(all_report_again, "every agent reporting after the restart")


async def _completed(client, job: str, at_least: int) -> bool:
    return (await client.status(job, limit=0)).jobs.get(job, {}).get("completed", 0) >= at_least


async def test_control_plane_killed_mid_run_resumes_from_the_log(cluster, tmp_path):
    client, tasks = await submit_sleepers(cluster, tmp_path, "crash", 80, 0.2)
    await cluster.wait_for(lambda: _completed(client, "crash", 5), "5 tasks completed")
    cluster.kill(cluster.control)
    cluster.start_control("--max-retries", "5")
    assert await cluster.wait_job(client, "crash", 80) == {"completed": 80}
    assert completions(await events_of(cluster, "crash", 80)) == {t.task.id: 1 for t in tasks}


@pytest.mark.parametrize("how", ["command", "sigterm"])
async def test_a_drained_node_gets_no_new_work_and_finishes_what_it_runs(cluster, tmp_path, how):
    job = f"drain{how}"
    client, tasks = await submit_sleepers(cluster, tmp_path, job, 36, 0.5)
    await cluster.wait_for(lambda: running_on(client, "east"), "work running on east")
    if how == "command":
        await client.drain("east")
    else:
        cluster.kill(cluster.agents["east"], signal.SIGTERM)

    async def draining():
        return next(n.status for n in (await client.fleet()).nodes if n.node_id == "east") != "active"

    await cluster.wait_for(draining, "east draining")
    drained_at = time.time()
    assert await cluster.wait_job(client, job, 36) == {"completed": 36}
    events = await events_of(cluster, job, 36)
    late = [e for e in events if e.event_type == "TaskPlaced" and e.payload["target"] == "east"
            and e.occurred_at_unix_s > drained_at]
    assert late == []
    finished_there = [e for e in events if e.event_type == "TaskCompleted" and e.payload["node"] == "east"
                      and e.occurred_at_unix_s > drained_at]
    assert finished_there  # in-flight work finished on the draining node, not cut
    assert completions(events) == {t.task.id: 1 for t in tasks}
    await cluster.wait_for(lambda: _status_of(client, "east", "left"), "east left")
    restart_agent(cluster, "east")


async def _status_of(client, node: str, status: str) -> bool:
    return any(n.node_id == node and n.status == status for n in (await client.fleet()).nodes)
