"""How long `heddle` takes to start: wall time of CLI commands in fresh processes.

    uv run python benchmarks/bench_cli.py            # 7 rounds
    uv run python benchmarks/bench_cli.py --rounds 3
    uv run python benchmarks/bench_cli.py --no-bytecode-cache

Each round runs, in a fresh interpreter one after the other, the baseline
`python -c "import typer, rich"` (what any typer + rich CLI pays before doing anything),
`heddle --help`, `heddle catalog list` and `heddle sim` with no arguments (the shipped demo
trace on the shipped demo fleet). Rounds interleave the commands, so a change in machine load
hits all of them alike; the figure per command is its median over the rounds, printed with
its ratio to the baseline's median from the same run.

Goals (issue 21): `--help` and `catalog list` within 2x of the baseline; `sim` under 3 s on a
quiet 2-core machine. A second reference is printed too: the floor of any typer command that
parses one option and prints a small rich table (typer 0.2x builds its option coercion on
pydantic, and rich's console and table modules load on first print); a third is that command
with heddle's typer hooks (heddle.cli.common.install_help_format: no coercion for an unset
option), the least a typer + rich table command costs.

`catalog list` writes to a pipe here, so heddle.cli.tables draws its tables without rich (the
same characters, ~2 ms instead of rich's ~30 ms plus ~22 ms to import rich's console and
table): that is what `heddle catalog list | less`, a file or a log gets, and why it can beat the
floor. The row "catalog list at a terminal" times what a terminal gets: the same tables with
rich's styles (bold headers, italic title), drawn by heddle.cli.tables too (FORCE_COLOR=1 makes
heddle, like rich, style its output for a pipe as for a terminal).

Bytecode: an installed package runs from cached .pyc files, so the commands run with Python's
bytecode cache on (in a temporary PYTHONPYCACHEPREFIX, warmed by a first uncounted round) even
where PYTHONDONTWRITEBYTECODE=1 is set, as it is on the development machines. There every
start compiles each imported module from source, which costs heddle's commands (pandas,
pydantic, numpy) far more than the baseline: `--no-bytecode-cache` measures that case.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLOOR = """\
from enum import Enum
from typing import Annotated
import typer
app = typer.Typer(rich_markup_mode=None)
class Kind(str, Enum):
    device = "device"
@app.command()
def main(kind: Annotated[Kind | None, typer.Option("--kind")] = None):
    from rich.console import Console
    from rich.table import Table
    table = Table(title="floor")
    table.add_column("id")
    table.add_row("m4-max-40")
    Console().print(table)
app()
"""
"""The smallest typer command that parses an option and prints a rich table."""
FLOOR_FILE = Path(tempfile.gettempdir()) / "heddle_bench_cli_floor.py"
HOOKED_FILE = Path(tempfile.gettempdir()) / "heddle_bench_cli_floor_hooked.py"
HOOKED = "from heddle.cli.common import install_help_format\ninstall_help_format()\n" + FLOOR
"""The floor command with heddle's start-up hooks on typer."""

COMMANDS: dict[str, list[str]] = {
    "baseline: python -c 'import typer, rich'": [sys.executable, "-c", "import typer, rich"],
    "floor: a 1-option typer command + table": [sys.executable, str(FLOOR_FILE)],
    "floor with heddle's typer hooks": [sys.executable, str(HOOKED_FILE)],
    "heddle --help": [sys.executable, "-m", "heddle.cli.main", "--help"],
    "heddle catalog list": [sys.executable, "-m", "heddle.cli.main", "catalog", "list"],
    "heddle catalog list at a terminal": [sys.executable, "-m", "heddle.cli.main", "catalog", "list"],
    "heddle sim": [sys.executable, "-m", "heddle.cli.main", "sim"],
}
"""What is timed, by label; the first entry is the baseline."""
EXTRA_ENV = {"heddle catalog list at a terminal": {"FORCE_COLOR": "1"}}
"""Environment added for a command, by label."""

GOALS = {"heddle --help": ("ratio", 2.0), "heddle catalog list": ("ratio", 2.0),
         "heddle catalog list at a terminal": ("ratio", 2.0), "heddle sim": ("seconds", 3.0)}
"""Issue 21's goal per command: a ratio to the baseline (met when wall and CPU time both meet it),
or wall seconds."""


def _env(bytecode_cache: bool) -> dict[str, str]:
    """The children's environment: a wide terminal, and bytecode cached (or not) for all alike."""
    env = {**os.environ, "COLUMNS": "120"}
    if bytecode_cache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "heddle_bench_cli_pycache")
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("PYTHONPYCACHEPREFIX", None)
    return env


def _time(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds user+system) of one run in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="runs of each command (default 7)")
    parser.add_argument("--no-bytecode-cache", action="store_true",
                        help="compile every module from source on each start (PYTHONDONTWRITEBYTECODE=1)")
    args = parser.parse_args()
    FLOOR_FILE.write_text(FLOOR, encoding="utf-8")
    HOOKED_FILE.write_text(HOOKED, encoding="utf-8")
    env = _env(bytecode_cache=not args.no_bytecode_cache)
    envs = {label: {**env, **EXTRA_ENV.get(label, {})} for label in COMMANDS}
    for label, argv in COMMANDS.items():  # warm the OS file cache and .pyc files; not counted
        _time(argv, envs[label])
    samples: dict[str, list[tuple[float, float]]] = {label: [] for label in COMMANDS}
    for _ in range(args.rounds):
        for label, argv in COMMANDS.items():
            samples[label].append(_time(argv, envs[label]))
    base_label = next(iter(COMMANDS))
    base = statistics.median(w for w, _ in samples[base_label])
    base_cpu = min(c for _, c in samples[base_label])
    print(f"bytecode cache {'off' if args.no_bytecode_cache else 'on'}; load average {os.getloadavg()[0]:.2f}")
    print(f"{args.rounds} rounds: median wall time (min-max) and ratio to the baseline; least CPU "
          "time (user+system, steadier than wall on a loaded machine) and its ratio")
    for label, runs in samples.items():
        walls = [w for w, _ in runs]
        median, cpu = statistics.median(walls), min(c for _, c in runs)
        line = (f"  {label:<42} {median:6.3f} s ({min(walls):.3f}-{max(walls):.3f}) {median / base:5.2f}x"
                f" | CPU {cpu:5.3f} s {cpu / base_cpu:5.2f}x")
        if label in GOALS:
            kind, goal = GOALS[label]
            met = max(median / base, cpu / base_cpu) <= goal if kind == "ratio" else median <= goal
            line += f"   goal {'<=' if kind == 'ratio' else '<'} {goal:g}{'x' if kind == 'ratio' else ' s'}: "
            line += "met" if met else "NOT met"
        print(line)

if __name__ == "__main__":
    main()
