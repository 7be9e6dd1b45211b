"""How long `heddle` takes to start: wall time of CLI commands in fresh processes.

    uv run python benchmarks/bench_cli.py            # 7 rounds
    uv run python benchmarks/bench_cli.py --rounds 3

Each round runs, in a fresh interpreter one after the other, the baseline
`python -c "import typer, rich"` (what any typer + rich CLI pays before doing anything),
`heddle --help`, `heddle catalog list` and `heddle sim` with no arguments (the shipped demo
trace on the shipped demo fleet). Rounds interleave the commands, so a change in machine load
hits all of them alike; the figure per command is its median over the rounds, printed with
its ratio to the baseline's median from the same run.

Goals (issue 21): `--help` and `catalog list` within 2x of the baseline; `sim` under 3 s on a
quiet 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

COMMANDS: dict[str, list[str]] = {
    "baseline: python -c 'import typer, rich'": [sys.executable, "-c", "import typer, rich"],
    "heddle --help": [sys.executable, "-m", "heddle.cli.main", "--help"],
    "heddle catalog list": [sys.executable, "-m", "heddle.cli.main", "catalog", "list"],
    "heddle sim": [sys.executable, "-m", "heddle.cli.main", "sim"],
}
"""What is timed, by label; the first entry is the baseline."""

GOALS = {"heddle --help": ("ratio", 2.0), "heddle catalog list": ("ratio", 2.0), "heddle sim": ("seconds", 3.0)}
"""Issue 21's goal per command: a ratio to the baseline, or wall seconds."""


def _time(argv: list[str]) -> float:
    env = {**os.environ, "COLUMNS": "120"}
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="runs of each command (default 7)")
    args = parser.parse_args()
    for argv in COMMANDS.values():  # warm the OS file cache and .pyc files; not counted
        _time(argv)
    samples: dict[str, list[float]] = {label: [] for label in COMMANDS}
    for _ in range(args.rounds):
        for label, argv in COMMANDS.items():
            samples[label].append(_time(argv))
    base_label = next(iter(COMMANDS))
    base = statistics.median(samples[base_label])
    print(f"{args.rounds} rounds, median wall time per command (min-max), ratio to the baseline")
    for label, times in samples.items():
        median = statistics.median(times)
        line = f"  {label:<42} {median:6.3f} s ({min(times):.3f}-{max(times):.3f})  {median / base:5.2f}x"
        if label in GOALS:
            kind, goal = GOALS[label]
            met = median / base <= goal if kind == "ratio" else median <= goal
            line += f"   goal {'<=' if kind == 'ratio' else '<'} {goal:g}{'x' if kind == 'ratio' else ' s'}: "
            line += "met" if met else "NOT met"
        print(line)


if __name__ == "__main__":
    main()
