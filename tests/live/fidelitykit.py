"""A recorded live run for the fidelity tests and benchmark: three agents (separate OS
processes, a real nats-server, `heddle scheduler` recording), Poisson arrivals submitted at
their times, a warm-up outside the window, then the recording read back and the fleet
exported at the speeds the agents measured over the window.

Two cases. `cpu`: processor steps that burn real CPU, each agent's burn steps capped at
CPU_LIMIT of a core (`heddle agent --cpu-limit`, like `docker --cpus`): three nodes at 60%
load then use about 3 x 0.6 x CPU_LIMIT of this shared 2-core machine, and a step takes its
CPU time / CPU_LIMIT whatever the other processes do, as long as they leave it that share.
`tokens`: LLM steps against one stand-in Ollama server per agent that streams each answer at
the pace the performance model gives the device the agent reports (TOKEN_DEVICES): the model
load on the first request, then the prompt's prefill, then one token every decode interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from heddle.live.control.submission import SubmittedTask, parse_submission
from heddle.models import perf
from heddle.models.catalog import device as device_spec
from heddle.models.catalog import model as model_spec
from heddle.traces.recorded import Recorded, load_recorded
from tests.live.clusterkit import REPO, Cluster, agent_command
from tests.live.llmstandin import Plan, StandIn, ollama_stream

NODES = {  # node -> (owner, trusted owners)
    "alpha": ("alice", ("bob",)),
    "beta": ("bob", ()),
    "gamma": ("carol", ()),
}
CPU_LIMIT = 0.05
"""Share of a core each agent's burn steps may use. With eight helpers' test suites running,
one process got 10-25% of a core here (load average 8-15 on 2 cores); a cap well below that
keeps the steps' pace steady, and the three agents use ~0.1 core between them."""
PRIORITY = -10
"""Scheduling priority (nice) of the cluster's processes (nats-server, control plane, agents
and so their workers) where the test may set it but not a real-time policy (below): on this
machine shared with other jobs' test suites, the cluster's steps otherwise wait for a core
behind them, as nodes of their own would not (measured: docs/fidelity.md)."""
REALTIME_PRIORITY = 1
"""The cluster's processes run under the round-robin real-time policy at this (lowest)
priority where the test may set it (Linux, root): at nice -10 the other jobs still held
the cluster's processes off a core for 10-500 ms at times (steps placed, started or
finished that late, all nodes at once), a stall no fleet file describes, and a live window
that met several queued up far beyond its twin (p50 -41%, p95 -47%); real-time, no such
gap in any run (the longest 5 ms). The cluster uses ~0.5 core while its window runs (more
for the seconds its agents start); the kernel keeps 5% of each core for the rest whatever
real-time processes do."""
STALL_S = 0.1
"""A step that started this long after it could (placed, and its node's previous step ended)
means the machine held the cluster's real-time processes off the CPU: a virtual machine's
host not running it. In 22 recorded windows under the real-time policy the longest such delay
was 2-25 ms; in one full-suite run on 2026-12-07 (load 13) 511 ms, the test process and the
cluster stalled together for ~3 s (arrivals held back then accepted 40 at once, steps started
300-500 ms late), and that window came out -11% at p50 and -74% at p95: a stall no fleet
file describes."""
PRIVACY_MIX = (("public", None, 0.45), ("sensitive", "carol", 0.2), ("personal", "alice", 0.12),
               ("personal", "bob", 0.12), ("personal", "carol", 0.11))
