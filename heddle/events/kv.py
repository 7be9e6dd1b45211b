"""The KeyValueStore port and its in-memory implementation.

Keys use the seed's ':'-separated layout (``heddle:events:snapshot:{type}:{id}``); each
implementation maps them to what its backend accepts. ``set_if_not_exists`` with a TTL is the
atomic claim that finalization leases are built on; TTLs are whole seconds because NATS KV
rejects fractions (err_code 10165).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable

__all__ = ["InMemoryKeyValueStore", "KeyValueStore", "check_ttl_s"]


def check_ttl_s(ttl_s: int | None) -> None:
    """ValueError unless ``ttl_s`` is None or a whole number of seconds >= 1."""
    if ttl_s is None:
        return
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int) or ttl_s < 1:
        raise ValueError(f"ttl_s must be a whole number of seconds >= 1, got {ttl_s!r}")


class KeyValueStore(ABC):
    """Bytes under string keys, with an atomic set-if-absent that can expire."""

    @abstractmethod
    async def get(self, key: str) -> bytes | None:
        """The value, or None if the key is absent or expired."""

    @abstractmethod
    async def put(self, key: str, value: bytes) -> None:
        """Set the value unconditionally (no expiry)."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove the key; absent keys are fine."""

    @abstractmethod
    async def set_if_not_exists(self, key: str, value: bytes, ttl_s: int | None = None) -> bool:
        """Atomically set ``key`` if absent (or expired); True if this call set it.

        With ``ttl_s`` the key disappears that many seconds later, whoever set it.
        """

    async def close(self) -> None:
        """Release resources the store owns (none by default)."""


class InMemoryKeyValueStore(KeyValueStore):
    """A dict with expiries read from an injectable monotonic clock (tests advance it)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[str, tuple[bytes, float | None]] = {}

    def _live(self, key: str) -> tuple[bytes, float | None] | None:
        entry = self._entries.get(key)
        if entry is not None and entry[1] is not None and self._clock() >= entry[1]:
            del self._entries[key]
            return None
        return entry

    async def get(self, key: str) -> bytes | None:
        entry = self._live(key)
        return None if entry is None else entry[0]

    async def put(self, key: str, value: bytes) -> None:
        self._entries[key] = (bytes(value), None)

    async def delete(self, key: str) -> None:
        self._entries.pop(key, None)

    async def set_if_not_exists(self, key: str, value: bytes, ttl_s: int | None = None) -> bool:
        check_ttl_s(ttl_s)
        if self._live(key) is not None:
            return False
        expires_at = None if ttl_s is None else self._clock() + ttl_s
        self._entries[key] = (bytes(value), expires_at)
        return True
