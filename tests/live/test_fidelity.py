"""The twin predicts the live cluster: a recorded run of real CPU work on three agents,
replayed on the exported fleet, within 10% at p50 and p95 latency (docs/fidelity.md)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from heddle.models.fleet import load_fleet
from heddle.traces import read_trace
from tests.live.fidelitykit import NODES, heddle_cli, poisson_items, run_and_record, start_cluster

LOAD = 0.7
"""Offered load: the cluster's slots are busy this share of the time."""
SERVICE_MEAN_S = 0.12
"""Mean wall time of a step at the capped speed the agents measure."""
ITEMS = 240
PIPELINES = 8


@pytest.fixture(scope="module")
def live_run(tmp_path_factory):
    import asyncio

    tmp = tmp_path_factory.mktemp("fidelity")
    kit = start_cluster(tmp)
    try:
        async def go():
            client = await kit.client()
            await kit.wait_nodes(client, set(NODES))
            speeds = [n.speed_relative for n in (await client.fleet()).nodes]
            await client.close()
            assert all(s is not None and s > 0 for s in speeds), speeds
            cpu_mean = SERVICE_MEAN_S * float(np.mean(speeds))  # reference-core seconds
            rate = LOAD * len(NODES) / SERVICE_MEAN_S
            items = poisson_items(np.random.default_rng(18), ITEMS, rate, cpu_mean, PIPELINES)
            return await run_and_record(kit, tmp, items)

        yield asyncio.run(go())
    finally:
        kit.close()


def test_every_task_is_recorded_with_its_outcome_and_the_recording_is_a_trace(live_run):
    run = live_run
    out = run.recorded.outcomes
    assert len(run.recorded.trace) == run.tasks
    assert set(out["status"]) == {"completed"}
    assert set(out["target"]) <= set(NODES)
    assert (out["finish_s"] > out["start_s"]).all() and (out["start_s"] >= out["placed_s"] - 0.5).all()
    assert (out["cpu_used_s"] > 0).all()  # the worker's CPU time, measured
    assert out["predicted_finish_s"].notna().all()
    df = run.recorded.trace.df
    assert (df["pipeline_id"] != "").sum() == 2 * PIPELINES and set(df["privacy"]) == {"public", "sensitive", "personal"}
    assert len(read_trace(run.recording)) == run.tasks + 6  # any trace reader reads it (warm-up too)


def test_the_exported_fleet_is_what_ran_at_the_measured_speed(live_run):
    fleet = load_fleet(live_run.fleet_yaml)
    assert {n.id: (n.owner, tuple(sorted(n.trusted_owners)), n.slots) for n in fleet.nodes} == {
        node: (owner, tuple(sorted(trust)), 1) for node, (owner, trust) in NODES.items()}
    assert all(n.device.cpu_single_core_relative != 1.0 for n in fleet.nodes)  # measured, not the catalog's


async def test_heddle_sim_and_twin_check_take_the_exported_fleet_and_recording_unchanged(live_run, tmp_path):
    code, output = await heddle_cli("sim", "--fleet", str(live_run.fleet_yaml), "--trace", str(live_run.recording),
                                    "--policy", "fast")
    assert code == 0, output
    since = datetime.fromtimestamp(live_run.since_unix_s, UTC).isoformat()
    code, output = await heddle_cli("twin", "check", "--since", since, "--recording", str(live_run.recording), "--fleet",
                                    str(live_run.fleet_yaml), "--out", str(tmp_path / "out"))
    assert code == 0, output
    assert "latency p95" in output and "utilization alpha" in output
    assert f"twin vs live — {live_run.tasks:,} recorded tasks" in output
    assert (tmp_path / "out" / "fidelity.png").stat().st_size > 10_000


def test_status_and_the_fleet_view_show_the_twins_shadow_predictions(live_run):
    row = live_run.status.tasks[0]
    assert row.predicted_s > 0 and row.actual_s > 0  # the twin's service time next to the agent's
    assert live_run.status.shadow["tasks"] >= live_run.tasks // 2
    assert 0 <= live_run.status.shadow["median_abs_error"] < 1
    assert all(n.shadow_error is not None and n.speed_relative > 0 for n in live_run.fleet.nodes)
