"""The express path (`optimizer.express.place_row`) answers exactly when place() would place
a task on a local node, with the same node and service estimate, on random fleets and states."""

from __future__ import annotations

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from heddle.models import Privacy
from heddle.optimizer import DecisionStatus, Policy, TargetKind, place
from heddle.optimizer.costs import mb_down as _mb_down
from heddle.optimizer.costs import mb_up as _mb_up
from heddle.optimizer.express import _MB_SLACK_GB, place_row, task_row
from heddle.optimizer.fleet_cache import fleet_arrays
from tests.optimizer.conftest import problems


def _check(state, task, name):
    policy = Policy(name=name, explain=False)
    fa = fleet_arrays(state.fleet)
    express = place_row(state, task_row(task), policy)
    decision = place(state, [task], policy).decisions[0]
    on_node = decision.status is DecisionStatus.PLACED and decision.target_kind is TargetKind.NODE
    cloud_may_matter = task.privacy is Privacy.PUBLIC and bool(state.fleet.cloud_offers)
    # an answer only for node placements, and one for every node placement place() makes
    # unless the cloud may matter or the node costs as much as a deferral would at least
    if express is not None:
        assert on_node and not cloud_may_matter
    elif on_node and not cloud_may_matter:
        floor = policy.defer_usd * (1.0 + max(task.priority, 0))
        assert sum(decision.cost_usd.values()) >= floor * (1 - 1e-9)
    if express is not None:
        assert fa.target_names[express[0]] == decision.target
        assert express[1] == decision.est_seconds  # bit for bit: same expressions, same order
    return express is not None


@settings(max_examples=250, deadline=None)
@given(problem=problems(max_nodes=12, max_tasks=1))
def test_express_path_equals_place_on_random_states(problem):
    state, tasks = problem
    for name in ("optimal", "fast"):
        _check(state, tasks[0], name)


@settings(max_examples=150, deadline=None)
@given(problem=problems(max_nodes=12, max_tasks=1, offers=False))
def test_express_path_equals_place_on_local_fleets(problem):
    state, tasks = problem
    _check(state, tasks[0], "optimal")


def test_express_path_answers_most_calls_on_a_local_fleet():
    """Not vacuous: on local-only fleets most one-task calls are node placements it answers."""
    import numpy as np

    from heddle.optimizer.instances import random_fleet, random_state, random_tasks

    answered = total = 0
    rng = np.random.default_rng(3)
    for _ in range(200):
        fleet = random_fleet(rng, int(rng.integers(2, 8)), n_owners=2, offers=False, budget_usd=(0.0, 1.0))
        state = random_state(fleet, rng, busy=0.3, trouble=0.0)
        for task in random_tasks(rng, 3, fleet):
            answered += _check(state, task, "fast")
            total += 1
    assert answered >= total // 2, (answered, total)


_GB_NEAR_WHOLE_MB = st.builds(lambda mb, off: max(mb / 1000 + off, 0.0), st.integers(0, 600_000), st.floats(-2e-6, 2e-6))
"""Sizes in GB at or next to whole MB, where rounding up to MB jumps."""


@settings(max_examples=2000, deadline=None)
@given(kv=st.one_of(st.floats(0, 600), _GB_NEAR_WHOLE_MB), w=st.one_of(st.floats(0, 600), _GB_NEAR_WHOLE_MB),
       gap=st.one_of(st.just(0.0), st.floats(0, 0.01)), resident=st.booleans())
def test_memory_below_the_slack_passes_the_whole_mb_test(kv, w, gap, resident):
    """The express path skips place_one's whole-MB memory test when the need is at least
    _MB_SLACK_GB below the free memory; the test must then pass (else the express path could
    place a task on a node place_one finds too full)."""
    need = kv + (0.0 if resident else w)
    free = need + _MB_SLACK_GB + gap
    assume(need <= free - _MB_SLACK_GB)
    assert _mb_up(kv) + (0 if resident else _mb_up(w)) <= _mb_down(free)
