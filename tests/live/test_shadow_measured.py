"""What the shadow predictions measure of each node for the exported fleet: the spread of
its steps' service time around the twin's rule and the delay from the moment a step could
start to its start (heddle.live.control.shadow), over a window of completions."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from heddle.live.control.export import fleet_document
from heddle.live.control.shadow import MIN_SAMPLES, Measured, Shadow
from heddle.models import Task, TaskKind
from heddle.models.catalog import device
from heddle.models.fleet import parse_fleet
from heddle.models.fleet_types import Node
from heddle.models.service import service_time

NODE = Node(id="a", device=device("m1-7"), memory_gb=16.0, owner="alice", slots=1)


def task(i: int, arrival: float, cpu_seconds: float = 0.1, after: tuple[str, ...] = ()) -> Task:
    return Task(id=f"t{i}", kind=TaskKind.PROCESSOR, arrival_s=arrival, cpu_seconds=cpu_seconds, depends_on=after)


def run(shadow: Shadow, factors: list[float], *, start_delay: float, gap: float, t: float = 1000.0,
        trip: float | None = None) -> float:
    """Tasks on node a, each arriving `gap` s after the previous one's end (gap < 0: before
    it, so it waits for the slot), placed when it can start, started `start_delay` later,
    running its predicted time times its factor (of which the last `trip` s, when given, the
    agent's round trip to its worker, as a burn step reports it); returns when the last one ended."""
    for i, f in enumerate(factors):
        arrival = t + gap
        placed = max(arrival, t) + 0.001
        shadow.placed(f"k{i}", task(i, arrival), NODE, None, placed, 1)
        predicted = service_time(NODE, task(i, arrival)).service_s
        start = max(arrival, t) + start_delay
        t = start + predicted * f
        shadow.completed(f"k{i}", "a", start, t, None if trip is None else t - start - trip)
    return t


def test_a_nodes_spread_and_start_delay_are_measured_over_the_window_asked_for():
    shadow = Shadow()
    rng = np.random.default_rng(3)
    since = run(shadow, [1.0] * 50, start_delay=0.002, gap=0.5) + 1e-6  # steady, before the window
    factors = np.exp(rng.normal(0, 0.25, 400))
    run(shadow, list(factors), start_delay=0.004, gap=-0.05, t=since)  # each step waited for the slot
    cv, dispatch, shape, *_ = shadow.measured(since)["a"]
    logs = np.sort(np.log(factors))[8:-8]  # 2% of 400 at each end
    assert cv == pytest.approx(math.sqrt(math.expm1((logs.std() / 0.890) ** 2)), rel=1e-6)
    assert cv == pytest.approx(math.sqrt(math.expm1(0.25**2)), rel=0.15)  # the spread drawn
    assert dispatch == pytest.approx(0.004, abs=1e-6)  # from the previous step's end, not the arrival
    # its shape: the ratios' quantiles from the least to the greatest but one at each end
    # (the slow tail kept), scaled to mean 1
    kept = np.sort(factors)[1:-1]
    assert len(shape) == 41 and shape == tuple(sorted(shape))
    scale = np.quantile(kept, 0.5) / shape[20]
    assert np.array(shape) * scale == pytest.approx(np.quantile(kept, np.linspace(0, 1, 41)), rel=1e-9)
    assert (sum(shape) - (shape[0] + shape[-1]) / 2) / 40 == pytest.approx(1.0, rel=1e-12)
    everything = Shadow(window=10_000)
    run(everything, [1.0] * 50, start_delay=0.002, gap=0.5)
    assert everything.measured()["a"][:2] == (pytest.approx(0.0, abs=1e-9), pytest.approx(0.002, abs=1e-6))
    assert everything.measured()["a"].service_quantiles == pytest.approx([1.0] * 41)


def test_the_start_delay_is_the_mean_a_node_loses_per_step_without_a_freak_one():
    shadow = Shadow()
    t = run(shadow, [1.0] * 60, start_delay=0.002, gap=-0.05)
    t = run(shadow, [1.0] * 39, start_delay=0.005, gap=-0.05, t=t)
    run(shadow, [1.0], start_delay=0.5, gap=-0.05, t=t)  # the control plane stalled once
    # the twin adds it to every step: the total a node lost, not the typical step's (0.002);
    # 2% of 100 left out at each end (the stall and the first step, which waited from its arrival)
    assert shadow.measured()["a"][1] == pytest.approx((57 * 0.002 + 39 * 0.005) / 96, abs=1e-9)


def test_a_burn_steps_round_trip_to_its_worker_counts_as_time_the_node_loses_per_step():
    shadow = Shadow()
    run(shadow, [1.0] * 50, start_delay=0.002, gap=-0.05, trip=0.0006)
    # the burn's own time is what the node's speed counts: the rest of the step's time on
    # the agent holds the slot as the start delay does
    assert shadow.measured()["a"][1] == pytest.approx(0.002 + 0.0006, abs=1e-9)
    plain = Shadow()
    run(plain, [1.0] * 50, start_delay=0.002, gap=-0.05)  # not burn steps: no round trip measured
    assert plain.measured()["a"][1] == pytest.approx(0.002, abs=1e-9)


def test_a_few_steps_the_rule_mispredicts_do_not_stand_for_the_nodes_spread():
    steady, spoilt = Shadow(), Shadow()
    factors = list(np.exp(np.random.default_rng(5).normal(0, 0.05, 60)))
    run(steady, factors, start_delay=0.002, gap=0.5)
    run(spoilt, [30.0, *factors[1:-1], 0.01], start_delay=0.002, gap=0.5)  # a model load, a clock jump
    assert spoilt.measured()["a"][0] == pytest.approx(steady.measured()["a"][0], rel=0.15)
    assert spoilt.measured()["a"][0] < 0.1
    # nor the shape's ends, which keep the slow tail otherwise
    shape = np.array(spoilt.measured()["a"].service_quantiles)
    assert shape[0] > 0.8 and shape[-1] < 1.3
    tail = Shadow()
    run(tail, [30.0, *factors[1:-3], 2.5, 2.5], start_delay=0.002, gap=0.5)  # two steps 2.5x slow
    shape = np.array(tail.measured()["a"].service_quantiles)
    assert shape[-1] / np.median(shape) == pytest.approx(2.5, rel=0.1)  # what queues the node up


def test_too_few_completions_or_pipeline_stages_only_give_no_figure():
    shadow = Shadow()
    run(shadow, [1.0] * (MIN_SAMPLES - 1), start_delay=0.002, gap=0.5)
    assert shadow.measured() == {}
    stages = Shadow()
    for i in range(2 * MIN_SAMPLES):  # a stage could start when its inputs ended: not known here
        stages.placed(f"k{i}", task(i, 1000.0 + i, after=("a",)), NODE, None, 1000.0 + i, 1)
        stages.completed(f"k{i}", "a", 1000.0 + i, 1000.5 + i)
    assert stages.measured() == {}


def test_the_exported_fleet_carries_the_measured_figures_and_the_twin_reads_them():
    cpu = SimpleNamespace(cpu=SimpleNamespace(speed_relative=0.5))
    doc = fleet_document([(NODE, cpu), (Node(id="b", device=device("m1-7"), memory_gb=16.0, owner="bob"), cpu)],  # type: ignore[list-item]
                         {}, {"a": Measured(0.21234, 0.0031234, (0.81234, 0.9, 1.3))})
    assert doc["nodes"][0]["service_cv"] == 0.2123 and doc["nodes"][0]["dispatch_s"] == 0.00312
    assert doc["nodes"][0]["service_quantiles"] == [0.8123, 0.9, 1.3]
    assert "service_cv" not in doc["nodes"][1]
    fleet = parse_fleet(yaml.safe_dump(doc), "exported")
    assert [(n.service_cv, n.dispatch_s, n.service_quantiles) for n in fleet.nodes] == [
        (0.2123, 0.00312, (0.8123, 0.9, 1.3)), (0.0, 0.0, ())]


def test_with_the_nodes_speed_over_time_a_steps_spread_is_around_the_speed_of_its_second():
    """A slow spell the exported profile holds (and the twin replays) is not spread too: the
    twin would count it twice."""
    rng = np.random.default_rng(7)
    own = np.exp(rng.normal(0, 0.05, 200))  # each step's own variation around its second's speed
    spell = np.where(np.arange(200) < 100, 1.0, 1 / 0.6)  # the second half at 0.6 of the speed
    shadow = Shadow()
    run(shadow, list(own * spell), start_delay=0.002, gap=-0.05)
    starts = [row.started for row in shadow.history["a"]]
    speed = NODE.device.cpu_single_core_relative
    profile = [(starts[0] - 0.5, speed), (starts[100] - 1e-6, 0.6 * speed)]
    around_the_spell = shadow.measured(profiles={"a": profile})["a"]
    assert around_the_spell.service_cv == pytest.approx(math.sqrt(math.expm1(0.05**2)), rel=0.25)
    assert np.std(around_the_spell.service_quantiles) < 0.07
    # without the profile (or for another node's) the spell is the node's spread
    for measured in (shadow.measured()["a"], shadow.measured(profiles={"b": profile})["a"]):
        assert measured.service_cv > 0.2 and np.std(measured.service_quantiles) > 0.2


def test_steps_started_on_an_idle_node_measure_its_wake_and_the_speed_of_its_steps_back_to_back():
    """A core that idled takes longer over its next step: the node's speed over all its steps is
    then a blend, too slow for a burst's steps and too fast for the first; the export writes the
    speed of the steps started back to back and the wake apart."""
    shadow, rng, t, wake = Shadow(), np.random.default_rng(11), 1000.0, 0.003
    own = np.exp(rng.normal(0, 0.05, 400))
    for i in range(400):
        idle = i % 2 == 0  # arrives after the previous step's end, or before it (waits for the node)
        arrival = t + (0.5 if idle else -0.05)
        shadow.placed(f"k{i}", task(i, arrival), NODE, None, max(arrival, t) + 0.001, 1)
        start = max(arrival, t) + 0.002
        t = start + service_time(NODE, task(i, arrival)).service_s * 0.9 * float(own[i]) + (wake if idle else 0.0)
        shadow.completed(f"k{i}", "a", start, t)
    measured = shadow.measured()["a"]
    assert measured.wake_s == pytest.approx(wake, rel=0.1)
    assert measured.warm == pytest.approx(0.9 * own[1::2].mean(), rel=0.01)
    # the spread is each step's own around its level: the wake is not spread
    assert measured.service_cv == pytest.approx(math.sqrt(math.expm1(0.05**2)), rel=0.25)
    report = SimpleNamespace(cpu=SimpleNamespace(speed_relative=0.5))
    row = fleet_document([(NODE, report)], {"a": 0.5}, {"a": measured}, {"a": [(990.0, 0.5)]})["nodes"][0]  # type: ignore[list-item]
    assert row["cpu_speed_relative"] == round(0.5 / measured.warm, 4) and row["wake_s"] == round(measured.wake_s, 5)
    assert row["cpu_speed_profile"] == [[990.0, round(0.5 / measured.warm, 4)]]
    node = parse_fleet(yaml.safe_dump({"name": "f", "nodes": [row]}), "exported").nodes[0]
    assert node.wake_s == round(measured.wake_s, 5)
    # idle starts no slower, or too few of either kind: no wake, the speed as measured
    for factors, gap in (([1.0] * 60, 0.5), ([1.0] * 60, -0.05)):
        plain = Shadow()
        run(plain, factors, start_delay=0.002, gap=gap)
        assert plain.measured()["a"][3:] == (0.0, 1.0, None)  # and one kind of start only: one delay
        row = fleet_document([(NODE, report)], {"a": 0.5}, {"a": plain.measured()["a"]})["nodes"][0]  # type: ignore[list-item]
        assert row["cpu_speed_relative"] == 0.5 and "wake_s" not in row


def test_a_step_placed_on_the_idle_node_and_one_started_back_to_back_have_their_own_start_delay():
    shadow, t = Shadow(), 1000.0
    for i in range(120):
        idle = i % 2 == 0
        arrival = t + (0.5 if idle else -0.05)
        start = max(arrival, t) + (0.0015 if idle else 0.0025)  # a completion's trip to the control plane first
        shadow.placed(f"k{i}", task(i, arrival), NODE, None, start - 0.001, 1)
        t = start + service_time(NODE, task(i, arrival)).service_s
        shadow.completed(f"k{i}", "a", start, t, t - start - 0.0005)  # 0.5 ms to the worker and back
    measured = shadow.measured()["a"]
    assert measured.dispatch_s == pytest.approx(0.003, abs=1e-9)
    assert measured.idle_dispatch_s == pytest.approx(0.002, abs=1e-9)
    assert measured.wake_s == 0.0 and measured.warm == 1.0  # the round trip is not a wake, nor the speed's
    report = SimpleNamespace(cpu=SimpleNamespace(speed_relative=0.5))
    row = fleet_document([(NODE, report)], {"a": 0.5}, {"a": measured})["nodes"][0]  # type: ignore[list-item]
    assert (row["dispatch_s"], row["idle_dispatch_s"], row["cpu_speed_relative"]) == (0.003, 0.002, 0.5)
    assert parse_fleet(yaml.safe_dump({"name": "f", "nodes": [row]}), "exported").nodes[0].idle_dispatch_s == 0.002
