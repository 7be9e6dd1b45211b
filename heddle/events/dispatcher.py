"""EventDispatcher: fan events of each started aggregate type out to projectors.

Projectors run serially in registration order (they may not assume parallel-safety); one
that raises is logged and the rest still run. ``start(type)`` returns only once the log
subscription is registered, so an event appended after it returns is never missed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from typing import ClassVar

from heddle.events import sli
from heddle.events.envelopes import EventEnvelope
from heddle.events.event_log import EventLog, EventSubscription

__all__ = ["EventDispatcher", "Projector"]

logger = logging.getLogger(__name__)


class Projector(ABC):
    """Reacts to events. project() must be idempotent: an event may be re-delivered."""

    name: ClassVar[str] = "projector"

    @abstractmethod
    async def project(self, envelope: EventEnvelope) -> None: ...

    async def shutdown(self) -> None:
        """Release timers or connections when the dispatcher stops."""


class EventDispatcher:
    """Subscribes to an EventLog per aggregate type and runs projectors on each event."""

    def __init__(self, event_log: EventLog) -> None:
        self._log = event_log
        self._projectors: list[Projector] = []
        self._subscriptions: dict[str, EventSubscription] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.dispatched = 0
        """Events fanned out so far (tests wait on it)."""

    @property
    def projectors(self) -> tuple[Projector, ...]:
        return tuple(self._projectors)

    def register(self, projector: Projector) -> None:
        self._projectors.append(projector)

    async def start(self, aggregate_type: str) -> None:
        """Begin dispatching events of ``aggregate_type``; ready when this returns."""
        if aggregate_type in self._tasks:
            return
        subscription = await self._log.subscribe(aggregate_type)
        self._subscriptions[aggregate_type] = subscription
        self._tasks[aggregate_type] = asyncio.create_task(
            self._run(subscription), name=f"heddle-dispatch-{aggregate_type}"
        )

    async def _run(self, subscription: EventSubscription) -> None:
        async for envelope in subscription:
            await self.dispatch(envelope)

    async def dispatch(self, envelope: EventEnvelope) -> None:
        """Run every projector on one event, in registration order."""
        started = time.perf_counter()
        for projector in self._projectors:
            try:
                await projector.project(envelope)
            except Exception:
                logger.exception(
                    "projector %s failed on %s %s/%s v%d (event %s); continuing",
                    projector.name,
                    envelope.event_type,
                    envelope.aggregate_type,
                    envelope.aggregate_id,
                    envelope.aggregate_version,
                    envelope.event_id,
                )
        self.dispatched += 1
        sli.observe(
            sli.DISPATCHER_FAN_OUT_DURATION,
            time.perf_counter() - started,
            {"aggregate_type": envelope.aggregate_type},
        )

    async def stop(self) -> None:
        """Stop every subscription and shut the projectors down (timers cancelled)."""
        for subscription in self._subscriptions.values():
            await subscription.close()
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._subscriptions.clear()
        self._tasks.clear()
        for projector in self._projectors:
            await projector.shutdown()