"""(privacy, owner, share of items)."""
REPORT_EVERY_S = 1.0
"""Capacity reports' interval here (the other cluster tests use 0.2 s): a node is lost after
three missed reports, and at load 20-30 an agent may not run for 0.6 s; a report is sent at
once when a slot frees anyway, so placement does not wait for the interval. For the same
reason an assignment counts as lost after 10 s without an acknowledgement, not 2."""
LOAD = 0.6
"""cpu: offered load, the cluster's slots busy this share of the time: the issue's low end.
The window's p95 is made by its deepest bursts of arrivals; at 70% they are deeper and the
p95 moves more with the live steps' own variation (below)."""
TOKEN_LOAD = 0.7
"""tokens: offered load of the token window (its figures are held one-sided only)."""
SERVICE_MEAN_S = 0.04
"""cpu: mean wall time of a step at the capped speed the agents measure: short, so the window
holds many bursts in the seconds the test can spend (the control plane's start delay, ~3 ms,
is in the twin's fleet file as `dispatch_s`, and a step started on an idle node's extra ~1 ms
as `wake_s`). 0.08 s until 2026-12-07 08:00 UTC."""
WINDOW_ITEMS = 6000
"""cpu: items in the measured window of the benchmark (133 s at LOAD)."""
TEST_ITEMS = 4500
"""cpu: items in the test's window (100 s at LOAD). With the same arrivals and work on both
sides, what separates the twin's p95 from the live one by chance is the live steps' own
variation and which node frees first when two are about to. The twin alone measures it
(benchmarks/bench_fidelity.py --sampling: one draw standing for the live run against the
median of 8 others, each step's service drawn with a coefficient of variation of 0.2, the
test's own arrivals and work, 120 live draws, 2026-12-07 07:56-08:02 UTC): the p95 error's
standard deviation is 3.6% with the 1,350 items of 0.08 s (60 s) this window had until
2026-12-07 08:00 UTC, 2.2% with 2,700 of 0.04 s (60 s), 1.8% with 4,050 (90 s), 1.5% with
these (-3.6% to +3.9%), its mean 0.0% (docs/fidelity.md)."""
WARMUP_S = 4.0
"""cpu: seconds of the same load run before the window: the first seconds of load after the
cluster starts are slower than the rest (the processes' first paths, the recorder's first
write) and would stand for the start of the cluster, not its steady state."""
SEED = 18
"""The CPU window's workload (warm-up, arrivals, work, privacy) is drawn from a generator with
this seed, the token window's from one with the next: each window's draw stays the same when
the other's size changes. (Until 2026-12-07 08:00 UTC both came from one generator, so the
CPU window's resizing at 05:39 redrew the token window: from then its first 3 s held 29
arrivals where 16 are expected, queued behind each node's first step, which loads the model,
and its latency p50 (1.1-1.4 s, 0.62 s before) was that queue's: -2% to -17% from run to run.)"""
TOKEN_MODEL = ("llama3.1:8b-instruct-q4_K_M", "llama-3.1-8b", "q4_k_m")
"""(name the stand-ins serve, catalog model, quant) of the token case."""
TOKEN_DEVICES = {"alpha": "m2-ultra-76", "beta": "m4-max-40", "gamma": "m1-max-32"}
"""The device each agent of the token case reports; its stand-in streams at that device's pace."""
TOKEN_ITEMS = 110
"""tokens: items in the token window (20 s at TOKEN_LOAD): it is held to the side load does not
move, and stayed within 2% at 160 items in quiet runs."""
PROMPT_MEAN, OUTPUT_MEAN = 100, 16
"""tokens: mean prompt and output tokens of an LLM step (lognormal, sigma 0.5)."""


@dataclass
class LiveRun:
    recorded: Recorded
    fleet_yaml: Path
    recording: Path
    items: int
    tasks: int
    since_unix_s: float  # the window's start (the warm-up tasks ran before it)
    before: int  # tasks that ran before the window (warm-up)
    status: Any  # `heddle status <case>j<last>` once every task ended
    fleet: Any  # `heddle fleet` then
    probed: dict[str, float | None]  # each node's speed as its agent reported it before the run
    realtime: bool = False  # the cluster's processes ran real-time (REALTIME_PRIORITY) throughout

    @property
    def stall_s(self) -> float:
        """The longest a step waited to start once it could (placed, and its node's previous
        step ended): a few ms when the cluster's processes got the CPU (STALL_S)."""
        out = self.recorded.outcomes.sort_values("start_s")
        previous_end = out.groupby("target")["finish_s"].shift(1).fillna(-math.inf)
        delay = out["start_s"] - np.maximum(out["placed_s"], previous_end)
        return float(delay.max())


def start_cluster(tmp: Path, *, cpu_limit: float = CPU_LIMIT, extra_agent_flags: dict[str, list[str]] | None = None,
                  priority: bool = True) -> Cluster:
    kit = Cluster(tmp)
    kit.start_control("--report-interval", str(REPORT_EVERY_S), "--ack-timeout", "10")
    for node, (owner, trust) in NODES.items():
        flags = ["--cpu-limit", str(cpu_limit), "--report-every", str(REPORT_EVERY_S),
                 "--data-dir", str(tmp / f"{node}-data"),  # its speed records stay in the test's directory
                 *(extra_agent_flags or {}).get(node, [])]
        kit.agent_specs[node] = (owner, 1, trust)
        with (tmp / f"agent-{node}.log").open("w") as log:  # what an agent said, for a failure's reader
            kit.agents[node] = subprocess.Popen(agent_command(kit.url, node, owner, 1, trust) + flags, cwd=REPO,
                                                stdout=subprocess.DEVNULL, stderr=log)
    if priority:
        for process in (kit.nats.process, kit.control, *kit.agents.values()):
            raise_priority(process.pid)
    return kit


