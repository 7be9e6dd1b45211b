"""Pipelines release stages as dependencies finish; a rogue placement fails the run loudly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from heddle.optimizer import Decision, DecisionStatus, Placement, TargetKind, core_queue
from heddle.sim import PrivacyViolationError, TwinSettings, WorkloadError, express, simulate
from tests.sim.conftest import api_offer, make_fleet, processor_trace


def _pipeline(depends_on: list[str], stages: list[str], arrival=None) -> pd.DataFrame:
    n = len(stages)
    df = processor_trace(np.zeros(n) if arrival is None else np.asarray(arrival), np.full(n, 2.0))
    df["pipeline_id"] = "job"
    df["stage"] = stages
    df["depends_on"] = depends_on
    return df


def test_stages_start_after_the_stages_they_depend_on() -> None:
    # chunk -> (embed_a, embed_b) -> report: a diamond, all arriving at t=0
    df = _pipeline(["", "chunk", "chunk", "embed_a,embed_b"], ["chunk", "embed_a", "embed_b", "report"])
    rec = simulate(make_fleet(3), df, "fast").records.set_index("task_id")
    assert (rec["status"] == "completed").all()
    assert rec.loc["p1", "start"] >= rec.loc["p0", "finish"]
    assert rec.loc["p2", "start"] >= rec.loc["p0", "finish"]
    assert rec.loc["p3", "start"] >= max(rec.loc["p1", "finish"], rec.loc["p2", "finish"])
    assert rec.loc["p1", "start"] == rec.loc["p2", "start"]  # the two embeds run in parallel


def test_a_stage_whose_dependency_is_rejected_is_rejected_too() -> None:
    df = _pipeline(["", "first", "second"], ["first", "second", "third"])
    df.loc[0, "privacy"] = "sensitive"  # a cloud-only fleet can never run it
    rec = simulate(make_fleet(0, offers=(api_offer(),)), df, "fast").records
    assert list(rec["status"]) == ["rejected"] * 3
    assert rec.loc[1, "reason"] == rec.loc[2, "reason"] == "a stage it depends on did not complete"


@pytest.mark.parametrize(("depends_on", "message"), [
    (["", "nope"], "names stage 'nope'"),
    (["b", "a"], "cycle"),
])
def test_bad_dependencies_are_refused_with_the_task_named(depends_on, message) -> None:
    with pytest.raises(WorkloadError, match=message):
        simulate(make_fleet(1), _pipeline(depends_on, ["a", "b"]), "fast")


def _rogue(monkeypatch, rogue, express_answer=None) -> None:
    """Both twins ask `rogue` instead of place(); the express twin's own path answers
    `express_answer(task class)` (None: it asks place() too)."""
    monkeypatch.setattr(core_queue, "place", rogue)  # the core's default decide
    monkeypatch.setattr(express.ExpressPlacer, "place",
                        lambda self, cls, a, b, deadline, priority: express_answer and express_answer(cls))


@pytest.mark.parametrize("use_express", [False, True])
def test_a_placement_that_breaks_privacy_fails_the_run(monkeypatch, use_express) -> None:
    def rogue(state, pending, policy):  # sends everything to the cloud
        return Placement([Decision(t.id, DecisionStatus.PLACED, "test-api", TargetKind.CLOUD) for t in pending])

    _rogue(monkeypatch, rogue)
    df = processor_trace(np.array([0.0, 1.0]), np.array([1.0, 1.0]), privacy=["public", "sensitive"])
    with pytest.raises(PrivacyViolationError, match="'p1' \\(sensitive\\)"):
        simulate(make_fleet(1, offers=(api_offer(),)), df, "fast", settings=TwinSettings(express=use_express))


@pytest.mark.parametrize("path", ["reference", "express-place", "express-own"])
def test_personal_work_on_a_stranger_s_node_fails_the_run(monkeypatch, path) -> None:
    def rogue(state, pending, policy):
        return Placement([Decision(t.id, DecisionStatus.PLACED, "n1", TargetKind.NODE) for t in pending])

    _rogue(monkeypatch, rogue, (lambda cls: (1, 1.0)) if path == "express-own" else None)
    df = processor_trace(np.array([0.0]), np.array([1.0]), privacy="personal", owner="alice")
    with pytest.raises(PrivacyViolationError, match="owner 'bob'"):
        simulate(make_fleet(2, owners=("alice", "bob")), df, "fast", settings=TwinSettings(express=path != "reference"))
