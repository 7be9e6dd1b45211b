"""Task reports that must reach the control plane: JetStream publishes, acked and retried.

A report is kept until JetStream acknowledges it, across disconnects and nats-server
restarts, in the order it was put. Each carries ``Nats-Msg-Id`` = (task, attempt, kind), so a
retry of a report that was stored but whose ack was lost is dropped by the stream's
duplicate window instead of stored twice. Publishes go through the events package's
`AckRouter` (one inbox subscription for every ack, no future or timer per report): the
agent's CPU per task is mostly these acks.

With a ``merge`` function, reports waiting together for the same subject go out as one
message (``merge`` builds it; the agent's makes a protocol `TaskReports`): under load one
publish and one ack carry many reports. Only reports never sent are merged; a message that
failed is retried exactly as it was, so the stream's duplicate window still recognises it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from nats.aio.client import Client
from nats.aio.msg import Msg

from heddle.events.jetstream_acks import AckRouter

__all__ = ["Outbox"]

BATCH = 256
"""Reports published before awaiting their acks (pipelining; an agent rarely has more)."""
ACK_TIMEOUT_S = 2.0
RETRY_BACKOFF_S = (0.05, 0.1, 0.2, 0.5, 1.0)
"""Waits between rounds with failures: short first (a lost ack), then ~1 s (server down)."""
MERGE_MAX_BYTES = 256 * 1024
"""Largest merged message (half the protocol's MAX_MESSAGE_BYTES: room for the envelope)."""
MERGE_MAX_ITEMS = 64
"""Most reports in one merged message (the protocol allows MAX_BATCH_REPORTS, 512): the
control plane takes a message in one go (decoding, recording, placing what the freed slots
allow: ~0.1 ms a report) and everything else it has to do waits meanwhile; 512 held it
~50 ms. A round of publishes still carries every report waiting."""
NO_ACK = "no acknowledgement"
NO_RESPONDERS = "503"
"""Status of the reply when no stream listens on the subject (the stream is not there yet)."""


@dataclass(slots=True)
class _Item:
    subject: str
    data: bytes
    msg_id: str
    sent: bool = False  # published at least once: retried as it is, never merged


Merge = Callable[[list[bytes], list[str]], tuple[bytes, str]]
"""(messages, their msg ids) -> (one message carrying them all, its msg id)."""


def ack_error(reply: Msg | Exception) -> str | None:
    """Why a publish was not stored, or None when the stream has it (a duplicate included)."""
    if isinstance(reply, Exception):
        return f"{type(reply).__name__}: {reply}"
    if reply.headers and reply.headers.get("Status") == NO_RESPONDERS:
        return "no stream for the report subject (yet)"
    if b'"error"' in reply.data:
        return reply.data.decode(errors="replace")
    return None


class _Round:
    """The acks of one batch: a plain callback per ack, one event when all are in."""

    def __init__(self, size: int) -> None:
        self.errors: list[str | None] = [NO_ACK] * size
        self.missing = size
        self.done = asyncio.Event()
        if size == 0:
            self.done.set()

    def on_ack(self, index: int, reply: Msg | Exception) -> None:
        self.errors[index] = ack_error(reply)
        self.missing -= 1
        if self.missing == 0:
            self.done.set()


class Outbox:
    """Ordered, at-least-once publisher of reports (the stream deduplicates)."""

    def __init__(self, nc: Client, log: logging.Logger, merge: Merge | None = None) -> None:
        self._router = AckRouter(nc, ACK_TIMEOUT_S)
        self._merge = merge
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
            async with asyncio.timeout(timeout_s):  # not wait_for: 3.11's can lose a cancel
                await self._empty.wait()
        except TimeoutError:
            return False
        return True

    async def _publish(self, batch: list[_Item]) -> list[str | None]:
        """Publish ``batch`` and wait for its acks (at most ACK_TIMEOUT_S); one error per item."""
        acks = _Round(len(batch))
        tokens = []
        try:
            await self._router.start()
            for index, item in enumerate(batch):
                token, reply = self._router.route(acks.on_ack, index, item.subject)
                tokens.append(token)
                await self._router.publish(item.subject, item.data, reply,
                                           {"Nats-Msg-Id": item.msg_id})
            async with asyncio.timeout(ACK_TIMEOUT_S):  # not wait_for: 3.11's can lose a cancel
                await acks.done.wait()
        except Exception as exc:  # noqa: BLE001 -- disconnected, timed out: those items are retried
            for index in range(len(batch)):
                if acks.errors[index] == NO_ACK:
                    acks.errors[index] = f"{NO_ACK} ({type(exc).__name__} {exc})".replace(" )", ")")
        finally:
            for token in tokens:
                self._router.forget(token)
        return acks.errors

    def _take(self) -> list[_Item]:
        """Up to BATCH messages from the front of the queue, fresh reports merged."""
        batch: list[_Item] = []
        pending = self._pending
        while pending and len(batch) < BATCH:
            first = pending.popleft()
            if self._merge is None or first.sent:
                batch.append(first)
                continue
            group, size = [first], len(first.data)
            while (pending and not pending[0].sent and pending[0].subject == first.subject
                   and len(group) < MERGE_MAX_ITEMS and size + len(pending[0].data) <= MERGE_MAX_BYTES):
                size += len(pending[0].data)
                group.append(pending.popleft())
            if len(group) == 1:
                batch.append(first)
            else:
                data, msg_id = self._merge([i.data for i in group], [i.msg_id for i in group])
                batch.append(_Item(first.subject, data, msg_id))
        return batch

    async def run(self) -> None:
        failures_in_a_row = 0
        while True:
            await self._wakeup.wait()
            batch = self._take()
            errors = await self._publish(batch)
            for item in batch:
                item.sent = True
            failed = [item for item, error in zip(batch, errors, strict=True) if error is not None]
            self.published += len(batch) - len(failed)
            if failed:
                self._pending.extendleft(reversed(failed))  # retried first, in their order
                self.retries += len(failed)
                self._log.warning("%d report(s) not acknowledged (%s); retrying", len(failed),
                                  next(e for e in errors if e is not None))
                await asyncio.sleep(RETRY_BACKOFF_S[min(failures_in_a_row, len(RETRY_BACKOFF_S) - 1)])
                failures_in_a_row += 1
                continue
            failures_in_a_row = 0
            if not self._pending:
                self._wakeup.clear()
                self._empty.set()
