"""Benchmark of the gateway against straight calls to the same stand-in model server, in one run.

    uv run python benchmarks/bench_gateway.py [--clients 4] [--samples 200] [--ttft-ms 20] [--gap-ms 10]
        [--half N] [--ttft-rounds 2] [--open-samples 600] [--stages] [--floor]

A real cluster (nats-server, control plane, two agents of 50 slots, `heddle gateway`, each its
own process) in front of one paced stand-in server in its own process (`gateway_load.py`:
first token after ``--ttft-ms``, then one per ``--gap-ms``). The load comes from ``--clients``
client processes (`gateway_load.py client`), the same for both paths, on kept-alive
connections opened beforehand, so neither path pays connection set-up (in phases 0, 1 and 2
each stream is one connection running chats back to back).

0. Saturation: 20-token chats back to back through the gateway at rising concurrency (up to
   the fleet's 100 slots), each level for ``--window-s``. The fleet's saturation rate is the
   best token rate of the ramp: what the fleet delivers through the gateway when more streams
   no longer add throughput (its slots, or the CPU under the processes, are full). Half of
   saturation is the concurrency whose offered load is half that rate: streams that each ask
   for 20 tokens per (TTFT + 19 gaps), ``half = round(best / 2 / per_stream_rate)``, at most
   half the fleet's slots. (A closed loop of clients offers that load only while nothing
   queues; at half of saturation little does.)
   ``--half N`` skips it and measures phase 1 at N streams.
1. Time to first token at half of saturation: p50/p99 through the gateway vs straight
   to the stand-in, in ``--ttft-rounds`` (2) interleaved rounds per path (load from other work
   on a shared machine hits both alike), and the difference: the TTFT the gateway adds, over
   all rounds and at p50 round by round (how far the machine's bursts move it). Goal <= 5 ms
   at p50, <= 20 ms at p99. Every round starts its streams at once, so their first chats
   arrive together, a burst of ``N`` requests, and the later ones as the earlier end; the
   added p50 of each kind is printed too. Then one stream at a time: the path's own cost
   without queueing.
1b. The same offered load as an open loop, the way LLM serving benchmarks measure TTFT under
   load (vLLM's ``benchmark_serving --request-rate``): 20-token chats arrive as a Poisson
   process at ``half / chat_s`` a second (``chat_s``: the stand-in's time for one such chat,
   so on average ``half`` are in flight, as in phase 1), each sent at its arrival whatever
   is in flight. Phase 1's chats all take the stand-in the same time, so a round's starting
   burst never disperses: each stream's k-th chat leaves with every other stream's k-th,
   within ~20 ms (direct) to ~60 ms (through the gateway), then none for the rest of the
   chat's time; these arrive spread out (how bunched the sends came is printed for both: the
   gaps' coefficient of variation, 1 for Poisson arrivals). The gaps are exponential, drawn
   from numpy's generator seeded with ``OPEN_SEED`` + round and scaled so that a round's
   arrivals come at exactly that rate: the same schedule for both paths and every run.
   ``--open-samples`` (600) arrivals per path over ``--ttft-rounds`` interleaved rounds,
   client i of k sending arrivals i, i + k, ... Each client opens 3x its share of the mean
   in flight beforehand and sends each chat on a free one (an arrival that has to open one
   is counted). The TTFT counts from the scheduled arrival, so a client's lateness counts
   against its path (vLLM's clock starts at the send: the added TTFT that way is printed
   too); printed with it: how late the clients sent (p50/p99; asyncio's timers wake on a 1
   ms grid), how many chats were in flight and how many cores other processes on the
   machine kept busy in each round. ``--open-samples 0`` skips it.
2. Token throughput with ``--streams`` (100) concurrent streams of ``--tokens`` (100) tokens,
   ``--rounds`` chats each: tokens/s received through the gateway as a share of direct. Goal
   >= 90%. With as many streams as slots, a chat sent as soon as its previous one ended
   needs the slot that one frees: read back from the event log and the report stream, the
   phase prints how many chats found no free slot (placed ``WAITED_S`` or more after their
   TaskSubmitted), how long they waited, how much later their TaskPlaced was stored (the
   gateway takes their tokens only once it reads it there), and how long a finished
   attempt's report took from the agent to the report stream and to the control plane.
Each phase prints the CPU seconds every process spent, per request and per token: on a shared
2-core machine wall figures move with the load (printed too), CPU per token much less.
Phases 1 and 2 also print what a reader of the answers saw on each path: the gaps between an
answer's successive chunks as the client read them (p50/p99) and the tokens per chunk.

With ``--floor`` three processes of `gateway_floor.py` stand where the gateway, the control
plane and an agent stand and pass a chat along the same hops with no work at each (no checks,
events, placement or journal); a client of its own probes them one chat at a time, alternating
with the stand-in straight, first alone and then during the gateway's rounds of phase 1: what
the hops themselves add at that load, against what the gateway adds.

With ``--stages`` the heddle processes run in their HEDDLE_LOOP_STATS debug mode (stalls.py)
and stamp each stage of every request (the gateway, control plane and agents; the clients
note when they sent and read the first token); at the end, after the processes have
stopped and written their stamps, the last gateway round of phase 1 is broken down stage
by stage (p50/p99 of each step), with each process's loop stalls and collections, and so is
the last gateway round of phase 1b.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import nats
import numpy as np
import psutil
from nats.js import api

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from heddle.events import EventEnvelope
from heddle.events.jetstream import event_stream_name
from heddle.live import protocol as wire
from heddle.live.agent.perflog import FLUSH_EVERY_S
from tests.gateway.gatewaykit import GatewayCluster, write_keys
from tests.live.clusterkit import REPO, agent_command

KEY = "sk-bench-00001"
NODES = ("gw-a", "gw-b")
SLOTS_PER_AGENT = 50
"""Two agents: 100 slots, so 100 concurrent streams fit."""
RAMP = (10, 25, 50, 100)
"""Concurrency levels of the saturation ramp (100: every slot of the fleet)."""
OPEN_SEED = 15
"""The open loop's arrivals in round r come from numpy's generator seeded with OPEN_SEED + r:
the same schedule for both paths, and in every run."""
POOL_PER_MEAN = 3
"""An open-loop client opens 3x its share of the mean chats in flight beforehand: a Poisson
load's peaks stay below it (an arrival that finds none free opens one, and is counted)."""
TOGETHER_S = 0.005
"""A chat sent this soon after its round's start is one of the streams' first chats, which all
leave at once (each stream's later chats follow its previous one's end)."""
WAITED_S = 0.001
"""A task placed this long after its submission was recorded waited for a slot (one placed at
once is placed in the same call, well under it)."""
LOAD = [sys.executable, str(Path(__file__).with_name("gateway_load.py"))]
FLOOR = [sys.executable, str(Path(__file__).with_name("gateway_floor.py"))]


