"""Trace files: Parquet against the legacy `.htr` format and pandas CSV, same rows, same run.

    uv run python benchmarks/bench_traces.py            # 1,000,000 rows
    uv run python benchmarks/bench_traces.py --quick    # 100,000 rows

For each format: write and read throughput (rows/s, best of --repeat), file size, the
in-memory size of the trace read back (bytes/row), and the reader's peak memory growth
(bytes/row: how far the peak RSS of a fresh process rises while it reads the file once), plus
streaming the Parquet file with iter_trace. Goals (issue 23): Parquet reads >= 3x the legacy
`.htr`, its files are <= 1/3 of the `.htr` size, and its memory per row is no worse.
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

from heddle.traces import Trace, iter_trace, read_trace, write_trace
from heddle.traces.synth import SynthConfig, synthesize

CSV_NA = {"keep_default_na": False, "na_values": {"deadline_s": ["", "NaN"]}}
"""read_csv options that give back the trace's strings ("" stays "") and NaN deadlines."""


def best_of(repeat: int, fn: Callable[[], object]) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100,000 rows")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = 100_000 if args.quick else args.rows

    t0 = time.perf_counter()
    trace = make_trace(rows)
    print(f"built {len(trace):,}-row trace in {time.perf_counter() - t0:.1f} s")
    spawn = multiprocessing.get_context("spawn")

    with tempfile.TemporaryDirectory() as tmp, ProcessPoolExecutor(
            1, mp_context=spawn, max_tasks_per_child=1) as pool:
        d = Path(tmp)
        # name -> (write s, read s, file bytes, frame bytes/row, reader peak bytes/row)
        results: dict[str, tuple[float, float, int, float, float]] = {}
        formats = (("Parquet (zstd)", d / "t.parquet"), ("legacy .htr", d / "t.htr"),
                   ("legacy .htr.gz", d / "t.htr.gz"))
        for name, path in formats:
            w, _ = best_of(args.repeat, lambda p=path: write_trace(trace, p))
            r, back = best_of(args.repeat, lambda p=path: read_trace(p))
            assert back.equals(trace), f"{name}: round trip differs"
            frame = back.df.memory_usage(deep=True).sum() / rows
            peak = pool.submit(peak_growth, str(path), "trace").result() / rows
            results[name] = (w, r, path.stat().st_size, frame, peak)

        parquet = d / "t.parquet"
        s, streamed = best_of(args.repeat, lambda: sum(len(c) for c in iter_trace(parquet)))
        assert streamed == rows
        stream_peak = pool.submit(peak_growth, str(parquet), "stream").result() / rows

        csv = d / "t.csv"
        w, _ = best_of(args.repeat, lambda: trace.df.to_csv(csv, index=False))
        r, frame = best_of(args.repeat, lambda: pd.read_csv(csv, **CSV_NA))
        assert len(frame) == rows
        results["pandas CSV"] = (w, r, csv.stat().st_size,
                                 frame.memory_usage(deep=True).sum() / rows,
                                 pool.submit(peak_growth, str(csv), "csv").result() / rows)

    print(f"\n{'format':<16}{'write rows/s':>14}{'read rows/s':>14}{'file MB':>10}"
          f"{'frame B/row':>13}{'read peak B/row':>17}")
    for name, (w, r, size, frame_b, peak_b) in results.items():
        print(f"{name:<16}{rows / w:>14,.0f}{rows / r:>14,.0f}{size / 1e6:>10.1f}"
              f"{frame_b:>13,.0f}{peak_b:>17,.0f}")
    print(f"{'Parquet stream':<16}{'-':>14}{rows / s:>14,.0f}{'':>10}{'':>13}"
          f"{stream_peak:>17,.0f}")

    pq, htr, gz, csv_r = (results[k] for k in ("Parquet (zstd)", "legacy .htr",
                                               "legacy .htr.gz", "pandas CSV"))
    ok = lambda met: "met" if met else "NOT met"  # noqa: E731
    read_ratio = htr[1] / pq[1]
    size_ratio = pq[2] / htr[2]
    print(f"\nread  Parquet / .htr:     {read_ratio:.1f}x   (goal >= 3: {ok(read_ratio >= 3)}); "
          f"/ .htr.gz {gz[1] / pq[1]:.1f}x; / pandas.read_csv {csv_r[1] / pq[1]:.1f}x")
    print(f"write Parquet / .htr:     {htr[0] / pq[0]:.1f}x;  / .htr.gz {gz[0] / pq[0]:.1f}x; "
          f"/ DataFrame.to_csv {csv_r[0] / pq[0]:.1f}x")
    print(f"size  Parquet / .htr:     {size_ratio:.2f}  (goal <= 0.33: {ok(size_ratio <= 1 / 3)}); "
          f"/ .htr.gz {pq[2] / gz[2]:.2f}; / CSV {pq[2] / csv_r[2]:.2f}")
    mem_ok = pq[3] <= htr[3] and pq[4] <= htr[4] * 1.05
    print(f"memory Parquet / .htr:    frame {pq[3] / htr[3]:.2f}, reader peak "
          f"{pq[4] / htr[4]:.2f}  (goal <= 1: {ok(mem_ok)}); streaming peak / whole read "
          f"{stream_peak / pq[4]:.2f}")


if __name__ == "__main__":
    main()
