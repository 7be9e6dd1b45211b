"""The apply() discipline, the dedup ring, snapshots, the registry and issuer conventions."""

from __future__ import annotations

import pytest

from heddle.events.aggregate import (
    DEDUP_RING_SIZE,
    Aggregate,
    Phase,
    RootAggregate,
    snake_case,
)
from heddle.events.errors import (
    AggregateInvariantError,
    CorruptAggregateAlert,
    SnapshotError,
    UnknownEventVersionError,
)
from heddle.events.issuer_conventions import (
    is_bridge_issuer,
    is_framework_issuer,
    is_observer_issuer,
    is_projector_issuer,
    is_recognized_issuer,
    is_system_issuer,
    is_user_issuer,
)
from heddle.events.lifecycle import JobAggregate, TaskAggregate
from heddle.events.registry import (
    AGGREGATE_REGISTRY,
    get_aggregate_class,
    is_root_type,
    register_aggregate,
)
from heddle.events.testing import FakeIntervalAggregate, FakeRootAggregate, make_event

pytestmark = pytest.mark.usefixtures("fake_types")


def fake(agg_id="agg-1") -> FakeIntervalAggregate:
    return FakeIntervalAggregate(agg_id)


def recorded(version, value=None, **kwargs):
    return make_event("Recorded", aggregate_version=version, payload={"value": value}, **kwargs)


# -- apply() discipline ----------------------------------------------------------------------


def test_apply_mutates_and_commits_the_version():
    agg = fake()
    agg.apply(recorded(1, "a"))
    agg.apply(recorded(2, "b"))
    assert agg.values == ["a", "b"]
    assert agg.aggregate_version == 2
    assert agg.phase is Phase.ACTIVE


def test_forged_internal_finalized_is_refused_before_anything_else():
    agg = fake()
    agg.apply(recorded(1))
    # Wrong version AND forged issuer: provenance is checked first.
    forged = make_event("InternalFinalized", aggregate_version=7, issued_by="user:badge:206")
    with pytest.raises(CorruptAggregateAlert, match="only framework"):
        agg.apply(forged)
    assert (agg.aggregate_version, agg.phase) == (1, Phase.ACTIVE)


def test_version_gap_is_refused_before_the_handler_runs():
    agg = fake()
    with pytest.raises(AggregateInvariantError, match="expected 1"):
        agg.apply(recorded(2, "skipped"))
    assert agg.values == [] and agg.aggregate_version == 0


def test_event_for_another_aggregate_is_refused():
    agg = fake("agg-1")
    with pytest.raises(AggregateInvariantError, match="not 'agg-1'"):
        agg.apply(make_event("Recorded", aggregate_id="agg-2"))
    assert agg.aggregate_version == 0


def test_missing_handler_is_an_unknown_event_version():
    agg = fake()
    with pytest.raises(UnknownEventVersionError, match="apply_renamed_in_v2"):
        agg.apply(make_event("RenamedInV2"))
    assert agg.aggregate_version == 0


def test_handler_failure_is_wrapped_with_its_cause_and_nothing_commits():
    agg = fake()
    with pytest.raises(AggregateInvariantError) as info:
        agg.apply(make_event("Exploded"))
    assert isinstance(info.value.__cause__, RuntimeError)
    assert agg.aggregate_version == 0


def test_internal_finalized_from_framework_finalizes_once():
    agg = fake()
    agg.apply(recorded(1))
    agg.apply(
        make_event(
            "InternalFinalized",
            aggregate_version=2,
            issued_by="framework:horizon",
            payload={"reason": "quiet"},
        )
    )
    agg.apply(make_event("InternalFinalized", aggregate_version=3, issued_by="framework:cascade"))
    assert agg.phase is Phase.FINALIZED
    assert agg.finalized_by == "framework:horizon"  # the duplicate changed nothing
    assert agg.aggregate_version == 3


def test_replay_is_deterministic():
    events = [recorded(v, v * 10) for v in range(1, 20)]
    first, second = fake(), fake()
    for e in events:
        first.apply(e)
        second.apply(e)
    assert first.snapshot_state() == second.snapshot_state()


# -- dedup ring ------------------------------------------------------------------------------


def test_dedup_ring_keeps_the_latest_512_ids():
    agg = fake()
    for i in range(DEDUP_RING_SIZE + 1):
        agg.mark_processed(f"cmd-{i}")
    assert not agg.has_processed("cmd-0")
    assert agg.has_processed("cmd-1") and agg.has_processed(f"cmd-{DEDUP_RING_SIZE}")
    assert len(agg.processed_command_ids) == DEDUP_RING_SIZE


def test_replay_never_rebuilds_the_dedup_ring():
    agg = fake()
    agg.apply(recorded(1, command_id="cmd-1"))
    assert not agg.has_processed("cmd-1")  # v7 §4.5: only snapshots carry the ring


# -- snapshots -------------------------------------------------------------------------------


