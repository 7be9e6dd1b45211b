"""BatchAppend: the pipelined engine behind JetStreamEventLog.append_batch.

Each aggregate's events form a chain: the next one is published as soon as the previous
one's ack arrives (its CAS needs that stream sequence), and the chains of all aggregates
run at once, so a batch keeps up to one publish per aggregate in flight without waiting
for whole waves. A failure stops the rest of its chain only. Acks arrive through the
AckRouter as plain callbacks; one asyncio.Event wakes the loop for however many came in.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

import nats.errors
from nats.aio.msg import Msg

from heddle.events.envelopes import EventEnvelope
from heddle.events.errors import ConcurrencyError
from heddle.events.jetstream_acks import AckRouter

__all__ = ["BatchAppend"]

Prepare = Callable[[EventEnvelope, "int | None"], Awaitable[tuple[str, bytes, dict[str, str]]]]
"""(envelope, expected_version) -> (subject, data, headers); raises ConcurrencyError."""
Settle = Callable[[EventEnvelope, "Msg | Exception"], None]
"""Records an ack, or raises what it says (ConcurrencyError for a lost CAS, the
PublishPermissionError the router hands over for a refused publish)."""


class BatchAppend:
    """One JetStreamEventLog.append_batch call: per-aggregate chains of events, acks routed
    by the AckRouter into ``acks``, and deadlines kept in send order (so the oldest
    outstanding publish is always at the front)."""

    def __init__(
        self,
        items: Sequence[tuple[EventEnvelope, int | None]],
        router: AckRouter,
        ack_timeout_s: float,
        prepare: Prepare,
        settle: Settle,
        appended: Callable[[int], None] | None = None,
    ) -> None:
        self.items = items
        self.appended = appended
        self.router = router
        self.ack_timeout_s = ack_timeout_s
        self.prepare = prepare
        self.settle = settle
        self.results: list[Exception | None] = [None] * len(items)
        self.outstanding: dict[int, str] = {}  # item index -> ack token
        self.deadlines: deque[tuple[float, int]] = deque()  # (deadline, index), send order
        self.acks: deque[tuple[int, Msg | Exception]] = deque()
        self.woken = asyncio.Event()

    def on_ack(self, index: int, msg: Msg | Exception) -> None:
        self.acks.append((index, msg))
        self.woken.set()

    async def run(self, chains: dict[tuple[str, str], deque[int]]) -> list[Exception | None]:
        try:
            for chain in chains.values():
                await self.send_next(chain)
            while self.outstanding:
                if not self.acks:
                    await self.wait_or_expire(chains)
                while self.acks:
                    index, msg = self.acks.popleft()
                    if self.outstanding.pop(index, None) is None:
                        continue  # already timed out
                    envelope = self.items[index][0]
                    try:
                        self.settle(envelope, msg)
                    except Exception as exc:  # noqa: BLE001 - reported per item, as documented
                        self.fail(chains, index, exc)
                        continue
                    if self.appended is not None:
                        self.appended(index)
                    await self.send_next(chains[(envelope.aggregate_type, envelope.aggregate_id)])
        finally:  # cancelled or failed: leave no routes behind in the shared router
            for token in self.outstanding.values():
                self.router.forget(token)
        return self.results

    async def send_next(self, chain: deque[int]) -> None:
        """Publish the chain's next event; if it cannot win its CAS, fail it and the rest."""
        if not chain:
            return
        index = chain.popleft()
        envelope, expected_version = self.items[index]
        try:
            subject, data, headers = await self.prepare(envelope, expected_version)
        except ConcurrencyError as exc:
            self.results[index] = exc
            self.fail_rest(chain)
            return
        token, reply_subject = self.router.route(self.on_ack, index, subject)
        self.outstanding[index] = token
        self.deadlines.append((time.monotonic() + self.ack_timeout_s, index))
        await self.router.publish(subject, data, reply_subject, headers)

    async def wait_or_expire(self, chains: dict[tuple[str, str], deque[int]]) -> None:
        while self.deadlines and self.deadlines[0][1] not in self.outstanding:
            self.deadlines.popleft()  # settled already
        timeout = self.deadlines[0][0] - time.monotonic() if self.deadlines else None
        self.woken.clear()
        if timeout is None or timeout > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):  # not wait_for: 3.11's can lose a cancel
                    await self.woken.wait()
            if self.acks:
                return
        now = time.monotonic()
        while self.deadlines and self.deadlines[0][0] <= now:
            _, index = self.deadlines.popleft()
            token = self.outstanding.pop(index, None)
            if token is not None:
                self.router.forget(token)
                self.fail(chains, index, nats.errors.TimeoutError())

    def fail(self, chains: dict[tuple[str, str], deque[int]], index: int, exc: Exception) -> None:
        self.results[index] = exc
        envelope = self.items[index][0]
        self.fail_rest(chains[(envelope.aggregate_type, envelope.aggregate_id)])

    def fail_rest(self, chain: deque[int]) -> None:
        while chain:  # a failed event blocks the rest of its aggregate
            self.results[chain.popleft()] = ConcurrencyError(
                "an earlier event of this aggregate in the batch was not appended"
            )
