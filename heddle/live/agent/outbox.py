"""Task reports that must reach the control plane: JetStream publishes, acked and retried.

A report is kept until JetStream acknowledges it, across disconnects and nats-server
restarts, in the order it was put. Each carries ``Nats-Msg-Id`` = (task, attempt, kind), so a
retry of a report that was stored but whose ack was lost is dropped by the stream's
duplicate window instead of stored twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass

from nats.js.client import JetStreamContext

__all__ = ["Outbox"]

BATCH = 64
"""Reports published concurrently before awaiting their acks (pipelining: ~5x the rate of
one-at-a-time acked publishes on loopback)."""
ACK_TIMEOUT_S = 2.0
RETRY_BACKOFF_S = (0.05, 0.1, 0.2, 0.5, 1.0)
"""Waits between rounds with failures: short first (a lost ack), then ~1 s (server down)."""


@dataclass(slots=True)
class _Item:
    subject: str
    data: bytes
    msg_id: str


class Outbox:
    """Ordered, at-least-once publisher of reports (the stream deduplicates)."""

    def __init__(self, js: JetStreamContext, log: logging.Logger) -> None:
        self._js = js
        self._log = log
        self._pending: deque[_Item] = deque()
        self._wakeup = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()
        self.published = 0
        self.retries = 0

    def __len__(self) -> int:
        return len(self._pending)

    def put(self, subject: str, data: bytes, msg_id: str) -> None:
        self._pending.append(_Item(subject, data, msg_id))
        self._empty.clear()
        self._wakeup.set()

    async def flushed(self, timeout_s: float) -> bool:
        """Wait until every report is acknowledged; False if ``timeout_s`` passed first."""
        try:
            await asyncio.wait_for(self._empty.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def run(self) -> None:
        failures_in_a_row = 0
        while True:
            await self._wakeup.wait()
            batch = [self._pending.popleft() for _ in range(min(BATCH, len(self._pending)))]
            results = await asyncio.gather(
                *(self._js.publish(i.subject, i.data, timeout=ACK_TIMEOUT_S,
                                   headers={"Nats-Msg-Id": i.msg_id}) for i in batch),
                return_exceptions=True,
            )
            failed = [i for i, r in zip(batch, results, strict=True) if isinstance(r, BaseException)]
            self.published += len(batch) - len(failed)
            if failed:
                self._pending.extendleft(reversed(failed))  # retried first, in their order
                self.retries += len(failed)
                error = next(r for r in results if isinstance(r, BaseException))
                self._log.warning("%d report(s) not acknowledged (%s: %s); retrying",
                                  len(failed), type(error).__name__, error)
                await asyncio.sleep(RETRY_BACKOFF_S[min(failures_in_a_row, len(RETRY_BACKOFF_S) - 1)])
                failures_in_a_row += 1
                continue
            failures_in_a_row = 0
            if not self._pending:
                self._wakeup.clear()
                self._empty.set()