@dataclass(slots=True)
class Run:
    ttfts: list[float] = field(default_factory=list)
    first_ttfts: list[float] = field(default_factory=list)  # of the chats sent at the start together
    tokens: int = 0
    requests: int = 0
    wall_s: float = 0.0
    errors: list[str] = field(default_factory=list)
    cpu_s: dict[str, float] = field(default_factory=dict)
    stamps: dict[str, dict[str, float]] = field(default_factory=dict)  # task -> client's instants
    late_s: list[float] = field(default_factory=list)  # open loop: each chat's send - its arrival
    sent_ttfts: list[float] = field(default_factory=list)  # open loop: TTFT from the send, not the arrival
    opened: int = 0  # open loop: connections opened during the run (no pooled one was free)
    peak: int = 0  # open loop: the most chats one client had in flight at once
    busy_s: float = 0.0  # open loop: the chats' seconds from arrival to end
    bunching: list[float] = field(default_factory=list)  # each round's `bunching` of its sends
    others: list[float] = field(default_factory=list)  # each round's cores busy outside the run's processes (+-0.05)
    gaps: list[float] = field(default_factory=list)  # ms between an answer's chunks as a client read them

    def add(self, other: Run) -> None:
        self.ttfts += other.ttfts
        self.first_ttfts += other.first_ttfts
        self.tokens += other.tokens
        self.requests += other.requests
        self.wall_s += other.wall_s
        self.errors += other.errors
        self.stamps |= other.stamps
        self.late_s += other.late_s
        self.sent_ttfts += other.sent_ttfts
        self.opened += other.opened
        self.peak = max(self.peak, other.peak)
        self.busy_s += other.busy_s
        self.bunching += other.bunching
        self.others += other.others
        self.gaps += other.gaps
        for name, cpu in other.cpu_s.items():
            self.cpu_s[name] = self.cpu_s.get(name, 0.0) + cpu

    @property
    def rate(self) -> float:
        return self.tokens / self.wall_s


