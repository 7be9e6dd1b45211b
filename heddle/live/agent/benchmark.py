"""The micro-benchmark an agent runs at start on a machine the catalog does not list.

One core's speed is the agent's speed probe (heddle.live.agent.speed: the ``burn`` step's own
work, measured at every start), so a generic device's per-core speed means what a processor
step's ``cpu_seconds`` means and there is one rule for it. This module adds the two figures
the probe does not measure, each bounded in time (about half a second in all on a quiet
machine, never more than `MAX_SECONDS`): the memory bandwidth of copying an array far larger
than the caches, and the float32 matrix product rate on every core (numpy's BLAS). Each is the
best of a few repetitions: on a busy machine the best run is the one least disturbed.

Those two are cached in ``<data_dir>/machine-benchmark.json`` with what they were measured on
(chip, cores, memory): the next start reuses them, a changed machine measures again.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from heddle.live.agent.speed import measure_speed_relative
from heddle.live.protocol import MeasuredDevice

__all__ = ["CACHE_NAME", "MAX_SECONDS", "measure", "measured_device"]

log = logging.getLogger("heddle.live.agent")

CACHE_NAME = "machine-benchmark.json"
MAX_SECONDS = 3.0
"""The whole benchmark stops measuring after this long (an agent start must stay quick)."""
_PART_S = MAX_SECONDS / 2
_REPEATS = 5
_COPY_BYTES = 64 * 1024**2
"""Far beyond any CPU's last-level cache, so the copy runs at memory speed."""
_MATMUL_N = 384


def _best(run: Any, budget_s: float) -> float:
    """The best rate of up to `_REPEATS` runs of ``run`` (a rate per second) within the budget."""
    best, deadline = 0.0, time.perf_counter() + budget_s
    for _ in range(_REPEATS):
        best = max(best, run())
        if time.perf_counter() > deadline:
            break
    return best


def _copy_rate(src: np.ndarray, dst: np.ndarray) -> float:
    start = time.perf_counter()
    np.copyto(dst, src)
    return 2 * src.nbytes / (time.perf_counter() - start) / 1e9  # read + write


def _matmul_rate(a: np.ndarray, b: np.ndarray) -> float:
    start = time.perf_counter()
    a @ b
    return 2 * _MATMUL_N**3 / (time.perf_counter() - start) / 1e9


def _copy_bandwidth() -> float:
    src = np.ones(_COPY_BYTES // 8)
    dst = np.empty_like(src)
    return _best(lambda: _copy_rate(src, dst), _PART_S)


def measure(speed_relative: float, cores: int, memory_gb: float) -> MeasuredDevice:
    """Run the benchmark now (bounded by `MAX_SECONDS`); ``speed_relative`` is the speed
    probe's figure for one core."""
    started = time.perf_counter()
    bandwidth = _copy_bandwidth()  # its 128 MB are freed before the matrices are made
    rng = np.random.default_rng(0)
    a = rng.random((_MATMUL_N, _MATMUL_N), dtype=np.float32)
    b = rng.random((_MATMUL_N, _MATMUL_N), dtype=np.float32)
    gflops = _best(lambda: _matmul_rate(a, b), _PART_S)
    return MeasuredDevice(
        cpu_single_core_relative=speed_relative,
        memory_bandwidth_gb_s=bandwidth, cpu_gflops=gflops, cores=cores, memory_gb=memory_gb,
        duration_s=time.perf_counter() - started, measured_at=time.time(),
    )


def _key(chip: str, cores: int, memory_gb: float) -> dict[str, Any]:
    return {"chip": chip, "cores": cores, "memory_gb": round(memory_gb, 1)}


def measured_device(data_dir: Path, chip: str, speed_relative: float | None = None,
                    cores: int | None = None, memory_gb: float | None = None) -> MeasuredDevice:
    """This machine's figures: one core's speed from the speed probe (``speed_relative`` as
    the agent measured it at start, else measured now), bandwidth and matrix rate cached or
    measured (then cached); a cache that cannot be read or written is measured past, not fatal."""
    import psutil

    if speed_relative is None:
        speed_relative = measure_speed_relative()
    cores = cores or os.cpu_count() or 1
    memory_gb = memory_gb if memory_gb is not None else psutil.virtual_memory().total / 1024**3
    path = data_dir / CACHE_NAME
    key = _key(chip, cores, memory_gb)
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
        if cached.get("machine") == key:
            figures = {**cached["figures"], "cpu_single_core_relative": speed_relative, "cached": True}
            return MeasuredDevice.model_validate(figures)
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError) as exc:  # a broken cache: measure again
        log.warning("ignoring %s (%s); measuring this machine again", path, exc)
    figures = measure(speed_relative, cores, memory_gb)
    log.info("measured this machine in %.2f s: one core %.2fx the reference, memory %.1f GB/s, "
             "%.1f GFLOP/s", figures.duration_s, figures.cpu_single_core_relative,
             figures.memory_bandwidth_gb_s, figures.cpu_gflops)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"machine": key, "figures": figures.model_dump(mode="json")},
                                   indent=2), encoding="utf-8")
    except OSError as exc:
        log.warning("cannot cache the machine benchmark in %s: %s", path, exc)
    return figures
