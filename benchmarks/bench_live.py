"""End-to-end benchmark of the live runtime: `echo` tasks through the control plane to 2-4
agents (each a separate process) with the durable lifecycle on, with baselines measured in
the same run.

    uv run python benchmarks/bench_live.py [--tasks N] [--agents K] [--slots S] [--loop-stats]

1. Sustained throughput: N echo tasks submitted as fast as the control plane accepts them
   (jobs of 400 tasks, a few requests outstanding), from the first submit to the last
   TaskCompleted event. Every task costs: a durable TaskSubmitted (+JobTaskAdded) before
   the submit is acknowledged, place(), TaskPlaced, an acknowledged assignment request, two
   acked JetStream reports from the agent, TaskStarted and TaskCompleted.
2. Latency submit -> start (the agent's started_at minus the client's send time of the
   submit request) p50/p99 at half of the measured throughput (or --rate), paced in small
   jobs, and where the time went: the stages between the instants the lifecycle events
   record (received, placed, agent has it, started), p50/p99/max each and their mean in the
   slowest 1% of tasks.
3. With --loop-stats (the control plane's and agents' HEDDLE_LOOP_STATS debug mode, which
   costs a little CPU per callback): the control plane's own stage instants too (its job
   looked up, its events durable, admitted, its AssignBatch sent), what held each process's
   event loop during the latency run, told apart from the machine's load by its CPU time
   (a stall with its own CPU >= 5 ms is the code's), GC pauses, and the control plane's
   other threads (the recorder's flush) with the latency of the tasks that overlapped them
   against the others'.
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
from itertools import pairwise
from pathlib import Path

import nats
import numpy as np
import psutil

from heddle.live.control.client import ControlClient
from heddle.live.control.serve import READY_LINE
from heddle.live.control.submission import SubmittedTask
from heddle.live.natsd import EmbeddedNats
from heddle.live.protocol import CAPACITY, ExecutorSpec, all_nodes
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
    """Follows the lifecycle events as NATS publishes them (core subscription): counts
    TaskCompleted, and keeps each latency task's instants for the stage breakdown."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.stages: dict[str, dict[str, float]] = {}  # task -> instant name -> Unix seconds
        self.completed = 0
        self.capacity_reports = 0
        self.done_at = 0.0
        self.target = 0
        self.all_done = asyncio.Event()

    async def on_capacity(self, msg) -> None:
        self.capacity_reports += 1

    async def on_event(self, msg) -> None:
        _, _, _, task_id, kind = msg.subject.split(".", 4)
        if kind == "TaskCompleted":
            self.completed += 1
            if self.completed >= self.target:
                self.done_at = time.time()
                self.all_done.set()
        if not task_id.startswith("lat") or kind not in STAGE_EVENTS:
            return
        envelope = json.loads(msg.data)
        payload = envelope["payload"]
        at = self.stages.setdefault(task_id, {})
        if kind == "TaskSubmitted":
            at["recalled"] = payload["submitted_at"]  # accepted, after its job was looked up
        elif kind == "TaskPlaced":
            at.setdefault("placed", envelope["occurred_at_unix_s"])  # the first attempt's
        elif kind == "TaskStarted":
            self.started[task_id] = payload.get("started_at") or envelope["occurred_at_unix_s"]
        else:
            timings = payload.get("timings") or {}
            at["agent_received"] = timings.get("received_at") or 0.0


STAGE_EVENTS = {"TaskSubmitted", "TaskPlaced", "TaskStarted", "TaskCompleted"}
INSTANTS = {
    "sent": "the client sends the submit request",
    "received": "the control plane reads it",
    "recalled": "its job is looked up in the log",
    "journal_sent": "its TaskSubmitted leaves in a journal batch",
    "durable": "its TaskSubmitted events are in the log",
    "admitted": "submissions before it are admitted (arrival order)",
    "placed": "the core placed it (TaskPlaced)",
    "assign_sent": "its AssignBatch request goes out",
    "agent_received": "the agent has it",
    "started": "the agent started it",
}
"""The instants of a task's way from submit to start, in order. Without --loop-stats only
those the events record (sent, received, placed, agent_received, started) are known."""


def breakdown(instants: dict[str, dict[str, float]]) -> list[str]:
    """p50/p99/max of each stage (between consecutive instants every task has) over the
    latency run's tasks, and the mean of each stage in the slowest 1% (the tail's stage)."""
    names = [n for n in INSTANTS if instants and all(at.get(n) for at in instants.values())]
    if len(names) < 2:
        return ["  (no stage instants seen)"]
    ms = np.array([[at[b] - at[a] for a, b in pairwise(names)] for at in instants.values()]) * 1000
    total = ms.sum(axis=1)
    tail = ms[total >= np.percentile(total, 99)]
    lines = [f"  stages of submit->start over {len(ms)} tasks (ms): p50 / p99 / max, mean in the slowest 1%"]
    for i, (a, b) in enumerate(pairwise(names)):
        p50, p99 = np.percentile(ms[:, i], [50, 99])
        label = f"{a} -> {b} ({INSTANTS[b]})"
        lines.append(f"    {label:<80} {p50:6.1f} / {p99:6.1f} / {ms[:, i].max():6.1f}   tail {tail[:, i].mean():6.1f}")
    return lines


