"""The twin predicts the live cluster: a recorded run of real CPU work on three agents,
replayed on the exported fleet; and the token path end to end against stand-in servers paced
by the performance model (docs/fidelity.md).

Asserted: the median of the twin's service times (each step at its node's speed in the second
it starts, drawn from the measured spread around it), from the exported fleet alone, within
10% of the live steps'; the CPU window's latency p50 and p95 within the issue's 10% of the live
ones (BOUND) when the cluster ran real-time
(fidelitykit.REALTIME_PRIORITY: Linux, root) and the machine did not stall it (no step started
more than fidelitykit.STALL_S after it could), the twin replaying each node's speed second by second as its agent measured it
and drawing its steps from the measured spread (the median of 8 replays); both windows'
latency p50/p95 (and the token window's time to first token) printed (pytest -s) and held to
the side that load does not move: the twin is not slower than the live cluster by more than
LOADED_OVER. Without the real-time policy the other jobs on a shared machine hold the
cluster's processes off a core for 10-500 ms at times, and a window that meets such stalls
queues up beyond what any fleet file describes (docs/fidelity.md): the 10% bound is then
printed, not asserted."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from heddle.live.control.shadow import RUNNING_WINDOW
from heddle.models import perf
from heddle.models.catalog import device, model
from heddle.models.fleet import load_fleet
from heddle.models.service import service_time
from heddle.sim import simulate
from heddle.sim.fidelity import compare, live_records
from heddle.traces import read_trace, to_tasks
from tests.live.fidelitykit import (
    NODES,
    STALL_S,
    TEST_ITEMS,
    TOKEN_DEVICES,
    TOKEN_MODEL,
    diagnose,
    heddle_cli,
    measured_runs,
)

BOUND = 0.10
"""The issue's bound on the twin's error (anchor: Vidur, under 9% on profiled GPUs), held both
ways by the CPU window's latency p50 and p95. With the same arrivals and work on both sides,
the live p95 is one draw of the live steps' own variation and of which node frees first when
two are about to (a few ms apart, it decides where a public step goes and whose personal work
waits behind it); the twin's is the median of 8 replays. The twin alone puts that chance at a
standard deviation of 1.5% for this window (4,500 steps of 0.04 s; 3.6% for the 1,350 of
0.08 s it had until 2026-12-07 08:00 UTC, whose ten live runs had a p95 error of -3.5% on
average with a standard deviation of 3.7%: the p95 was then held at 20%). Seventeen
live runs of the test with this window on 2026-12-07 that the machine did not stall (08:28-09:21
UTC, load 2-9): p95 error -0.2% on average, standard deviation 1.35%, -2.5% to +1.9%; p50 within
1.0%. The mean plus four standard deviations is 5.6%, 7.8% with the standard deviation at the
top of its 95% confidence interval (docs/fidelity.md)."""
LOADED_OVER = 0.25
"""How much slower than the live cluster the twin may be (its spread is
drawn, the live one is what happened: at most +10% seen at p95 in 9 runs at load 7-11, and
-27% to +10% either way); a twin that went wrong (a speed too low, a delay too long) is
slower by more."""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    before = os.getloadavg()[0]
    out = asyncio.run(measured_runs(tmp_path_factory.mktemp("fidelity"), items=TEST_ITEMS))
    out["load"] = max(before, os.getloadavg()[0])
    return out


@pytest.fixture(scope="module")
def cpu(runs):
    return runs["cpu"]


@pytest.fixture(scope="module")
def tokens(runs):
    return runs["tokens"]


@pytest.fixture(scope="module")
def cpu_report(cpu):
    """The twin's replay of the CPU window (8 replays of 4,500 tasks: replayed once)."""
    return replayed(cpu)


def replayed(run, metrics=("latency p50 (s)", "latency p95 (s)")):
    """The twin's replay of the run on its exported fleet; its figures printed (pytest -s)."""
    report = compare(run.recorded, load_fleet(run.fleet_yaml), "fast")
    for m in metrics:
        row = report.row(m)
        print(f"{m}: live {row.live:.4f} twin {row.twin:.4f} error {row.error:+.1%}")
    return report


