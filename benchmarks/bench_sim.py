"""Twin throughput: simulated requests per wall-clock second.

    uv run python benchmarks/bench_sim.py            # 1,000,000 requests (fast path)
    uv run python benchmarks/bench_sim.py --quick    # 20,000 requests (< 2 min)

A 10-node fleet (catalog devices, 2-4 slots each) replays a synthetic LLM trace (Poisson
arrivals at ~60% of the fleet's capacity, token lengths in the range of the Azure 2023 conv
trace) three ways in the same process:
  1. the twin, placing each arrival with the optimizer's fast path ("fast"), as `simulate`
     runs it (the ExpressTwin), and the reference Twin on the same requests (the two give
     identical records; tests/sim/test_express.py);
  2. the twin with CP-SAT batch windows ("optimal", one place() call per window) on a
     smaller slice of the same trace (CP-SAT calls are slow; the slice size is printed);
  3. a bare SimPy M/M/c loop (one process per customer, a simpy.Resource with c = total
     slots) with the same number of customers: the baseline the ratios refer to. It runs
     just before and just after the fast-path twin and the ratio uses the mean of the two,
     so a change in machine load during the run shows up as a gap between them.
Each of these measurements runs in a fresh process (spawned, one after the other), so none
inherits the heap another left behind: run in one process, a 1,000,000-customer bare loop
slowed the twin that followed it by about 12% (its freed objects leave the allocator's pools
scattered), which is not what a user running `heddle sim` sees.
Also printed: the share of wall time spent inside optimizer.place(), and the twin's own
rate with that time taken out (what the twin costs by itself).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
import simpy

from heddle.models import Fleet, Node, NodeId, OwnerId, catalog
from heddle.sim import TwinSettings, simulate

FLEET_DEVICES = (
    ("m2-ultra-76", 192, 4), ("m3-max-40", 128, 2), ("m4-pro-20", 64, 2), ("m4-max-40", 128, 3),
    ("m2-max-38", 96, 2), ("m1-ultra-64", 128, 3), ("m3-ultra-80", 256, 4), ("m4-max-32", 36, 2),
    ("m2-pro-19", 32, 2), ("m1-max-32", 64, 2),
)
"""(catalog device, installed GB, slots) of the 10 benchmark nodes."""

LOAD = 0.6
"""Offered load as a fraction of the fleet's slot capacity (queues stay short, nothing drops)."""


def bench_fleet() -> Fleet:
    have = catalog.devices()
    nodes = []
    for k, (dev, mem, slots) in enumerate(FLEET_DEVICES):
        device = catalog.device(dev if dev in have else sorted(have)[k])
        nodes.append(Node(NodeId(f"n{k}"), device, memory_gb=float(mem), owner=OwnerId("office"), slots=slots))
    return Fleet("bench-10", tuple(nodes))


def bench_trace(n: int, fleet: Fleet, rng: np.random.Generator) -> pd.DataFrame:
    from heddle.models import perf

    prompt = np.clip(rng.lognormal(6.5, 1.0, n), 16, 8000).astype(np.int32)
    output = np.clip(rng.lognormal(5.0, 0.8, n), 4, 1500).astype(np.int32)
    model = catalog.model("llama-3.1-8b")
    mean_s = np.mean([perf.llm_step(nd.device, model, "q4_k_m", int(prompt.mean()), int(output.mean())).seconds
                      for nd in fleet.nodes])
    slots = sum(nd.slots for nd in fleet.nodes)
    rate = LOAD * slots / mean_s
    return pd.DataFrame({
        "arrival_s": np.cumsum(rng.exponential(1 / rate, n)), "kind": "llm", "model": "llama-3.1-8b",
        "quant": "q4_k_m", "prompt_tokens": prompt, "output_tokens": output, "privacy": "public",
        "owner": "office", "task_id": np.char.add("r", np.arange(n).astype(str)),
    })


def bare_simpy_mmc(n: int, servers: int, rng: np.random.Generator) -> float:
    """Customers per wall second and per CPU second of a textbook SimPy M/M/c loop at load 0.6."""
    env = simpy.Environment()
    desk = simpy.Resource(env, capacity=servers)
    gaps = rng.exponential(1 / (LOAD * servers), n).tolist()
    work = rng.exponential(1.0, n).tolist()

    def customer(k):
        with desk.request() as req:
            yield req
            yield env.timeout(work[k])

    def source():
        for k in range(n):
            yield env.timeout(gaps[k])
            env.process(customer(k))

    env.process(source())
    t0, c0 = time.perf_counter(), time.process_time()
    env.run()
    return {"rate": n / (time.perf_counter() - t0), "cpu_rate": n / max(time.process_time() - c0, 1e-9)}