def raise_priority(pid: int) -> None:
    """Run `pid` (each of its threads: Linux keeps a policy per thread; threads and processes
    it starts later inherit it) real-time at REALTIME_PRIORITY, else at nice PRIORITY, else
    leave it at the machine's default (not permitted)."""
    try:
        threads = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:  # no /proc (macOS)
        threads = [pid]
    for tid in threads:
        raise_thread_priority(tid)


def raise_thread_priority(tid: int) -> None:
    """One thread (a native id) real-time at REALTIME_PRIORITY, else at nice PRIORITY, else as it was."""
    try:
        os.sched_setscheduler(tid, os.SCHED_RR, os.sched_param(REALTIME_PRIORITY))
    except (AttributeError, OSError):
        with contextlib.suppress(OSError):  # not permitted (not root): the machine's default
            os.setpriority(os.PRIO_PROCESS, tid, PRIORITY)


def ran_realtime(kit: Cluster) -> bool:
    """Whether every process of the cluster (each agent's worker too) still runs real-time."""
    assert kit.control is not None
    processes = [kit.nats.process.pid, kit.control.pid, *(a.pid for a in kit.agents.values())]
    try:
        processes += [int(c) for a in kit.agents.values()
                      for c in Path(f"/proc/{a.pid}/task/{a.pid}/children").read_text().split()]
        return all(os.sched_getscheduler(int(t)) == os.SCHED_RR
                   for pid in processes for t in os.listdir(f"/proc/{pid}/task"))
    except (AttributeError, OSError):  # not Linux, or a process gone
        return False


