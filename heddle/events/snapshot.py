"""SnapshotStore: aggregate snapshots in a KeyValueStore, trusted only once checked.

One key per aggregate (seed layout): ``heddle:events:snapshot:{type}:{id}``, a JSON blob
holding the state, the dedup ring, the version, the id of the last event it covers and,
where the event log has one, that event's position in the log. The blob is the single
source of truth for the snapshot's version: it is written in one put, so it can never
disagree with itself, where a separate version key written after it could (a crash
between the two writes). The seed's version key is therefore not written any more;
``load_version`` reads the version from the blob.

A snapshot replaces the events it covers, so it must be as trustworthy as they are. Only
the framework role may write snapshot keys (see ``heddle.events.acl``), and
``load_verified`` checks a snapshot against the event log before it is used: the log's
event at the snapshot's version must have the snapshot's last event id, and the
framework-only state it carries (finalization) must rest on a framework-issued event in the
log. A snapshot that fails is refused with UntrustedSnapshotError; the CommandHandler then
logs it and replays the history instead. The dedup ring travels in the snapshot; a pure
replay never rebuilds it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from heddle.events.aggregate import Aggregate
from heddle.events.envelopes import EventEnvelope
from heddle.events.errors import EventsError, SnapshotError, UntrustedSnapshotError
from heddle.events.event_log import EventAnchor, EventLog
from heddle.events.kv import KeyValueStore

__all__ = [
    "SNAPSHOT_EVERY_N",
    "SNAPSHOT_EVERY_T_SECONDS",
    "SnapshotStore",
    "VerifiedSnapshot",
    "snapshot_key",
    "snapshot_version_key",
]

SNAPSHOT_EVERY_N = 100
"""Snapshot a cached aggregate after every N events it applied (seed: count-based, every N
events on the cached aggregate): bounds a cold rebuild to about N replayed events while
costing one KV write per N appends (heddle's choice of N; the seed leaves it open)."""
SNAPSHOT_EVERY_T_SECONDS = 300.0
"""Time-based trigger named by the seed's brief; recorded but, as in the seed, not enforced."""


def snapshot_key(aggregate_type: str, aggregate_id: str) -> str:
    return f"heddle:events:snapshot:{aggregate_type}:{aggregate_id}"


def snapshot_version_key(aggregate_type: str, aggregate_id: str) -> str:
    """The seed's separate version key. No longer written (the blob holds the version);
    kept so tools that clean up old keys can name it."""
    return f"heddle:events:snapshot:version:{aggregate_type}:{aggregate_id}"


@dataclass(slots=True)
class VerifiedSnapshot:
    """What ``load_verified`` returns: the aggregate brought up to date (snapshot + the
    events after it) and how many events that replay applied."""

    aggregate: Aggregate
    replayed: int


class SnapshotStore:
    """Save and load aggregate snapshots (JSON) through a KeyValueStore.

    ``writable=False`` for processes whose NATS role may only read snapshots (every role
    but framework): the CommandHandler then never tries to save one.
    """

    def __init__(self, kv: KeyValueStore, *, writable: bool = True) -> None:
        self._kv = kv
        self.writable = writable

    async def save(self, aggregate: Aggregate, *, position: int | None = None) -> None:
        """Write the snapshot; ``position`` is where the log keeps the aggregate's last
        event (``EventLog.position_of``), so a loader can fetch only what follows it."""
        if not self.writable:
            raise SnapshotError(
                f"snapshot store is read-only: not saving {aggregate.aggregate_type}/"
                f"{aggregate.aggregate_id}"
            )
        data = aggregate.to_snapshot()
        data["log_position"] = position
        try:
            blob = json.dumps(data, separators=(",", ":")).encode()
        except TypeError as exc:
            raise SnapshotError(
                f"{type(aggregate).__name__}.snapshot_state() is not JSON-serialisable: {exc}"
            ) from exc
        await self._kv.put(snapshot_key(aggregate.aggregate_type, aggregate.aggregate_id), blob)

    async def _load_data(self, aggregate_type: str, aggregate_id: str) -> dict[str, Any] | None:
        key = snapshot_key(aggregate_type, aggregate_id)
        blob = await self._kv.get(key)
        if blob is None:
            return None
        try:
            data = json.loads(blob)
        except ValueError as exc:
            raise SnapshotError(f"snapshot {key} is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise SnapshotError(f"snapshot {key} is not a JSON object")
        return data

    async def load(self, cls: type[Aggregate], aggregate_id: str) -> Aggregate | None:
        """The aggregate as of its last snapshot, or None if it has none. UNCHECKED: use
        ``load_verified`` for anything that acts on the state."""
        data = await self._load_data(cls.aggregate_type, aggregate_id)
        return None if data is None else cls.from_snapshot(data)

    async def load_version(self, aggregate_type: str, aggregate_id: str) -> int | None:
        """The version the snapshot covers (read from the blob), or None."""
        data = await self._load_data(aggregate_type, aggregate_id)
        if data is None:
            return None
        try:
            return int(data["aggregate_version"])
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotError(f"snapshot of {aggregate_type}/{aggregate_id}: {exc!r}") from exc

    async def load_verified(
        self, cls: type[Aggregate], aggregate_id: str, event_log: EventLog
    ) -> VerifiedSnapshot | None:
        """The aggregate from its snapshot plus the newer events, checked against
        ``event_log``; None if it has no snapshot. Raises UntrustedSnapshotError when the
        snapshot disagrees with the log (SnapshotError when it is malformed)."""
        data = await self._load_data(cls.aggregate_type, aggregate_id)
        if data is None:
            return None
        aggregate = cls.from_snapshot(data)
        where = f"snapshot of {cls.aggregate_type}/{aggregate_id}"
        if data.get("aggregate_id") != aggregate_id:
            raise UntrustedSnapshotError(f"{where} is for aggregate {data.get('aggregate_id')!r}")
        if aggregate.aggregate_version < 1 or not isinstance(aggregate.last_event_id, str):
            raise UntrustedSnapshotError(
                f"{where} names no last event (version {aggregate.aggregate_version}, "
                f"last_event_id {aggregate.last_event_id!r}): nothing to check it against"
            )
        position = data.get("log_position")
        anchor = EventAnchor(
            aggregate.aggregate_version,
            aggregate.last_event_id,
            position if type(position) is int else None,
        )
        newer = await event_log.load_after(cls.aggregate_type, aggregate_id, anchor)
        if newer is None:
            raise UntrustedSnapshotError(
                f"{where}: the log has no event {anchor.event_id!r} at version "
                f"{anchor.aggregate_version}"
            )
        first_events: dict[str, EventEnvelope | None] = {}
        for event_type in cls.FRAMEWORK_STATE_EVENT_TYPES:
            first_events[event_type] = await event_log.find_first(
                cls.aggregate_type, aggregate_id, event_type
            )
        conflict = aggregate.framework_state_conflict(first_events)
        if conflict:
            raise UntrustedSnapshotError(f"{where}: {conflict}")
        try:
            for envelope in newer:
                aggregate.apply(envelope)
        except EventsError as exc:
            raise UntrustedSnapshotError(
                f"{where}: the events after it do not apply to its state: {exc}"
            ) from exc
        aggregate.events_since_snapshot = len(newer)
        return VerifiedSnapshot(aggregate, len(newer))
