"""Trace files: Parquet against the legacy `.htr` format and pandas CSV, same rows, same run.

    uv run python benchmarks/bench_traces.py            # 1,000,000 rows
    uv run python benchmarks/bench_traces.py --quick    # 100,000 rows

For each format: write and read throughput (rows/s, best of --repeat, the formats taking
turns in one process), how much of a read is checking (timed inside that same read), the
first read in a fresh process (what `heddle trace stats` or `heddle sim --trace` meets: median
of --fresh processes, each timed after its imports), file size, the in-memory size of the
trace read back (bytes/row), and the reader's peak memory growth (bytes/row: how far the peak
RSS of a fresh process rises while it reads the file once), plus streaming the Parquet file
with iter_trace. Goals (issue 23): Parquet reads >= 3x the legacy `.htr`, its files are
<= 1/3 of the `.htr` size, and its memory per row is no worse.
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import os
import resource
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pandas as pd

from heddle.traces import Trace, iter_trace, read_trace, write_trace
from heddle.traces import htr as htr_reader
from heddle.traces import parquet as parquet_reader
from heddle.traces.synth import SynthConfig, synthesize

CSV_NA = {"keep_default_na": False, "na_values": {"deadline_s": ["", "NaN"]}}
"""read_csv options that give back the trace's strings ("" stays "") and NaN deadlines."""


