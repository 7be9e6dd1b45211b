"""One contract for every EventLog / RejectionLog: in memory and on a real JetStream."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from heddle.events.envelopes import RejectionEnvelope
from heddle.events.errors import ConcurrencyError
from heddle.events.event_log import EventAnchor, InMemoryRejectionLog
from heddle.events.jetstream_log import JetStreamRejectionLog
from heddle.events.testing import make_command, make_event

RECEIVE_TIMEOUT_S = 5.0


@pytest.fixture
def agg_type() -> str:
    # A fresh type per test: a fresh JetStream stream, so tests never see each other.
    return "T" + uuid.uuid4().hex[:10]


def ev(agg_type, version, *, agg_id="a1", event_type="Recorded", **payload):
    return make_event(
        event_type,
        aggregate_type=agg_type,
        aggregate_id=agg_id,
        aggregate_version=version,
        payload=payload,
    )


async def collect(log, agg_type, agg_id="a1", from_version=0):
    return [e async for e in log.load(agg_type, agg_id, from_version)]


async def test_load_returns_appended_events_in_version_order(logs, agg_type):
    log = await logs()
    appended = [
        ev(agg_type, v, value=v, event_type=t)
        for v, t in enumerate(["Opened", "Recorded", "Closed"], start=1)
    ]
    for envelope in appended:
        await log.append(envelope, expected_version=envelope.aggregate_version - 1)
    loaded = await collect(log, agg_type)
    assert [e.event_id for e in loaded] == [e.event_id for e in appended]
    assert loaded == appended  # the envelope survives the round trip intact


async def test_load_from_version_yields_only_later_events(logs, agg_type):
    log = await logs()
    for v in range(1, 6):
        await log.append(ev(agg_type, v), expected_version=v - 1)
    assert [e.aggregate_version for e in await collect(log, agg_type, from_version=3)] == [4, 5]
    assert await collect(log, agg_type, from_version=5) == []


async def test_histories_are_per_aggregate(logs, agg_type):
    log = await logs()
    await log.append(ev(agg_type, 1, agg_id="a1"), expected_version=0)
    await log.append(ev(agg_type, 1, agg_id="a2"), expected_version=0)
    await log.append(ev(agg_type, 2, agg_id="a2"), expected_version=1)
    assert [e.aggregate_version for e in await collect(log, agg_type, "a1")] == [1]
    assert [e.aggregate_version for e in await collect(log, agg_type, "a2")] == [1, 2]
    assert await collect(log, agg_type, "never") == []
    assert await log.current_version(agg_type, "a2") == 2
    assert await log.current_version(agg_type, "never") == 0


async def test_wrong_expected_version_is_refused_and_appends_nothing(logs, agg_type):
    log = await logs()
    await log.append(ev(agg_type, 1), expected_version=0)
    with pytest.raises(ConcurrencyError):
        await log.append(ev(agg_type, 2), expected_version=0)
    with pytest.raises(ConcurrencyError):
        await log.append(ev(agg_type, 2), expected_version=5)
    assert [e.aggregate_version for e in await collect(log, agg_type)] == [1]


async def test_envelope_version_must_be_next_even_without_expected_version(logs, agg_type):
    log = await logs()
    await log.append(ev(agg_type, 1), expected_version=None)
    with pytest.raises(ConcurrencyError):
        await log.append(ev(agg_type, 3), expected_version=None)
    with pytest.raises(ConcurrencyError):
        await log.append(ev(agg_type, 1), expected_version=None)
    await log.append(ev(agg_type, 2), expected_version=None)
    assert [e.aggregate_version for e in await collect(log, agg_type)] == [1, 2]


async def test_a_stale_second_writer_loses_and_can_retry(logs, agg_type):
    first, second = await logs(), await logs()
    await first.append(ev(agg_type, 1), expected_version=0)
    await second.append(ev(agg_type, 2), expected_version=1)  # second learns version 1 itself
    with pytest.raises(ConcurrencyError):
        await first.append(ev(agg_type, 2), expected_version=1)  # first is stale now
    current = await first.current_version(agg_type, "a1")
    await first.append(ev(agg_type, current + 1), expected_version=current)
    assert [e.aggregate_version for e in await collect(second, agg_type)] == [1, 2, 3]


async def test_concurrent_first_appends_exactly_one_wins(logs, agg_type):
    writers = [await logs() for _ in range(4)]
    results = await asyncio.gather(
        *(w.append(ev(agg_type, 1, writer=i), expected_version=0) for i, w in enumerate(writers)),
        return_exceptions=True,
    )
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, ConcurrencyError) for r in results if r is not None)
    assert len(await collect(writers[0], agg_type)) == 1


async def test_subscribe_is_ready_on_return_and_filters_by_type(logs, agg_type):
    log = await logs()
    subscription = await log.subscribe(agg_type)
    try:
        other = agg_type + "x"
        await log.append(ev(other, 1), expected_version=0)
        first = ev(agg_type, 1)
        second = ev(agg_type, 1, agg_id="a2")
        await log.append(first, expected_version=0)
        await log.append(second, expected_version=0)
        got = [await asyncio.wait_for(anext(subscription), RECEIVE_TIMEOUT_S) for _ in range(2)]
        assert [e.event_id for e in got] == [first.event_id, second.event_id]
    finally:
        await subscription.close()


async def test_subscribe_does_not_replay_history(logs, agg_type):
    log = await logs()
    await log.append(ev(agg_type, 1), expected_version=0)
    subscription = await log.subscribe(agg_type)
    try:
        newer = ev(agg_type, 2)
        await log.append(newer, expected_version=1)
        got = await asyncio.wait_for(anext(subscription), RECEIVE_TIMEOUT_S)
        assert got.event_id == newer.event_id
    finally:
        await subscription.close()


# -- RejectionLog -------------------------------------------------------------------------


@pytest.fixture(params=["memory", "jetstream"])
async def rejection_log(request, connect):
    if request.param == "memory":
        return InMemoryRejectionLog()
    return JetStreamRejectionLog((await connect()).jetstream())


def rejection(agg_type, agg_id, reason):
    cmd = make_command("Record", aggregate_type=agg_type, aggregate_id=agg_id)
    return RejectionEnvelope(
        rejection_id=uuid.uuid4().hex,
        command_id=cmd.command_id,
        command_type=cmd.command_type,
        aggregate_type=agg_type,
        aggregate_id=agg_id,
        aggregate_version=0,
        reason=reason,
        metadata=cmd.metadata,
        rejected_at_unix_s=1.0,
    )


async def test_rejections_load_per_aggregate_in_append_order(rejection_log, agg_type):
    written = [
        rejection(agg_type, "a1", "FIRST"),
        rejection(agg_type, "a2", "OTHER"),
        rejection(agg_type, "a1", "SECOND"),
    ]
    for r in written:
        await rejection_log.append(r)
    loaded = [r async for r in rejection_log.load(agg_type, "a1")]
    assert [r.reason for r in loaded] == ["FIRST", "SECOND"]
    assert loaded[0] == written[0]
    assert [r async for r in rejection_log.load(agg_type, "none")] == []


async def test_append_batch_reports_per_item_and_keeps_aggregates_independent(logs, agg_type):
    log = await logs()
    await log.append(ev(agg_type, 1, agg_id="stale"), expected_version=0)
    items = [
        (ev(agg_type, 1, agg_id="a"), 0),
        (ev(agg_type, 2, agg_id="a"), 1),
        (ev(agg_type, 1, agg_id="b"), None),
        (ev(agg_type, 2, agg_id="gap"), None),  # "gap" has no version 1
        (ev(agg_type, 3, agg_id="gap"), None),  # blocked by the failure before it
        (ev(agg_type, 2, agg_id="stale"), 0),  # wrong expected version
        (ev(agg_type, 3, agg_id="a"), 2),
    ]
    announced: list[int] = []
    results = await log.append_batch(items, announced.append)
    assert [r is None for r in results] == [True, True, True, False, False, False, True]
    assert sorted(announced) == [0, 1, 2, 6]  # each appended item announced once, before the return
    assert announced.index(0) < announced.index(1) < announced.index(6)  # a chain in version order
    assert all(isinstance(r, ConcurrencyError) for r in results if r is not None)
    assert [e.aggregate_version for e in await collect(log, agg_type, "a")] == [1, 2, 3]
    assert [e.aggregate_version for e in await collect(log, agg_type, "b")] == [1]
    assert await collect(log, agg_type, "gap") == []
    assert [e.aggregate_version for e in await collect(log, agg_type, "stale")] == [1]


async def test_find_event_returns_the_event_a_command_produced(logs, agg_type):
    log = await logs()
    for version, command_id in enumerate(["c1", None, "c3"], start=1):
        await log.append(
            make_event(
                aggregate_type=agg_type,
                aggregate_id="a1",
                aggregate_version=version,
                command_id=command_id,
                payload={"n": version},
            ),
            expected_version=version - 1,
        )
    found = await log.find_event(agg_type, "a1", "c3")
    assert found is not None and found.aggregate_version == 3 and found.payload == {"n": 3}
    assert found == (await collect(log, agg_type))[2]
    assert await log.find_event(agg_type, "a1", "c2") is None
    assert await log.find_event(agg_type, "other", "c1") is None


async def test_append_batch_races_fairly_with_single_appends(logs, agg_type):
    first, second = await logs(), await logs()
    contenders = [ev(agg_type, 1, agg_id=f"k{i}") for i in range(20)]
    rivals = [ev(agg_type, 1, agg_id=f"k{i}") for i in range(20)]
    batch_results, single_results = await asyncio.gather(
        first.append_batch([(e, 0) for e in contenders]),
        asyncio.gather(*(second.append(e, 0) for e in rivals), return_exceptions=True),
    )
    for i in range(20):
        wins = [batch_results[i] is None, single_results[i] is None]
        assert wins.count(True) == 1, f"k{i}: exactly one writer must win version 1"
        assert len(await collect(first, agg_type, f"k{i}")) == 1


async def test_history_is_immutable_through_what_the_log_hands_out(logs, agg_type):
    """Issue 14: mutating a loaded, found, subscribed or just-appended event's payload must
    not rewrite the stored history (pydantic's frozen=True guards attributes, not dicts)."""
    log = await logs()
    subscription = await log.subscribe(agg_type)
    try:
        appended = make_event(
            aggregate_type=agg_type,
            aggregate_id="a1",
            command_id="c1",
            payload={"n": 1, "nested": {"tags": ["x"]}},
        )
        await log.append(appended, expected_version=0)
        appended.payload["n"] = "appender"  # the caller keeps its envelope
        appended.payload["nested"]["tags"].append("appender")
        pushed = await asyncio.wait_for(anext(subscription), RECEIVE_TIMEOUT_S)
        assert pushed.payload == {"n": 1, "nested": {"tags": ["x"]}}  # what was appended
        pushed.payload["n"] = "subscriber"
        pushed.payload["nested"]["tags"].append("subscriber")
        (loaded,) = await collect(log, agg_type)
        loaded.payload["n"] = "loader"
        loaded.payload["nested"]["tags"].append("loader")
        found = await log.find_event(agg_type, "a1", "c1")
        assert found is not None
        found.payload.clear()
        assert [e.payload for e in await collect(log, agg_type)] == [
            {"n": 1, "nested": {"tags": ["x"]}}
        ]
        again = await log.find_event(agg_type, "a1", "c1")
        assert again is not None and again.payload == {"n": 1, "nested": {"tags": ["x"]}}
    finally:
        await subscription.close()


async def test_load_after_resumes_at_an_anchor_the_log_agrees_with(logs, agg_type):
    log = await logs()
    appended = [ev(agg_type, v) for v in range(1, 6)]
    for envelope in appended:
        await log.append(envelope, expected_version=envelope.aggregate_version - 1)
    third = appended[2]
    # The position this process knows for the latest version (None where a log has none).
    position = log.position_of(agg_type, "a1", 5)
    hints = [None, position, 10**9]  # no hint, the right one, a wrong one
    for hint in hints:
        anchor = EventAnchor(3, third.event_id, hint)
        newer = await log.load_after(agg_type, "a1", anchor)
        assert newer == appended[3:], hint
    last = EventAnchor(5, appended[4].event_id, position)
    assert await log.load_after(agg_type, "a1", last) == []
    # An anchor the history does not contain is refused, whatever the hint.
    for hint in hints:
        assert await log.load_after(agg_type, "a1", EventAnchor(3, "forged", hint)) is None
        assert await log.load_after(agg_type, "a1", EventAnchor(6, "x", hint)) is None
        assert await log.load_after(agg_type, "none", EventAnchor(1, "x", hint)) is None


async def test_find_first_returns_the_earliest_event_of_a_type(logs, agg_type):
    log = await logs()
    types = ["Opened", "Closed", "Recorded", "Closed"]
    appended = [ev(agg_type, v, event_type=t) for v, t in enumerate(types, start=1)]
    for envelope in appended:
        await log.append(envelope, expected_version=envelope.aggregate_version - 1)
    assert await log.find_first(agg_type, "a1", "Closed") == appended[1]
    assert await log.find_first(agg_type, "a1", "Opened") == appended[0]
    assert await log.find_first(agg_type, "a1", "Missing") is None
    assert await log.find_first(agg_type, "other", "Closed") is None
