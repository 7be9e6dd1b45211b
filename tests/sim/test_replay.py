"""Replays of real and shipped traces: the Azure conversation trace on the demo fleet, the
shipped demo trace through the Task builder, and the `heddle sim` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from heddle.cli.main import app
from heddle.models.fleet import shipped_fleet_path
from heddle.sim import as_workload, simulate
from heddle.sim import workload as workload_module
from heddle.traces import Trace, read_trace, shipped_trace_path, to_tasks, write_trace
from heddle.traces.importers import import_trace

AZURE_CONV = Path(__file__).resolve().parents[1] / "data" / "azure" / "azure_llm_2023_conv.csv"


@pytest.fixture(scope="module")
def azure_trace():
    if not AZURE_CONV.exists():
        pytest.fail(f"reference data missing: {AZURE_CONV}")
    trace = import_trace("azure", AZURE_CONV).trace
    return trace


def test_azure_conversation_trace_on_the_demo_fleet_is_plausible(azure_trace) -> None:
    result = simulate(shipped_fleet_path("demo"), azure_trace, "fast")
    s, rec = result.summary, result.records
    assert s.arrived == len(azure_trace.df) == s.completed + s.rejected + s.failed
    assert s.completed > 0.5 * s.arrived
    assert all(0.0 <= u <= 1.0 for u in s.utilization.values())
    assert any(u > 0.0 for u in s.utilization.values())
    done = rec[rec["status"] == "completed"]
    assert (done["latency"] > 0).all() and (done["service"] > 0).all() and (done["ttft"] > 0).all()
    assert (done["ttft"] <= done["latency"] + 1e-9).all()
    assert s.latency_s["p50"] <= s.latency_s["p95"] <= s.latency_s["p99"]
    assert abs(s.cloud_spend_usd - rec.loc[rec["target_kind"] == "cloud", "cost_usd"].sum()) < 1e-9
    assert s.energy_kwh > 0 and s.energy_cost_usd > 0
    assert s.privacy_violations == 0


def test_task_builder_matches_the_traces_package(monkeypatch) -> None:
    trace = read_trace(shipped_trace_path("demo"))
    expected = list(to_tasks(trace))
    # every row converted alone (a workload per row did that in ~17 s of CPU: most of the test)
    monkeypatch.setattr(workload_module, "_DENSE_ROWS", len(expected) + 1)
    alone = as_workload(trace)
    assert [alone.make_task(i) for i in range(len(expected))] == expected
    assert alone._chunk_start < 0  # no chunk was converted
    # rows converted alone, then chunks once rows are dense, and rows behind the chunk (small
    # chunks so that every way of building a row is used on the demo trace)
    monkeypatch.setattr(workload_module, "_CHUNK_ROWS", 200)
    monkeypatch.setattr(workload_module, "_DENSE_ROWS", 20)
    workload = as_workload(trace)
    order = [*range(0, len(expected), 37), *range(len(expected)), *range(len(expected) - 1, -1, -1)]
    assert all(workload.make_task(i) == expected[i] for i in order)
    assert workload._chunk_start > 0  # chunks were converted too


def _small_trace(tmp_path: Path) -> Path:
    trace = read_trace(shipped_trace_path("demo"))
    small = Trace.from_frame(trace.df.iloc[:150].reset_index(drop=True), trace.meta)
    path = tmp_path / "small.htr.gz"
    write_trace(small, path)
    return path


def test_cli_writes_metrics_records_and_plots(tmp_path) -> None:
    out = tmp_path / "out"
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["sim", "--trace", str(_small_trace(tmp_path)), "--policy", "fast",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "privacy violations" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["arrived"] == 150 and metrics["privacy_violations"] == 0
    assert len((out / "records.csv").read_text().splitlines()) == 151
    for png in ("latency_cdf.png", "utilization.png", "cost_breakdown.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


def test_cli_compares_policies_side_by_side(tmp_path) -> None:
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["sim", "--trace", str(_small_trace(tmp_path)),
                                      "--policy", "fast", "--policy", "round-robin"])
    assert result.exit_code == 0, result.output
    assert "What-if comparison" in result.output
    assert "fast" in result.output and "round-robin" in result.output


def test_cli_reports_bad_input_clearly(tmp_path) -> None:
    bad = tmp_path / "s.yaml"
    bad.write_text("events:\n  - {at_s: 1, node: studio, action: explode}\n")
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["sim", "--scenario", str(bad), "--trace", str(_small_trace(tmp_path))])
    assert result.exit_code == 2
    assert "s.yaml" in result.output and "events.0.action" in result.output
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["sim", "--policy", "psychic"])
    assert result.exit_code != 0 and "psychic" in result.output


def test_cli_json_output_is_the_metrics(tmp_path) -> None:
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        app, ["sim", "--trace", str(_small_trace(tmp_path)), "--policy", "fast", "--json", "--horizon", "600"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)  # warnings go to stderr
    assert metrics["arrived"] == metrics["completed"] + metrics["rejected"] + metrics["failed"] + metrics["in_flight"]
    assert set(metrics["queue_length"]) == {"t", "queued", "running"}