def _schedstat() -> tuple[float, float]:
    """The calling thread's seconds on a core and waiting in the run queue for one (Linux's
    schedstat; zeros where there is none). Neither counts time blocked on a lock or a future."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as f:
            on_cpu, queued, _ = f.read().split()
    except OSError:
        return 0.0, 0.0
    return int(on_cpu) / 1e9, int(queued) / 1e9


CHECKS: dict[ModuleType, tuple[str, ...]] = {
    parquet_reader: ("grouped_keys", "repeated_ids", "dependency_breach", "validated"),
    htr_reader: ("validated",),
}
"""Where each reader calls the trace rules: the functions `CheckClock` times (the Parquet
reader keys and checks the task ids, and checks the dependency rule, on its second thread;
`validated` runs the others, and waits there for the second thread's)."""


class CheckClock:
    """The time a read spends checking, measured inside that read: the functions of CHECKS,
    wrapped while `installed`, add up their CPU time on every thread (a call within another
    counts once) and the calling thread's time by the clock in them (waiting for the second
    thread's checks included). The rest of the same read is decoding. `thread_cpu` and `wall`
    are the clocks (given in tests)."""

    def __init__(self, thread_cpu: Callable[[], float] = time.thread_time,
                 wall: Callable[[], float] = time.perf_counter) -> None:
        self._thread_cpu, self._wall = thread_cpu, wall
        self._depth = threading.local()
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Start a read: no time counted yet; the calling thread is this one."""
        self.cpu_s = self.caller_wall_s = 0.0
        self._caller = threading.get_ident()

    def timed(self, fn: Callable[..., object]) -> Callable[..., object]:
        @functools.wraps(fn)
        def call(*args: object, **kwargs: object) -> object:
            depth = getattr(self._depth, "n", 0)
            self._depth.n = depth + 1
            cpu, wall = self._thread_cpu(), self._wall()
            try:
                return fn(*args, **kwargs)
            finally:
                self._depth.n = depth
                if not depth:
                    cpu, wall = self._thread_cpu() - cpu, self._wall() - wall
                    with self._lock:
                        self.cpu_s += cpu
                        if threading.get_ident() == self._caller:
                            self.caller_wall_s += wall
        return call

    @contextmanager
    def installed(self, checks: dict[ModuleType, tuple[str, ...]] = CHECKS) -> Iterator[None]:
        originals = [(module, name, getattr(module, name))
                     for module, names in checks.items() for name in names]
        try:
            for module, name, fn in originals:
                setattr(module, name, self.timed(fn))
            yield
        finally:
            for module, name, fn in originals:
                setattr(module, name, fn)


@dataclass(slots=True)
class Timing:
    """Best (smallest) wall-clock and CPU seconds over the repetitions of one operation, the
    kernel's share of that best CPU time (mostly page faults: memory mapped in) and the
    calling thread's share (the rest ran on threads the operation started). For the fastest
    repetition by the clock: how long the calling thread waited for a core (`queued_s`) and
    how long it was blocked (`blocked_s`: on the GIL or on a thread the operation started),
    so that wall = the calling thread's CPU + queued + blocked. For the repetition with the
    least CPU: each thread's page faults (minor: memory mapped in, a huge page counting once)
    and kernel time, the calling thread's from RUSAGE_THREAD, the others' as the rest of the
    process's (the kernel splits a thread's time between user and kernel by sampling at
    each tick, so these are good to a few ms). Given a CheckClock: how much of the fastest
    repetition's wall clock, and of the least-CPU repetition's CPU, was checking (each from
    the same read as the figure it is part of, so decoding, the rest, is never negative)."""

    wall_s: float = float("inf")
    cpu_s: float = float("inf")
    sys_s: float = float("inf")
    caller_s: float = float("inf")
    queued_s: float = 0.0
    blocked_s: float = 0.0
    caller_faults: int = 0
    caller_sys_s: float = 0.0
    others_faults: int = 0
    check_wall_s: float = 0.0
    check_cpu_s: float = 0.0

    @property
    def others_sys_s(self) -> float:
        return self.sys_s - self.caller_sys_s

    def run(self, fn: Callable[[], object], checks: CheckClock | None = None) -> object:
        if checks is not None:
            checks.reset()
        wall, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        thread_before = resource.getrusage(resource.RUSAGE_THREAD)
        on_cpu, queued = _schedstat()
        cpu, caller = time.process_time(), time.thread_time()
        result = fn()
        cpu, caller = time.process_time() - cpu, time.thread_time() - caller
        on_cpu_after, queued_after = _schedstat()
        wall = time.perf_counter() - wall
        thread_after = resource.getrusage(resource.RUSAGE_THREAD)
        after = resource.getrusage(resource.RUSAGE_SELF)
        if wall < self.wall_s:
            self.wall_s, self.queued_s = wall, queued_after - queued
            self.blocked_s = max(0.0, wall - (on_cpu_after - on_cpu) - self.queued_s)
            self.check_wall_s = checks.caller_wall_s if checks else 0.0
        kernel = after.ru_stime - before.ru_stime
        if cpu < self.cpu_s:
            self.cpu_s, self.sys_s, self.caller_s = cpu, kernel, caller
            self.check_cpu_s = checks.cpu_s if checks else 0.0
            self.caller_sys_s = thread_after.ru_stime - thread_before.ru_stime
            self.caller_faults = thread_after.ru_minflt - thread_before.ru_minflt
            self.others_faults = after.ru_minflt - before.ru_minflt - self.caller_faults
        return result

    @property
    def longer_thread_s(self) -> float:
        """CPU seconds of the busier of the calling thread and the others: a floor for the
        wall clock with a core free for each (the threads also wait for each other)."""
        return max(self.caller_s, self.cpu_s - self.caller_s)


@dataclass(slots=True)
class Format:
    name: str
    path: Path
    write: Callable[[], object]
    read: Callable[[], object]
    read_unchecked: Callable[[], object] | None = None
    timings: dict[str, Timing] = field(default_factory=lambda: defaultdict(Timing))
    frame_bytes_per_row: float = 0.0
    peak_bytes_per_row: float = 0.0
    size: int = 0
    first_reads: list[FirstRead] = field(default_factory=list)

    @property
    def how(self) -> str:
        """How `_read` reads the file."""
        return "csv" if self.path.suffix == ".csv" else "trace"


def make_trace(rows: int) -> Trace:
    # a week of a busy team: ~1.9 rows per workflow, so this rate overshoots `rows`
    hours = 24 * 7
    cfg = SynthConfig(seed=1, duration_h=hours, rate_per_h=rows / hours / 1.7)
    trace = synthesize(cfg)
    if len(trace) < rows:
        raise SystemExit(f"generated only {len(trace)} rows; raise the rate")
    return Trace.from_frame(trace.df.iloc[:rows], trace.meta)


def _read(path: str, how: str) -> object:
    if how == "csv":
        return pd.read_csv(path, **CSV_NA)
    if how == "stream":
        return sum(len(chunk) for chunk in iter_trace(path))
    return read_trace(path)


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def peak_growth(path: str, how: str) -> int:
    """In a fresh process: how far one read raises the peak RSS, in bytes (its result included).

    The peak (VmHWM) is reset to the current RSS first (Linux: "5" > /proc/self/clear_refs),
    so the imports' own peak does not hide the read's.
    """
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _status_kib("VmRSS")
    result = _read(path, how)
    peak = _status_kib("VmHWM")
    del result
    return (peak - before) * 1024


@dataclass(slots=True, frozen=True)
class FirstRead:
    """One read as the first thing a fresh process does after its imports (as `heddle trace
    stats` does): seconds by the clock, of CPU (all threads) and of CPU in the kernel."""

    wall_s: float
    cpu_s: float
    sys_s: float


def first_read(path: str, how: str) -> FirstRead:
    """Run in a fresh process (the bench's own imports, heddle.traces and pandas among them,
    are done when it starts): time one read of `path`."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    wall, cpu = time.perf_counter(), time.process_time()
    result = _read(path, how)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    after = resource.getrusage(resource.RUSAGE_SELF)
    del result
    return FirstRead(wall, cpu, after.ru_stime - before.ru_stime)


