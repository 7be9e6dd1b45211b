"""Same input, same placement: CP-SAT searches with one worker and stops on deterministic
time (or at a gap measured in a reproducible order), so neither a second run nor a busy
machine changes the answer; and the gap is measured on the part of the objective a
scheduler can change."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from heddle.models import ModelId, Privacy, Task, TaskId, TaskKind
from heddle.optimizer import Policy, place
from heddle.optimizer.engine import fixed_int, scored
from heddle.optimizer.instances import memory_tight_problem, random_problem
from heddle.optimizer.scoring import MICRO

CUT_SHORT = Policy(relative_gap=0.0, time_limit_s=0.05)
"""A limit this memory-tight batch cannot be proven optimal within: the search is cut off."""


def _signature(placement):
    return ([(d.task_id, d.status, d.target) for d in placement.decisions], placement.objective,
            placement.best_bound, placement.status)


@pytest.fixture(scope="module")
def hard_batch():
    state, tasks = memory_tight_problem(np.random.default_rng(1), 300, 20)
    first = place(state, tasks, CUT_SHORT)
    assert (first.solver, first.status) == ("cp-sat", "FEASIBLE")  # stopped by its limit, not a proof
    return state, tasks, first


def test_a_search_cut_off_by_its_limit_gives_the_same_placement_every_time(hard_batch):
    state, tasks, first = hard_batch
    for _ in range(3):
        assert _signature(place(state, tasks, CUT_SHORT)) == _signature(first)


def test_a_busy_machine_does_not_change_the_placement(hard_batch):
    state, tasks, first = hard_batch
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(3)]
    try:
        again = [place(state, tasks, CUT_SHORT) for _ in range(2)]
    finally:
        for proc in spinners:
            proc.kill()
            proc.wait()
    assert all(_signature(p) == _signature(first) for p in again)


def test_the_default_policy_stops_within_its_gap_the_same_way_each_time():
    state, tasks = memory_tight_problem(np.random.default_rng(8), 120, 10)
    runs = [place(state, tasks, "optimal") for _ in range(2)]
    assert _signature(runs[0]) == _signature(runs[1])
    assert runs[0].gap <= Policy().relative_gap + 1e-12


@pytest.mark.parametrize("make", [random_problem, memory_tight_problem])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_optimal_batches_end_within_the_policys_gap(make, seed):
    state, tasks = make(np.random.default_rng(seed), 150, 12)
    placement = place(state, tasks, "optimal")
    assert placement.best_bound <= placement.objective + 1e-9
    assert placement.gap <= Policy().relative_gap + 1e-12, (placement.solver, placement.status)


def test_the_gap_leaves_out_the_deferrals_of_tasks_nothing_can_place():
    state, tasks = random_problem(np.random.default_rng(4), 40, 6)
    stranded = [Task(TaskId(f"huge{i}"), TaskKind.LLM, model=ModelId("gpt-oss-120b"), quant="f16",
                     prompt_tokens=100, output_tokens=10, privacy=Privacy.SENSITIVE) for i in range(30)]
    placement = place(state, tasks + stranded, "optimal")
    by_task = placement.by_task()
    assert all(by_task[t.id].status.value == "rejected" for t in stranded)
    stranded_usd = sum(by_task[t.id].cost_usd["defer"] for t in stranded)
    assert placement.fixed_usd >= stranded_usd - 1e-9  # their cost is in the fixed part...
    sc = scored(state, tasks + stranded)
    assert placement.fixed_usd == fixed_int(sc) / MICRO
    changeable = placement.objective - placement.fixed_usd
    assert changeable > 0  # ...and the gap is relative to the rest
    assert placement.gap == pytest.approx((placement.objective - placement.best_bound) / changeable)
