"""Tables a person reads in an 80-column terminal: nothing cut to "…", nothing wider."""

from __future__ import annotations

import json

from conftest import heddle


def _fits(text: str, width: int = 80) -> None:
    assert "…" not in text, text  # rich cuts a cell that cannot fit to "3.…"
    assert max(len(line) for line in text.splitlines()) <= width, text


def test_a_run_summary_fits_80_columns_whole():
    result = heddle("sim", "--scenario", "flaky", "--horizon", "1800", env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.stderr
    _fits(result.stdout)
    metrics = json.loads(heddle("sim", "--scenario", "flaky", "--horizon", "1800", "--json").stdout)
    assert f"{metrics['latency_s']['p99']:.2f} s" in result.stdout  # p99 latency, whole
    flat = " ".join(result.stdout.replace("│", " ").split())
    for reason in metrics["rejected_reasons"]:  # every rejection reason, whole (folded over lines)
        assert " ".join(reason.split()) in flat, reason


def _sim(columns: int, *args: str) -> str:
    result = heddle("sim", "--horizon", "900", "--workers", "1", *args, env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_a_comparison_of_runs_fits_80_columns():
    narrow = _sim(80, "-f", "demo", "-f", "office", "-p", "optimal", "-p", "least-loaded")
    _fits(narrow)  # a row per figure, a column per run
    assert "least-loaded" in narrow and "p99 s" in narrow
    assert "┃ run " in _sim(120, "-p", "optimal", "-p", "fast")  # where a row per run fits, a row per run
