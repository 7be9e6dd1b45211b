"""A node as a live cluster measured it (Node.service_cv, Node.service_quantiles,
Node.dispatch_s, Node.wake_s; `heddle fleet export` writes them): the twin draws each step's
service time around the performance model's with that spread (the measured quantiles' shape
when there are some, else lognormal), the mean kept, from the run's seeded generator, adds the
wake to a processor step started on the node idle, and starts each step that long after
placing it. Both engines, same records."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from heddle.models.fleet import FleetError, parse_fleet
from heddle.sim import TwinSettings, simulate
from heddle.sim.fidelity import measured_speeds
from tests.sim.conftest import llm_trace, make_fleet, processor_trace


def _measured(fleet, **fields):
    return replace(fleet, nodes=tuple(replace(n, **fields) for n in fleet.nodes))


def _both(fleet, df, seed=0) -> pd.DataFrame:
    runs = [simulate(fleet, df, "fast", seed=seed, settings=TwinSettings(express=e)) for e in (False, True)]
    pd.testing.assert_frame_equal(runs[0].records, runs[1].records, check_exact=True)
    return runs[1].records.set_index("task_id")


def test_a_nodes_measured_spread_draws_service_times_with_that_spread_and_the_models_mean():
    n = 2000
    df = processor_trace(np.arange(n) * 10.0, np.full(n, 1.0))  # far apart: nothing waits
    exact = _both(make_fleet(1), df)["service"]
    assert exact.nunique() == 1
    spread = _measured(make_fleet(1), service_cv=0.3)
    drawn = _both(spread, df)["service"] / exact.iloc[0]
    assert drawn.mean() == pytest.approx(1.0, abs=0.03)
    assert drawn.std() / drawn.mean() == pytest.approx(0.3, abs=0.03)
    assert (_both(spread, df)["service"] == _both(spread, df)["service"]).all()  # same seed, same run
    assert not np.allclose(_both(spread, df, seed=1)["service"], _both(spread, df)["service"])
    # a fleet whose nodes were not measured runs as before, whatever the seed
    assert (_both(make_fleet(1), df, seed=7)["service"] == exact).all()


def test_a_nodes_measured_quantiles_draw_service_times_of_that_shape_on_both_engines():
    n = 4000
    df = processor_trace(np.arange(n) * 10.0, np.full(n, 1.0))  # far apart: nothing waits
    exact = _both(make_fleet(1), df)["service"].iloc[0]
    # skewed as a shared core's steps: most a little faster than the mean, a few much slower
    shape = (0.8, 0.85, 0.88, 0.9, 0.92, 0.94, 0.96, 1.0, 1.1, 1.5, 2.0)
    skewed = _measured(make_fleet(1), service_cv=0.3, service_quantiles=shape)
    drawn = (_both(skewed, df)["service"] / exact).to_numpy()
    mean = (sum(shape) - (shape[0] + shape[-1]) / 2) / (len(shape) - 1)
    assert drawn.mean() == pytest.approx(1.0, abs=0.02)  # the speed sets the level, the table the shape
    assert drawn.min() >= shape[0] / mean - 1e-9 and drawn.max() <= shape[-1] / mean + 1e-9
    for k in (1, 5, 9):  # the table's quantiles, not the lognormal's at service_cv 0.3
        assert np.quantile(drawn, k / 10) == pytest.approx(shape[k] / mean, abs=0.02)
    lognormal = (_both(_measured(make_fleet(1), service_cv=0.3), df)["service"] / exact).to_numpy()
    assert np.median(lognormal) > np.median(drawn) + 0.03 and np.quantile(lognormal, 0.05) < drawn.min()
    assert not np.allclose(_both(skewed, df, seed=1)["service"], _both(skewed, df)["service"])


def test_a_nodes_dispatch_delay_starts_each_step_that_long_after_it_could_start():
    df = processor_trace(np.array([0.0, 0.0, 50.0]), np.full(3, 1.0))
    plain = _both(make_fleet(1), df)
    delayed = _both(_measured(make_fleet(1), dispatch_s=0.25), df)
    service = plain.loc["p0", "service"]
    assert list(delayed["service"]) == list(plain["service"])
    # on arrival, after the node's previous step, and on arrival again
    assert list(delayed["start"]) == pytest.approx([0.25, 0.25 + service + 0.25, 50.25])
    assert list(delayed["latency"] - plain["latency"]) == pytest.approx([0.25, 0.5, 0.25])


def test_a_processor_step_started_on_an_idle_node_takes_the_measured_wake_one_started_back_to_back_not():
    # p0 on arrival (idle), p1 waiting for p0 (back to back), p2 long after (idle again), p3
    # arriving as p2 runs (back to back)
    df = processor_trace(np.array([0.0, 0.01, 50.0, 50.01]), np.full(4, 1.0))
    plain = _both(make_fleet(1), df)
    woken = _both(_measured(make_fleet(1), wake_s=0.125, dispatch_s=0.25), df)
    assert list(woken["service"] - plain["service"]) == pytest.approx([0.125, 0.0, 0.125, 0.0])
    service = plain.loc["p0", "service"]
    assert list(woken["start"]) == pytest.approx([0.25, 0.25 + service + 0.125 + 0.25, 50.25,
                                                  50.25 + service + 0.125 + 0.25])
    # measured apart, a step placed on the node idle starts idle_dispatch_s after, one back to
    # back dispatch_s after (its previous step's completion reaches the control plane first)
    split = _both(_measured(make_fleet(1), dispatch_s=0.25, idle_dispatch_s=0.0625), df)
    assert list(split["start"]) == pytest.approx([0.0625, 0.0625 + service + 0.25, 50.0625, 50.0625 + service + 0.25])
    # with a spread, the wake comes on top of the drawn service time, same draw
    spread = _both(_measured(make_fleet(1), service_cv=0.2), df)["service"]
    both = _both(_measured(make_fleet(1), service_cv=0.2, wake_s=0.125), df)["service"]
    assert list(both - spread) == pytest.approx([0.125, 0.0, 0.125, 0.0])
    # LLM steps keep the model's time: the wake is measured on processor steps
    llm = llm_trace(np.array([0.0, 50.0]), np.full(2, 500), np.full(2, 50))
    assert list(_both(_measured(make_fleet(1), wake_s=0.125), llm)["service"]) == list(_both(make_fleet(1), llm)["service"])


def test_llm_steps_on_a_measured_node_take_the_spread_and_the_delay_on_every_path():
    n = 300
    df = llm_trace(np.arange(n) * 0.5, np.full(n, 500), np.full(n, 50))
    plain = _both(make_fleet(2, slots=2), df)
    measured = _both(_measured(make_fleet(2, slots=2), service_cv=0.2, dispatch_s=0.01), df)
    ratio = measured["service"] / plain["service"]
    assert ratio.std() == pytest.approx(0.2, abs=0.05) and ratio.mean() == pytest.approx(1.0, abs=0.05)
    assert (measured["wait"] >= 0.01 - 1e-12).all()


def test_the_fleet_file_takes_the_measured_figures_and_rejects_impossible_ones():
    base = "name: f\nnodes:\n  - {id: a, device: m1-7, memory_gb: 16, owner: alice%s}\n"
    fleet = parse_fleet(base % ", service_cv: 0.2, dispatch_s: 0.003", "f.yaml")
    assert (fleet.nodes[0].service_cv, fleet.nodes[0].dispatch_s) == (0.2, 0.003)
    unmeasured = parse_fleet(base % "", "f.yaml").nodes[0]
    assert (unmeasured.service_cv, unmeasured.dispatch_s) == (0, 0)
    with pytest.raises(FleetError, match=r"f\.yaml.*dispatch_s"):
        parse_fleet(base % ", dispatch_s: -1", "f.yaml")
    assert parse_fleet(base % ", wake_s: 0.0012", "f.yaml").nodes[0].wake_s == 0.0012 and unmeasured.wake_s == 0
    assert parse_fleet(base % ", idle_dispatch_s: 0.0015", "f.yaml").nodes[0].idle_dispatch_s == 0.0015
    assert unmeasured.idle_dispatch_s is None
    with pytest.raises(FleetError, match=r"f\.yaml.*wake_s"):
        parse_fleet(base % ", wake_s: -0.001", "f.yaml")
    with pytest.raises(FleetError, match=r"f\.yaml.*service_cv"):
        parse_fleet(base % ", service_cv: many", "f.yaml")
    shaped = parse_fleet(base % ", service_cv: 0.2, service_quantiles: [0.8, 0.9, 1.4]", "f.yaml").nodes[0]
    assert shaped.service_quantiles == (0.8, 0.9, 1.4) and unmeasured.service_quantiles == ()
    with pytest.raises(FleetError, match=r"f\.yaml:3.*service_quantiles\[2\]: 0\.85 is below.*increasing order"):
        parse_fleet(base % ", service_quantiles: [0.8, 0.9, 0.85]", "f.yaml")
    with pytest.raises(FleetError, match=r"f\.yaml.*service_quantiles: one value"):
        parse_fleet(base % ", service_quantiles: [1.0]", "f.yaml")
    with pytest.raises(FleetError, match=r"f\.yaml.*service_quantiles"):
        parse_fleet(base % ", service_quantiles: [0, 1]", "f.yaml")


def test_a_nodes_measured_speed_over_time_runs_each_step_at_the_speed_of_its_start():
    df = processor_trace(np.array([0.0, 10.0, 20.0, 30.0]), np.full(4, 1.0))
    fleet = make_fleet(1)
    plain = _both(fleet, df)["service"].iloc[0]
    mean = fleet.nodes[0].device.cpu_single_core_relative
    origin = 1_000.0  # the recording's 0 in Unix s; the first entry is in force before it
    profiled = _measured(fleet, speed_profile=((origin - 5, mean), (origin + 8, mean / 2), (origin + 25, mean * 2)))
    scenario = measured_speeds(profiled, origin)
    runs = [simulate(profiled, df, "fast", scenario=scenario, settings=TwinSettings(express=e)) for e in (False, True)]
    pd.testing.assert_frame_equal(runs[0].records, runs[1].records, check_exact=True)
    service = runs[0].records.set_index("task_id")["service"]
    assert list(service / plain) == pytest.approx([1.0, 2.0, 2.0, 0.5])
    assert measured_speeds(fleet, origin) is None  # no profile: the node runs at its speed throughout
    # the profile is the CPU's: LLM steps keep the performance model's time
    llm = llm_trace(np.array([0.0, 10.0, 20.0, 30.0]), np.full(4, 500), np.full(4, 50))
    assert (simulate(profiled, llm, "fast", scenario=scenario).records["service"]
            == simulate(fleet, llm, "fast").records["service"]).all()


def test_the_fleet_file_takes_a_speed_profile_in_time_order_only():
    base = "name: f\nnodes:\n  - {id: a, device: m1-7, memory_gb: 16, owner: alice, cpu_speed_profile: %s}\n"
    assert parse_fleet(base % "[[10.5, 0.2], [11.5, 0.1]]", "f.yaml").nodes[0].speed_profile == ((10.5, 0.2), (11.5, 0.1))
    with pytest.raises(FleetError, match=r"f\.yaml:3.*cpu_speed_profile\[1\].*time order"):
        parse_fleet(base % "[[10.5, 0.2], [9.5, 0.1]]", "f.yaml")
    with pytest.raises(FleetError, match=r"f\.yaml.*cpu_speed_profile"):
        parse_fleet(base % "[[10.5, 0]]", "f.yaml")
