"""AggregateCache: a process-local LRU of live aggregates keyed on (type, id).

Keeping aggregates between calls is what makes the dedup ring survive across handle() calls.
Eviction calls ``on_evict(key, aggregate)``; the CommandHandler wires it to
DedupSubscriber.unsubscribe so cross-process dedup subscriptions die with their aggregate.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from heddle.events.aggregate import Aggregate

__all__ = ["DEFAULT_CACHE_SIZE", "AggregateCache", "CacheKey"]

DEFAULT_CACHE_SIZE = 1024
"""Aggregates kept per process (seed default)."""

CacheKey = tuple[str, str]
EvictCallback = Callable[[CacheKey, Aggregate], None]


class AggregateCache:
    """LRU of aggregates; ``max_size=0`` disables caching (every call reloads)."""

    def __init__(self, max_size: int = DEFAULT_CACHE_SIZE, on_evict: EvictCallback | None = None):
        if max_size < 0:
            raise ValueError(f"max_size must be >= 0, got {max_size}")
        self.max_size = max_size
        self.on_evict = on_evict
        self._items: OrderedDict[CacheKey, Aggregate] = OrderedDict()

    def get(self, key: CacheKey) -> Aggregate | None:
        aggregate = self._items.get(key)
        if aggregate is not None:
            self._items.move_to_end(key)
        return aggregate

    def put(self, key: CacheKey, aggregate: Aggregate) -> bool:
        """Cache ``aggregate``; False when caching is disabled. May evict the LRU entry."""
        if self.max_size == 0:
            return False
        previous = self._items.get(key)
        self._items[key] = aggregate
        self._items.move_to_end(key)
        if previous is not None and previous is not aggregate:
            self._evicted(key, previous)
        while len(self._items) > self.max_size:
            old_key, old = self._items.popitem(last=False)
            self._evicted(old_key, old)
        return True

    def discard(self, key: CacheKey) -> None:
        """Drop an entry (e.g. after a lost CAS); fires on_evict like an eviction."""
        aggregate = self._items.pop(key, None)
        if aggregate is not None:
            self._evicted(key, aggregate)

    def _evicted(self, key: CacheKey, aggregate: Aggregate) -> None:
        if self.on_evict is not None:
            self.on_evict(key, aggregate)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)
