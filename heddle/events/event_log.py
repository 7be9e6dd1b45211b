"""EventLog and RejectionLog ports, and their in-memory implementations.

EventLog is the per-aggregate-type append-only store: ``append`` is a compare-and-set on the
aggregate's version, ``load`` replays in version order, ``subscribe`` is ready (registered)
when it returns, so no event appended afterwards can be missed.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence

from heddle.events.envelopes import EventEnvelope, RejectionEnvelope
from heddle.events.errors import ConcurrencyError

__all__ = [
    "EventLog",
    "EventSubscription",
    "InMemoryEventLog",
    "InMemoryRejectionLog",
    "QueueSubscription",
    "RejectionLog",
]


class EventSubscription(ABC):
    """An async iterator of newly appended events; ``close()`` ends it."""

    def __aiter__(self) -> EventSubscription:
        return self

    @abstractmethod
    async def __anext__(self) -> EventEnvelope: ...

    @abstractmethod
    async def close(self) -> None: ...


class EventLog(ABC):
    """Append-only event store, one history per (aggregate_type, aggregate_id)."""

    @abstractmethod
    async def append(self, envelope: EventEnvelope, expected_version: int | None) -> None:
        """CAS append. ConcurrencyError if the aggregate's current version is not
        ``expected_version`` (None skips that check) or if ``envelope.aggregate_version`` is
        not current + 1 (always enforced)."""

    @abstractmethod
    def load(
        self, aggregate_type: str, aggregate_id: str, from_version: int = 0
    ) -> AsyncIterator[EventEnvelope]:
        """Events with aggregate_version > from_version, in version order."""

    @abstractmethod
    async def subscribe(self, aggregate_type: str) -> EventSubscription:
        """Events of one type appended after this call returns, until closed."""

    async def append_batch(
        self, items: Sequence[tuple[EventEnvelope, int | None]]
    ) -> list[Exception | None]:
        """Append many (envelope, expected_version) pairs; one result per item, None when it
        was appended. After a failure, that aggregate's later items fail too (their versions
        would leave a gap); other aggregates are unaffected. Default: one at a time."""
        results: list[Exception | None] = []
        failed: set[tuple[str, str]] = set()
        for envelope, expected_version in items:
            key = (envelope.aggregate_type, envelope.aggregate_id)
            if key in failed:
                results.append(
                    ConcurrencyError("an earlier event of this aggregate in the batch failed")
                )
                continue
            try:
                await self.append(envelope, expected_version)
                results.append(None)
            except Exception as exc:  # noqa: BLE001 - reported per item, as documented
                results.append(exc)
                failed.add(key)
        return results

    async def current_version(self, aggregate_type: str, aggregate_id: str) -> int:
        """The aggregate's latest version (0 if it has no events). Default: replay."""
        version = 0
        async for envelope in self.load(aggregate_type, aggregate_id):
            version = envelope.aggregate_version
        return version


class RejectionLog(ABC):
    """Append-only audit of rejected commands: no CAS, no per-aggregate ordering."""

    @abstractmethod
    async def append(self, rejection: RejectionEnvelope) -> None: ...

    @abstractmethod
    def load(self, aggregate_type: str, aggregate_id: str) -> AsyncIterator[RejectionEnvelope]:
        """Rejections for one aggregate in the order they were appended."""


class QueueSubscription(EventSubscription):
    """A subscription fed by an in-process queue (used by InMemoryEventLog)."""

    _CLOSED = object()

    def __init__(self, on_close: object = None) -> None:
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._on_close = on_close
        self._closed = False

    def put(self, envelope: EventEnvelope) -> None:
        if not self._closed:
            self._queue.put_nowait(envelope)

    async def __anext__(self) -> EventEnvelope:
        item = await self._queue.get()
        if item is self._CLOSED:
            raise StopAsyncIteration
        return item  # type: ignore[return-value]

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(self._CLOSED)
            if callable(self._on_close):
                self._on_close(self)


class InMemoryEventLog(EventLog):
    """Event log held in process memory: the twin's store and the test double."""

    def __init__(self) -> None:
        self._streams: dict[tuple[str, str], list[EventEnvelope]] = {}
        self._subscribers: dict[str, list[QueueSubscription]] = {}

    async def append(self, envelope: EventEnvelope, expected_version: int | None) -> None:
        key = (envelope.aggregate_type, envelope.aggregate_id)
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = []
        current = len(stream)
        if expected_version is not None and expected_version != current:
            raise ConcurrencyError(
                f"{key[0]}/{key[1]} is at version {current}, expected {expected_version}"
            )
        if envelope.aggregate_version != current + 1:
            raise ConcurrencyError(
                f"{key[0]}/{key[1]} is at version {current}; envelope has version "
                f"{envelope.aggregate_version} (must be {current + 1})"
            )
        stream.append(envelope)
        for subscription in self._subscribers.get(envelope.aggregate_type, ()):
            subscription.put(envelope)

    async def load(
        self, aggregate_type: str, aggregate_id: str, from_version: int = 0
    ) -> AsyncIterator[EventEnvelope]:
        # Versions are dense from 1, so version v sits at index v - 1.
        stream = self._streams.get((aggregate_type, aggregate_id), [])
        for envelope in stream[max(from_version, 0) :]:
            yield envelope

    def events(self, aggregate_type: str, aggregate_id: str) -> list[EventEnvelope]:
        """A copy of one aggregate's history (synchronous convenience for tests and the twin)."""
        return list(self._streams.get((aggregate_type, aggregate_id), []))

    async def current_version(self, aggregate_type: str, aggregate_id: str) -> int:
        return len(self._streams.get((aggregate_type, aggregate_id), []))

    async def subscribe(self, aggregate_type: str) -> EventSubscription:
        subscribers = self._subscribers.setdefault(aggregate_type, [])
        subscription = QueueSubscription(on_close=subscribers.remove)
        subscribers.append(subscription)
        return subscription


class InMemoryRejectionLog(RejectionLog):
    """Rejection audit held in process memory."""

    def __init__(self) -> None:
        self._rejections: list[RejectionEnvelope] = []

    async def append(self, rejection: RejectionEnvelope) -> None:
        self._rejections.append(rejection)

    async def load(
        self, aggregate_type: str, aggregate_id: str
    ) -> AsyncIterator[RejectionEnvelope]:
        for rejection in list(self._rejections):
            if (
                rejection.aggregate_type == aggregate_type
                and rejection.aggregate_id == aggregate_id
            ):
                yield rejection

    @property
    def rejections(self) -> list[RejectionEnvelope]:
        """Everything recorded, in append order."""
        return list(self._rejections)
