"""How faithful the twin is to a live cluster on this machine: the fidelity test's runs at a
size chosen here, live vs twin latency p50/p95/p99 with their errors, and the load average.

    uv run python benchmarks/bench_fidelity.py [--case cpu|tokens|both] [--items N (one case)]
        [--warmup-s S] [--load RHO] [--service-s S] [--seed K] [--no-priority]

cpu: three `heddle agent` processes (one slot each, burn steps capped at --cpu-limit of a
core), Poisson arrivals of CPU-burn steps at offered load RHO in a privacy mix with a few
pipelines, a warm-up of S seconds of the same load outside the window, the window recorded,
the fleet exported at the speeds the agents measured over the window, replayed by
`heddle.sim.fidelity.compare` (what `heddle twin check` runs). tokens: the same with LLM
steps against stand-in Ollama servers that pace tokens as the performance model does for the
device each agent reports (tests/live/fidelitykit.py). The baseline of each error is the live
figure measured in the same run; the load average (`uptime`) is printed before and after.
Next to the twin's figures, the same replay at each node's mean speed over the window (its
measured speed over time left out), and on the mean speeds alone (the measured service
spread and start delay left out too): what each adds.

    uv run python benchmarks/bench_fidelity.py --sampling [--sizes 200,400,800,1600]

How many tasks the window needs, from the twin alone (no cluster): for each size, 30
workloads of the cpu case (different seeds) replayed twice, as drawn and with each step's
work multiplied by lognormal noise of sigma 0.05 (the live steps' own variation), printing
p95's spread across seeds and the spread of the noisy/clean p95 ratio (what separates the
live p95 from the twin's when both see the same arrivals and work).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np

from heddle.models.fleet import load_fleet
from heddle.sim.fidelity import compare
from tests.live import fidelitykit as kit


def load_avg() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def report(name: str, run: kit.LiveRun, wall_s: float, load_before: str) -> None:
    fleet = load_fleet(run.fleet_yaml)
    fidelity = compare(run.recorded, fleet, "fast")
    # the same replay at the mean speeds (no speed over time), then without the measured
    # spread and start delay either
    mean = replace(fleet, nodes=tuple(replace(n, speed_profile=()) for n in fleet.nodes))
    steady = compare(run.recorded, mean, "fast")
    bare = compare(run.recorded, replace(mean, nodes=tuple(
        replace(n, service_cv=0.0, service_quantiles=(), dispatch_s=0.0) for n in mean.nodes)), "fast")
    print(f"\n== {name}: {run.tasks} tasks in the window over {fidelity.window_s:.1f} s "
          f"(wall {wall_s:.0f} s); load average before {load_before}, after {load_avg()}")
    print(f"{'figure':<22}{'live':>10}{'twin':>10}{'error':>9}{'mean speed':>12}{'error':>9}"
          f"{'speeds only':>13}{'error':>9}")
    metrics = ["latency p50 (s)", "latency p95 (s)", "latency p99 (s)"]
    if run.recorded.outcomes["first_token_s"].notna().any():
        metrics += ["ttft p50 (s)", "ttft p95 (s)", "ttft p99 (s)"]
    for metric in metrics:
        row, flat, base = fidelity.row(metric), steady.row(metric), bare.row(metric)
        print(f"{metric:<22}{row.live:>10.4f}{row.twin:>10.4f}{_pct(row.error):>9}{flat.twin:>12.4f}"
              f"{_pct(flat.error):>9}{base.twin:>13.4f}{_pct(base.error):>9}")
    for line in kit.diagnose(run):
        print("  " + line)


def _pct(error: float | None) -> str:
    return "-" if error is None else f"{error:+.1%}"


def sampling(sizes: list[int], load: float, service_s: float, seeds: int = 30) -> None:
    from heddle.live.control.submission import parse_submission
    from heddle.models.fleet import parse_fleet
    from heddle.sim.runner import simulate
    from heddle.traces.trace import from_tasks

    speed = 0.16  # any: the workload is drawn in units of it
    fleet = parse_fleet("name: sampling\nnodes:\n" + "".join(
        f"- {{id: {n}, device: m1-7, memory_gb: 16, owner: {o}, trusted_owners: {list(t)}, slots: 1, "
        f"cpu_speed_relative: {speed}}}\n" for n, (o, t) in kit.NODES.items()), "sampling")

    def p95(seed: int, n: int, noise: float) -> float:
        noisy = np.random.default_rng(1000 + seed)
        items = kit.poisson_items(np.random.default_rng(seed), n, load * len(kit.NODES) / service_s,
                                  service_s * speed, max(1, n // 60))
        tasks, deps = [], {}
        for i, (at, text) in enumerate(items):
            for st in parse_submission(text, f"j{i}"):
                t = st.task
                t = replace(t, arrival_s=at, cpu_seconds=t.cpu_seconds * (noisy.lognormal(0, noise) if noise else 1),
                            pipeline_id=f"j{i}/{t.pipeline_id}" if t.pipeline_id else None)
                tasks.append(t)
                deps[t.id] = ",".join(t.depends_on)
        return float(np.percentile(simulate(fleet, from_tasks(tasks, deps), policy="fast").records["latency"], 95))

    print(f"{'tasks':>6}{'p95 mean (s)':>14}{'p95 spread':>12}{'noisy/clean p95 spread':>24}")
    for n in sizes:
        clean = np.array([p95(s, n, 0.0) for s in range(seeds)])
        ratio = np.array([p95(s, n, 0.05) for s in range(seeds)]) / clean
        print(f"{n:>6}{clean.mean():>14.3f}{clean.std() / clean.mean():>12.1%}{ratio.std():>24.1%}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=("cpu", "tokens", "both"), default="both")
    parser.add_argument("--items", type=int, default=None, help="items in the window (default: the test's)")
    parser.add_argument("--warmup-s", type=float, default=kit.WARMUP_S)
    parser.add_argument("--load", type=float, default=kit.LOAD)
    parser.add_argument("--service-s", type=float, default=kit.SERVICE_MEAN_S)
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--no-priority", action="store_true",
                        help="leave the cluster's processes at the default priority (real-time or nice otherwise: kit.raise_priority)")
    parser.add_argument("--sampling", action="store_true", help="only the twin's sampling study (no cluster)")
    parser.add_argument("--sizes", default="200,400,800,1600")
    args = parser.parse_args()
    if args.sampling:
        sampling([int(x) for x in args.sizes.split(",")], args.load, args.service_s)
        return
    cases = ("cpu", "tokens") if args.case == "both" else (args.case,)
    with tempfile.TemporaryDirectory(prefix="bench-fidelity-") as tmp:
        before, t0 = load_avg(), time.monotonic()
        runs = asyncio.run(kit.measured_runs(
            Path(tmp), cases, items=args.items if args.case == "cpu" else None,
            token_items=args.items if args.case == "tokens" else None, warmup_s=args.warmup_s,
            load=args.load, service_s=args.service_s, rng=np.random.default_rng(args.seed),
            priority=not args.no_priority))
        for case in cases:
            report(case, runs[case], time.monotonic() - t0, before)

if __name__ == "__main__":
    main()