def test_snapshot_round_trip_keeps_state_version_and_ring():
    agg = fake()
    for v in range(1, 4):
        agg.apply(recorded(v, v))
        agg.mark_processed(f"cmd-{v}")
    restored = FakeIntervalAggregate.from_snapshot(agg.to_snapshot())
    assert restored.values == [1, 2, 3]
    assert restored.aggregate_version == 3
    assert restored.phase is Phase.ACTIVE
    assert restored.processed_command_ids == ("cmd-1", "cmd-2", "cmd-3")


def test_root_snapshot_keeps_children():
    root = FakeRootAggregate("r1")
    root.apply(
        make_event(
            "ChildAdded",
            aggregate_type="FakeRoot",
            aggregate_id="r1",
            payload={
                "_child_membership": [
                    {"child_type": "FakeInterval", "child_id": "c1"},
                    {"child_type": "FakeInterval", "child_id": "c2"},
                ]
            },
        )
    )
    restored = FakeRootAggregate.from_snapshot(root.to_snapshot())
    assert restored.children == {"FakeInterval": {"c1", "c2"}}


def test_snapshot_of_another_type_is_refused():
    with pytest.raises(SnapshotError, match="FakeRoot"):
        FakeIntervalAggregate.from_snapshot(FakeRootAggregate("r1").to_snapshot())


def test_malformed_snapshot_names_the_class():
    with pytest.raises(SnapshotError, match="FakeIntervalAggregate"):
        FakeIntervalAggregate.from_snapshot({"aggregate_type": "FakeInterval"})


# -- registry --------------------------------------------------------------------------------


def test_registry_lookup_and_root_check():
    assert get_aggregate_class("FakeInterval") is FakeIntervalAggregate
    assert FakeIntervalAggregate.aggregate_type == "FakeInterval"
    assert is_root_type("FakeRoot") and is_root_type("Job")
    assert not is_root_type("FakeInterval") and not is_root_type("Task")
    assert not is_root_type("Unregistered")
    with pytest.raises(KeyError, match="Unregistered"):
        get_aggregate_class("Unregistered")


def test_reregistering_same_class_is_a_no_op_and_shadowing_is_refused():
    register_aggregate("FakeInterval")(FakeIntervalAggregate)
    assert AGGREGATE_REGISTRY["FakeInterval"] is FakeIntervalAggregate

    class Impostor(Aggregate):
        pass

    with pytest.raises(ValueError, match="already registered"):
        register_aggregate("FakeInterval")(Impostor)
    assert AGGREGATE_REGISTRY["FakeInterval"] is FakeIntervalAggregate


def test_registry_isolation_undoes_registrations(registry_isolation):
    @register_aggregate("Temporary")
    class Temporary(RootAggregate):
        pass

    assert "Temporary" in registry_isolation  # removed again at teardown by the fixture


def test_heddle_aggregates_are_registered():
    assert get_aggregate_class("Job") is JobAggregate
    assert get_aggregate_class("Task") is TaskAggregate


# -- issuer conventions ----------------------------------------------------------------------

ISSUERS = [
    # issued_by, framework, observer, projector, user, system, bridge
    ("framework:cascade", True, False, False, False, False, False),
    ("observer:pf_job_status", False, True, False, False, False, False),
    ("projector:operation_labor_projector", False, False, True, False, False, False),
    ("user:badge:206", False, False, False, True, False, False),
    ("user:system:shoppulse_admin", False, False, False, True, True, False),
    ("user:system:emergency_correction:eng-42", False, False, False, True, True, False),
    ("user:system:tool:abc:def", False, False, False, True, True, False),
    ("bridge:fault_classifier_llm", False, False, False, False, False, True),
    ("framework:", False, False, False, False, False, False),
    ("Framework:cascade", False, False, False, False, False, False),
    ("system:x", False, False, False, False, False, False),
    ("", False, False, False, False, False, False),
]


@pytest.mark.parametrize("row", ISSUERS, ids=[r[0] or "empty" for r in ISSUERS])
def test_issuer_helpers(row):
    issued_by, *expected = row
    helpers = [
        is_framework_issuer,
        is_observer_issuer,
        is_projector_issuer,
        is_user_issuer,
        is_system_issuer,
        is_bridge_issuer,
    ]
    assert [h(issued_by) for h in helpers] == expected
    assert is_recognized_issuer(issued_by) == any(expected)


def test_issuer_segments_are_never_capped():
    deep = "user:system:emergency_correction:" + ":".join(f"s{i}" for i in range(200))
    assert is_system_issuer(deep) and is_user_issuer(deep) and is_recognized_issuer(deep)


def test_user_prefix_outside_badge_and_system_is_not_recognized():
    assert is_user_issuer("user:guest:1")
    assert not is_recognized_issuer("user:guest:1")


@pytest.mark.parametrize(
    ("name", "snake"),
    [
        ("TaskPlaced", "task_placed"),
        ("InternalFinalized", "internal_finalized"),
        ("JobShippedFromPf", "job_shipped_from_pf"),
        ("Recorded", "recorded"),
    ],
)
def test_snake_case(name, snake):
    assert snake_case(name) == snake
