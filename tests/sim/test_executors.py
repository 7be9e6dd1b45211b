"""Executors ship a sweep's shared inputs once, not once per run, and a bad input fails only
the runs that use it."""

from __future__ import annotations

import dataclasses
import pickle

from heddle.sim.executors import LocalExecutor, SerialExecutor, share_inputs, summary_of
from heddle.sim.runner import RunSpec
from heddle.sim.whatif import resolve_fleet, resolve_trace
from heddle.traces import read_trace

HORIZON_S = 900.0


def _specs(n: int) -> list[RunSpec]:
    trace = read_trace(resolve_trace("demo"))
    fleet = resolve_fleet("demo")  # a path: read once by the executor
    return [RunSpec(fleet=fleet, trace=trace, policy="least-loaded", seed=k, horizon_s=HORIZON_S)
            for k in range(n)]


def test_shared_inputs_are_put_once_and_runs_carry_only_handles():
    specs = _specs(4)
    put_values = []

    def put(value):
        put_values.append(value)
        return f"handle-{len(put_values)}"

    shared = share_inputs(specs, put, load=("fleet", "trace"))
    assert len(put_values) == 2  # one fleet (read from its file here) and one trace, for four runs
    assert {s.fleet for s in shared} == {"handle-1"} and {s.trace for s in shared} == {"handle-2"}
    assert len(pickle.dumps(specs[0])) > 100_000  # the trace itself
    assert all(len(pickle.dumps(s)) < 1_000 for s in shared)


def test_local_workers_give_the_serial_numbers_and_a_bad_input_fails_its_runs_only(tmp_path):
    specs = _specs(3)
    missing = tmp_path / "missing.parquet"
    specs.append(RunSpec(fleet=specs[0].fleet, trace=str(missing), policy="least-loaded",
                         horizon_s=HORIZON_S))
    local = LocalExecutor(2).map(specs)
    serial = SerialExecutor().map(specs)
    assert [o.ok for o in local] == [True, True, True, False]
    assert "missing.parquet" in local[3].error and not serial[3].ok
    for a, b in zip(local[:3], serial[:3], strict=True):
        assert a.result.summary.completed == b.result.summary.completed > 0
        assert a.result.summary.latency_s == b.result.summary.latency_s



def test_keep_sends_back_only_what_the_caller_keeps_with_the_same_numbers():
    specs = _specs(2)
    full = SerialExecutor().map(specs)
    kept = LocalExecutor(2).map(specs, keep=summary_of)
    def numbers(summary) -> dict:  # all but the wall time, which depends on the machine
        return {k: v for k, v in dataclasses.asdict(summary).items() if "wall" not in k}

    assert [numbers(o.result) for o in kept] == [numbers(o.result.summary) for o in full]
    assert len(pickle.dumps(kept[0].result)) < 20_000 < len(pickle.dumps(full[0].result))
