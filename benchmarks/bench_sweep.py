"""Sweep throughput: many twin replays serially, in local processes and on a local Ray cluster.

    uv run python benchmarks/bench_sweep.py            # 100 replays of the 14-day demo trace
    uv run python benchmarks/bench_sweep.py --quick    # 10 replays

Every replay runs the shipped demo fleet on the shipped 14-day demo trace with its own seed
(so no result is reused) and, as `heddle sweep` does, keeps the run's summary (`keep=summary_of`:
the per-task records stay where the run ran). The same specs run three ways in this one
process, and each figure is printed with its ratio to the serial baseline measured in the
same run:
  1. serial (`SerialExecutor`): one replay after another in this process — the baseline;
  2. local processes (`LocalExecutor`, one worker per core);
  3. Ray (`RayExecutor("local")`, a local cluster with one CPU per core), cluster start-up
     timed separately, and worker warm-up too: one short replay per core first imports and
     runs the twin and fetches the shared inputs in each fresh Ray worker (local worker
     processes are forks of this process and start with both), then the sweep runs on the
     warm workers.
Also measured on Ray: the scheduling overhead per run (100 empty remote calls), from which
the script prints an estimate of a sweep's wall time on several machines.

On a shared machine the speed-up depends on what else runs: the load average is printed
before and after, and so is the CPU time per replay in each mode (this process for serial,
this process and the reaped workers for local processes; on Ray, read with psutil from every
process of the local cluster: its workers, and Ray's own gcs_server, raylet, log monitor,
dashboard and agents, whose share is printed apart). The same CPU time per replay in both
modes means the replays themselves did not slow down side by side; a speed-up short of the
core count then means the cores were not free for them.
"""

from __future__ import annotations

import argparse
import collections
import os
import resource
import time
from dataclasses import replace

import psutil

from heddle.sim.executors import LocalExecutor, RayExecutor, SerialExecutor, summary_of
from heddle.sim.runner import RunSpec
from heddle.sim.whatif import resolve_fleet, resolve_trace

WARM_HORIZON_S = 1800.0
"""A warm-up replay's length: the first half hour of the trace, enough to import and run
every part of the twin once in a fresh Ray worker."""


def _specs(n: int) -> list[RunSpec]:
    from heddle.traces import read_trace

    trace = read_trace(resolve_trace("demo-14d"))  # loaded once, shared by every spec
    fleet = resolve_fleet("demo")
    return [RunSpec(fleet=fleet, trace=trace, policy="optimal", seed=k, label=f"seed {k}") for k in range(n)]


def _cpu_s() -> float:
    """CPU seconds (user + system) of this process and of its reaped child processes."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _timed(executor, specs) -> tuple[float, int, float]:
    """(wall seconds, failed runs, CPU seconds per run) of one executor over the specs."""
    t0, cpu0 = time.perf_counter(), _cpu_s()
    outcomes = executor.map(specs, keep=summary_of)
    return time.perf_counter() - t0, sum(not o.ok for o in outcomes), (_cpu_s() - cpu0) / len(specs)


_RAY_AGENTS = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")


def _ray_cpu_s() -> collections.Counter:
    """CPU seconds so far of each kind of process in this process's local Ray cluster."""
    kinds: collections.Counter = collections.Counter()
    for proc in psutil.Process().children(recursive=True):
        try:
            name, cmd, cpu = proc.name(), " ".join(proc.cmdline()), proc.cpu_times()
        except psutil.Error:
            continue  # ended meanwhile
        if name.startswith("ray::") and name not in _RAY_AGENTS:
            kind = "workers"
        else:
            kind = next((k for k in ("gcs_server", "raylet", "log_monitor") if k in cmd),
                        "dashboard, agents, monitor")
        kinds[kind] += cpu.user + cpu.system
    own = resource.getrusage(resource.RUSAGE_SELF)
    kinds["driver (this process)"] = own.ru_utime + own.ru_stime
    return kinds


def _load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def _empty() -> None:
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10 replays instead of 100")
    ap.add_argument("--runs", type=int, default=None)
    ap.add_argument("--no-ray", action="store_true", help="serial and local processes only")
    args = ap.parse_args()
    n = args.runs or (10 if args.quick else 100)
    cores = os.cpu_count() or 2
    specs = _specs(n)
    print(f"{n} replays of the 14-day demo trace on the demo fleet, {cores} cores; {_load()}")

    serial_s, failed, serial_cpu = _timed(SerialExecutor(), specs)
    per_run = serial_s / n
    print(f"serial            {serial_s:8.1f} s  ({per_run:.2f} s/run)  1.00x  failed {failed}"
          f"  (CPU {serial_cpu:.2f} s/run)")
    local_s, failed, local_cpu = _timed(LocalExecutor(cores), specs)
    print(f"local processes   {local_s:8.1f} s  {serial_s / local_s:5.2f}x over serial  failed {failed}"
          f"  (CPU {local_cpu:.2f} s/run)  {_load()}")
    if args.no_ray:
        return

    t0 = time.perf_counter()
    executor = RayExecutor("local", num_cpus=cores)  # imports ray (after setting its options)
    start_s = time.perf_counter() - t0
    import ray

    try:
        t0 = time.perf_counter()  # one short replay per worker: imports, first fetch, first solve
        executor.map([replace(s, horizon_s=WARM_HORIZON_S) for s in specs[:cores]], keep=summary_of)
        warm_s = time.perf_counter() - t0
        before = _ray_cpu_s()
        ray_s, failed, _ = _timed(executor, specs)
        used = _ray_cpu_s() - before
        print(f"ray (local)       {ray_s:8.1f} s  {serial_s / ray_s:5.2f}x over serial  failed {failed}"
              f"  (CPU {sum(used.values()) / n:.2f} s/run)"
              f"  (+{start_s:.1f} s cluster start-up, +{warm_s:.1f} s warming {cores} workers)  {_load()}")
        print("  CPU per run by process: " + ", ".join(
            f"{kind} {cpu / n * 1e3:.0f} ms" for kind, cpu in used.most_common()))
        empty = ray.remote(_empty)
        ray.get([empty.remote() for _ in range(100)])  # warm the workers
        t0 = time.perf_counter()
        ray.get([empty.remote() for _ in range(100)])
        overhead = (time.perf_counter() - t0) / 100
    finally:
        ray.shutdown()
    print(f"ray overhead      {overhead * 1e3:8.2f} ms per run ({overhead / per_run:.2%} of a run)")
    print("estimate on M machines x C cores (per-run cost and overhead above, inputs shipped once per machine):")
    for machines in (1, 4, 16):
        slots = machines * cores
        est = n * per_run / slots + n * overhead
        print(f"  {machines:2d} machines x {cores} cores: ~{est:7.1f} s for {n} runs ({serial_s / est:5.1f}x over serial)")


if __name__ == "__main__":
    main()
