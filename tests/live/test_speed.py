"""One core's speed, kept current: the agent's burn steps feed it, the capacity report carries
it with running totals, and the control plane turns two readings into a window's speed."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from heddle.live.agent.speed import (
    SPEED_WINDOW_S,
    SpeedMeter,
    measure_speed_relative,
    speed_between,
)
from heddle.live.control import recorder as recorder_module
from heddle.live.control.export import fleet_document
from heddle.live.control.recorder import Recorder
from heddle.live.control.submission import BURN_ITERATIONS_PER_CPU_SECOND
from heddle.live.protocol import Cpu
from heddle.models.fleet import parse_fleet

RATE = BURN_ITERATIONS_PER_CPU_SECOND  # iterations a reference core burns in a second


def test_the_meter_keeps_the_probes_figure_until_its_steps_have_burnt_long_enough():
    meter = SpeedMeter(probed=0.5)
    meter.add(int(0.2 * RATE), 0.5, now=0.0)  # 0.4 of the reference core, but 0.5 s of burning only
    assert meter.current(now=1.0) == 0.5
    meter.add(int(0.2 * RATE), 0.5, now=1.0)
    assert meter.current(now=1.0) == pytest.approx(0.4)
    assert (meter.iterations, meter.seconds) == (int(0.4 * RATE), 1.0)  # running totals


def test_the_meter_follows_a_slower_core_and_forgets_what_left_its_window():
    meter = SpeedMeter(probed=0.5)
    meter.add(int(0.5 * RATE), 1.0, now=0.0)
    meter.add(int(0.3 * RATE), 1.0, now=SPEED_WINDOW_S / 2)
    assert meter.current(now=SPEED_WINDOW_S / 2) == pytest.approx(0.4)  # both steps
    assert meter.current(now=SPEED_WINDOW_S + 1) == pytest.approx(0.3)  # the first left the window
    meter.add(0, 1.0)  # nothing measurable is not a step
    assert meter.seconds == 2.0


def test_speed_between_two_readings_and_the_probe_measure_one_quantity():
    assert speed_between(RATE * 3, 6.0) == pytest.approx(0.5)
    assert speed_between(0, 1.0) is None and speed_between(10, 0.0) is None
    assert measure_speed_relative(rounds=1, iterations=2000) > 0


def node(node_id: str, iterations: int | None, seconds: float | None, speed: float = 0.5,
         sent_at: float = math.inf):
    """A node whose last capacity report carried these totals (sent at `sent_at`: by default
    no earlier than the control plane reads it)."""
    cpu = Cpu(performance_cores=8, utilization=0.1, speed_relative=speed, burn_iterations=iterations,
              burn_seconds=seconds)
    return SimpleNamespace(report=SimpleNamespace(cpu=cpu, sent_at=sent_at))


class Plane:
    def __init__(self) -> None:
        self.clock = 1000.0
        self.fleet = SimpleNamespace(nodes={})
        self.tasks: dict = {}

    def now(self) -> float:
        return self.clock


def test_the_control_plane_measures_each_nodes_speed_over_a_window_from_its_running_totals(tmp_path):
    plane = Plane()
    recorder = Recorder(plane, tmp_path)  # type: ignore[arg-type]
    plane.fleet.nodes = {"a": node("a", 0, 0.0), "b": node("b", 0, 0.0), "old": node("old", None, None)}
    recorder.sample_speeds()
    plane.clock = 1010.0  # before the window: a burns at 0.5 of the reference core
    plane.fleet.nodes["a"] = node("a", int(5 * RATE), 10.0)
    recorder.sample_speeds()
    plane.clock = 1030.0  # in the window: a at 0.25, b at 0.8; b restarted (its totals went back)
    plane.fleet.nodes["a"] = node("a", int(10 * RATE), 30.0)
    plane.fleet.nodes["b"] = node("b", int(8 * RATE), 10.0)
    assert recorder.speeds_since(1010.0) == {"a": pytest.approx(0.25), "b": pytest.approx(0.8)}
    assert recorder.speeds_since(1000.0)["a"] == pytest.approx(10 / 30)
    plane.clock = 1032.0  # b's agent restarts: its totals count from zero again
    plane.fleet.nodes["b"] = node("b", int(1 * RATE), 2.0)
    assert recorder.speeds_since(1010.0)["b"] == pytest.approx(9 / 12)
    assert "a" not in recorder.speeds_since(1031.0)  # a burnt nothing since


def test_the_control_plane_measures_each_nodes_speed_over_time_reading_by_reading(tmp_path):
    plane = Plane()
    recorder = Recorder(plane, tmp_path)  # type: ignore[arg-type]
    plane.fleet.nodes = {"a": node("a", 0, 0.0)}
    recorder.sample_speeds()
    for at, iterations, seconds in ((1001.0, 0.5 * RATE, 1.0), (1002.0, 0.6 * RATE, 1.2), (1003.0, 0.8 * RATE, 1.6)):
        plane.clock = at + 0.7  # read a while after the agent sent it: the reading is as of the report
        plane.fleet.nodes["a"] = node("a", int(iterations), seconds, sent_at=at)
        recorder.sample_speeds()
    plane.clock = 1004.0  # a slow second: a tenth of a core-second of work in a whole second
    plane.fleet.nodes["a"] = node("a", int(0.9 * RATE), 2.6)
    profile = recorder.speed_profiles_since(1001.5)
    # from the last reading at or before the window's start; a second that burnt nothing
    # (the totals did not move: no reading) is no interval
    assert [t for t, _ in profile["a"]] == [1001.0, 1002.0, 1003.0]
    assert [s for _, s in profile["a"]] == pytest.approx([0.5, 0.5, 0.1])
    assert recorder.speeds_since(1001.5)["a"] == pytest.approx(0.4 / 1.6)
    assert recorder.speed_profiles_since(1004.0) == {}


def test_a_long_windows_speed_over_time_is_merged_into_at_most_so_many_entries(tmp_path, monkeypatch):
    monkeypatch.setattr(recorder_module, "PROFILE_POINTS", 4)
    plane = Plane()
    recorder = Recorder(plane, tmp_path)  # type: ignore[arg-type]
    speeds = [0.3, 0.2] * 5  # ten seconds, each burning the whole second at its speed
    for k in range(11):
        plane.clock = 1000.0 + k
        plane.fleet.nodes = {"a": node("a", round(RATE * sum(speeds[:k])), float(k))}
        recorder.sample_speeds()
    profile = recorder.speed_profiles_since(1000.0)["a"]
    # runs of three readings (the last of one): each entry the speed over its run
    assert [t for t, _ in profile] == [1000.0, 1003.0, 1006.0, 1009.0]
    assert [s for _, s in profile] == pytest.approx([0.8 / 3, 0.7 / 3, 0.8 / 3, 0.2], rel=1e-6)


def test_the_exported_fleet_carries_the_windows_speed_where_there_is_one():
    from heddle.models.catalog import device
    from heddle.models.fleet_types import Node

    reports = [(Node(id=n, device=device("m1-7"), memory_gb=16.0, owner="alice", slots=1),
                SimpleNamespace(cpu=node(n, 0, 0.0, speed=0.5).report.cpu)) for n in ("a", "b")]
    doc = fleet_document(reports, {"a": 0.25})  # type: ignore[arg-type]
    assert [row["cpu_speed_relative"] for row in doc["nodes"]] == [0.25, 0.5]
    fleet = parse_fleet(__import__("yaml").safe_dump(doc), "exported")
    assert [n.device.cpu_single_core_relative for n in fleet.nodes] == [0.25, 0.5]
    profiled = fleet_document(reports, {"a": 0.25}, profiles={"a": [(1000.0, 0.3), (1001.0, 0.2)]})  # type: ignore[arg-type]
    fleet = parse_fleet(__import__("yaml").safe_dump(profiled), "exported")
    assert [n.speed_profile for n in fleet.nodes] == [((1000.0, 0.3), (1001.0, 0.2)), ()]
