"""EventLog and RejectionLog ports, and their in-memory implementations.

EventLog is the per-aggregate-type append-only store: ``append`` is a compare-and-set on the
aggregate's version, ``load`` replays in version order, ``subscribe`` is ready (registered)
when it returns, so no event appended afterwards can be missed.
"""

from __future__ import annotations

import asyncio
import copy
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from typing import Any

from heddle.events.envelopes import (
    EventEnvelope,
    RejectionEnvelope,
    trusted_event,
    trusted_metadata,
)
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

    async def find_event(
        self, aggregate_type: str, aggregate_id: str, command_id: str
    ) -> EventEnvelope | None:
        """The event this aggregate recorded for ``command_id``, or None (the CommandHandler's
        dedup lookup). Default: replay the history and keep the first match."""
        async for envelope in self.load(aggregate_type, aggregate_id):
            if envelope.metadata.command_id == command_id:
                return envelope
        return None

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


_SLOTS = 8
"""Fields per event in an in-memory stream: event_id, event_type, payload, issued_by,
command_id, correlation_id, occurred_at_unix_s, schema_version (the key and the position
give the aggregate type, id and version)."""
_COMMAND_ID_SLOT = 4
_SCALARS = frozenset({str, int, float, bool, type(None)})


def copy_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """A copy that shares nothing mutable with ``payload``.

    The in-memory log stores a copy at append and hands out a copy on every read, so no
    caller can rewrite history by mutating an envelope's payload (pydantic's frozen=True
    stops attribute assignment, not dict mutation). JSON-shaped payloads (the only kind
    JetStream can carry) take the fast path: a flat dict of scalars costs one ``dict.copy``
    (~0.2 us) and stays invisible to the garbage collector; anything else is deep-copied.
    """
    copied = payload.copy()
    for key, value in copied.items():
        if type(value) not in _SCALARS:
            copied[key] = _copy_value(value)
    return copied


def _copy_value(value: Any) -> Any:
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is dict:
        return copy_payload(value)
    if kind is list:
        return [_copy_value(item) for item in value]
    return copy.deepcopy(value)


def _rebuild(
    aggregate_type: str, aggregate_id: str, stream: list[Any], index: int
) -> EventEnvelope:
    # Every part was validated when the envelope was first built: no validation again.
    at = index * _SLOTS
    event_id, event_type, payload, issued_by, command_id, correlation_id, at_s, schema = stream[
        at : at + _SLOTS
    ]
    return trusted_event(
        event_id=event_id,
        event_type=event_type,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        aggregate_version=index + 1,
        payload=copy_payload(payload),
        metadata=trusted_metadata(issued_by, command_id, correlation_id),
        occurred_at_unix_s=at_s,
        schema_version=schema,
    )


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
    """Event log held in process memory: the twin's store and the test double.

    Each aggregate's history is one flat list holding ``_SLOTS`` plain fields per event, not
    a list of envelope objects. Strings, numbers and a payload dict of plain values are
    invisible to Python's cyclic garbage collector, whereas each stored pydantic envelope
    added five tracked objects that every full collection walked again: with a growing log
    that was a fifth or more of CommandHandler.handle's time. ``load`` and ``events`` rebuild
    equal envelopes (a few microseconds each, paid on a cache miss instead of on every
    command).
    """

    def __init__(self) -> None:
        self._streams: dict[tuple[str, str], list[Any]] = {}
        self._subscribers: dict[str, list[QueueSubscription]] = {}

    async def append(self, envelope: EventEnvelope, expected_version: int | None) -> None:
        key = (envelope.aggregate_type, envelope.aggregate_id)
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = []
        current = len(stream) // _SLOTS
        if expected_version is not None and expected_version != current:
            raise ConcurrencyError(
                f"{key[0]}/{key[1]} is at version {current}, expected {expected_version}"
            )
        if envelope.aggregate_version != current + 1:
            raise ConcurrencyError(
                f"{key[0]}/{key[1]} is at version {current}; envelope has version "
                f"{envelope.aggregate_version} (must be {current + 1})"
            )
        metadata = envelope.metadata
        stream += (
            envelope.event_id,
            envelope.event_type,
            copy_payload(envelope.payload),
            metadata.issued_by,
            metadata.command_id,
            metadata.correlation_id,
            envelope.occurred_at_unix_s,
            envelope.schema_version,
        )
        subscribers = self._subscribers.get(envelope.aggregate_type)
        if subscribers:
            # Each subscriber gets its own copy of what was stored, as from JetStream.
            for subscription in subscribers:
                subscription.put(_rebuild(key[0], key[1], stream, current))

    async def load(
        self, aggregate_type: str, aggregate_id: str, from_version: int = 0
    ) -> AsyncIterator[EventEnvelope]:
        stream = self._streams.get((aggregate_type, aggregate_id), [])
        # Versions are dense from 1, so version v is event index v - 1.
        for index in range(max(from_version, 0), len(stream) // _SLOTS):
            yield _rebuild(aggregate_type, aggregate_id, stream, index)

    async def find_event(
        self, aggregate_type: str, aggregate_id: str, command_id: str
    ) -> EventEnvelope | None:
        stream = self._streams.get((aggregate_type, aggregate_id), [])
        # The first match, like the default; only the match is rebuilt.
        for at in range(_COMMAND_ID_SLOT, len(stream), _SLOTS):
            if stream[at] == command_id:
                return _rebuild(aggregate_type, aggregate_id, stream, at // _SLOTS)
        return None

    def events(self, aggregate_type: str, aggregate_id: str) -> list[EventEnvelope]:
        """One aggregate's history (synchronous convenience for tests and the twin)."""
        stream = self._streams.get((aggregate_type, aggregate_id), [])
        return [
            _rebuild(aggregate_type, aggregate_id, stream, index)
            for index in range(len(stream) // _SLOTS)
        ]

    async def current_version(self, aggregate_type: str, aggregate_id: str) -> int:
        return len(self._streams.get((aggregate_type, aggregate_id), [])) // _SLOTS

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