class Harness:
    """The stand-in, the client processes and the CPU clocks of every process involved."""

    def __init__(self, clients: int, ttft_ms: float, gap_ms: float) -> None:
        self.standin = subprocess.Popen([*LOAD, "standin", "--ttft-ms", str(ttft_ms), "--gap-ms",
                                         str(gap_ms)], stdout=subprocess.PIPE, text=True)
        self.url = f"http://127.0.0.1:{self.standin.stdout.readline().split()[1]}"
        self.clients = [subprocess.Popen([*LOAD, "client"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, text=True) for _ in range(clients)]
        for c in self.clients:
            assert c.stdout.readline().strip() == "ready"
        self.watched: dict[str, psutil.Process] = {"standin": psutil.Process(self.standin.pid)}

    def watch(self, name: str, pid: int) -> None:
        self.watched[name] = psutil.Process(pid)

    def cpu(self) -> dict[str, float]:
        """CPU seconds of each watched process, and of the whole machine under "machine"."""
        machine = psutil.cpu_times()
        return {"machine": sum(machine) - machine.idle - getattr(machine, "iowait", 0.0),
                **{name: sum(p.cpu_times()[:2]) for name, p in self.watched.items()}}

    def drive(self, url: str, headers: dict, streams: int, per_loop: int, tokens: int,
              window_s: float | None = None) -> Run:
        """``streams`` concurrent kept-alive streams spread over the client processes."""
        start_at = time.time() + 0.3
        jobs = [streams // len(self.clients) + (i < streams % len(self.clients))
                for i in range(len(self.clients))]
        return self._run(start_at, [
            {"url": url, "headers": headers, "loops": loops, "per_loop": per_loop, "tokens": tokens,
             "start_at": start_at, "until": None if window_s is None else start_at + window_s}
            if loops else None for loops in jobs])

    def drive_open(self, url: str, headers: dict, arrivals: list[float], tokens: int, pool: int) -> Run:
        """One chat at each of ``arrivals`` (seconds after the start), whatever is in flight:
        client i of k sends arrivals i, i + k, ..., each from a pool of ``pool`` connections."""
        start_at = time.time() + 0.5  # the pools open before it
        k = len(self.clients)
        return self._run(start_at, [
            {"url": url, "headers": headers, "arrivals": arrivals[i::k], "pool": pool,
             "tokens": tokens, "start_at": start_at} if arrivals[i::k] else None for i in range(k)])

    def _run(self, start_at: float, jobs: list[dict | None]) -> Run:
        """Hands job i to client i (None: it sits this one out) and gathers their answers."""
        busy = []
        for client, job in zip(self.clients, jobs, strict=True):
            if job is not None:
                client.stdin.write(json.dumps(job) + "\n")
                client.stdin.flush()
                busy.append(client)
        before, began = self.cpu(), time.perf_counter()
        answers = [json.loads(c.stdout.readline()) for c in busy]
        after, window_s = self.cpu(), time.perf_counter() - began
        run = Run(cpu_s={name: after[name] - before[name] for name in after})
        run.cpu_s["clients"] = sum(a["cpu_s"] for a in answers)
        run.wall_s = max(a["wall_s"] for a in answers)
        machine = run.cpu_s.pop("machine")
        run.others.append((machine - sum(run.cpu_s.values())) / window_s)
        sends = []  # but a round's first chats, sent together
        for a in answers:
            run.opened += a.get("opened", 0)
            run.peak = max(run.peak, a.get("peak", 0))
            run.busy_s += a.get("busy_s", 0.0)
            run.gaps += a["gaps"]
            # an open-loop chat answers its lateness too (send - arrival); its ``first`` counts
            # from the arrival
            for first, count, error, task, sent_at, *late in a["results"]:
                run.requests += 1
                run.tokens += count
                run.late_s += late
                together = not late and sent_at - start_at < TOGETHER_S  # a closed loop's first chats
                if not together:
                    sends.append(sent_at)
                if first is not None:
                    run.ttfts.append(first)
                    if late:
                        run.sent_ttfts.append(first - late[0])
                    if together:
                        run.first_ttfts.append(first)
                    if task:
                        run.stamps[task] = {"c_sent": sent_at, "c_first": sent_at + first - sum(late)}
                if error:
                    run.errors.append(error)
        run.bunching.append(bunching(sends))
        return run

    def spy(self, folder: Path) -> None:
        """Sample every watched Python process with py-spy (on PATH) until `close`."""
        folder.mkdir(parents=True, exist_ok=True)
        self.spies = [subprocess.Popen(["py-spy", "record", "-p", str(p.pid), "-r", "250", "-f", "raw",
                                        "--nonblocking", "-o", str(folder / f"{name.replace(' ', '-')}.txt")],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                      for name, p in self.watched.items() if name != "nats-server"]

    def close(self) -> None:
        for spy in getattr(self, "spies", []):
            spy.send_signal(signal.SIGINT)  # py-spy writes its samples on SIGINT
            spy.wait()
        for process in [*self.clients, self.standin]:
            process.kill()
            process.wait()


class Floor:
    """``--floor``: the gateway path's hops with no work in them (gateway_floor.py), probed one
    chat at a time by a client process of its own, alternating with the same client straight
    to the stand-in, while `probing`."""

    def __init__(self, nats_url: str, standin_url: str) -> None:
        self.processes = [subprocess.Popen([*FLOOR, role, "--nats", nats_url, "--standin", standin_url],
                                           stdout=subprocess.PIPE, text=True)
                          for role in ("end", "middle", "front")]
        for process in self.processes[:2]:
            assert process.stdout.readline().strip() == "ready"
        self.front = f"http://127.0.0.1:{self.processes[2].stdout.readline().split()[1]}/v1/chat/completions"
        self.direct = standin_url + "/v1/chat/completions"
        self.client = subprocess.Popen([*LOAD, "client"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.client.stdout.readline().strip() == "ready"
        self.ttfts: dict[str, list[float]] = {self.direct: [], self.front: []}

    def probe(self, url: str, chats: int) -> None:
        job = {"url": url, "headers": {}, "loops": 1, "per_loop": chats, "tokens": 2,
               "start_at": time.time(), "until": None}
        self.client.stdin.write(json.dumps(job) + "\n")
        self.client.stdin.flush()
        answer = json.loads(self.client.stdout.readline())
        self.ttfts[url] += [first for first, *_ in answer["results"] if first is not None]

    @contextlib.contextmanager
    def probing(self):
        stop = threading.Event()

        def run() -> None:
            while not stop.is_set():
                self.probe(self.direct, 2)
                self.probe(self.front, 2)

        thread = threading.Thread(target=run)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def added(self) -> str:
        direct, chain = self.ttfts[self.direct], self.ttfts[self.front]
        self.ttfts = {self.direct: [], self.front: []}
        return (f"p50 {(pct(chain, 0.5) - pct(direct, 0.5)) * 1000:+.2f} ms, p99 "
                f"{(pct(chain, 0.99) - pct(direct, 0.99)) * 1000:+.2f} ms ({len(chain)} / {len(direct)} chats)")

    def close(self) -> None:
        for process in [*self.processes, self.client]:
            process.kill()
            process.wait()


def bunching(sent: list[float]) -> float:
    """How bunched the sends came: the coefficient of variation of the gaps from one to the
    next (1 for Poisson arrivals, more for bursts; nan for fewer than three)."""
    gaps = np.diff(np.sort(sent))
    return float(gaps.std() / gaps.mean()) if len(gaps) > 1 else math.nan


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def reader_line(run: Run) -> str:
    """What a reader of the answers saw: the gaps between an answer's chunks, tokens per chunk."""
    chunks = len(run.gaps) + len(run.ttfts)  # an answer's chunks: its gaps + 1
    return (f"gaps between an answer's chunks read by the client p50 {pct(run.gaps, 0.5):.1f} ms, p99 "
            f"{pct(run.gaps, 0.99):.1f} ms; {run.tokens / max(chunks, 1):.2f} tokens per chunk")


def cpu_lines(run: Run, indent: str = "     ") -> str:
    """CPU seconds per process over the run, per request (ms) and per token (us)."""
    parts = [f"{name} {cpu:.2f} s = {cpu / run.requests * 1000:.2f} ms/req = "
             f"{cpu / max(run.tokens, 1) * 1e6:.0f} us/token"
             for name, cpu in sorted(run.cpu_s.items(), key=lambda kv: -kv[1]) if cpu >= 0.005]
    total = sum(run.cpu_s.values())
    return (f"{indent}CPU over {run.wall_s:.2f} s wall ({run.requests} requests, {run.tokens} tokens): "
            f"total {total:.2f} s = {total / run.wall_s:.2f} cores\n"
            + "".join(f"{indent}  {line}\n" for line in parts)).rstrip("\n")


STAGES = (
    ("c_sent", "client: request sent"),
    ("g_received", "gateway: request in"),
    ("g_placed", "gateway: submit answered"),
    ("g_submit_sent", "gateway: submit published"),
    ("received", "control: submit in"),
    ("recalled", "control: job looked up in the log"),
    ("journal_sent", "control: TaskSubmitted sent to JetStream"),
    ("durable", "control: TaskSubmitted acknowledged"),
    ("admitted", "control: answered in turn"),
    ("assign_sent", "control: placed, assignment sent"),
    ("a_assigned", "agent: assignment in"),
    ("a_run", "agent: attempt running"),
    ("a_first_text", "agent: first token from the stand-in"),
    ("a_chunk_sent", "agent: first chunk queued for NATS"),
    ("g_chunk_in", "gateway: first chunk in"),
    ("g_first_piece", "gateway: first piece to the caller"),
    ("g_first_written", "gateway: first piece written"),
    ("c_first", "client: first token read"),
)
"""The stages of one request's path to its first token (HEDDLE_LOOP_STATS stamps of the gateway,
control plane and agent processes, Unix time on one machine)."""


def stage_lines(folder: Path, run: Run, since: float, until: float) -> list[str]:
    """Per-stage p50/p99 (ms) of ``run``'s requests that came in between ``since`` and ``until``."""
    files = {f.stem: json.loads(f.read_text()) for f in folder.glob("*.json")}
    if "gateway" not in files:
        return ["   (no stage stamps: the gateway did not write its loop stats)"]
    merged: dict[str, dict[str, float]] = {}
    for task, stamps in files["gateway"]["stamps"].items():
        if since <= stamps.get("g_received", 0) <= until and task in run.stamps:
            merged[task] = {**stamps, **run.stamps[task]}
    for role, doc in files.items():
        if role == "gateway":
            continue
        for key, stamps in doc["stamps"].items():
            for task in (key, key + "-chat"):  # the control plane stamps early stages by job id
                if task in merged:
                    for stage, at in stamps.items():
                        merged[task].setdefault(stage, at)
    def median_at(stage: str) -> float:
        offsets = [m[stage] - m["c_sent"] for m in merged.values() if stage in m]
        return pct(offsets, 0.5) if offsets else math.inf

    ordered = sorted(STAGES, key=lambda s: median_at(s[0]))  # in the order they happen now
    head = f"   stages of {len(merged)} requests, in their median order (ms from the stage before; p50 / p99):"
    lines = [head]
    for (prev, _), (stage, label) in itertools.pairwise(ordered):
        gaps = [(m[stage] - m[prev]) * 1000 for m in merged.values() if stage in m and prev in m]
        if gaps:
            lines.append(f"     {label:<42} {pct(gaps, 0.5):7.2f} / {pct(gaps, 0.99):7.2f}  (n {len(gaps)})")
    for a, b, label in (("g_submit_sent", "g_placed", "submit round trip at the gateway"),
                        ("g_chunk_in", "g_placed", "reply after the first chunk by"),
                        ("a_first_text", "g_first_written", "first token: agent -> written"),
                        ("g_received", "a_run", "request in -> agent running"),
                        ("c_sent", "c_first", "the client's TTFT")):
        gaps = [(m[b] - m[a]) * 1000 for m in merged.values() if a in m and b in m]
        if gaps:
            lines.append(f"     {label:<42} {pct(gaps, 0.5):7.2f} / {pct(gaps, 0.99):7.2f}")
    for role, doc in sorted(files.items()):
        stalls = [x for x in doc["stalls"] if since <= x["at"] <= until]
        gc_s = sum(g["seconds"] for g in doc["gc"].values())
        worst = max(stalls, key=lambda x: x["ms"], default=None)
        lines.append(f"     {role}: {len(stalls)} loop stalls >= {doc['threshold_ms']:g} ms in the run"
                     + (f" (worst {worst['ms']:.1f} ms, {worst['cpu_ms']:.1f} CPU: {worst['what']})" if worst else "")
                     + f"; gc {gc_s * 1000:.0f} ms over the process's life")
    return lines


async def stored(url: str, stream: str) -> AsyncIterator[tuple[str, bytes, float]]:
    """Every message of ``stream``: (subject, data, the Unix time nats-server stored it)."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    info = await js.add_consumer(stream, api.ConsumerConfig(
        deliver_policy=api.DeliverPolicy.ALL, ack_policy=api.AckPolicy.NONE, mem_storage=True,
        inactive_threshold=30.0))
    sub = await js.pull_subscribe_bind(consumer=info.name, stream=stream)
    try:
        remaining = info.num_pending or 0
        while remaining > 0:
            batch = await sub.fetch(min(remaining, 1000), timeout=10.0)
            remaining -= len(batch)
            for msg in batch:
                yield msg.subject, msg.data, msg.metadata.timestamp.timestamp()
    finally:
        await js.delete_consumer(stream, info.name)
        await nc.close()


async def stored_events(url: str, task_ids: set[str]) -> tuple[dict[str, dict[str, tuple[EventEnvelope, float]]],
                                                               dict[str, float]]:
    """The lifecycle events of ``task_ids`` in the log (task -> event type -> (the event, the
    Unix time nats-server stored it)) and when each one's TaskFinished report was stored."""
    events: dict[str, dict[str, tuple[EventEnvelope, float]]] = {}
    async for subject, data, at in stored(url, event_stream_name("Task")):
        _, _, _, task, event_type = subject.split(".", 4)
        if task in task_ids:
            events.setdefault(task, {})[event_type] = (EventEnvelope.model_validate_json(data), at)
    reports: dict[str, float] = {}
    async for _, data, at in stored(url, wire.REPORT_STREAM):
        message = json.loads(data)
        for report in message.get("reports", [message]):
            if report.get("type") == "task_finished" and report.get("task_id") in task_ids:
                reports[report["task_id"]] = at
    return events, reports


def slot_wait_lines(url: str, run: Run) -> list[str]:
    """Which of ``run``'s chats found no free slot (placed WAITED_S or more after their
    TaskSubmitted was recorded), how long they waited and how soon the gateway could know
    (their TaskPlaced stored), and how long a finished attempt's report took from the agent to
    the control plane (TaskCompleted recorded - the agent's finish)."""
    events, reports = asyncio.run(stored_events(url, set(run.stamps)))
    waits, known, lags, ttft_waited, ttft_placed, stored_s = [], [], [], [], [], []
    for task, by_type in events.items():
        if "TaskSubmitted" not in by_type or "TaskPlaced" not in by_type:
            continue
        submitted, placed = by_type["TaskSubmitted"][0], by_type["TaskPlaced"]
        wait_s = placed[0].occurred_at_unix_s - submitted.occurred_at_unix_s
        stamps = run.stamps[task]
        ttft = stamps["c_first"] - stamps["c_sent"]
        if wait_s >= WAITED_S:
            waits.append(wait_s * 1000)
            known.append((placed[1] - placed[0].occurred_at_unix_s) * 1000)
            ttft_waited.append(ttft * 1000)
        else:
            ttft_placed.append(ttft * 1000)
        completed = by_type.get("TaskCompleted")
        finished_at = completed and (completed[0].payload.get("timings") or {}).get("finished_at")
        if finished_at:
            lags.append((completed[0].occurred_at_unix_s - finished_at) * 1000)
            if task in reports:
                stored_s.append((reports[task] - finished_at) * 1000)
    if not events:
        return ["   (no events of the run's tasks in the log)"]
    lines = [f"   chats that found no free slot: {len(waits)} of {len(events)} ({len(waits) / len(events):.1%})"]
    if waits:
        lines.append(f"     waited for a slot {pct(waits, 0.5):.1f} / {pct(waits, 0.99):.1f} ms (p50 / p99), "
                     f"then their TaskPlaced stored {pct(known, 0.5):.1f} / {pct(known, 0.99):.1f} ms later; "
                     f"their TTFT {pct(ttft_waited, 0.5):.1f} / {pct(ttft_waited, 0.99):.1f} ms, the others' "
                     f"{pct(ttft_placed, 0.5):.1f} / {pct(ttft_placed, 0.99):.1f} ms")
    if lags:
        lines.append(f"     a finished attempt's report, agent -> control plane: {pct(lags, 0.5):.2f} / "
                     f"{pct(lags, 0.99):.2f} ms (p50 / p99)" + (f", of which to the report stream "
                     f"{pct(stored_s, 0.5):.2f} / {pct(stored_s, 0.99):.2f} ms" if stored_s else ""))
    return lines


def stop_for_stats(cluster: GatewayCluster) -> None:
    """Signal the heddle processes and wait: each writes its loop stats as it stops. (The
    gateway's uvicorn re-raises the signal once it has stopped: SIGINT then unwinds `serve`,
    where SIGTERM would end the process at once.)"""
    processes = [cluster.gateway, cluster.control, *cluster.agents.values()]
    for process in processes:
        process.send_signal(signal.SIGINT if process is cluster.gateway else signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    if cluster.gateway.returncode not in (0, 130):
        print("   the gateway stopped with", cluster.gateway.returncode, "".join(cluster.gateway_log[-10:]))


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def start_cluster(tmp: Path, standin_url: str, harness: Harness) -> GatewayCluster:
    cluster = GatewayCluster(tmp)
    # capacity every 2 s, lost after 3 silent reports (the defaults): the tests' 0.2 s would
    # call a busy agent lost on a loaded machine
    cluster.start_control("--report-interval", "2")
    for node in NODES:
        cluster.agent_specs[node] = ("bench", SLOTS_PER_AGENT, ())
        command = agent_command(cluster.url, node, "bench", SLOTS_PER_AGENT, ())
        command[command.index("--report-every") + 1] = "2"
        cluster.agents[node] = subprocess.Popen([*command, "--ollama-url", standin_url], cwd=REPO,
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cluster.start_gateway(write_keys(tmp / "keys.yaml", [{"key": KEY, "owner": "bench"}]),
                          "--max-wait", "60", "--log-level", "warning")
    cluster.wait_models(set(NODES))
    harness.watch("nats-server", cluster.nats.process.pid)
    harness.watch("control", cluster.control.pid)
    for node in NODES:
        harness.watch(f"agent {node}", cluster.agents[node].pid)
    harness.watch("gateway", cluster.gateway.pid)
    return cluster


def saturation(harness: Harness, gateway: tuple[str, dict], window_s: float, chat_s: float) -> int:
    """Phase 0: the ramp through the gateway; returns the streams that offer half of its best."""
    print(f"0. saturation through the gateway (20-token chats back to back, {window_s:g} s "
          f"per level; {load()}, 2 cores shared)")
    rates: dict[int, float] = {}
    for level in RAMP:
        run = harness.drive(*gateway, level, 10**6, 20, window_s=window_s)
        rates[level] = run.rate
        print(f"   {level:3d} streams: {run.rate:7.0f} tokens/s = {run.rate / (level * 20 / chat_s):.0%}"
              f" of the stand-in's pace; CPU {sum(run.cpu_s.values()) / run.wall_s:.2f} cores; "
              f"{load()}{'; errors ' + str(len(run.errors)) if run.errors else ''}")
    best = max(rates.values())
    per_stream = 20 / chat_s
    half = max(1, min(SLOTS_PER_AGENT * len(NODES) // 2, round(best / 2 / per_stream)))
    print(f"   saturation: {best:.0f} tokens/s; half of it is offered by {half} streams "
          f"of {per_stream:.0f} tokens/s each")
    return half


def interleaved(rounds: int, direct, gateway, probing=contextlib.nullcontext) -> tuple[Run, Run, list[float]]:
    """``rounds`` rounds of ``direct(r)`` then ``gateway(r)`` (under ``probing()``): both paths'
    runs and each gateway round's start and end (Unix times); prints the added p50 of each."""
    d_run, g_run, windows, added = Run(), Run(), [], []
    for r in range(rounds):
        d = direct(r)
        windows.append(time.time())
        with probing():
            g = gateway(r)
        windows.append(time.time())
        d_run.add(d)
        g_run.add(g)
        added.append((pct(g.ttfts, 0.5) - pct(d.ttfts, 0.5)) * 1000)
    print(f"   added p50 of each round: {', '.join(f'{x:+.1f}' for x in added)} ms")
    return d_run, g_run, windows


def goal_lines(d_run: Run, g_run: Run) -> None:
    """Prints p50 and p99 of the time to first token of both paths against the goals."""
    for q, goal in ((0.5, 5.0), (0.99, 20.0)):
        d, g = pct(d_run.ttfts, q) * 1000, pct(g_run.ttfts, q) * 1000
        print(f"   p{int(q * 100)}: direct {d:7.2f} ms  gateway {g:7.2f} ms  added {g - d:7.2f} ms"
              f"  (goal <= {goal:g} ms)  ratio {g / d:.2f}x")


def arrivals(rate_per_s: float, n: int, seed: int) -> list[float]:
    """``n`` arrivals of a Poisson process of ``rate_per_s`` (seconds from its start): the sums
    of exponential gaps drawn from ``seed``, scaled so that the last comes at ``n / rate_per_s``
    (the rate is then the one asked for, not one off by a few hundred draws' ~6%)."""
    gaps = np.random.default_rng(seed).exponential(1.0, n)
    return (np.cumsum(gaps) * (n / rate_per_s / gaps.sum())).tolist()


def open_loop(harness: Harness, direct: tuple[str, dict], gateway: tuple[str, dict], half: int,
              chat_s: float, args: argparse.Namespace, closed: tuple[Run, Run]) -> tuple[Run, Run, list[float]]:
    """Phase 1b: phase 1's offered load (its runs ``closed``) as Poisson arrivals, the same
    schedule for both paths."""
    rate = half / chat_s
    per_round = max(1, math.ceil(args.open_samples / args.ttft_rounds))
    pool = math.ceil(POOL_PER_MEAN * half / len(harness.clients))
    schedules = [arrivals(rate, per_round, OPEN_SEED + r) for r in range(args.ttft_rounds)]
    print(f"1b. TTFT at the same offered load, open loop: Poisson arrivals of 20-token chats at "
          f"{rate:.1f}/s ({half} x 1 per {chat_s * 1000:g} ms), sent whatever is in flight; "
          f"{args.ttft_rounds} rounds x {per_round} arrivals per path (seed {OPEN_SEED} + round), "
          f"TTFT from the arrival; {pool} connections per client opened beforehand ({load()})")
    d_run, g_run, windows = interleaved(args.ttft_rounds,
                                        lambda r: harness.drive_open(*direct, schedules[r], 20, pool),
                                        lambda r: harness.drive_open(*gateway, schedules[r], 20, pool))
    for name, r in (("direct", d_run), ("gateway", g_run)):
        # Little's law: arrivals a second x seconds each from arrival to end
        print(f"   {name + ':':<8} sent {pct(r.late_s, 0.5) * 1000:.2f} / {pct(r.late_s, 0.99) * 1000:.2f} ms "
              f"after the arrival (p50 / p99); in flight {rate * r.busy_s / r.requests:.1f} on average, "
              f"at most {r.peak} at a client; {r.opened} arrivals found no free connection and opened one")
    was, now = ([np.mean(r.bunching) for r in pair] for pair in (closed, (d_run, g_run)))
    print(f"   how bunched the sends came (gaps' coefficient of variation, rounds' mean; 1 for Poisson "
          f"arrivals, more for bursts): phase 1's later chats direct {was[0]:.2f}, gateway {was[1]:.2f}; "
          f"here direct {now[0]:.2f}, gateway {now[1]:.2f}")
    print("   other processes on the machine, cores busy in each round: "
          + "; ".join(f"{name} " + ", ".join(f"{max(0.0, x):.2f}" for x in r.others)
                      for name, r in (("direct", d_run), ("gateway", g_run))))
    goal_lines(d_run, g_run)
    print(f"   from the send instead (vLLM's clock): added p50 "
          f"{(pct(g_run.sent_ttfts, 0.5) - pct(d_run.sent_ttfts, 0.5)) * 1000:+.2f} ms, p99 "
          f"{(pct(g_run.sent_ttfts, 0.99) - pct(d_run.sent_ttfts, 0.99)) * 1000:+.2f} ms")
    print("   gateway path:\n" + cpu_lines(g_run))
    return d_run, g_run, windows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--samples", type=int, default=200, help="TTFT samples per path")
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=100, help="tokens per stream (throughput)")
    parser.add_argument("--rounds", type=int, default=3, help="chats per stream (throughput)")
    parser.add_argument("--window-s", type=float, default=3.0, help="per saturation level")
    parser.add_argument("--half", type=int, help="streams of phase 1 (default: half of the "
                        "saturation phase 0 measures; given, phase 0 is skipped)")
    parser.add_argument("--ttft-rounds", type=int, default=2, help="interleaved rounds per path "
                        "in phase 1 (more of them average out a shared machine's bursts)")
    parser.add_argument("--open-samples", type=int, default=600, help="arrivals per path over "
                        "all rounds of the open loop (phase 1b); 0 skips it")
    parser.add_argument("--ttft-ms", type=float, default=20.0)
    parser.add_argument("--gap-ms", type=float, default=10.0)
    parser.add_argument("--spy", type=Path, help="write py-spy samples of each process here")
    parser.add_argument("--floor", action="store_true", help="probe the path's hops with no work "
                        "in them alongside the gateway's rounds (gateway_floor.py)")
    parser.add_argument("--stages", action="store_true",
                        help="stamp each stage of every request (HEDDLE_LOOP_STATS) and print "
                             "where the TTFT at half of saturation goes")
    args = parser.parse_args()
    stats_dir = Path(tempfile.mkdtemp(prefix="bench-gateway-stages-"))
    if args.stages:
        os.environ["HEDDLE_LOOP_STATS"] = str(stats_dir / "{role}.json")
    harness = Harness(args.clients, args.ttft_ms, args.gap_ms)
    cluster = floor = None
    try:
        cluster = start_cluster(Path(tempfile.mkdtemp(prefix="bench-gateway-")), harness.url, harness)
        gateway = (cluster.base_url + "/v1/chat/completions", {"Authorization": "Bearer " + KEY})
        direct = (harness.url + "/v1/chat/completions", {})
        # warm-up: model discovery, connections, code paths, and every agent's first completed
        # task (its performance log imports the fitting code FLUSH_EVERY_S later, ~1 s of CPU
        # holding the agent's GIL: let it happen before anything is measured)
        harness.drive(*gateway, SLOTS_PER_AGENT * len(NODES), 2, 5)
        harness.drive(*direct, 8, 5, 5)
        time.sleep(FLUSH_EVERY_S + 2.0)
        if args.spy:
            harness.spy(args.spy)
        chat_s = (args.ttft_ms + 19 * args.gap_ms) / 1000  # one 20-token chat at the stand-in's pace

        half = args.half or saturation(harness, gateway, args.window_s, chat_s)
        if args.floor:
            floor = Floor(cluster.url, harness.url)
            for _ in range(20):
                floor.probe(floor.direct, 2)
                floor.probe(floor.front, 2)
            print(f"   floor, alone on the machine: the same hops with no work add {floor.added()}")
        per_loop = max(1, math.ceil(args.samples / half / args.ttft_rounds))
        print(f"1. TTFT at {half} concurrent streams (stand-in TTFT {args.ttft_ms:g} ms, one token "
              f"per {args.gap_ms:g} ms, 20 tokens; {args.ttft_rounds} rounds x {per_loop} chats per "
              f"stream per path)")
        d_run, g_run, windows = interleaved(args.ttft_rounds, lambda _: harness.drive(*direct, half, per_loop, 20),
                                            lambda _: harness.drive(*gateway, half, per_loop, 20),
                                            floor.probing if floor is not None else contextlib.nullcontext)
        later = [sorted(r.ttfts) for r in (d_run, g_run)]
        for r, ordered in zip((d_run, g_run), later, strict=True):
            for t in r.first_ttfts:
                del ordered[bisect.bisect_left(ordered, t)]
        if all(later) and d_run.first_ttfts and g_run.first_ttfts:
            print(f"   added p50 of the streams' first chats, all sent at once ({len(g_run.first_ttfts)}): "
                  f"{(pct(g_run.first_ttfts, 0.5) - pct(d_run.first_ttfts, 0.5)) * 1000:+.1f} ms; of the "
                  f"later ones ({len(later[1])}): {(pct(later[1], 0.5) - pct(later[0], 0.5)) * 1000:+.1f} ms, "
                  f"p99 {(pct(later[1], 0.99) - pct(later[0], 0.99)) * 1000:+.1f} ms")
        if floor is not None:
            print(f"   floor, during the gateway's rounds: the same hops with no work add {floor.added()}")
        goal_lines(d_run, g_run)
        print(f"   reader, direct: {reader_line(d_run)}\n   reader, gateway: {reader_line(g_run)}")
        print("   gateway path:\n" + cpu_lines(g_run))
        print(f"   one stream at a time, 40 chats per path ({load()}):")
        d_one, g_one = harness.drive(*direct, 1, 40, 20), harness.drive(*gateway, 1, 40, 20)
        for q in (0.5, 0.9):
            d, g = pct(d_one.ttfts, q) * 1000, pct(g_one.ttfts, q) * 1000
            print(f"   p{int(q * 100)}: direct {d:7.2f} ms  gateway {g:7.2f} ms  added {g - d:7.2f} ms")
        print("   gateway path:\n" + cpu_lines(g_one))
        od_run, og_run, o_windows = (open_loop(harness, direct, gateway, half, chat_s, args, (d_run, g_run))
                                     if args.open_samples else (Run(), Run(), []))

        print(f"2. throughput, {args.streams} concurrent streams x {args.rounds} chats of "
              f"{args.tokens} tokens ({load()})")
        d_tp = harness.drive(*direct, args.streams, args.rounds, args.tokens)
        tp_window = (time.time(), 0.0)
        g_tp = harness.drive(*gateway, args.streams, args.rounds, args.tokens)
        tp_window = (tp_window[0], time.time())
        ideal = args.streams * args.tokens / ((args.ttft_ms + args.gap_ms * (args.tokens - 1)) / 1000)
        print(f"   direct  {d_tp.rate:8.0f} tokens/s ({d_tp.tokens} in {d_tp.wall_s:.2f} s)")
        print(f"   gateway {g_tp.rate:8.0f} tokens/s ({g_tp.tokens} in {g_tp.wall_s:.2f} s)")
        print(f"   TTFT p50 / p99: direct {pct(d_tp.ttfts, 0.5) * 1000:.1f} / {pct(d_tp.ttfts, 0.99) * 1000:.1f} ms, "
              f"gateway {pct(g_tp.ttfts, 0.5) * 1000:.1f} / {pct(g_tp.ttfts, 0.99) * 1000:.1f} ms")
        print(f"   gateway / direct = {g_tp.rate / d_tp.rate:.1%}  (goal >= 90%; the stand-in's pace "
              f"allows {ideal:.0f} tokens/s)")
        print(f"   reader, direct: {reader_line(d_tp)}\n   reader, gateway: {reader_line(g_tp)}")
        print("   direct path:\n" + cpu_lines(d_tp))
        print("   gateway path:\n" + cpu_lines(g_tp))
        print("\n".join(slot_wait_lines(cluster.url, g_tp)))
        errors = [e for r in (d_run, g_run, d_one, g_one, od_run, og_run, d_tp, g_tp) for e in r.errors]
        print(f"{load()} at the end; error events in streams: {len(errors)}"
              f"{' (first: ' + errors[0] + ')' if errors else ''}")
        if args.stages:
            stop_for_stats(cluster)
            print(f"1. again, where the gateway's TTFT at {half} streams went (last round):")
            print("\n".join(stage_lines(stats_dir, g_run, windows[-2], windows[-1])))
            if o_windows:
                print("1b. again, where the gateway's TTFT in the open loop went (last round):")
                print("\n".join(stage_lines(stats_dir, og_run, o_windows[-2], o_windows[-1])))
            print(f"2. again, where the gateway's TTFT with {args.streams} streams went:")
            print("\n".join(stage_lines(stats_dir, g_tp, *tp_window)))
    except Exception:
        if cluster is not None:  # a client that died on a cut answer: what the servers said
            for name, log in (("gateway", cluster.gateway_log), ("control plane", cluster.control_log)):
                print(f"   the {name}'s last lines:", *(line.rstrip() for line in log[-30:]), sep="\n     ")
            # which process ended (an exit code, or minus the signal that ended it) or is running
            processes = [("gateway", cluster.gateway), ("control plane", cluster.control),
                         ("nats-server", cluster.nats.process), *cluster.agents.items()]
            print("   processes:", ", ".join(f"{name} {'running' if p.poll() is None else p.returncode}"
                                             for name, p in processes))
        raise
    finally:
        if floor is not None:
            floor.close()
        harness.close()
        if cluster is not None:
            cluster.close()


if __name__ == "__main__":
    main()
