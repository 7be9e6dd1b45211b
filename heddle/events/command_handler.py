"""CommandHandler: the nine-step path from a command to an appended event.

1 look up the class, 2 load the aggregate (cache, else snapshot + newer events, else full
replay), 3 return the earlier event if the command was already handled, 4 check
expected_aggregate_version, 5 dispatch to ``handle_<command_snake>``, 6 the handler returns
(event_type, payload) or raises CommandRejected, 7 record rejections, 8 build the envelope,
9 CAS-append, apply, mark processed. Then: publish the command id on the dedup bus and
snapshot after every N events the cached aggregate applied. A lost CAS evicts the cached
aggregate; the caller retries. A snapshot is used only after it checks out against the
log (SnapshotStore.load_verified); one that does not is logged and replaced by a replay.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable

from heddle.events import sli
from heddle.events.aggregate import Aggregate, snake_case
from heddle.events.cache import AggregateCache, CacheKey
from heddle.events.dedup import (
    DedupPublisher,
    DedupSubscriber,
    NullDedupPublisher,
    NullDedupSubscriber,
)
from heddle.events.envelopes import (
    MESSAGE_TYPE_PATTERN,
    CommandMessage,
    EventEnvelope,
    RejectionEnvelope,
    trusted_event,
    trusted_metadata,
)
from heddle.events.errors import CommandRejected, ConcurrencyError, SnapshotError
from heddle.events.event_log import EventLog, RejectionLog
from heddle.events.registry import get_aggregate_class
from heddle.events.snapshot import SNAPSHOT_EVERY_N, SnapshotStore

__all__ = ["CommandHandler"]

logger = logging.getLogger(__name__)

_EVENT_TYPE_RE = re.compile(MESSAGE_TYPE_PATTERN)
_HANDLE_NAMES: dict[str, str] = {}


def _new_id() -> str:
    # 128 random bits as hex: as unique as a uuid4, at a fifth of the cost.
    return os.urandom(16).hex()


class CommandHandler:
    """Turns commands into events for any registered aggregate type.

    Collaborators are passed in (composition root builds them); defaults are in-process:
    an LRU cache of 1024 aggregates, no snapshots, and the Null dedup bus.
    """

    def __init__(
        self,
        event_log: EventLog,
        rejection_log: RejectionLog,
        *,
        cache: AggregateCache | None = None,
        snapshots: SnapshotStore | None = None,
        dedup_publisher: DedupPublisher | None = None,
        dedup_subscriber: DedupSubscriber | None = None,
        snapshot_every_n: int = SNAPSHOT_EVERY_N,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = _new_id,
    ) -> None:
        if snapshot_every_n < 1:
            raise ValueError(f"snapshot_every_n must be >= 1, got {snapshot_every_n}")
        self.event_log = event_log
        self.rejection_log = rejection_log
        self.cache = cache if cache is not None else AggregateCache()
        self.snapshots = snapshots
        self._save_snapshots = snapshots is not None and snapshots.writable
        self.untrusted_snapshots = 0
        """Snapshots refused on load because they disagreed with the event log."""
        self.dedup_publisher = dedup_publisher or NullDedupPublisher()
        self._announce = not isinstance(self.dedup_publisher, NullDedupPublisher)
        self.dedup_subscriber = dedup_subscriber or NullDedupSubscriber()
        self.snapshot_every_n = snapshot_every_n
        self._clock = clock
        self._new_id = new_id
        previous = self.cache.on_evict

        def on_evict(key: CacheKey, aggregate: Aggregate) -> None:
            if previous is not None:
                previous(key, aggregate)
            self.dedup_subscriber.unsubscribe(*key)

        self.cache.on_evict = on_evict
        self._checked_event_types: set[str] = set()

    async def handle(self, cmd: CommandMessage) -> EventEnvelope:
        """Handle one command; returns the (new or earlier) event.

        Raises CommandRejected (recorded in the rejection log), ConcurrencyError (reload and
        retry), AttributeError (no handler for the command type), KeyError (unknown type).
        """
        if not sli.is_recording():
            return await self._handle(cmd)
        started = time.perf_counter()
        outcome = "error"
        try:
            envelope = await self._handle(cmd)
            outcome = "success"
            return envelope
        except CommandRejected:
            outcome = "rejected"
            raise
        except ConcurrencyError:
            outcome = "concurrency_error"
            raise
        finally:
            sli.observe(
                sli.COMMAND_HANDLE_DURATION,
                time.perf_counter() - started,
                {
                    "aggregate_type": cmd.aggregate_type,
                    "command_type": cmd.command_type,
                    "outcome": outcome,
                },
            )

    async def _handle(self, cmd: CommandMessage) -> EventEnvelope:
        # Hot path (the twin runs every command through it): fields are read into locals once.
        aggregate_type, aggregate_id, command_id = (
            cmd.aggregate_type,
            cmd.aggregate_id,
            cmd.command_id,
        )
        cls = get_aggregate_class(aggregate_type)  # 1
        key = (aggregate_type, aggregate_id)
        aggregate = self.cache.get(key) or await self._load_or_create(cls, key)  # 2
        if aggregate.has_processed(command_id):  # 3
            earlier = await self.event_log.find_event(aggregate_type, aggregate_id, command_id)
            if earlier is not None:
                if earlier.aggregate_version > aggregate.aggregate_version:
                    # Another process handled it (we heard via the dedup bus): our copy is
                    # behind, so reload next time instead of losing the next CAS.
                    self.cache.discard(key)
                return earlier
            # The ring (restored from a snapshot or told by another process) knows the id but
            # this log has no event for it (e.g. aged out): handle it as new, visibly.
            logger.warning(
                "command %s marked processed on %s/%s but its event is missing; handling it",
                command_id,
                *key,
            )
        current = aggregate.aggregate_version
        expected = cmd.expected_aggregate_version
        if expected is not None and expected != current:
            raise ConcurrencyError(  # 4
                f"{aggregate_type}/{aggregate_id} is at version {current}, command "
                f"{command_id} expected {expected}"
            )
        command_type = cmd.command_type
        name = _HANDLE_NAMES.get(command_type)
        if name is None:
            name = _HANDLE_NAMES[command_type] = "handle_" + snake_case(command_type)
        handler = getattr(aggregate, name, None)
        if handler is None:  # 5
            raise AttributeError(f"{cls.__name__} has no {name}() for command {command_type!r}")
        metadata = cmd.metadata
        try:
            event_type, payload = handler(cmd.payload, metadata)  # 6
        except CommandRejected as rejection:
            await self._record_rejection(cmd, current, rejection)  # 7
            raise
        if event_type not in self._checked_event_types or type(payload) is not dict:
            self._check_event(cls, event_type, payload)
        envelope = trusted_event(  # 8: every part comes from a validated command or is checked
            event_id=self._new_id(),
            event_type=event_type,
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            aggregate_version=current + 1,
            payload=payload,
            metadata=trusted_metadata(metadata.issued_by, command_id, metadata.correlation_id),
            occurred_at_unix_s=self._clock(),
        )
        try:
            await self.event_log.append(envelope, expected_version=current)  # 9
        except ConcurrencyError:
            self.cache.discard(key)  # someone else moved it on: reload next time
            raise
        try:
            aggregate.apply(envelope)
        except Exception:
            self.cache.discard(key)  # the instance may be half-mutated: never reuse it
            raise
        aggregate.mark_processed(command_id)
        if self._announce:
            await self.dedup_publisher.publish(aggregate_type, aggregate_id, command_id)
        aggregate.events_since_snapshot += 1
        if aggregate.events_since_snapshot >= self.snapshot_every_n and self._save_snapshots:
            await self._snapshot(aggregate)
        return envelope

    async def _snapshot(self, aggregate: Aggregate) -> None:
        """Save a snapshot. The event is already appended, so a failed save must not fail
        the command: it is logged, and the next try comes after N more events."""
        aggregate.events_since_snapshot = 0
        assert self.snapshots is not None
        try:
            await self.snapshots.save(
                aggregate,
                position=self.event_log.position_of(
                    aggregate.aggregate_type, aggregate.aggregate_id, aggregate.aggregate_version
                ),
            )
        except Exception:  # a snapshot is an optimisation; the appended event stands
            logger.warning(
                "could not snapshot %s/%s at version %d",
                aggregate.aggregate_type,
                aggregate.aggregate_id,
                aggregate.aggregate_version,
                exc_info=True,
            )

    def _check_event(self, cls: type[Aggregate], event_type: object, payload: object) -> None:
        if event_type not in self._checked_event_types:
            if not isinstance(event_type, str) or not _EVENT_TYPE_RE.match(event_type):
                raise TypeError(
                    f"{cls.__name__} handler returned event type {event_type!r}; expected "
                    f"a PascalCase name matching {MESSAGE_TYPE_PATTERN}"
                )
            self._checked_event_types.add(event_type)
        if not isinstance(payload, dict):
            raise TypeError(
                f"{cls.__name__} handler returned a {type(payload).__name__} payload for "
                f"{event_type}; expected a dict"
            )

    async def _load_or_create(self, cls: type[Aggregate], key: CacheKey) -> Aggregate:
        aggregate = None
        if self.snapshots is not None:
            try:
                verified = await self.snapshots.load_verified(cls, key[1], self.event_log)
            except SnapshotError as exc:
                # Events are the truth: a snapshot that disagrees with them is not used.
                self.untrusted_snapshots += 1
                logger.error("ignoring the snapshot of %s/%s, replaying its events: %s", *key, exc)
                verified = None
            if verified is not None:
                aggregate = verified.aggregate
        if aggregate is None:
            aggregate = cls(key[1])  # pure replay: the dedup ring stays empty (v7 §4.5)
            async for envelope in self.event_log.load(key[0], key[1]):
                aggregate.apply(envelope)
            aggregate.events_since_snapshot = aggregate.aggregate_version
        if self.cache.put(key, aggregate):
            await self.dedup_subscriber.subscribe(key[0], key[1], aggregate.mark_processed)
        return aggregate

    async def _record_rejection(
        self, cmd: CommandMessage, version: int, rejection: CommandRejected
    ) -> None:
        await self.rejection_log.append(
            RejectionEnvelope(
                rejection_id=self._new_id(),
                command_id=cmd.command_id,
                command_type=cmd.command_type,
                aggregate_type=cmd.aggregate_type,
                aggregate_id=cmd.aggregate_id,
                aggregate_version=version,
                reason=rejection.reason,
                detail=rejection.detail,
                metadata=cmd.metadata,
                rejected_at_unix_s=self._clock(),
            )
        )
