"""End-to-end benchmark of the live runtime: `echo` tasks through the control plane to 2-4
agents (each a separate process) with the durable lifecycle on, with baselines measured in
the same run.

    uv run python benchmarks/bench_live.py [--tasks N] [--agents K] [--slots S]

1. Sustained throughput: N echo tasks submitted as fast as the control plane accepts them
   (jobs of 400 tasks, a few requests outstanding), from the first submit to the last
   TaskCompleted event. Every task costs: a durable TaskSubmitted (+JobTaskAdded) before
   the submit is acknowledged, place(), TaskPlaced, an acknowledged assignment request, two
   acked JetStream reports from the agent, TaskStarted and TaskCompleted.
2. Latency submit -> start (the agent's started_at minus the client's send time of the
   submit request) p50/p99 at half of the measured throughput, paced in small jobs.
Baselines, same server, same run: raw NATS request/reply round trips (one at a time, and
64 outstanding) to a trivial responder, and acked JetStream publishes (one at a time, and
100 outstanding).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nats
import numpy as np
import psutil

from heddle.live.control.client import ControlClient
from heddle.live.control.serve import READY_LINE
from heddle.live.control.submission import SubmittedTask
from heddle.live.natsd import EmbeddedNats
from heddle.live.protocol import ExecutorSpec
from heddle.models import Task, TaskId, TaskKind

REPO = Path(__file__).resolve().parents[1]
JOB_TASKS = 400
"""Tasks per submitted job in the throughput run (one submit request each)."""
OUTSTANDING_SUBMITS = 4
"""Submit requests in flight at once in the throughput run."""
PACED_JOB_TASKS = 10
"""Tasks per job in the latency run (small, so the send time is close to each task's)."""


def tasks_of(job: str, n: int) -> list[SubmittedTask]:
    echo = ExecutorSpec(kind="echo")
    return [SubmittedTask(Task(id=TaskId(f"{job}-t{i}"), kind=TaskKind.PROCESSOR), echo, payload=i) for i in range(n)]


async def baselines(url: str) -> dict[str, float]:
    nc = await nats.connect(url)
    async def respond(msg) -> None:
        await msg.respond(msg.data)

    sub = await nc.subscribe("bench.echo", cb=respond)
    await nc.flush()
    n = 2000
    t0 = time.perf_counter()
    for _ in range(n):
        await nc.request("bench.echo", b"x", timeout=5)
    sequential = n / (time.perf_counter() - t0)
    sem = asyncio.Semaphore(64)

    async def one():
        async with sem:
            await nc.request("bench.echo", b"x", timeout=10)

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n * 4)))
    concurrent = n * 4 / (time.perf_counter() - t0)
    await sub.unsubscribe()
    js = nc.jetstream()
    await js.add_stream(name="BENCH", subjects=["bench.js.>"])
    t0 = time.perf_counter()
    for i in range(n):
        await js.publish(f"bench.js.{i % 10}", b"x" * 200)
    acked = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for start in range(0, n * 4, 100):
        await asyncio.gather(*(js.publish(f"bench.js.{i % 10}", b"x" * 200) for i in range(start, start + 100)))
    pipelined = n * 4 / (time.perf_counter() - t0)
    await js.delete_stream("BENCH")
    await nc.close()
    return {"request/reply (1 outstanding)": sequential, "request/reply (64 outstanding)": concurrent,
            "JetStream acked publish (1 outstanding)": acked, "JetStream acked publish (100 outstanding)": pipelined}


