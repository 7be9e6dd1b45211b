"""The control plane's durable record: each task's life as TaskAggregate events and each
job's as JobAggregate events, appended to JetStream through ``heddle.events``.

Every change is decided by the aggregate itself (its ``handle_*`` method refuses a
transition its state machine forbids), applied in memory at once so the next decision sees
it, and queued for a pipelined ``append_batch``. Batches run concurrently, but an aggregate
has at most one batch in flight until its events there are in the log, so its events reach
the log in order. A failed append
(the server restarting, an ack that never came) is retried with the same event id, which
JetStream de-duplicates: each event is in the log exactly once. ``durable()`` waits until
given events are in the log (a submission is acknowledged only then); each event counts as
soon as its own ack arrives, not when the rest of its batch is in (a batch's longest chain
of one aggregate's events takes several round trips).

``hold()`` lets the appends wait while submissions whose answer does not wait for them (the
gateway's) keep arriving: until HOLD_QUIET_S after the last, at most HOLD_MOST_S. Their
JetStream work (the control plane's publishes and acks, nats-server's writes, ~0.7 ms of
CPU per gateway request) then runs after the first tokens' way instead of across it, on 2
cores shared by every process of that way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from heddle.events import (
    Aggregate,
    ConcurrencyError,
    EventEnvelope,
    EventLog,
    JobAggregate,
    TaskAggregate,
)
from heddle.events.aggregate import snake_case
from heddle.events.envelopes import trusted_event, trusted_metadata

__all__ = ["Journal", "JournalStats"]

logger = logging.getLogger(__name__)

MAX_BATCHES_IN_FLIGHT = 8
"""Concurrent append_batch calls; each already pipelines its events (one per aggregate in
flight), so a few are enough to keep a long chain (a job's task list) from holding the rest."""
MAX_BATCH_EVENTS = 4000
"""Most events in one append_batch (bounds the time one batch holds its aggregates)."""
HOLD_QUIET_S = 0.005
"""Appends wait this long after the last `hold()` (a gateway submission). In a burst they
come ~1.7 ms apart (benchmarks/bench_gateway.py, 36 streams); 20 ms took 1.9 ms more off the
added p50 there but added 3 ms at p99 and 0.5 ms one stream at a time (the appends then met
the first token on its way back; docs/gateway.md)."""
HOLD_MOST_S = 0.1
"""Longest wait of queued events for a `hold()` (durability, and with it every answer and
report ack that waits for it, comes at most this much later)."""
RETRY_BACKOFF_S = (0.05, 0.1, 0.2, 0.5, 1.0)
"""Waits between retries of failed appends (the server restarting takes ~0.1-1 s)."""

Key = tuple[str, str]


@dataclass(slots=True)
class JournalStats:
    """Counters for `heddle status` and the benchmark."""

    appended: int = 0
    retried: int = 0
    batches: int = 0
    failures: dict[str, int] = field(default_factory=dict)


def _new_id() -> str:
    return os.urandom(16).hex()


class Journal:
    """In-memory aggregates in front of an EventLog, with batched, ordered, retried appends."""

    def __init__(
        self,
        log: EventLog,
        *,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = _new_id,
    ) -> None:
        self.log = log
        self.tasks: dict[str, TaskAggregate] = {}
        self.jobs: dict[str, JobAggregate] = {}
        self.stats = JournalStats()
        self._clock = clock
        self._new_id = new_id
        self._queue: deque[EventEnvelope] = deque()
        self._in_flight: set[Key] = set()
        self._batches = 0
        self._waiters: dict[str, list[_Countdown]] = {}
        self._wake = asyncio.Event()
        self._backoff = 0
        self._runner: asyncio.Task | None = None
        self._hold_until = 0.0  # the loop's time until which appends wait (`hold`)
        self.sending: Callable[[list[EventEnvelope]], None] | None = None
        """Told of each batch as it leaves (the stage instants of the loop-stats debug mode)."""

    # -- deciding and recording -------------------------------------------------------------
    def task(self, task_id: str) -> TaskAggregate:
        aggregate = self.tasks.get(task_id)
        if aggregate is None:
            aggregate = self.tasks[task_id] = TaskAggregate(task_id)
        return aggregate

    def job(self, job_id: str) -> JobAggregate:
        aggregate = self.jobs.get(job_id)
        if aggregate is None:
            aggregate = self.jobs[job_id] = JobAggregate(job_id)
        return aggregate

    def record(
        self,
        aggregate: Aggregate,
        command_type: str,
        payload: dict[str, Any],
        issued_by: str,
        extra: dict[str, Any] | None = None,
        correlation_id: str | None = None,
    ) -> EventEnvelope:
        """Decide ``command_type`` on ``aggregate`` (CommandRejected if its state machine
        forbids it), apply the event now and queue it for the log. ``extra`` adds data the
        event carries beyond what the aggregate needs (a result, timings, the node)."""
        handler = getattr(aggregate, "handle_" + snake_case(command_type))
        command_id = self._new_id()
        metadata = trusted_metadata(issued_by, command_id, correlation_id)
        event_type, event_payload = handler(payload, metadata)
        if extra:
            event_payload = {**event_payload, **extra}
        envelope = trusted_event(
            event_id=command_id,
            event_type=event_type,
            aggregate_type=aggregate.aggregate_type,
            aggregate_id=aggregate.aggregate_id,
            aggregate_version=aggregate.aggregate_version + 1,
            payload=event_payload,
            metadata=metadata,
            occurred_at_unix_s=self._clock(),
        )
        aggregate.apply(envelope)
        self._queue.append(envelope)
        self._wake.set()
        return envelope

    def hold(self) -> None:
        """Let queued appends wait HOLD_QUIET_S from now (at most HOLD_MOST_S in all): a
        submission came whose answer does not wait for its events."""
        self._hold_until = asyncio.get_running_loop().time() + HOLD_QUIET_S

    def forget(self, aggregate: Aggregate) -> None:
        """Drop an aggregate that ended from memory (its events stay in the log)."""
        if isinstance(aggregate, JobAggregate):
            self.jobs.pop(aggregate.aggregate_id, None)
        else:
            self.tasks.pop(aggregate.aggregate_id, None)

    async def recall_job(self, job_id: str) -> JobAggregate:
        """The job, rebuilt from the log if it is not in memory (a job that ended long ago
        and is submitted to again); a job the log does not know is new."""
        job = self.jobs.get(job_id)
        if job is not None:
            return job
        job = JobAggregate(job_id)
        if await self.log.current_version(JobAggregate.aggregate_type, job_id):
            async for envelope in self.log.load(JobAggregate.aggregate_type, job_id):
                job.apply(envelope)
        return self.jobs.setdefault(job_id, job)  # another caller may have made it meanwhile

    def replay(self, envelope: EventEnvelope) -> None:
        """Apply an event read back from the log (restart); nothing is appended."""
        if envelope.aggregate_type == TaskAggregate.aggregate_type:
            aggregate: Aggregate = self.task(envelope.aggregate_id)
        elif envelope.aggregate_type == JobAggregate.aggregate_type:
            aggregate = self.job(envelope.aggregate_id)
        else:
            return
        if envelope.aggregate_version <= aggregate.aggregate_version:
            return  # already applied (a replay overlapping the live tail)
        aggregate.apply(envelope)

    def durable(self, envelopes: Iterable[EventEnvelope]) -> asyncio.Future[None]:
        """A future done when every one of ``envelopes`` is in the log."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        countdown = _Countdown(future)
        for envelope in envelopes:
            countdown.left += 1
            self._waiters.setdefault(envelope.event_id, []).append(countdown)
        if countdown.left == 0:
            future.set_result(None)
        return future

    def pending(self) -> int:
        """Events recorded but not yet known to be in the log."""
        return len(self._queue) + sum(1 for _ in self._in_flight)

    # -- the writer ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self._run(), name="journal")

    async def stop(self, flush_timeout_s: float = 5.0) -> None:
        """Flush what is queued (bounded), then stop the writer."""
        deadline = time.monotonic() + flush_timeout_s
        while (self._queue or self._in_flight) and time.monotonic() < deadline:
            self._wake.set()
            await asyncio.sleep(0.01)  # polling a bounded shutdown, not synchronising a test
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            until = loop.time() + HOLD_MOST_S
            while (left := min(self._hold_until, until) - loop.time()) > 0:
                await asyncio.sleep(left)  # held (`hold`): a wait for its end, not synchronisation
            self._wake.clear()
            while self._queue and self._batches < MAX_BATCHES_IN_FLIGHT:
                batch = self._take()
                if not batch:
                    break
                self._batches += 1
                if self.sending is not None:
                    self.sending(batch)
                asyncio.get_running_loop().create_task(self._append(batch))

    def _take(self) -> list[EventEnvelope]:
        """Queued events of aggregates with nothing in flight, in queue order."""
        batch: list[EventEnvelope] = []
        held: deque[EventEnvelope] = deque()
        keys: set[Key] = set()
        busy = self._in_flight
        while self._queue and len(batch) < MAX_BATCH_EVENTS:
            envelope = self._queue.popleft()
            key = (envelope.aggregate_type, envelope.aggregate_id)
            if key in busy:
                held.append(envelope)
                continue
            keys.add(key)
            batch.append(envelope)
        self._in_flight = busy | keys if keys else busy
        held.extend(self._queue)
        self._queue = held
        return batch

    async def _append(self, batch: list[EventEnvelope]) -> None:
        failed: list[EventEnvelope] = []
        early: set[int] = set()  # items already known to be in the log
        left = Counter((e.aggregate_type, e.aggregate_id) for e in batch)  # events not yet in

        def appended(index: int) -> None:
            early.add(index)
            envelope = batch[index]
            self._settled(envelope)
            key = (envelope.aggregate_type, envelope.aggregate_id)
            left[key] -= 1
            if not left[key]:  # all its events here are in: its next ones may leave now
                del left[key]
                self._in_flight.discard(key)
                self._wake.set()

        try:
            results = await self.log.append_batch([(e, None) for e in batch], appended)
        except Exception as exc:  # noqa: BLE001 - the connection is down: retry all of it
            results = [exc] * len(batch)
        for index, (envelope, error) in enumerate(zip(batch, results, strict=True)):
            if index in early:
                continue
            if error is None or await self._already_in_log(envelope, error):
                self._settled(envelope)
            else:
                failed.append(envelope)
                name = type(error).__name__
                self.stats.failures[name] = self.stats.failures.get(name, 0) + 1
        self.stats.batches += 1
        if failed:
            self.stats.retried += len(failed)
            delay = RETRY_BACKOFF_S[min(self._backoff, len(RETRY_BACKOFF_S) - 1)]
            self._backoff += 1
            logger.warning("%d event appends failed; retrying in %.2f s", len(failed), delay)
            await asyncio.sleep(delay)  # back-off before a retry, not synchronisation
            self._queue.extendleft(reversed(failed))  # ahead of their aggregates' later events
        else:
            self._backoff = 0
        for key in left:  # not released above (one of its events failed or the batch did)
            self._in_flight.discard(key)
        self._batches -= 1
        self._wake.set()

    async def _already_in_log(self, envelope: EventEnvelope, error: Exception) -> bool:
        """A lost CAS on our own retry means the first try was stored (its ack was lost):
        this process is the only writer of these aggregates."""
        if not isinstance(error, ConcurrencyError):
            return False
        try:
            version = await self.log.current_version(
                envelope.aggregate_type, envelope.aggregate_id
            )
        except Exception:  # noqa: BLE001 - cannot tell now: retry later
            return False
        return version >= envelope.aggregate_version

    def _settled(self, envelope: EventEnvelope) -> None:
        self.stats.appended += 1
        for countdown in self._waiters.pop(envelope.event_id, ()):
            countdown.done_one()


@dataclass(slots=True)
class _Countdown:
    future: asyncio.Future[None]
    left: int = 0

    def done_one(self) -> None:
        self.left -= 1
        if self.left == 0 and not self.future.done():
            self.future.set_result(None)
