"""SnapshotStore: aggregate snapshots in a KeyValueStore.

Keys (seed): blob ``heddle:events:snapshot:{type}:{id}``, version
``heddle:events:snapshot:version:{type}:{id}``. The blob also carries its version, which is
what loading trusts (the blob is written first, so a crash between the two writes leaves a
version key that is merely behind). The dedup ring travels in the snapshot; a pure replay
never rebuilds it.
"""

from __future__ import annotations

import json

from heddle.events.aggregate import Aggregate
from heddle.events.errors import SnapshotError
from heddle.events.kv import KeyValueStore

__all__ = [
    "SNAPSHOT_EVERY_N",
    "SNAPSHOT_EVERY_T_SECONDS",
    "SnapshotStore",
    "snapshot_key",
    "snapshot_version_key",
]

SNAPSHOT_EVERY_N = 100
"""Snapshot a cached aggregate every N events: bounds a cold rebuild to < N replayed events
while costing one KV write per N appends (heddle's choice; the seed leaves N open)."""
SNAPSHOT_EVERY_T_SECONDS = 300.0
"""Time-based trigger named by the seed's brief; recorded but, as in the seed, not enforced."""


def snapshot_key(aggregate_type: str, aggregate_id: str) -> str:
    return f"heddle:events:snapshot:{aggregate_type}:{aggregate_id}"


def snapshot_version_key(aggregate_type: str, aggregate_id: str) -> str:
    return f"heddle:events:snapshot:version:{aggregate_type}:{aggregate_id}"


class SnapshotStore:
    """Save and load aggregate snapshots (JSON) through a KeyValueStore."""

    def __init__(self, kv: KeyValueStore) -> None:
        self._kv = kv

    async def save(self, aggregate: Aggregate) -> None:
        data = aggregate.to_snapshot()
        try:
            blob = json.dumps(data, separators=(",", ":")).encode()
        except TypeError as exc:
            raise SnapshotError(
                f"{type(aggregate).__name__}.snapshot_state() is not JSON-serialisable: {exc}"
            ) from exc
        await self._kv.put(snapshot_key(aggregate.aggregate_type, aggregate.aggregate_id), blob)
        await self._kv.put(
            snapshot_version_key(aggregate.aggregate_type, aggregate.aggregate_id),
            str(aggregate.aggregate_version).encode(),
        )

    async def load(self, cls: type[Aggregate], aggregate_id: str) -> Aggregate | None:
        """The aggregate as of its last snapshot, or None if it has none."""
        blob = await self._kv.get(snapshot_key(cls.aggregate_type, aggregate_id))
        if blob is None:
            return None
        try:
            data = json.loads(blob)
        except ValueError as exc:
            raise SnapshotError(
                f"snapshot {snapshot_key(cls.aggregate_type, aggregate_id)} is not JSON: {exc}"
            ) from exc
        return cls.from_snapshot(data)

    async def load_version(self, aggregate_type: str, aggregate_id: str) -> int | None:
        """The version recorded beside the blob, or None."""
        raw = await self._kv.get(snapshot_version_key(aggregate_type, aggregate_id))
        return None if raw is None else int(raw)