def _arrivals(rng: np.random.Generator, n: int, rate_per_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Arrival times (Poisson) and privacy-mix picks of `n` items."""
    shares = np.array([m[2] for m in PRIVACY_MIX])
    return np.cumsum(rng.exponential(1.0 / rate_per_s, n)), rng.choice(len(PRIVACY_MIX), n, p=shares / shares.sum())


def poisson_items(rng: np.random.Generator, n: int, rate_per_s: float, cpu_mean_s: float,
                  pipelines: int) -> list[tuple[float, str]]:
    """(arrival s, submission YAML) per item: processor tasks with lognormal CPU work in a
    privacy mix, and `pipelines` two-stage pipelines among them."""
    arrivals, picks = _arrivals(rng, n, rate_per_s)
    sigma = 0.5
    work = rng.lognormal(np.log(cpu_mean_s) - sigma**2 / 2, sigma, 2 * n)
    as_pipeline = set(rng.choice(n, pipelines, replace=False).tolist())
    items = []
    for i in range(n):
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
        items.append((float(arrivals[i]), text))
    return items


def llm_items(rng: np.random.Generator, n: int, rate_per_s: float) -> list[tuple[float, str]]:
    """(arrival s, submission YAML) per item: LLM steps of TOKEN_MODEL with lognormal prompt and
    output sizes in the privacy mix."""
    arrivals, picks = _arrivals(rng, n, rate_per_s)
    sigma = 0.5
    prompts = np.maximum(rng.lognormal(np.log(PROMPT_MEAN) - sigma**2 / 2, sigma, n).round(), 16).astype(int)
    outputs = np.maximum(rng.lognormal(np.log(OUTPUT_MEAN) - sigma**2 / 2, sigma, n).round(), 1).astype(int)
    _, model, quant = TOKEN_MODEL
    items = []
    for i in range(n):
        privacy, owner, _ = PRIVACY_MIX[picks[i]]
        who = f", owner: {owner}" if owner else ""
        text = (f"tasks:\n  - {{id: t{i}, kind: llm, model: {model}, quant: {quant}, "
                f"prompt_tokens: {prompts[i]}, output_tokens: {outputs[i]}, privacy: {privacy}{who}}}\n")
        items.append((float(arrivals[i]), text))
    return items


class PacedByModel:
    """A stand-in's planner: each answer streams at the pace `perf.llm_step` gives the device
    for the request's prompt and output tokens (the prompt's words: the agent builds a prompt
    of the task's prompt_tokens words), with the model's load on the first request after
    `unload()`. The documented per-device pace of the token case."""

    def __init__(self, standin: StandIn, device_id: str) -> None:
        self.standin, self.device, self.spec = standin, device_spec(device_id), model_spec(TOKEN_MODEL[1])
        self.loaded: set[str] = set()  # what has paid its load (the server lists it as loaded throughout)
        self.served = 0

    def unload(self) -> None:
        with self.standin.lock:
            self.loaded.clear()

    def __call__(self, path: str, body: dict) -> Plan:
        prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", ()))
        output = int((body.get("options") or {}).get("num_predict") or 1)
        with self.standin.lock:
            resident = body["model"] in self.loaded
            self.loaded.add(body["model"])
            self.served += 1
        device, spec = self.device, self.spec
        step = perf.llm_step(device, spec, TOKEN_MODEL[2], prompt, output, resident=resident)
        words = [f" w{i}" for i in range(output)]
        chunks = ollama_stream(body["model"], words, prompt_tokens=prompt)
        # the first token after load + prefill (the twin's time to first token), then one every
        # decode interval, the closing line one interval after the last: done at load + prefill + decode
        return Plan(chunks=chunks, delays=[step.load_s + step.prefill_s] + [step.decode_s / output] * output)


def token_standins(priority: bool = True) -> dict[str, StandIn]:
    """One stand-in per node. Its first request pays the model's load (the twin's node starts
    with nothing resident), but it lists the model as loaded from the start: an agent reads
    that list every 30 s, and a control plane that went on believing the model absent after
    the first step loaded it would price every step with a load (1.8 s) and fall behind."""
    out = {}
    for node, device_id in TOKEN_DEVICES.items():
        standin = StandIn(TOKEN_MODEL[0])
        standin.planner = PacedByModel(standin, device_id)
        # its server thread (and so the thread of each request, which paces the answer) at
        # the cluster's priority: it stands for the node's own model server
        if priority and standin.thread.native_id is not None:
            raise_thread_priority(standin.thread.native_id)
        out[node] = standin
    return out


def mean_service_s(device_id: str) -> float:
    """The performance model's service time of a mean-sized LLM step on `device_id`."""
    return perf.llm_step(device_spec(device_id), model_spec(TOKEN_MODEL[1]), TOKEN_MODEL[2],
                         PROMPT_MEAN, OUTPUT_MEAN).seconds