def lat_instants(watch: Watch, sent: dict[str, float], stamps: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Each latency task's instants: the events', the client's send, and the control plane's
    own stamps (its job's intake stages, its assignment's send) when it kept them."""
    out = {}
    for task_id, start in watch.started.items():
        job = task_id.rsplit("-", 1)[0]
        out[task_id] = {**stamps.get(job, {}), **stamps.get(task_id, {}), **watch.stages.get(task_id, {}),
                        "sent": sent[job], "started": start}
    return out


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


async def latency(client: ControlClient, watch: Watch, rate: float, seconds: float) -> tuple[np.ndarray, dict[str, float]]:
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
    waits = np.array([watch.started[t] - sent[t.rsplit("-", 1)[0]] for t in watch.started if t.startswith("lat")])
    return waits, sent


def _spawn(args: list[str], **kwargs) -> subprocess.Popen:
    """Start a process (a quick fork/exec: fine inside the event loop of a benchmark)."""
    return subprocess.Popen(args, **kwargs)


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


class ThreadCpu:
    """CPU time of the control plane's threads other than its event loop's, sampled while
    the latency run lasts: a thread holding the GIL (the recorder's flush) delays the loop.
    The samples in which such a thread ran are windows; tasks whose way from submit to start
    overlapped one are compared with the others of the same run."""

    EVERY_S = 0.05

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.samples: list[tuple[float, float, float]] = []  # (from, until, CPU seconds)

    def _others(self) -> dict[int, float]:
        return {t.id: t.user_time + t.system_time for t in self.proc.threads() if t.id != self.proc.pid}

    async def follow(self) -> None:
        previous, since = self._others(), time.time()
        while True:
            await asyncio.sleep(self.EVERY_S)  # a sampling period, not synchronisation
            now, until = self._others(), time.time()
            self.samples.append((since, until, sum(v - previous.get(k, 0.0) for k, v in now.items())))
            previous, since = now, until

    def lines(self, instants: dict[str, dict[str, float]]) -> list[str]:
        busy = [(a, b) for a, b, used in self.samples if used > 0]
        total = sum(used for *_, used in self.samples)
        hit, rest = [], []
        for at in instants.values():
            sent, started = at["sent"], at["started"]
            (hit if any(a < started and sent < b for a, b in busy) else rest).append(started - sent)
        out = [(f"  control plane threads besides the loop's: {total * 1000:.0f} ms CPU in the latency run, busy in "
                f"{len(busy)} of {len(self.samples)} samples of {self.EVERY_S * 1000:.0f} ms")]
        for name, waits in (("overlapping a busy sample", hit), ("the others", rest)):
            if waits:
                p50, p99 = np.percentile(np.array(waits) * 1000, [50, 99])
                out.append(f"    submit->start of the {len(waits)} tasks {name}: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
        return out


def stall_lines(stats_dir: Path, since: float, until: float) -> list[str]:
    """What held each process's event loop >= the threshold during the latency run (the debug
    mode of heddle/live/control/stalls.py). A stall (callback or GC pause) whose own CPU
    time is >= the threshold is the code's; one that used little CPU is the machine's (the process
    waited for a core): only the code's are listed by what ran."""
    lines = []
    for path in sorted(stats_dir.glob("*.json")):
        stats = json.loads(path.read_text())
        limit = stats["threshold_ms"]
        stalls = [s for s in stats["stalls"] if since <= s["at"] <= until]
        own = [s for s in stalls if s["cpu_ms"] >= limit]
        gc_text = ", ".join(f"gen{g} {v['collections']}x {v['seconds'] * 1000:.0f} ms ({v['cpu_s'] * 1000:.0f} ms CPU, "
                            f"longest {v['worst_cpu_s'] * 1000:.1f})" for g, v in sorted(stats["gc"].items()))
        lines.append(f"  {path.stem}: {len(stalls)} loop stalls >= {limit:.0f} ms in the latency run (longest "
                     f"{max((s['ms'] for s in stalls), default=0):.1f} ms), {len(own)} of them its own (>= {limit:.0f} ms "
                     f"CPU; longest {max((s['ms'] for s in own), default=0):.1f} ms)")
        lines.append(f"    whole run gc: {gc_text or 'none'} ({stats['gc_tracked']:,} objects tracked, "
                     f"{stats['gc_frozen']:,} frozen at the end)")
        by_what: dict[str, list[dict]] = {}
        for stall in own:
            by_what.setdefault(stall["what"], []).append(stall)
        for what, group in sorted(by_what.items(), key=lambda kv: -max(s["ms"] for s in kv[1]))[:8]:
            worst = max(group, key=lambda s: s["ms"])
            cpu = f" ({worst['cpu_ms']:.1f} ms CPU)"
            lines.append(f"    {len(group):4d}x max {worst['ms']:6.1f} ms{cpu}  {what}"
                         + (f"\n           at {worst['stack']}" if worst["stack"] else ""))
    return lines


async def main(args: argparse.Namespace) -> None:
    agents, slots, loop_stats, record = args.agents, args.slots, args.loop_stats, args.record
    n = max(1, args.tasks // JOB_TASKS) * JOB_TASKS  # whole jobs: the run waits for n completions
    server = EmbeddedNats(Path(tempfile.mkdtemp(prefix="bench-live-"))).start()
    procs = []
    stats_dir = Path(tempfile.mkdtemp(prefix="bench-live-stalls-"))
    data_dir = Path(tempfile.mkdtemp(prefix="bench-live-data-"))  # the recorder's trace goes here
    if loop_stats:
        os.environ["HEDDLE_LOOP_STATS"] = str(stats_dir / "{role}.json")
    try:
        base = await baselines(server.url)
        print("baselines measured", flush=True)
        profile = ["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"]] if os.environ.get("BENCH_PROFILE") else []
        control = _spawn([sys.executable, *profile, "-m", "heddle.cli.live", "scheduler", "--nats", server.url,
                                    "--report-interval", "0.5", "--log-level", "warning",
                                    "--data-dir", str(data_dir), "--record" if record else "--no-record"],
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
        await nc.subscribe(all_nodes(CAPACITY), cb=watch.on_capacity)
        await throughput(client, watch, JOB_TASKS * 2, "warm")  # imports, caches, streams
        roles = {"control plane": procs[0].pid, "nats-server": server.process.pid, "bench client": os.getpid(),
                 **{f"agent b{i}": proc.pid for i, proc in enumerate(procs[1:])}}
        before = {name: _cpu(pid) for name, pid in roles.items()}
        rate = await throughput(client, watch, n, "tp")
        cpu_ms = {name: (_cpu(pid) - before[name]) * 1000 / n for name, pid in roles.items()}
        lat_from, reports_before = time.time(), watch.capacity_reports
        lat_before = {name: _cpu(pid) for name, pid in roles.items()}
        threads = ThreadCpu(procs[0].pid)
        following = asyncio.create_task(threads.follow()) if loop_stats else None
        paced = args.rate or rate / 2
        waits, sent = await latency(client, watch, paced, seconds=args.seconds)
        lat_until, reports = time.time(), watch.capacity_reports - reports_before
        lat_cpu_ms = {name: (_cpu(pid) - lat_before[name]) * 1000 / len(waits) for name, pid in roles.items()}
        if following is not None:
            following.cancel()
            await asyncio.gather(following, return_exceptions=True)
        print(f"live runtime: {agents} agents x {slots} slots, echo tasks, durable lifecycle on")
        print(f"  sustained throughput        {rate:8.0f} tasks/s over {n} tasks (goal >= 2,000)")
        for name, value in base.items():
            print(f"    ratio to {name:<40} {rate / value:6.2f}  (baseline {value:,.0f}/s)")
        p50, p99 = np.percentile(waits, [50, 99]) * 1000
        print(f"  submit->start at {paced:,.0f} tasks/s{'' if args.rate else ' (half of that)'}: p50 {p50:.1f} ms, p99 {p99:.1f} ms over {len(waits)} tasks "
              f"(goal p99 <= 50 ms)")
        print("\n".join(breakdown(lat_instants(watch, sent, {}))))
        print(f"  capacity reports in the latency run: {reports / (lat_until - lat_from):,.0f}/s from {agents} agents")
        print("  CPU per task in the throughput run: " + ", ".join(f"{k} {v:.2f} ms" for k, v in cpu_ms.items()))
        print("  CPU per task in the latency run: " + ", ".join(f"{k} {v:.2f} ms" for k, v in lat_cpu_ms.items()))
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
    if loop_stats:
        stamps = json.loads((stats_dir / "control.json").read_text())["stamps"]
        print("with the control plane's own stamps (--loop-stats):")
        instants = lat_instants(watch, sent, stamps)
        print("\n".join(breakdown(instants)))
        print("\n".join(stall_lines(stats_dir, lat_from, lat_until)))
        print("\n".join(threads.lines(instants)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--agents", type=int, default=2, choices=range(1, 9))
    parser.add_argument("--slots", type=int, default=64)
    parser.add_argument("--rate", type=float, default=0.0,
                        help="tasks/s offered in the latency run (default: half the measured throughput)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the latency run")
    parser.add_argument("--loop-stats", action="store_true",
                        help="time every event-loop callback and GC pause of the control plane and agents "
                             "(HEDDLE_LOOP_STATS) and print what held a loop during the latency run")
    parser.add_argument("--no-record", dest="record", action="store_false",
                        help="the control plane records no trace of ended tasks (heddle scheduler --no-record)")
    args = parser.parse_args()
    asyncio.run(main(args))
