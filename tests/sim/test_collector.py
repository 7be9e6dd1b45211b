"""A run tunes CPython's cycle collector for its own duration only: the caller's collector
settings and frozen objects are as they were afterwards, also when the run fails."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from heddle.sim import TwinSettings, simulate
from tests.sim.conftest import llm_trace, make_fleet


def _trace(n: int = 60):
    rng = np.random.default_rng(5)
    return llm_trace(np.cumsum(rng.exponential(1.0, n)), rng.integers(50, 500, n), rng.integers(10, 100, n))


def _collector() -> tuple:
    return gc.isenabled(), gc.get_threshold(), gc.get_freeze_count()


def test_the_collector_is_restored_after_a_run_and_after_a_failed_one() -> None:
    before = _collector()
    seen = []
    simulate(make_fleet(2), _trace(), "fast", settings=TwinSettings(progress_every=10),
             progress=lambda done, total: seen.append(gc.get_threshold()[0]))
    assert _collector() == before
    assert seen and max(seen) > before[1][0]  # young collections were spaced out during the run

    def fail(done, total):
        raise RuntimeError("progress display closed")

    with pytest.raises(RuntimeError, match="display closed"):
        simulate(make_fleet(2), _trace(), "fast", settings=TwinSettings(progress_every=10), progress=fail)
    assert _collector() == before


def test_a_caller_managing_the_collector_is_left_alone() -> None:
    before = gc.get_threshold()
    gc.freeze()
    try:
        assert gc.get_freeze_count() > 0
        seen = []
        simulate(make_fleet(2), _trace(), "fast", settings=TwinSettings(progress_every=10),
                 progress=lambda done, total: seen.append(gc.get_threshold()))
        assert seen and all(s == before for s in seen)
        assert gc.get_freeze_count() > 0  # the caller's objects were not unfrozen
    finally:
        gc.unfreeze()