def run_twin(fleet, df, policy: str, batch_window_s: float, *, express: bool = True) -> dict:
    t0, c0 = time.perf_counter(), time.process_time()
    result = simulate(fleet, df, policy, batch_window_s=batch_window_s, settings=TwinSettings(express=express))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    s = result.summary
    own = max(wall - s.place_wall_s, 1e-9)
    return {"n": len(df), "wall_s": wall, "rate": len(df) / wall, "cpu_rate": len(df) / max(cpu, 1e-9),
            "place_share": s.place_wall_s / wall,
            "place_calls": s.place_calls, "own_rate": len(df) / own, "completed": s.completed,
            "mean_util": float(np.mean(list(s.utilization.values())))}


def _measure(what: str, n: int, first: int, window_s: float) -> dict:
    """One measurement, in the calling process: "bare" (the M/M/c loop with `n` customers),
    or the twin ("fast", "reference", "optimal") on the first `first` requests of the
    `n`-request benchmark trace (seeded: the same trace in every process)."""
    fleet = bench_fleet()
    if what == "bare":
        return bare_simpy_mmc(n, sum(nd.slots for nd in fleet.nodes), np.random.default_rng(1))
    df = bench_trace(n, fleet, np.random.default_rng(0))
    if first < n:
        df = df.iloc[:first].reset_index(drop=True)
    if what == "optimal":
        return run_twin(fleet, df, "optimal", window_s)
    return run_twin(fleet, df, "fast", 0.0, express=what == "fast")


def _fresh(what: str, n: int, first: int = 0, window_s: float = 0.0) -> dict:
    """`_measure` in a new process of its own."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_measure, what, n, first or n, window_s).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 requests instead of 1,000,000")
    parser.add_argument("--requests", type=int, default=None)
    parser.add_argument("--cpsat-requests", type=int, default=None)
    parser.add_argument("--reference-requests", type=int, default=None,
                        help="requests for the reference (non-express) twin; default: all")
    parser.add_argument("--window-s", type=float, default=2.0, help="CP-SAT batch window")
    args = parser.parse_args()
    n = args.requests or (20_000 if args.quick else 1_000_000)
    n_cpsat = args.cpsat_requests or (2_000 if args.quick else 20_000)
    slots = sum(nd.slots for nd in bench_fleet().nodes)

    load0 = os.getloadavg()[0]
    bare_before = _fresh("bare", n)
    fast = _fresh("fast", n)
    bare_after = _fresh("bare", n)
    bare = (bare_before["rate"] + bare_after["rate"]) / 2
    bare_cpu = (bare_before["cpu_rate"] + bare_after["cpu_rate"]) / 2
    reference = _fresh("reference", n, min(args.reference_requests or n, n))
    cpsat = _fresh("optimal", n, min(n_cpsat, n), args.window_s)

    print(f"fleet: 10 nodes, {slots} slots; trace: {n:,} LLM requests at {LOAD:.0%} load")
    print(f"machine: {os.cpu_count()} CPUs, 1-min load average {load0:.2f} at start, "
          f"{os.getloadavg()[0]:.2f} at end")
    print(f"bare SimPy M/M/{slots} loop        : {bare:>10,.0f} customers/s  (baseline; "
          f"{bare_before['rate']:,.0f} before the twin, {bare_after['rate']:,.0f} after; per CPU second "
          f"{bare_cpu:,.0f})")
    rows = (("twin, fast path per arrival", fast), ("  same, reference Twin (no express)", reference),
            (f"twin, CP-SAT windows {args.window_s:g} s", cpsat))
    for name, r in rows:
        print(f"{name:<32}: {r['rate']:>10,.0f} requests/s  ratio to bare {r['rate'] / bare:.3f}  "
              f"({r['n']:,} requests in {r['wall_s']:.1f} s; place() {r['place_share']:.0%} of wall, "
              f"{r['place_calls']:,} calls; twin alone {r['own_rate']:,.0f} req/s, ratio {r['own_rate'] / bare:.2f}; "
              f"completed {r['completed']:,}, mean utilization {r['mean_util']:.0%})")
    print(f"per CPU second (what an idle core gives; the load-independent figure): fast-path twin "
          f"{fast['cpu_rate']:,.0f} requests/s, ratio to the bare loop {fast['cpu_rate'] / bare_cpu:.3f}")
    print(f"express twin vs reference twin (identical records): {fast['rate'] / reference['rate']:.2f}x")
    goal = 50_000
    print(f"goal >= {goal:,} requests/s with the fast path: wall {'met' if fast['rate'] >= goal else 'NOT met'}, "
          f"per CPU second {'met' if fast['cpu_rate'] >= goal else 'NOT met'}"
          f" (place() alone allows at most {fast['n'] / max(fast['place_share'] * fast['wall_s'], 1e-9):,.0f}"
          f" requests/s: {fast['place_calls']:,} calls in {fast['place_share'] * fast['wall_s']:.1f} s)")


if __name__ == "__main__":
    main()
