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

import asyncio
import logging
import os
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

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


MAX_CONCURRENT_LOADS = 64
"""Cold aggregates handle_many loads at once (each load is a few round trips)."""
LANE_AGGREGATES = 64
"""Aggregates per handle_many lane (lanes run concurrently; see handle_many)."""


def _new_id() -> str:
    # 128 random bits as hex: as unique as a uuid4, at a fifth of the cost.
    return os.urandom(16).hex()


@dataclass(slots=True)
class _Decided:
    """A command decided (steps 1-8) and waiting for its append (step 9)."""

    aggregate: Aggregate
    key: CacheKey
    envelope: EventEnvelope
    current: int
    """The version the append expects (the envelope's version - 1)."""
    fresh: bool
    """Decided on a new instance without loading (not cached yet)."""


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

    async def handle_many(
        self, commands: Sequence[CommandMessage]
    ) -> list[EventEnvelope | Exception]:
        """Handle many commands with batched appends; one result per command, in order:
        the (new or earlier) event, or the exception ``handle()`` would have raised.

        The outcome is that of awaiting ``handle()`` on each command in turn within each
        aggregate, while different aggregates proceed together: the commands go in waves
        (the next command of every aggregate), each wave decided against the cached
        aggregates (cold ones loaded concurrently) and appended with one
        ``EventLog.append_batch``, which JetStream pipelines. This is the path for many
        lifecycles at once (the live runtime's placements, starts and completions): a
        wave of W commands costs about one round trip, not W. The aggregates are split
        into lanes of LANE_AGGREGATES that run concurrently. It does not record the
        per-command ``command_handle_duration`` SLI.
        """
        results: list[EventEnvelope | Exception | None] = [None] * len(commands)
        queues: dict[CacheKey, deque[int]] = {}
        for index, cmd in enumerate(commands):
            queues.setdefault((cmd.aggregate_type, cmd.aggregate_id), deque()).append(index)
        # Lanes of disjoint aggregates run concurrently, so one lane's deciding and applying
        # overlaps another's wait for its acks (client and server CPU both busy).
        items = list(queues.items())
        loads = asyncio.Semaphore(MAX_CONCURRENT_LOADS)
        await asyncio.gather(
            *(
                self._run_lane(dict(items[at : at + LANE_AGGREGATES]), commands, results, loads)
                for at in range(0, len(items), LANE_AGGREGATES)
            )
        )
        return results  # type: ignore[return-value] - every slot is filled

    async def _run_lane(
        self,
        queues: dict[CacheKey, deque[int]],
        commands: Sequence[CommandMessage],
        results: list[EventEnvelope | Exception | None],
        loads: asyncio.Semaphore,
    ) -> None:
        """Waves over one lane's aggregates until their commands are done."""

        async def load_and_decide(index: int, into: list[tuple[int, _Decided]]) -> None:
            async with loads:
                await self._decide_into(index, commands[index], into, results)

        while queues:
            wave = [queue.popleft() for queue in queues.values()]
            queues = {key: queue for key, queue in queues.items() if queue}
            decided: list[tuple[int, _Decided]] = []
            cold: list[int] = []
            for index in wave:  # cached aggregates and creates: decided without a read
                cmd = commands[index]
                key = (cmd.aggregate_type, cmd.aggregate_id)
                if key in self.cache or cmd.expected_aggregate_version == 0:
                    await self._decide_into(index, cmd, decided, results)
                else:
                    cold.append(index)
            # The wave's cold aggregates are loaded concurrently.
            await asyncio.gather(*(load_and_decide(index, decided) for index in cold))
            outcomes = await self.event_log.append_batch(
                [(item.envelope, item.current) for _, item in decided]
            )
            for (index, item), outcome in zip(decided, outcomes, strict=True):
                results[index] = await self._settle_one(commands[index], item, outcome)

    async def _decide_into(
        self,
        index: int,
        cmd: CommandMessage,
        decided: list[tuple[int, _Decided]],
        results: list[EventEnvelope | Exception | None],
    ) -> None:
        try:
            outcome = await self._decide(cmd, True)
        except Exception as exc:  # noqa: BLE001 - reported per command, as documented
            results[index] = exc
            return
        if type(outcome) is _Decided:
            decided.append((index, outcome))
        else:
            results[index] = outcome  # type: ignore[assignment] - the earlier event

    async def _settle_one(
        self, cmd: CommandMessage, decided: _Decided, failure: Exception | None
    ) -> EventEnvelope | Exception:
        """The result of one batched append, as ``handle()`` would have returned it."""
        try:
            if failure is None:
                return await self._commit(decided)
            if isinstance(failure, ConcurrencyError) and decided.fresh:
                return await self._handle_loaded(cmd)  # it existed after all
            self.cache.discard(decided.key)
            return failure
        except Exception as exc:  # noqa: BLE001 - reported per command
            return exc

    async def _handle(self, cmd: CommandMessage) -> EventEnvelope:
        decided = await self._decide(cmd, True)
        if type(decided) is not _Decided:
            return decided  # type: ignore[return-value] - the earlier event (step 3)
        try:
            await self.event_log.append(decided.envelope, decided.current)  # 9
        except ConcurrencyError:
            if decided.fresh:  # it was not new after all: handle it as handle() would have
                return await self._handle_loaded(cmd)
            self.cache.discard(decided.key)  # someone else moved it on: reload next time
            raise
        return await self._commit(decided)

    async def _handle_loaded(self, cmd: CommandMessage) -> EventEnvelope:
        decided = await self._decide(cmd, False)
        if type(decided) is not _Decided:
            return decided  # type: ignore[return-value]
        try:
            await self.event_log.append(decided.envelope, decided.current)
        except ConcurrencyError:
            self.cache.discard(decided.key)
            raise
        return await self._commit(decided)

    async def _decide(self, cmd: CommandMessage, fresh_ok: bool) -> _Decided | EventEnvelope:
        """Steps 1-8: the envelope to append (in a _Decided), or the earlier event of a
        handled command. ``fresh_ok``: a command that expects version 0 on an aggregate
        not in the cache is decided on a new instance without loading anything (a create
        costs no read); if the aggregate did exist, the append's CAS (or, for a rejection,
        a version check) says so and the command is handled again the loaded way."""
        # Hot path (the twin runs every command through it): fields are read into locals once.
        aggregate_type, aggregate_id, command_id = (
            cmd.aggregate_type,
            cmd.aggregate_id,
            cmd.command_id,
        )
        cls = get_aggregate_class(aggregate_type)  # 1
        key = (aggregate_type, aggregate_id)
        expected = cmd.expected_aggregate_version
        aggregate = self.cache.get(key)  # 2
        fresh = aggregate is None and expected == 0 and fresh_ok
        if fresh:
            aggregate = cls(aggregate_id)
        elif aggregate is None:
            aggregate = await self._load_or_create(cls, key)
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
            if fresh and await self.event_log.current_version(aggregate_type, aggregate_id):
                return await self._decide(cmd, False)  # not new: decide on the real state
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
        return _Decided(aggregate, key, envelope, current, fresh)

    async def _commit(self, decided: _Decided) -> EventEnvelope:
        """After the append: apply, mark processed, cache a fresh aggregate, announce on the
        dedup bus, snapshot every N events."""
        aggregate, key, envelope = decided.aggregate, decided.key, decided.envelope
        try:
            aggregate.apply(envelope)
        except Exception:
            self.cache.discard(key)  # the instance may be half-mutated: never reuse it
            raise
        command_id = envelope.metadata.command_id
        aggregate.mark_processed(command_id)  # type: ignore[arg-type] - set in step 8
        aggregate.events_since_snapshot += 1
        if (
            decided.fresh
            or self._announce
            or (aggregate.events_since_snapshot >= self.snapshot_every_n and self._save_snapshots)
        ):
            await self._after_commit(decided)
        return envelope

    async def _after_commit(self, decided: _Decided) -> None:
        """The awaited parts of a commit (skipped, with their coroutine, when none apply)."""
        aggregate, key = decided.aggregate, decided.key
        if decided.fresh and self.cache.put(key, aggregate):
            await self.dedup_subscriber.subscribe(key[0], key[1], aggregate.mark_processed)
        if self._announce:
            await self.dedup_publisher.publish(key[0], key[1], decided.envelope.metadata.command_id)
        if aggregate.events_since_snapshot >= self.snapshot_every_n and self._save_snapshots:
            await self._snapshot(aggregate)

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