class Watch:
    """Counts TaskStarted / TaskCompleted events as NATS publishes them (core subscription)."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.completed = 0
        self.done_at = 0.0
        self.target = 0
        self.all_done = asyncio.Event()

    async def on_event(self, msg) -> None:
        kind = msg.subject.rsplit(".", 1)[-1]
        if kind == "TaskStarted":
            envelope = json.loads(msg.data)
            self.started[envelope["aggregate_id"]] = envelope["payload"].get("started_at") or envelope["occurred_at_unix_s"]
        elif kind == "TaskCompleted":
            self.completed += 1
            if self.completed >= self.target:
                self.done_at = time.time()
                self.all_done.set()


async def throughput(client: ControlClient, watch: Watch, n: int, prefix: str) -> float:
    watch.target, watch.completed = n, 0
    watch.all_done.clear()
    sem = asyncio.Semaphore(OUTSTANDING_SUBMITS)

    async def job(j: int) -> None:
        async with sem:
            await client.submit(f"{prefix}{j}", tasks_of(f"{prefix}{j}", JOB_TASKS))

    t0 = time.time()
    await asyncio.gather(*(job(j) for j in range(n // JOB_TASKS)))
    print(f"  submitted {n} tasks in {time.time() - t0:.2f} s", flush=True)
    await asyncio.wait_for(watch.all_done.wait(), 600)
    return n / (watch.done_at - t0)


async def latency(client: ControlClient, watch: Watch, rate: float, seconds: float) -> np.ndarray:
    jobs = max(1, int(rate * seconds / PACED_JOB_TASKS))
    watch.target, watch.completed = jobs * PACED_JOB_TASKS, 0
    watch.all_done.clear()
    sent: dict[str, float] = {}
    period = PACED_JOB_TASKS / rate
    t0 = time.time()
    pending = []
    for j in range(jobs):
        await asyncio.sleep(max(0.0, t0 + j * period - time.time()))  # pacing the offered load
        name = f"lat{j}"
        sent[name] = time.time()
        pending.append(asyncio.create_task(client.submit(name, tasks_of(name, PACED_JOB_TASKS))))
    await asyncio.gather(*pending)
    await asyncio.wait_for(watch.all_done.wait(), 600)
    return np.array([watch.started[t] - sent[t.rsplit("-", 1)[0]] for t in watch.started if t.startswith("lat")])


def _spawn(args: list[str], **kwargs) -> subprocess.Popen:
    """Start a process (a quick fork/exec: fine inside the event loop of a benchmark)."""
    return subprocess.Popen(args, **kwargs)


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


async def main(n: int, agents: int, slots: int) -> None:
    server = EmbeddedNats(Path(tempfile.mkdtemp(prefix="bench-live-"))).start()
    procs = []
    try:
        base = await baselines(server.url)
        print("baselines measured", flush=True)
        profile = ["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"]] if os.environ.get("BENCH_PROFILE") else []
        control = _spawn([sys.executable, *profile, "-m", "heddle.cli.live", "scheduler", "--nats", server.url,
                                    "--report-interval", "0.5", "--log-level", "warning"],
                                   cwd=REPO, stdout=subprocess.PIPE, text=True)
        procs.append(control)
        while READY_LINE not in (control.stdout.readline() or READY_LINE):
            pass
        for i in range(agents):
            procs.append(_spawn([sys.executable, "-m", "heddle.cli.agent", "--nats", server.url,
                                           "--node-id", f"b{i}", "--slots", str(slots), "--device", "m1-7",
                                           "--owner", "bench", "--report-every", "0.5"], cwd=REPO,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        nc = await nats.connect(server.url)
        client = ControlClient(nc, sender="bench")
        while len([x for x in (await client.fleet()).nodes if x.status == "active"]) < agents:
            await asyncio.sleep(0.2)  # waiting for the agents' first reports
        print("fleet up", flush=True)
        watch = Watch()
        await nc.subscribe("heddle.events.Task.*.*", cb=watch.on_event)
        await throughput(client, watch, JOB_TASKS * 2, "warm")  # imports, caches, streams
        roles = {"control plane": procs[0].pid, "nats-server": server.process.pid, "bench client": os.getpid(),
                 **{f"agent b{i}": proc.pid for i, proc in enumerate(procs[1:])}}
        before = {name: _cpu(pid) for name, pid in roles.items()}
        rate = await throughput(client, watch, n, "tp")
        cpu_ms = {name: (_cpu(pid) - before[name]) * 1000 / n for name, pid in roles.items()}
        waits = await latency(client, watch, rate / 2, seconds=10.0)
        print(f"live runtime: {agents} agents x {slots} slots, echo tasks, durable lifecycle on")
        print(f"  sustained throughput        {rate:8.0f} tasks/s over {n} tasks (goal >= 2,000)")
        for name, value in base.items():
            print(f"    ratio to {name:<40} {rate / value:6.2f}  (baseline {value:,.0f}/s)")
        p50, p99 = np.percentile(waits, [50, 99]) * 1000
        print(f"  submit->start at {rate / 2:,.0f} tasks/s: p50 {p50:.1f} ms, p99 {p99:.1f} ms over {len(waits)} tasks "
              f"(goal p99 <= 50 ms)")
        print("  CPU per task in the throughput run: " + ", ".join(f"{k} {v:.2f} ms" for k, v in cpu_ms.items()))
        total_ms = sum(cpu_ms.values())
        print(f"    CPU bound: the control plane alone tops out near {1000 / cpu_ms['control plane']:,.0f} tasks/s "
              f"on a core of its own; all processes together need {total_ms:.2f} ms per task, "
              f"so {os.cpu_count()} idle cores top out near {os.cpu_count() * 1000 / total_ms:,.0f} tasks/s")
        print("  load average (1, 5, 15 min) at the end: " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))
        rtt_ms = 1000 / base["request/reply (1 outstanding)"]
        print(f"    p50 in raw request/reply round trips: {p50 / rtt_ms:.1f} (round trip {rtt_ms:.2f} ms)")
        await nc.close()
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            proc.wait()
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--agents", type=int, default=2, choices=range(1, 9))
    parser.add_argument("--slots", type=int, default=64)
    args = parser.parse_args()
    asyncio.run(main(args.tasks, args.agents, args.slots))
