"""A recorded live run for the fidelity tests: three agents (separate OS processes, a real
nats-server, `heddle scheduler` recording), Poisson arrivals submitted at their times, then
the recording read back.

Each agent's burn steps are capped at CPU_LIMIT of a core (`heddle agent --cpu-limit`, like
`docker --cpus`): three nodes at 70% load then use about 3 x 0.7 x CPU_LIMIT of this shared
2-core machine, and a step takes its CPU time / CPU_LIMIT whatever the other processes on the
machine do, as long as they leave it that share. The probe measures the capped speed at start.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from heddle.live.control.submission import SubmittedTask, parse_submission
from heddle.traces.recorded import Recorded, load_recorded
from tests.live.clusterkit import REPO, Cluster, agent_command

NODES = {  # node -> (owner, trusted owners)
    "alpha": ("alice", ("bob",)),
    "beta": ("bob", ()),
    "gamma": ("carol", ()),
}
CPU_LIMIT = 0.05
"""Share of a core each agent's burn steps may use. With eight helpers' test suites running,
one process got 10-25% of a core here (load average 8-15 on 2 cores); a cap well below that
keeps the steps' pace steady, and the three agents use ~0.1 core between them."""
PRIVACY_MIX = (("public", None, 0.45), ("sensitive", "carol", 0.2), ("personal", "alice", 0.12),
               ("personal", "bob", 0.12), ("personal", "carol", 0.11))
"""(privacy, owner, share of items)."""


@dataclass
class LiveRun:
    recorded: Recorded
    fleet_yaml: Path
    recording: Path
    items: int
    tasks: int
    since_unix_s: float  # the window's start (the warm-up tasks ran before it)
    status: Any  # `heddle status j0` once every task ended
    fleet: Any  # `heddle fleet` then


def start_cluster(tmp: Path, *, cpu_limit: float = CPU_LIMIT, extra_agent_flags: dict[str, list[str]] | None = None) -> Cluster:
    kit = Cluster(tmp)
    kit.start_control()
    for node, (owner, trust) in NODES.items():
        flags = ["--cpu-limit", str(cpu_limit), *(extra_agent_flags or {}).get(node, [])]
        kit.agent_specs[node] = (owner, 1, trust)
        kit.agents[node] = subprocess.Popen(agent_command(kit.url, node, owner, 1, trust) + flags, cwd=REPO,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return kit


def poisson_items(rng: np.random.Generator, n: int, rate_per_s: float, cpu_mean_s: float,
                  pipelines: int) -> list[tuple[float, str]]:
    """(arrival s, submission YAML) per item: processor tasks with lognormal CPU work in a
    privacy mix, and `pipelines` two-stage pipelines among them."""
    gaps = rng.exponential(1.0 / rate_per_s, n)
    shares = np.array([m[2] for m in PRIVACY_MIX])
    picks = rng.choice(len(PRIVACY_MIX), n, p=shares / shares.sum())
    sigma = 0.5
    work = rng.lognormal(np.log(cpu_mean_s) - sigma**2 / 2, sigma, 2 * n)
    as_pipeline = set(rng.choice(n, pipelines, replace=False).tolist())
    items, at = [], 0.0
    for i in range(n):
        at += gaps[i]
        privacy, owner, _ = PRIVACY_MIX[picks[i]]
        who = f", owner: {owner}" if owner else ""
        if i in as_pipeline:
            owner_line = f"    owner: {owner}\n" if owner else ""
            text = (f"pipelines:\n  - id: p{i}\n    privacy: {privacy}\n{owner_line}    stages:\n"
                    f"      - {{name: a, worker_type: w, kind: processor, cpu_seconds: {work[2 * i] / 2:.5f}}}\n"
                    f"      - {{name: b, worker_type: w, kind: processor, cpu_seconds: {work[2 * i + 1] / 2:.5f}, "
                    f"input_mapping: {{x: a.output.x}}}}\n")
        else:
            text = (f"tasks:\n  - {{id: t{i}, kind: processor, cpu_seconds: {work[2 * i]:.5f}, "
                    f"privacy: {privacy}{who}}}\n")
        items.append((at, text))
    return items


async def run_and_record(kit: Cluster, tmp: Path, items: list[tuple[float, str]]) -> LiveRun:
    """Submit every item at its arrival time, wait for all to end, export the fleet and read
    the recording once it holds every task."""
    client = await kit.client()
    await kit.wait_nodes(client, set(NODES))
    # every agent starts its worker process on its first step: run those before the window
    warm = parse_submission("tasks:\n" + "".join(
        f"  - {{id: w{i}, kind: processor, cpu_seconds: 0.001, privacy: sensitive}}\n" for i in range(2 * len(NODES))), "warm")
    await client.submit("warm", warm)
    await kit.wait_job(client, "warm", len(warm))
    since = time.time()
    parsed: list[tuple[float, str, list[SubmittedTask]]] = [
        (at, f"j{i}", parse_submission(text, f"j{i}")) for i, (at, text) in enumerate(items)]
    total = sum(len(tasks) for _, _, tasks in parsed)
    t0 = time.monotonic()
    sends = []
    for at, job, tasks in parsed:
        delay = t0 + at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # the workload's arrival process, not synchronisation
        sends.append(asyncio.ensure_future(client.submit(job, tasks)))
    await asyncio.gather(*sends)

    async def all_ended():
        counts = (await client.status(limit=0)).counts
        ended = sum(counts.get(k, 0) for k in ("completed", "failed", "rejected", "cancelled"))
        return counts if ended >= total + len(warm) else None

    await kit.wait_for(all_ended, f"{total} tasks ended")
    status, fleet = await client.status("j0"), await client.fleet()
    fleet_yaml = tmp / "fleet.yaml"
    code, output = await heddle_cli("fleet", "export", "--nats", kit.url, "-o", str(fleet_yaml))
    assert code == 0, output
    recording = tmp / "data" / "recorded"

    async def recorded_all():
        try:
            run = load_recorded(recording, since_unix_s=since)
        except Exception:  # noqa: BLE001 - nothing written yet
            return None
        return run if len(run.trace) >= total else None

    recorded = await kit.wait_for(recorded_all, f"{total} tasks in the recording")
    await client.close()
    return LiveRun(recorded, fleet_yaml, recording, len(items), total, since, status, fleet)


async def heddle_cli(*args: str, timeout: float = 120.0) -> tuple[int, str]:
    """Exit code and output of one `heddle` command, run as a separate process."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "heddle.cli.main", *args, cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(process.communicate(), timeout)
    return process.returncode, output.decode()
