"""EventLog and RejectionLog ports, and their in-memory implementations.

EventLog is the per-aggregate-type append-only store: ``append`` is a compare-and-set on the
aggregate's version, ``load`` replays in version order, ``subscribe`` is ready (registered)
when it returns, so no event appended afterwards can be missed.
"""

from __future__ import annotations

import asyncio
import copy
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from heddle.events.envelopes import (
    EventEnvelope,
    RejectionEnvelope,
    trusted_event,
    trusted_metadata,
)
from heddle.events.errors import ConcurrencyError

__all__ = [
    "EventAnchor",
    "EventLog",
    "EventSubscription",
    "InMemoryEventLog",
    "InMemoryRejectionLog",
    "QueueSubscription",
    "RejectionLog",
    "is_anchor",
]


@dataclass(frozen=True, slots=True)
class EventAnchor:
    """An event a reader already holds (e.g. the last one a snapshot covers): where a load
    resumes, and what the log must agree with before anything after it is trusted."""

    aggregate_version: int
    event_id: str
    position: int | None = None
    """Where the log keeps that event (JetStream: its stream sequence): a hint that lets a
    load start there instead of at the beginning; a wrong hint only costs time."""


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
        self,
        items: Sequence[tuple[EventEnvelope, int | None]],
        appended: Callable[[int], None] | None = None,
    ) -> list[Exception | None]:
        """Append many (envelope, expected_version) pairs; one result per item, None when it
        was appended. After a failure, that aggregate's later items fail too (their versions
        would leave a gap); other aggregates are unaffected. ``appended(i)`` is called as soon
        as item ``i`` is in the log, before the call returns (a caller waiting for some items
        need not wait for the whole batch). Default: one at a time."""
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
            except Exception as exc:  # noqa: BLE001 - reported per item, as documented
                results.append(exc)
                failed.add(key)
                continue
            if appended is not None:
                appended(len(results))
            results.append(None)
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

    async def load_after(
        self, aggregate_type: str, aggregate_id: str, anchor: EventAnchor
    ) -> list[EventEnvelope] | None:
        """The events after ``anchor`` in version order, or None when the log's event at
        ``anchor.aggregate_version`` is missing or has another event id (the anchor is not
        part of this history: a snapshot built on it must not be trusted). Default: load
        from the anchor's version and check the first event."""
        events = [
            envelope
            async for envelope in self.load(
                aggregate_type, aggregate_id, anchor.aggregate_version - 1
            )
        ]
        if not events or not is_anchor(events[0], anchor):
            return None
        return events[1:]

    async def find_first(
        self, aggregate_type: str, aggregate_id: str, event_type: str
    ) -> EventEnvelope | None:
        """The aggregate's earliest event of ``event_type``, or None (snapshot checks use it
        to find the InternalFinalized a finalized snapshot must rest on). Default: replay."""
        async for envelope in self.load(aggregate_type, aggregate_id):
            if envelope.event_type == event_type:
                return envelope
        return None

    def position_of(self, aggregate_type: str, aggregate_id: str, version: int) -> int | None:
        """Where the log keeps this version of the aggregate, if this process knows it
        without asking (see EventAnchor.position); None otherwise. Default: None."""
        return None


def is_anchor(envelope: EventEnvelope, anchor: EventAnchor) -> bool:
    """True if ``envelope`` is the event ``anchor`` names (same version, same event id)."""
    return (
        envelope.aggregate_version == anchor.aggregate_version
        and envelope.event_id == anchor.event_id
    )


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
_EVENT_TYPE_SLOT = 1
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

    async def load_after(
        self, aggregate_type: str, aggregate_id: str, anchor: EventAnchor
    ) -> list[EventEnvelope] | None:
        stream = self._streams.get((aggregate_type, aggregate_id), [])
        index = anchor.aggregate_version - 1
        if not 0 <= index < len(stream) // _SLOTS or stream[index * _SLOTS] != anchor.event_id:
            return None
        return [
            _rebuild(aggregate_type, aggregate_id, stream, later)
            for later in range(index + 1, len(stream) // _SLOTS)
        ]

    async def find_first(
        self, aggregate_type: str, aggregate_id: str, event_type: str
    ) -> EventEnvelope | None:
        stream = self._streams.get((aggregate_type, aggregate_id), [])
        for at in range(_EVENT_TYPE_SLOT, len(stream), _SLOTS):
            if stream[at] == event_type:
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
