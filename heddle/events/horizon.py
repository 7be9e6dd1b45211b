"""P3 FinalizationHorizonProjector: finalize interval aggregates that go quiet.

One asyncio.Task per active interval aggregate. Any event re-arms its timer for the class's
HORIZON_TIMEOUT_SECONDS (the horizon counts from the latest activity); InternalFinalized
cancels it. On expiry P3 claims the finalization lease and sends InternalFinalize as
``framework:horizon``. shutdown() cancels every timer. Timers live in memory: a restarted
process re-arms them as events arrive.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging

from heddle.events.aggregate import INTERNAL_FINALIZE, INTERNAL_FINALIZED, IntervalAggregate
from heddle.events.dispatcher import Projector
from heddle.events.envelopes import CommandMessage, EventEnvelope, Metadata
from heddle.events.kv import KeyValueStore
from heddle.events.lease import LEASE_TTL_SECONDS
from heddle.events.projectors import CommandSink, send_finalize
from heddle.events.registry import AGGREGATE_REGISTRY

__all__ = ["FinalizationHorizonProjector", "horizon_command_id"]

logger = logging.getLogger(__name__)


def horizon_command_id(aggregate_type: str, aggregate_id: str, last_event_id: str) -> str:
    """sha256-derived id: one horizon finalization per (aggregate, last event seen)."""
    raw = f"horizon\x1f{aggregate_type}\x1f{aggregate_id}\x1f{last_event_id}".encode()
    return f"horizon-{hashlib.sha256(raw).hexdigest()[:32]}"


class FinalizationHorizonProjector(Projector):
    """P3: a timer per active interval aggregate."""

    name = "horizon"
    issued_by = "framework:horizon"

    def __init__(
        self,
        sink: CommandSink,
        *,
        kv: KeyValueStore | None = None,
        lease_ttl_s: int = LEASE_TTL_SECONDS,
    ) -> None:
        self._sink = sink
        self._kv = kv
        self._lease_ttl_s = lease_ttl_s
        self._timers: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.finalized: list[tuple[str, str]] = []
        """Aggregates this projector finalized, in order (for audit and tests)."""

    @property
    def armed(self) -> frozenset[tuple[str, str]]:
        """(type, id) of every aggregate with a running timer."""
        return frozenset(self._timers)

    async def project(self, envelope: EventEnvelope) -> None:
        cls = AGGREGATE_REGISTRY.get(envelope.aggregate_type)
        if cls is None or not issubclass(cls, IntervalAggregate):
            return
        key = (envelope.aggregate_type, envelope.aggregate_id)
        previous = self._timers.pop(key, None)
        if previous is not None:
            previous.cancel()
        if envelope.event_type == INTERNAL_FINALIZED:
            return
        self._timers[key] = asyncio.create_task(
            self._expire(key, envelope, cls.HORIZON_TIMEOUT_SECONDS),
            name=f"heddle-horizon-{key[0]}-{key[1]}",
        )

    async def _expire(
        self, key: tuple[str, str], envelope: EventEnvelope, timeout_s: float
    ) -> None:
        await asyncio.sleep(timeout_s)
        # From here on this timer is no longer "armed": the InternalFinalized it causes must
        # not cancel the task that is sending it.
        if self._timers.get(key) is asyncio.current_task():
            del self._timers[key]
        cmd = CommandMessage(
            command_id=horizon_command_id(key[0], key[1], envelope.event_id),
            command_type=INTERNAL_FINALIZE,
            aggregate_type=key[0],
            aggregate_id=key[1],
            payload={"reason": f"no activity for {timeout_s:g} s"},
            metadata=Metadata(
                issued_by=self.issued_by,
                command_id=envelope.metadata.command_id,
                correlation_id=envelope.metadata.correlation_id,
            ),
        )
        try:
            sent = await send_finalize(
                self._sink,
                cmd,
                kv=self._kv,
                projector_name=self.name,
                lease_ttl_s=self._lease_ttl_s,
            )
        except Exception:
            logger.exception("horizon finalization of %s/%s failed", *key)
            return
        if sent:
            self.finalized.append(key)

    async def shutdown(self) -> None:
        timers = list(self._timers.values())
        self._timers.clear()
        for task in timers:
            task.cancel()
        for task in timers:
            try:
                await task
            except asyncio.CancelledError:
                pass