async def measured_runs(tmp: Path, cases: tuple[str, ...] = ("cpu", "tokens"), *, items: int | None = None,
                        token_items: int | None = None, warmup_s: float = WARMUP_S, load: float | None = None,
                        service_s: float = SERVICE_MEAN_S, seed: int = SEED,
                        priority: bool = True) -> dict[str, LiveRun]:
    """One cluster (its agents serving LLM steps through paced stand-ins when "tokens" is
    asked for) runs each case's warm-up and window in turn, recorded and exported per window,
    at `load` (default: LOAD for cpu, TOKEN_LOAD for tokens); the cluster and stand-ins are
    stopped before it returns."""
    rngs = {case: np.random.default_rng(seed + k) for k, case in enumerate(("cpu", "tokens"))}
    standins = token_standins(priority) if "tokens" in cases else {}
    flags = {node: ["--ollama-url", s.url, "--device", TOKEN_DEVICES[node]] for node, s in standins.items()}
    kit = start_cluster(tmp, extra_agent_flags=flags, priority=priority)
    runs = {}
    try:
        client = await kit.client()
        await kit.wait_nodes(client, set(NODES))
        probed = {n.node_id: n.speed_relative for n in (await client.fleet()).nodes}
        await client.close()
        for case in cases:
            warmed, rng = 0, rngs[case]
            if case == "cpu":
                rate = (load or LOAD) * len(NODES) / service_s
                n = items or WINDOW_ITEMS
                warm = poisson_items(rng, math.ceil(rate * warmup_s), rate, service_s * _mean(probed), 0)

                def window(speeds: dict[str, float | None], n: int = n, rate: float = rate,
                           rng: np.random.Generator = rng) -> list[tuple[float, str]]:
                    # sized at the speed the agents measured over the warm-up, not the probe's at
                    # start (off by up to 25% here): the window's load is then LOAD
                    return poisson_items(rng, n, rate, service_s * _mean(speeds), max(1, n // 60))
            else:
                warmed = await warm_token_path(kit, standins)
                rate = (load or TOKEN_LOAD) * sum(1 / mean_service_s(d) for d in TOKEN_DEVICES.values())
                warm, window = [], llm_items(rng, token_items or TOKEN_ITEMS, rate)
            runs[case] = await run_and_record(kit, tmp / case, window, warm)
            runs[case].probed = probed
            runs[case].realtime = ran_realtime(kit)
            runs[case].before += warmed
        return runs
    finally:
        kit.close()
        for standin in standins.values():
            standin.stop()


def _mean(speeds: dict[str, float | None]) -> float:
    """The nodes' mean core speed (reference-core seconds per second)."""
    return float(np.mean([s for s in speeds.values() if s]))


async def warm_token_path(kit: Cluster, standins: dict[str, StandIn]) -> int:
    """Run LLM steps until every agent has finished one (an agent's first LLM step costs
    seconds more than the rest: its first speed record imports the calibration code), then
    unload the stand-ins' model, so the window's first step on each node loads it, as the
    twin's does."""
    client = await kit.client()
    ended = sum(v for k, v in (await client.status(limit=0)).counts.items()
                if k in ("completed", "failed", "rejected", "cancelled"))
    rounds = 0
    while any(s.planner.served == 0 for s in standins.values()):
        # public steps spread over whichever nodes are free; a few owners' pin the rest
        text = "tasks:\n" + "".join(
            f"  - {{id: t{i}, kind: llm, model: {TOKEN_MODEL[1]}, quant: {TOKEN_MODEL[2]}, prompt_tokens: 16, "
            f"output_tokens: 1, privacy: {privacy}{f', owner: {owner}' if owner else ''}}}\n"
            for i, (privacy, owner) in enumerate([("public", None)] * 3 + [("personal", "bob")] * 2 + [("personal", "carol")]))
        tasks = parse_submission(text, f"tokwarm{rounds}")
        await client.submit(f"tokwarm{rounds}", tasks)
        ended += len(tasks)
        await wait_all_ended(kit, client, ended)
        rounds += 1
        assert rounds < 10, {node: s.planner.served for node, s in standins.items()}
    await client.close()
    for standin in standins.values():
        standin.planner.unload()
    return 6 * rounds


async def submit_at(client: Any, items: list[tuple[float, str]], prefix: str) -> int:
    """Submit each item (job `<prefix><i>`) at its arrival time; returns the tasks submitted."""
    parsed: list[tuple[float, str, list[SubmittedTask]]] = [
        (at, f"{prefix}{i}", parse_submission(text, f"{prefix}{i}")) for i, (at, text) in enumerate(items)]
    t0 = time.monotonic()
    sends = []
    for at, job, tasks in parsed:
        delay = t0 + at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # the workload's arrival process, not synchronisation
        sends.append(asyncio.ensure_future(client.submit(job, tasks)))
    await asyncio.gather(*sends)
    return sum(len(tasks) for _, _, tasks in parsed)


async def wait_all_ended(kit: Cluster, client: Any, total: int) -> dict:
    async def all_ended():
        counts = (await client.status(limit=0)).counts
        ended = sum(counts.get(k, 0) for k in ("completed", "failed", "rejected", "cancelled"))
        return counts if ended >= total else None

    return await kit.wait_for(all_ended, f"{total} tasks ended")


async def run_and_record(kit: Cluster, tmp: Path,
                         items: list[tuple[float, str]] | Callable[[dict[str, float | None]], list[tuple[float, str]]],
                         warmup: list[tuple[float, str]] = ()) -> LiveRun:
    """Run `warmup` (outside the window), then submit every item at its arrival time (`items`
    may be drawn then, from each node's speed as its agent reports it), wait for all to end,
    export the fleet at the speeds measured over the window and read the recording once it
    holds every task."""
    client = await kit.client()
    await kit.wait_nodes(client, set(NODES))
    tmp.mkdir(parents=True, exist_ok=True)
    # tasks ended before this window (another case's), and ids unique across windows
    done_before = sum(v for k, v in (await client.status(limit=0)).counts.items()
                      if k in ("completed", "failed", "rejected", "cancelled"))
    tag = tmp.name
    # every agent starts its worker process on its first step: run those before the window
    warm = parse_submission("tasks:\n" + "".join(
        f"  - {{id: w{i}, kind: processor, cpu_seconds: 0.001, privacy: sensitive}}\n" for i in range(2 * len(NODES))),
        f"{tag}warm")
    await client.submit(f"{tag}warm", warm)
    before = len(warm) + (await submit_at(client, list(warmup), f"{tag}w") if warmup else 0)
    await wait_all_ended(kit, client, done_before + before)
    if callable(items):
        items = items({n.node_id: n.speed_relative for n in (await client.fleet()).nodes})
    since = time.time()
    total = await submit_at(client, items, f"{tag}j")
    await wait_all_ended(kit, client, done_before + before + total)
    # the last job: the control plane keeps a window of ended tasks in memory, not all 1,350
    status, fleet = await client.status(f"{tag}j{len(items) - 1}"), await client.fleet()
    fleet_yaml = tmp / "fleet.yaml"
    code, output = await heddle_cli("fleet", "export", "--nats", kit.url, "-o", str(fleet_yaml),
                                    "--since", datetime.fromtimestamp(since, UTC).isoformat())
    assert code == 0, output
    recording = kit.tmp / "data" / "recorded"

    async def recorded_all():
        try:
            run = load_recorded(recording, since_unix_s=since)
        except Exception:  # noqa: BLE001 - nothing written yet
            return None
        return run if len(run.trace) >= total else None

    recorded = await kit.wait_for(recorded_all, f"{total} tasks in the recording")
    await client.close()
    return LiveRun(recorded, fleet_yaml, recording, len(items), total, since, before, status, fleet, {})


def diagnose(run: LiveRun) -> list[str]:
    """What moves the figure, read from the recording: each node's speed (probed at start,
    exported over the window, and the recorded steps' work over their service time), the
    service time live / predicted, and the control plane's and agent's own delays."""
    import yaml

    df, out = run.recorded.trace.df, run.recorded.outcomes
    service = out["finish_s"] - out["start_s"]
    exported = {n["id"]: n.get("cpu_speed_relative") for n in yaml.safe_load(run.fleet_yaml.read_text())["nodes"]}
    lines = []
    if (df["kind"] == "processor").all():
        for node in sorted(NODES):
            on = out["target"] == node
            lines.append(f"{node}: speed probed {run.probed.get(node) or math.nan:.4f}, exported over the window "
                         f"{exported.get(node) or math.nan:.4f}, recorded work / service {df['cpu_seconds'][on].sum() / service[on].sum():.4f}")
    fleet = {n["id"]: n for n in yaml.safe_load(run.fleet_yaml.read_text())["nodes"]}
    lines.append("exported spread's shape (p5 / p50 / p95 of the factor) " + ", ".join(
        f"{k} " + " / ".join(f"{np.quantile(v['service_quantiles'], q):.3f}" for q in (0.05, 0.5, 0.95))
        for k, v in sorted(fleet.items()) if v.get("service_quantiles")))
    lines.append("exported service_cv " + ", ".join(f"{k} {v.get('service_cv', 0):.3f}" for k, v in sorted(fleet.items()))
                 + "; dispatch_s " + ", ".join(f"{k} {v.get('dispatch_s', 0) * 1000:.1f} ms" for k, v in sorted(fleet.items())))
    predicted = out["predicted_finish_s"] - out["predicted_start_s"]
    ratio = (service / predicted).to_numpy(dtype=float)
    lines.append(f"service live / predicted: p50 {np.nanpercentile(ratio, 50):.3f}, p95 {np.nanpercentile(ratio, 95):.3f}")
    for label, a, b in (("admission (released - arrival)", "arrival", "released_s"),
                        ("placement (placed - released)", "released_s", "placed_s"),
                        ("dispatch (start - placed)", "placed_s", "start_s")):
        first = df["arrival_s"] if a == "arrival" else out[a]
        ms = ((out[b] - first) * 1000).to_numpy(dtype=float)
        lines.append(f"{label}: p50 {np.nanpercentile(ms, 50):.1f} ms, p95 {np.nanpercentile(ms, 95):.1f} ms")
    return lines


async def heddle_cli(*args: str, timeout: float = 120.0) -> tuple[int, str]:
    """Exit code and output of one `heddle` command, run as a separate process."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "heddle.cli.main", *args, cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(process.communicate(), timeout)
    return process.returncode, output.decode()