def medians(reads: list[FirstRead]) -> FirstRead:
    return FirstRead(*(statistics.median(getattr(r, f) for r in reads)
                       for f in ("wall_s", "cpu_s", "sys_s")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100,000 rows")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--fresh", type=int, default=5,
                        help="fresh processes per format for the first-read figures")
    args = parser.parse_args()
    rows = 100_000 if args.quick else args.rows

    print(f"load average at start: {_load()}")
    allocator = {k: v for k, v in os.environ.items() if k.startswith("MIMALLOC_")}
    if allocator:  # Arrow's allocator's settings change how much of a read is memory mapped in
        print("Arrow's allocator (mimalloc) set: "
              + " ".join(f"{k}={v}" for k, v in sorted(allocator.items())))
    t0 = time.perf_counter()
    trace = make_trace(rows)
    print(f"built {len(trace):,}-row trace in {time.perf_counter() - t0:.1f} s")
    spawn = multiprocessing.get_context("spawn")

    with tempfile.TemporaryDirectory() as tmp, ProcessPoolExecutor(
            1, mp_context=spawn, max_tasks_per_child=1) as pool:
        d = Path(tmp)
        formats = [_trace_format(name, d / file, trace)
                   for name, file in (("Parquet", "t.parquet"), ("legacy .htr", "t.htr"),
                                      ("legacy .htr.gz", "t.htr.gz"))]
        csv = d / "t.csv"
        formats.append(Format("pandas CSV", csv, lambda: trace.df.to_csv(csv, index=False),
                              lambda: pd.read_csv(csv, **CSV_NA)))
        parquet = formats[0]
        checks = CheckClock()
        # the formats take turns, so a change in machine load hits them alike
        # each operation starts with the previous one's result freed, so none of them finds
        # memory another left mapped (or has to map its own while another's is held)
        for _ in range(args.repeat):
            for f in formats:
                f.timings["write"].run(f.write)
                with checks.installed():
                    back = f.timings["read"].run(f.read, checks)
                assert len(back) == rows, f.name
                if isinstance(back, Trace):
                    assert back.equals(trace), f"{f.name}: round trip differs"
                del back
                if f.read_unchecked is not None:
                    f.timings["decode"].run(f.read_unchecked)
            streamed = parquet.timings["stream"].run(
                lambda: sum(len(c) for c in iter_trace(parquet.path)))
            assert streamed == rows
        for f in formats:
            back = f.read()
            frame = back.df if isinstance(back, Trace) else back
            f.frame_bytes_per_row = frame.memory_usage(deep=True).sum() / rows
            f.peak_bytes_per_row = pool.submit(peak_growth, str(f.path), f.how).result() / rows
            f.size = f.path.stat().st_size
        stream_peak = pool.submit(peak_growth, str(parquet.path), "stream").result() / rows
        # the first read of a fresh process, the formats taking turns
        for _ in range(args.fresh):
            for f in formats:
                f.first_reads.append(pool.submit(first_read, str(f.path), f.how).result())

    report(formats, rows, stream_peak)
    print(f"load average at end: {_load()}")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" ({os.cpu_count()} CPUs)"


def _trace_format(name: str, path: Path, trace: Trace) -> Format:
    return Format(name, path, lambda: write_trace(trace, path), lambda: read_trace(path),
                  lambda: read_trace(path, check=False))


def report(formats: list[Format], rows: int, stream_peak: float) -> None:
    print(f"\n{'format':<15}{'write rows/s':>13}{'read rows/s':>13}{'(cpu)':>12}"
          f"{'decode only':>13}{'file MB':>9}{'frame B/row':>12}{'read peak B/row':>16}")
    for f in formats:
        t = f.timings
        decode = f"{rows / t['decode'].wall_s:>13,.0f}" if "decode" in t else f"{'-':>13}"
        print(f"{f.name:<15}{rows / t['write'].wall_s:>13,.0f}{rows / t['read'].wall_s:>13,.0f}"
              f"{rows / t['read'].cpu_s:>12,.0f}{decode}{f.size / 1e6:>9.1f}"
              f"{f.frame_bytes_per_row:>12,.0f}{f.peak_bytes_per_row:>16,.0f}")
    pq, htr, gz, csv = formats
    stream = pq.timings["stream"]
    print(f"{'Parquet stream':<15}{'-':>13}{rows / stream.wall_s:>13,.0f}"
          f"{rows / stream.cpu_s:>12,.0f}{'-':>13}{'':>9}{'':>12}{stream_peak:>16,.0f}")

    def ratio(a: Format, b: Format, op: str, clock: str = "wall_s") -> float:
        return getattr(b.timings[op], clock) / getattr(a.timings[op], clock)

    ok = lambda met: "met" if met else "NOT met"
    read = ratio(pq, htr, "read")
    size = pq.size / htr.size
    memory = pq.peak_bytes_per_row / htr.peak_bytes_per_row
    user = ((htr.timings["read"].cpu_s - htr.timings["read"].sys_s)
            / (pq.timings["read"].cpu_s - pq.timings["read"].sys_s))
    print(f"\nread   Parquet vs .htr: {read:.1f}x wall, {ratio(pq, htr, 'read', 'cpu_s'):.1f}x "
          f"cpu, {user:.1f}x outside the kernel (goal >= 3: {ok(read >= 3)}); "
          f"decode only {ratio(pq, htr, 'decode'):.1f}x; "
          f"vs .htr.gz {ratio(pq, gz, 'read'):.1f}x; vs pandas.read_csv {ratio(pq, csv, 'read'):.1f}x")
    for f in (pq, htr):
        t = f.timings["read"]
        print(f"       {f.name}: {t.wall_s * 1e3:.0f} ms wall / {t.cpu_s * 1e3:.0f} ms CPU "
              f"({t.sys_s * 1e3:.0f} in the kernel) a read; in the same reads, checking (the same "
              f"rules and code) {t.check_wall_s * 1e3:.0f} / {t.check_cpu_s * 1e3:.0f}, decoding "
              f"the rest {(t.wall_s - t.check_wall_s) * 1e3:.0f} / "
              f"{(t.cpu_s - t.check_cpu_s) * 1e3:.0f} (checking by the clock: the calling "
              f"thread's time in the rules, waiting for the second thread's included)")
    t = pq.timings["read"]
    print(f"       Parquet's read split over two threads: {t.caller_s * 1e3:.0f} ms CPU on the "
          f"calling thread, {(t.cpu_s - t.caller_s) * 1e3:.0f} on the second (the busier: "
          f"{t.longer_thread_s * 1e3:.0f} ms, .htr's CPU / that = "
          f"{htr.timings['read'].cpu_s / t.longer_thread_s:.1f}x); in the fastest read the "
          f"calling thread waited {t.queued_s * 1e3:.0f} ms for a core and was blocked "
          f"{t.blocked_s * 1e3:.0f} ms (on the second thread or the GIL)")
    print(f"       in the kernel (memory mapped in: page faults, a huge page counting once): "
          f"calling thread {t.caller_sys_s * 1e3:.0f} ms, {t.caller_faults:,} faults; second "
          f"{max(0.0, t.others_sys_s) * 1e3:.0f} ms, {t.others_faults:,} faults; .htr "
          f"{htr.timings['read'].sys_s * 1e3:.0f} ms, {htr.timings['read'].caller_faults:,} faults")
    first = {f.name: medians(f.first_reads) for f in formats}
    a, b = first[pq.name], first[htr.name]
    print(f"first  read in a fresh process (median of {len(pq.first_reads)} processes each, timed "
          f"after the imports): Parquet vs .htr {b.wall_s / a.wall_s:.1f}x wall, "
          f"{b.cpu_s / a.cpu_s:.1f}x cpu")
    for f in formats:
        r = first[f.name]
        print(f"       {f.name}: {r.wall_s * 1e3:.0f} ms wall / {r.cpu_s * 1e3:.0f} ms CPU "
              f"({r.sys_s * 1e3:.0f} in the kernel); {rows / r.wall_s:,.0f} rows/s")
    print(f"write  Parquet vs .htr: {ratio(pq, htr, 'write'):.1f}x; vs .htr.gz "
          f"{ratio(pq, gz, 'write'):.1f}x; vs DataFrame.to_csv {ratio(pq, csv, 'write'):.1f}x")
    print(f"size   Parquet / .htr: {size:.2f} (goal <= 0.33: {ok(size <= 1 / 3)}); / .htr.gz "
          f"{pq.size / gz.size:.2f}; / CSV {pq.size / csv.size:.2f}")
    print(f"memory Parquet / .htr: frame {pq.frame_bytes_per_row / htr.frame_bytes_per_row:.2f}, "
          f"reader peak {memory:.2f} (goal <= 1: {ok(memory <= 1)}); streaming peak / whole "
          f"read {stream_peak / pq.peak_bytes_per_row:.2f}")


if __name__ == "__main__":
    main()
