"""One contract for every dedup bus: in process and over NATS core (separate connections)."""

from __future__ import annotations

import uuid

import pytest

from heddle.events.dedup import (
    InMemoryDedupBus,
    NatsDedupPublisher,
    NatsDedupSubscriber,
    NullDedupPublisher,
    NullDedupSubscriber,
)
from heddle.events.testing import wait_until


@pytest.fixture(params=["memory", "nats"])
async def bus(request, connect):
    """(publisher, subscriber) as two 'processes' would hold them."""
    if request.param == "memory":
        hub = InMemoryDedupBus()
        publisher, subscriber = hub.publisher(), hub.subscriber()
    else:
        publisher = NatsDedupPublisher(await connect())
        subscriber = NatsDedupSubscriber(await connect())
    yield publisher, subscriber
    await subscriber.close()


@pytest.fixture
def agg_type() -> str:
    return "T" + uuid.uuid4().hex[:10]


async def test_subscriber_receives_only_its_aggregate(bus, agg_type):
    publisher, subscriber = bus
    received: list[str] = []
    await subscriber.subscribe(agg_type, "a1", received.append)
    await publisher.publish(agg_type, "a2", "cmd-other")
    await publisher.publish(agg_type + "x", "a1", "cmd-other-type")
    await publisher.publish(agg_type, "a1", "cmd-1")
    await publisher.publish(agg_type, "a1", "cmd-2")
    await wait_until(lambda: len(received) >= 2)
    # Delivery is ordered per publisher, so anything misrouted would have arrived by now.
    assert received == ["cmd-1", "cmd-2"]


async def test_unsubscribed_aggregates_stop_receiving(bus, agg_type):
    publisher, subscriber = bus
    first: list[str] = []
    second: list[str] = []
    await subscriber.subscribe(agg_type, "a1", first.append)
    await subscriber.subscribe(agg_type, "a2", second.append)
    subscriber.unsubscribe(agg_type, "a1")
    await publisher.publish(agg_type, "a1", "late")
    await publisher.publish(agg_type, "a2", "marker")
    await wait_until(lambda: second == ["marker"])
    assert first == []


async def test_subscribing_again_replaces_the_callback(bus, agg_type):
    publisher, subscriber = bus
    old: list[str] = []
    new: list[str] = []
    await subscriber.subscribe(agg_type, "a1", old.append)
    await subscriber.subscribe(agg_type, "a1", new.append)
    await publisher.publish(agg_type, "a1", "cmd-1")
    await wait_until(lambda: new == ["cmd-1"])
    assert old == []


async def test_null_bus_delivers_nothing_and_costs_nothing():
    received: list[str] = []
    subscriber = NullDedupSubscriber()
    await subscriber.subscribe("Job", "j1", received.append)
    await NullDedupPublisher().publish("Job", "j1", "cmd-1")
    subscriber.unsubscribe("Job", "j1")
    assert received == []
