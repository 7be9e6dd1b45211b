"""Hybrid dedup: tell other processes which commands an aggregate has handled.

After a successful handle() the handler marks the command processed in memory, then
publishes the command id on ``heddle.dedup.{type}.{id}`` (NATS core: no durability needed).
Every handler caching that aggregate subscribes and marks its copy. Best-effort: bounded by
cache hit rate and snapshot recency. The Null pair is the default (no NATS cost).
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from heddle.events.jetstream import dedup_subject, flush_interest

__all__ = [
    "DedupCallback",
    "DedupPublisher",
    "DedupSubscriber",
    "InMemoryDedupBus",
    "NatsDedupPublisher",
    "NatsDedupSubscriber",
    "NullDedupPublisher",
    "NullDedupSubscriber",
]

DedupCallback = Callable[[str], None]


class DedupPublisher(ABC):
    @abstractmethod
    async def publish(self, aggregate_type: str, aggregate_id: str, command_id: str) -> None:
        """Announce that ``command_id`` was handled on this aggregate."""


class DedupSubscriber(ABC):
    @abstractmethod
    async def subscribe(
        self, aggregate_type: str, aggregate_id: str, callback: DedupCallback
    ) -> None:
        """Call ``callback(command_id)`` for announcements on this aggregate; ready on return.
        Subscribing again to the same aggregate replaces the callback."""

    @abstractmethod
    def unsubscribe(self, aggregate_type: str, aggregate_id: str) -> None:
        """Stop delivering for this aggregate (synchronous: it runs from cache eviction)."""

    async def close(self) -> None:
        """Drop every subscription and wait for pending clean-up."""


class NullDedupPublisher(DedupPublisher):
    async def publish(self, aggregate_type: str, aggregate_id: str, command_id: str) -> None:
        return None


class NullDedupSubscriber(DedupSubscriber):
    async def subscribe(
        self, aggregate_type: str, aggregate_id: str, callback: DedupCallback
    ) -> None:
        return None

    def unsubscribe(self, aggregate_type: str, aggregate_id: str) -> None:
        return None


class InMemoryDedupBus:
    """An in-process bus: its publishers deliver to its subscribers (several handlers in one
    process, or a test standing in for several processes)."""

    def __init__(self) -> None:
        self._subscribers: list[_InMemoryDedupSubscriber] = []

    def publisher(self) -> DedupPublisher:
        return _InMemoryDedupPublisher(self)

    def subscriber(self) -> DedupSubscriber:
        subscriber = _InMemoryDedupSubscriber()
        self._subscribers.append(subscriber)
        return subscriber

    def _deliver(self, key: tuple[str, str], command_id: str) -> None:
        for subscriber in self._subscribers:
            callback = subscriber.callbacks.get(key)
            if callback is not None:
                callback(command_id)


class _InMemoryDedupPublisher(DedupPublisher):
    def __init__(self, bus: InMemoryDedupBus) -> None:
        self._bus = bus

    async def publish(self, aggregate_type: str, aggregate_id: str, command_id: str) -> None:
        self._bus._deliver((aggregate_type, aggregate_id), command_id)


class _InMemoryDedupSubscriber(DedupSubscriber):
    def __init__(self) -> None:
        self.callbacks: dict[tuple[str, str], DedupCallback] = {}

    async def subscribe(
        self, aggregate_type: str, aggregate_id: str, callback: DedupCallback
    ) -> None:
        self.callbacks[(aggregate_type, aggregate_id)] = callback

    def unsubscribe(self, aggregate_type: str, aggregate_id: str) -> None:
        self.callbacks.pop((aggregate_type, aggregate_id), None)

    async def close(self) -> None:
        self.callbacks.clear()


class NatsDedupPublisher(DedupPublisher):
    """Publishes command ids on NATS core."""

    def __init__(self, nc: NATS) -> None:
        self._nc = nc

    async def publish(self, aggregate_type: str, aggregate_id: str, command_id: str) -> None:
        await self._nc.publish(dedup_subject(aggregate_type, aggregate_id), command_id.encode())


class NatsDedupSubscriber(DedupSubscriber):
    """One NATS core subscription per cached aggregate."""

    def __init__(self, nc: NATS) -> None:
        self._nc = nc
        self._subs: dict[tuple[str, str], Subscription] = {}
        self._pending: set[asyncio.Task[None]] = set()

    async def subscribe(
        self, aggregate_type: str, aggregate_id: str, callback: DedupCallback
    ) -> None:
        key = (aggregate_type, aggregate_id)
        self.unsubscribe(aggregate_type, aggregate_id)
        holder: list[Subscription] = []

        async def on_message(msg: Msg) -> None:
            # Messages already in flight when the subscription was dropped or replaced
            # must not reach the old callback.
            if holder and self._subs.get(key) is holder[0]:
                callback(msg.data.decode())

        sub = await self._nc.subscribe(dedup_subject(aggregate_type, aggregate_id), cb=on_message)
        holder.append(sub)
        self._subs[key] = sub
        await flush_interest(self._nc)  # the server has registered the interest: ready

    def unsubscribe(self, aggregate_type: str, aggregate_id: str) -> None:
        sub = self._subs.pop((aggregate_type, aggregate_id), None)
        if sub is not None:
            task = asyncio.ensure_future(self._drop(sub))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    @staticmethod
    async def _drop(sub: Subscription) -> None:
        # A closed connection has already dropped the subscription: nothing left to undo.
        with contextlib.suppress(Exception):
            await sub.unsubscribe()

    async def close(self) -> None:
        for key in list(self._subs):
            self.unsubscribe(*key)
        if self._pending:
            await asyncio.gather(*list(self._pending))
