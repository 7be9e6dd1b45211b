"""Trace file throughput and memory, against pandas CSV on the same content in the same run.

    uv run python benchmarks/bench_traces.py            # 1,000,000 rows
    uv run python benchmarks/bench_traces.py --quick    # 100,000 rows

Prints write and read throughput (rows/s) of the heddle format (plain and gzip), of
DataFrame.to_csv / pandas.read_csv (C engine) on the same rows, the read ratio
(ours / pandas), and in-memory bytes per row. Goals (issue 3): read ratio >= 1,
memory < 200 bytes/row. Timings are the best of --repeat runs.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from heddle.traces import Trace, read_trace, write_trace
from heddle.traces.synth import SynthConfig, synthesize


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100,000 rows")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    rows = 100_000 if args.quick else args.rows

    t0 = time.perf_counter()
    trace = make_trace(rows)
    print(f"built {len(trace):,}-row trace in {time.perf_counter() - t0:.1f} s")

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        results: dict[str, tuple[float, float, int]] = {}  # name -> (write s, read s, bytes)
        for name, path in (("heddle .htr", d / "t.htr"), ("heddle .htr.gz", d / "t.htr.gz")):
            w, _ = best_of(args.repeat, lambda p=path: write_trace(trace, p))
            r, back = best_of(args.repeat, lambda p=path: read_trace(p))
            assert back.equals(trace), f"{name}: round trip differs"
            results[name] = (w, r, path.stat().st_size)
            ours_memory = back.df.memory_usage(deep=True).sum()

        csv = d / "t.csv"
        w, _ = best_of(args.repeat, lambda: trace.df.to_csv(csv, index=False))
        r, frame = best_of(args.repeat, lambda: pd.read_csv(csv, keep_default_na=False,
                                                            na_values={"deadline_s": ["", "NaN"]}))
        assert len(frame) == rows
        results["pandas CSV"] = (w, r, csv.stat().st_size)
        csv_memory = frame.memory_usage(deep=True).sum()
        csv_gz = d / "t.csv.gz"
        trace.df.to_csv(csv_gz, index=False)
        r_gz, _ = best_of(1, lambda: pd.read_csv(csv_gz, keep_default_na=False))
        results["pandas CSV .gz"] = (float("nan"), r_gz, csv_gz.stat().st_size)

    print(f"\n{'format':<16}{'write rows/s':>14}{'read rows/s':>14}{'file MB':>10}")
    for name, (w, r, size) in results.items():
        wr = f"{rows / w:>14,.0f}" if not math.isnan(w) else f"{'-':>14}"
        print(f"{name:<16}{wr}{rows / r:>14,.0f}{size / 1e6:>10.1f}")
    csv_read = results["pandas CSV"][1]
    print(f"\nread ratio (heddle .htr / pandas.read_csv):       "
          f"{csv_read / results['heddle .htr'][1]:.1f}x  (goal >= 1)")
    print(f"read ratio (heddle .htr.gz / pandas.read_csv .gz): "
          f"{results['pandas CSV .gz'][1] / results['heddle .htr.gz'][1]:.1f}x")
    print(f"write ratio (heddle .htr / DataFrame.to_csv):      "
          f"{results['pandas CSV'][0] / results['heddle .htr'][0]:.1f}x")
    print(f"memory: heddle {ours_memory / rows:.0f} bytes/row (goal < 200), "
          f"pandas.read_csv {csv_memory / rows:.0f} bytes/row")


if __name__ == "__main__":
    main()
