"""Hypothesis strategies for tiny placement problems (built from catalog devices and offers)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from heddle.optimizer.instances import random_fleet, random_state, random_tasks


@st.composite
def problems(draw, max_nodes: int = 6, max_tasks: int = 6, offers: bool | None = None):
    """(state, tasks): a random fleet with random trouble, load, budgets and a task mix."""
    seed = draw(st.integers(0, 2**32 - 1))
    n_nodes = draw(st.integers(1, max_nodes))
    n_tasks = draw(st.integers(1, max_tasks))
    busy = draw(st.sampled_from([0.0, 0.3, 0.7]))
    trouble = draw(st.sampled_from([0.0, 0.2, 0.5]))
    with_offers = draw(st.booleans()) if offers is None else offers
    budget = draw(st.sampled_from([(0.0, 0.001), (0.001, 0.05), (0.05, 5.0)]))
    rng = np.random.default_rng(seed)
    fleet = random_fleet(rng, n_nodes, n_owners=draw(st.integers(1, 3)), offers=with_offers, budget_usd=budget)
    state = random_state(fleet, rng, busy=busy, trouble=trouble)
    return state, random_tasks(rng, n_tasks, fleet)