def service_ratio(run) -> np.ndarray:
    """Per task: the live step's service time (the agent's start to finish) over the twin's
    rule, from the recorded work and the exported fleet's speeds only (without the measured
    spread the twin draws around it, whose median the test applies)."""
    fleet = load_fleet(run.fleet_yaml)
    exact = replace(fleet, nodes=tuple(replace(n, service_cv=0.0, service_quantiles=()) for n in fleet.nodes))
    twin = simulate(exact, run.recorded.trace, policy="fast").records.set_index("task_id")["service"]
    out = run.recorded.outcomes
    live = (out["finish_s"] - out["start_s"]).to_numpy()
    return live / twin.loc[out["task_id"]].to_numpy()


def over_the_rule(records, run) -> np.ndarray:
    """Per processor step of `records` (live or twin, in the twin's record columns): its
    service time over the twin's rule (`service_time`) at its node's mean speed in the
    exported fleet."""
    nodes = {str(n.id): n for n in load_fleet(run.fleet_yaml).nodes}
    tasks = {str(t.id): t for t in to_tasks(run.recorded.trace)}
    rule = [service_time(nodes[node], tasks[task]).service_s
            for task, node in zip(records["task_id"].astype(str), records["target"].astype(str), strict=True)]
    return records["service"].to_numpy() / np.array(rule)


def test_the_twin_predicts_each_steps_service_time_from_the_exported_fleet_within_10_percent(cpu, cpu_report):
    report = cpu_report
    live = over_the_rule(live_records(cpu.recorded), cpu)
    # the twin's steps: the node's speed in the second each starts (its profile) and a draw
    # from its spread around that speed (a shared core's steps are skewed: the median is not 1)
    twin = over_the_rule(report.twin_result.records, cpu)
    print(f"service over the rule, live: p50 {np.median(live):.3f}, p95 {np.percentile(live, 95):.3f}; "
          f"twin: p50 {np.median(twin):.3f}, p95 {np.percentile(twin, 95):.3f}")
    assert len(live) == len(twin) == cpu.tasks == TEST_ITEMS + TEST_ITEMS // 60
    assert abs(np.median(twin) / np.median(live) - 1) <= BOUND
    assert report.row("completed").live == report.row("completed").twin == cpu.tasks


def held_to_the_bound(report, metrics: tuple[str, ...], load: float) -> None:
    """Each figure printed with its error; the twin no slower than live by more than LOADED_OVER."""
    print(f"load average {load:.1f}")
    for metric in metrics:
        row = report.row(metric)
        print(f"{metric}: error {row.error:+.1%} (the issue's bound: {BOUND:.0%})")
        assert row.error is not None and row.error <= LOADED_OVER, (metric, row, load)


def test_the_twin_predicts_latency_p50_and_p95_within_10_percent_of_the_live_cluster(runs, cpu, cpu_report):
    report = cpu_report
    held_to_the_bound(report, ("latency p50 (s)", "latency p95 (s)"), runs["load"])
    print(f"the cluster ran real-time: {cpu.realtime}; the longest a step waited to start once it could: "
          f"{cpu.stall_s * 1000:.1f} ms (a stall beyond {STALL_S * 1000:.0f} ms: not asserted both ways)")
    if cpu.realtime and cpu.stall_s <= STALL_S:  # both ways, at the bound
        for metric in ("latency p50 (s)", "latency p95 (s)"):
            row = report.row(metric)
            assert abs(row.error) <= BOUND, (metric, row, runs["load"], diagnose(cpu))


