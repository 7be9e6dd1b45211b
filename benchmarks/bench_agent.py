"""Benchmark of one node agent (a separate process) on a real nats-server, with a baseline
measured in the same run.

    uv run python benchmarks/bench_agent.py [--tasks N] [--slots K]

1. `echo` assignments through one agent, up to ``slots`` outstanding: assignments/s from the
   first request to the last `task_finished` report (each attempt: one request/reply, two
   acked JetStream reports, coalesced capacity reports); baseline: sequential raw NATS
   request/reply round trips to a trivial responder in this process.
2. The agent's CPU per echo task (its process's user+system time over the run); baseline:
   this process's CPU per raw request/reply round trip (the least a NATS exchange costs).
3. `burn` service time: wall seconds of one attempt of N iterations through the agent vs
   the same burn called in this process (worker start, IPC and reports are the overhead).
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
import psutil

from heddle.events.natsd import start_nats_server
from heddle.live import protocol as p
from heddle.live.agent.worker_main import burn

NODE = "bench"


def assignment(i: int, kind: str, payload: object) -> bytes:
    return p.encode(p.Assignment(
        sender="bench", seq=i, sent_at=time.time(), node_id=NODE, attempt=0, payload=payload,
        task=p.TaskSpec(id=f"t{i}", kind="processor"), executor=p.ExecutorSpec(kind=kind),
        queued_at=time.time(),
    ))


async def main(tasks: int, slots: int) -> None:
    store = Path(tempfile.mkdtemp(prefix="bench-agent-"))
    server = start_nats_server(store)
    nc = await nats.connect(server.url)
    ready, finished = asyncio.Event(), {}
    all_done = asyncio.Event()

    async def on_capacity(msg):
        ready.set()

    async def on_report(msg):  # plain JSON: the bench client must not be the bottleneck
        report = json.loads(msg.data)
        if report["type"] == "task_finished":
            finished[report["task_id"]] = time.perf_counter()
            if len(finished) == tasks + 1:
                all_done.set()

    await nc.subscribe(p.all_nodes(p.CAPACITY), cb=on_capacity)
    await nc.subscribe(p.all_nodes(p.REPORT), cb=on_report)
    agent = subprocess.Popen(  # noqa: ASYNC220 -- Popen returns at once; nothing blocks
        [sys.executable, "-m", "heddle.cli.agent", "--nats", server.url, "--node-id", NODE,
         "--device", "m1-8", "--slots", str(slots), "--log-level", "warning"],
        env={**os.environ, "HEDDLE_CONFIG": str(store / "none.yaml")},
    )
    try:
        await asyncio.wait_for(ready.wait(), 120)
        agent_cpu = psutil.Process(agent.pid)

        async def respond(msg):
            await msg.respond(msg.data)

        await nc.subscribe("bench.echo", cb=respond)
        n = 2000
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            await nc.request("bench.echo", b"x", timeout=10)
        round_trips_per_s = n / (time.perf_counter() - t0)
        round_trip_cpu_us = (time.process_time() - c0) / n * 1e6

        outstanding = asyncio.Semaphore(slots)

        async def one(i: int) -> None:
            async with outstanding:
                reply = await nc.request(p.subject(p.ASSIGN, node=NODE), assignment(i, "echo", i),
                                         timeout=30)
                assert p.decode(reply.data).accepted

        t0, cpu0 = time.perf_counter(), sum(agent_cpu.cpu_times()[:2])
        await asyncio.gather(*(one(i) for i in range(tasks)))
        while len(finished) < tasks:  # the echo reports still in flight
            await asyncio.sleep(0.01)
        agent_cpu_us = (sum(agent_cpu.cpu_times()[:2]) - cpu0) / tasks * 1e6
        iterations = 2_000_000
        t_burn = time.perf_counter()
        await nc.request(p.subject(p.ASSIGN, node=NODE),
                         assignment(tasks, "burn", {"iterations": iterations}), timeout=30)
        await asyncio.wait_for(all_done.wait(), 300)
        echo_per_s = tasks / (max(v for k, v in finished.items() if k != f"t{tasks}") - t0)
        burn_agent_s = finished[f"t{tasks}"] - t_burn
        t0 = time.perf_counter()
        burn({"iterations": iterations})
        burn_local_s = time.perf_counter() - t0
        print(f"echo through one agent ({tasks:,} tasks, {slots} slots): {echo_per_s:,.0f} tasks/s; "
              f"baseline raw request/reply {round_trips_per_s:,.0f}/s sequential; "
              f"ratio {echo_per_s / round_trips_per_s:.2f}")
        print(f"agent CPU per echo task: {agent_cpu_us:,.0f} us; baseline CPU per raw round trip "
              f"{round_trip_cpu_us:,.0f} us; ratio {agent_cpu_us / round_trip_cpu_us:.2f}")
        print(f"burn {iterations:,} iterations: {burn_agent_s:.3f} s through the agent vs "
              f"{burn_local_s:.3f} s in-process; ratio {burn_agent_s / burn_local_s:.2f}")
    finally:
        agent.terminate()
        agent.wait(60)
        await nc.close()
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--slots", type=int, default=64)
    args = parser.parse_args()
    asyncio.run(main(args.tasks, args.slots))
