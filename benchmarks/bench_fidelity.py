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
spread, start delays and wake left out too): what each adds.

    uv run python benchmarks/bench_fidelity.py --sampling [--configs 450:0.7:0.12,1350:0.6:0.08] [--cv 0.2] [--draws 60]

How large a window the test needs, from the twin alone (no cluster): for each window (items,
offered load, mean step), the kit's own arrivals and work; twin runs with each step's service
drawn at the live steps' variation, each standing in turn for the live run against the median
of the 8 runs after it (what `heddle twin check` reports; the mean of the 8 printed next to
it), --draws times: the spread (and the mean) of the p50 and p95 errors that chance alone makes
when both sides see the same arrivals and work, the twin's own figure's chance included.
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
    # spread, start delays and wake either
    mean = replace(fleet, nodes=tuple(replace(n, speed_profile=()) for n in fleet.nodes))
    steady = compare(run.recorded, mean, "fast")
    bare = compare(run.recorded, replace(mean, nodes=tuple(
        replace(n, service_cv=0.0, service_quantiles=(), dispatch_s=0.0, idle_dispatch_s=None, wake_s=0.0)
        for n in mean.nodes)), "fast")
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


def sampling(configs: list[tuple[int, float, float]], cv: float, draws: int = 60) -> None:
    """For each (items, load, mean service s): the kit's cpu window (its seed, warm-up drawn
    first), `draws` twin runs each standing for the live run against the median of the REPLAYS
    runs after it, each step's service drawn with coefficient of variation `cv` (the live
    steps' own variation): the spread of the p50 and p95 errors chance alone makes."""
    import math

    from heddle.live.control.submission import parse_submission
    from heddle.models.fleet import parse_fleet
    from heddle.sim.fidelity import REPLAYS
    from heddle.sim.runner import simulate
    from heddle.traces.trace import from_tasks

    speed = 0.1  # any: the workload is drawn in units of it
    fleet = parse_fleet("name: sampling\nnodes:\n" + "".join(
        f"- {{id: {n}, device: m1-7, memory_gb: 16, owner: {o}, trusted_owners: {list(t)}, slots: 1, "
        f"cpu_speed_relative: {speed}, service_cv: {cv}, dispatch_s: 0.003}}\n" for n, (o, t) in kit.NODES.items()),
        "sampling")

    def window(n: int, load: float, service_s: float):
        rng = np.random.default_rng(kit.SEED)  # the kit's, as measured_runs draws it
        rate = load * len(kit.NODES) / service_s
        kit.poisson_items(rng, math.ceil(rate * kit.WARMUP_S), rate, service_s * speed, 0)
        tasks, deps = [], {}
        for i, (at, text) in enumerate(kit.poisson_items(rng, n, rate, service_s * speed, max(1, n // 60))):
            for st in parse_submission(text, f"j{i}"):
                t = replace(st.task, arrival_s=at, pipeline_id=f"j{i}/{st.task.pipeline_id}" if st.task.pipeline_id else None)
                tasks.append(t)
                deps[t.id] = ",".join(t.depends_on)
        return from_tasks(tasks, deps)

    def latency(trace, seed: int) -> np.ndarray:
        return simulate(fleet, trace, policy="fast", seed=seed).records["latency"].to_numpy()

    print(f"each step's service drawn at cv {cv}; {draws} live draws, each against the median (the mean) of "
          f"{REPLAYS} other draws' figures")
    print(f"{'items':>6}{'load':>6}{'service s':>10}{'window s':>9}{'p50 error sd':>14}{'p95 error mean':>16}"
          f"{'p95 error sd':>14}{'p95 min':>9}{'p95 max':>9}{'mean of replays: p95 error mean':>33}{'sd':>6}")
    for n, load, service_s in configs:
        trace = window(n, load, service_s)
        runs = [latency(trace, 1000 + k) for k in range(draws + REPLAYS)]
        p50 = np.array([np.percentile(x, 50) for x in runs])
        p95 = np.array([np.percentile(x, 95) for x in runs])
        # draw k stands for the live run; the twin's figure is over the next REPLAYS draws
        others = [np.arange(k + 1, k + 1 + REPLAYS) % len(runs) for k in range(draws)]
        e50 = np.array([np.median(p50[o]) / p50[k] - 1 for k, o in enumerate(others)])
        e95 = np.array([np.median(p95[o]) / p95[k] - 1 for k, o in enumerate(others)])
        m95 = np.array([np.mean(p95[o]) / p95[k] - 1 for k, o in enumerate(others)])
        print(f"{n:>6}{load:>6.2f}{service_s:>10.3f}{n * service_s / (load * len(kit.NODES)):>9.0f}{e50.std():>14.1%}"
              f"{e95.mean():>+16.1%}{e95.std():>14.1%}{e95.min():>+9.1%}{e95.max():>+9.1%}{m95.mean():>+33.1%}"
              f"{m95.std():>6.1%}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=("cpu", "tokens", "both"), default="both")
    parser.add_argument("--items", type=int, default=None, help="items in the window (default: the test's)")
    parser.add_argument("--warmup-s", type=float, default=kit.WARMUP_S)
    parser.add_argument("--load", type=float, default=None, help="offered load (default: the kit's per case)")
    parser.add_argument("--service-s", type=float, default=kit.SERVICE_MEAN_S)
    parser.add_argument("--seed", type=int, default=kit.SEED)
    parser.add_argument("--no-priority", action="store_true",
                        help="leave the cluster's processes at the default priority (real-time or nice otherwise: kit.raise_priority)")
    parser.add_argument("--sampling", action="store_true", help="only the twin's sampling study (no cluster)")
    parser.add_argument("--configs", default="450:0.7:0.12,1350:0.6:0.08,1800:0.6:0.08",
                        help="--sampling: items:load:service_s, comma-separated")
    parser.add_argument("--cv", type=float, default=0.2, help="--sampling: the live steps' own variation")
    parser.add_argument("--draws", type=int, default=60, help="--sampling: draws standing for the live run")
    args = parser.parse_args()
    if args.sampling:
        sampling([(int(n), float(rho), float(s)) for n, rho, s in (c.split(":") for c in args.configs.split(","))],
                 args.cv, args.draws)
        return
    cases = ("cpu", "tokens") if args.case == "both" else (args.case,)
    with tempfile.TemporaryDirectory(prefix="bench-fidelity-") as tmp:
        before, t0 = load_avg(), time.monotonic()
        runs = asyncio.run(kit.measured_runs(
            Path(tmp), cases, items=args.items if args.case == "cpu" else None,
            token_items=args.items if args.case == "tokens" else None, warmup_s=args.warmup_s,
            load=args.load, service_s=args.service_s, seed=args.seed,
            priority=not args.no_priority))
        for case in cases:
            report(case, runs[case], time.monotonic() - t0, before)

if __name__ == "__main__":
    main()