def test_every_task_is_recorded_with_its_outcome_and_the_recording_is_a_trace(cpu, tokens):
    out = cpu.recorded.outcomes
    assert len(cpu.recorded.trace) == cpu.tasks
    assert set(out["status"]) == {"completed"}
    assert set(out["target"]) <= set(NODES)
    assert (out["finish_s"] > out["start_s"]).all() and (out["start_s"] >= out["placed_s"] - 0.5).all()
    assert (out["cpu_used_s"] > 0).all()  # the worker's CPU time, measured
    assert out["predicted_finish_s"].notna().all()
    df = cpu.recorded.trace.df
    assert (df["pipeline_id"] != "").sum() == 2 * (cpu.items // 60)
    assert set(df["privacy"]) == {"public", "sensitive", "personal"}
    everything = cpu.tasks + cpu.before + tokens.tasks + tokens.before
    assert len(read_trace(cpu.recording)) == everything  # any trace reader reads it (warm-up too)


def test_the_exported_fleet_is_what_ran_at_the_speed_measured_over_the_window(cpu):
    fleet = load_fleet(cpu.fleet_yaml)
    assert {n.id: (n.owner, tuple(sorted(n.trusted_owners)), n.slots) for n in fleet.nodes} == {
        node: (owner, tuple(sorted(trust)), 1) for node, (owner, trust) in NODES.items()}
    # each node's speed is its burn steps' over the window (those started back to back: the
    # wake of an idle core apart): within the bound of the recorded work over the recorded
    # service time (which adds the worker round trip and the wakes: 1-8% here)
    df, out = cpu.recorded.trace.df, cpu.recorded.outcomes
    for node in fleet.nodes:
        on = out["target"] == node.id
        recorded = df["cpu_seconds"][on].sum() / (out["finish_s"] - out["start_s"])[on].sum()
        assert node.device.cpu_single_core_relative == pytest.approx(recorded, rel=BOUND)
        # and its speed over time: a reading every second or so from the window's start to its end
        times = [t for t, _ in node.speed_profile]
        last_finish = cpu.recorded.origin_unix_s + out["finish_s"][on].max()
        assert times[0] <= cpu.since_unix_s + 1 and times[-1] >= last_finish - 3
        assert len(times) >= (last_finish - cpu.since_unix_s) / 3


async def test_heddle_sim_and_twin_check_take_the_exported_fleet_and_recording_unchanged(cpu, tokens, tmp_path):
    code, output = await heddle_cli("sim", "--fleet", str(cpu.fleet_yaml), "--trace", str(cpu.recording),
                                    "--policy", "fast")
    assert code == 0, output
    since = datetime.fromtimestamp(cpu.since_unix_s, UTC).isoformat()
    code, output = await heddle_cli("twin", "check", "--since", since, "--recording", str(cpu.recording), "--fleet",
                                    str(cpu.fleet_yaml), "--out", str(tmp_path / "out"))
    assert code == 0, output
    assert "latency p95" in output and "utilization alpha" in output
    # the token window came after: --since takes both windows' tasks
    assert f"twin vs live — {cpu.tasks + tokens.before + tokens.tasks:,} recorded tasks" in output
    assert (tmp_path / "out" / "fidelity.png").stat().st_size > 10_000


def test_status_and_the_fleet_view_show_the_twins_shadow_predictions(cpu):
    row = cpu.status.tasks[0]
    assert row.predicted_s > 0 and row.actual_s > 0  # the twin's service time next to the agent's
    assert cpu.status.shadow["tasks"] == RUNNING_WINDOW  # the running figure covers the last 500
    assert 0 <= cpu.status.shadow["median_abs_error"] < 1
    assert all(n.shadow_error is not None and n.speed_relative > 0 for n in cpu.fleet.nodes)


def test_the_token_path_records_first_tokens_at_each_devices_pace_and_the_twin_predicts_them(runs, tokens):
    """The stand-ins stream at the performance model's pace for the device each agent
    reports, so this checks the path (recording first tokens, the agents' devices in the
    exported fleet, queueing on nodes of different speeds), not the model's accuracy."""
    out, df = tokens.recorded.outcomes, tokens.recorded.trace.df
    assert set(out["status"]) == {"completed"} and out["first_token_s"].notna().all()
    fleet = load_fleet(tokens.fleet_yaml)
    assert {n.id: n.device.id for n in fleet.nodes} == TOKEN_DEVICES
    # every step took at least its device's paced time: first token after the prefill, the
    # end after the decode (the model's load on each node's first step)
    spec = model(TOKEN_MODEL[1])
    paced = [perf.llm_step(device(TOKEN_DEVICES[node]), spec, TOKEN_MODEL[2], p, o)
             for node, p, o in zip(out["target"], df["prompt_tokens"], df["output_tokens"], strict=True)]
    first = (out["first_token_s"] - out["start_s"]).to_numpy()
    service = (out["finish_s"] - out["start_s"]).to_numpy()
    assert (first >= np.array([s.prefill_s for s in paced]) * 0.99).all()
    assert (service >= np.array([s.prefill_s + s.decode_s for s in paced]) * 0.99).all()
    report = replayed(tokens, ("ttft p50 (s)", "ttft p95 (s)", "latency p50 (s)", "latency p95 (s)"))
    # the twin times each step by the same model the stand-ins pace by: what it adds is the
    # agent's HTTP round trip and stream reading, a few % of a step at the median
    ratio = service_ratio(tokens)
    print(f"service live / twin: p50 {np.median(ratio):.3f}, p95 {np.percentile(ratio, 95):.3f}")
    assert abs(np.median(ratio) - 1) <= BOUND
    held_to_the_bound(report, ("latency p50 (s)", "latency p95 (s)", "ttft p50 (s)", "ttft p95 (s)"), runs["load"])
