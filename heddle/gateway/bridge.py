"""The gateway's side of NATS: submit a request's task to the control plane (same core, same
`place()`), follow it, cancel it, and know which models the fleet serves now.

Wildcard subscriptions serve every request: the agents' token chunks
(``heddle.v1.tokens.<node>.<task>``, a chunk naming another node than its subject's refused),
the task lifecycle events a request acts on as the control plane appends them to JetStream
(`FOLLOWED_EVENTS`, read as plain messages: nothing is consumed; the others are not sent here
at all), the capacity reports (resident models, for /v1/models) and the agents' requests for a
task's images (`heddle.gateway.images.ImageDesk`). A message is routed by the task id in its
subject and decoded only when a request here follows that task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import nats
import nats.errors
from nats.aio.client import Client as NATS

from heddle.events import EventEnvelope
from heddle.events.errors import PublishPermissionError
from heddle.events.jetstream import flush_interest
from heddle.events.jetstream_acks import AckRouter, publish_request, write_pending
from heddle.gateway.errors import GatewayError
from heddle.gateway.images import ImageDesk
from heddle.live import protocol as wire
from heddle.live.control.messages import (
    CancelRequest,
    Reply,
    SubmitRequest,
    SubmitTask,
    decode_reply,
    encode_message,
)
from heddle.live.control.stalls import LoopStats

__all__ = ["Bridge", "Follow"]

log = logging.getLogger("heddle.gateway")

SUBMIT_TIMEOUT_S = 10.0
"""A submission waits for its first placement (`SubmitRequest.early_placement`: not for its
events to be in the log)."""
FOLLOWED_EVENTS = ("TaskPlaced", "TaskFailed", "TaskCompleted", "TaskRejected", "TaskCancelled")
"""The lifecycle events a request acts on (`TaskRun`); subscribed to by type (subjects of
`heddle.events.jetstream.event_subject`), so the rest (submitted, started, progress) never
reach the gateway."""
FRESH_REPORT_S = 30.0
"""A node whose last capacity report is older than this is not counted as serving anything."""
REDECODE_S = 1.0
"""A node's capacity reports are read as they come at most once in this long (what it serves,
for /v1/models and a name without a quant). Each is a full decode (~0.5 ms); nodes busy with
streams send ~4 a second each: 2% of the gateway's CPU at half of saturation. A report that
comes sooner is kept unread and read when what the fleet serves is asked for (`Bridge.served`),
so a listing never misses a model loaded since the last report read."""


class Follow:
    """What arrives for one followed task, in arrival order: ``("chunk", TokenChunk)`` and
    ``("event", EventEnvelope)`` items."""

    __slots__ = ("items", "task_id")

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self.items: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()


class Bridge:
    def __init__(self, nc: NATS, sender: str = "gateway") -> None:
        self.nc = nc
        self.sender = sender
        self.seq = 0
        self.follows: dict[str, Follow] = {}
        self.reports: dict[str, tuple[float, wire.CapacityReport]] = {}
        self.unread: dict[str, tuple[float, bytes, str]] = {}  # node -> a later report (arrival, data, subject)
        self.refused = 0
        self.stats: LoopStats | None = None  # the HEDDLE_LOOP_STATS debug mode: stage instants
        self._subs: list[Any] = []
        self._stale: set[str] = set()  # nodes said to be not counted for want of a report
        self._tasks: set[asyncio.Task] = set()
        self._replies = AckRouter(nc, SUBMIT_TIMEOUT_S)  # the control plane's answers
        self.images = ImageDesk(nc)  # the images of the running requests, for their agents

    @classmethod
    async def connect(cls, url: str, sender: str = "gateway", auth: dict | None = None) -> Bridge:
        """``auth``: ``nats.connect`` arguments that log in (a cluster's gateway member)."""
        nc = await nats.connect(url, name=sender, max_reconnect_attempts=-1,
                                reconnect_time_wait=0.2, connect_timeout=5, **(auth or {}))
        bridge = cls(nc, sender)
        await bridge.open()
        return bridge

    async def open(self) -> None:
        self._subs = [
            await self.nc.subscribe(wire.subject(wire.TOKENS, node="*", task="*"), cb=self._on_chunk),
            *[await self.nc.subscribe(f"heddle.events.Task.*.{event}", cb=self._on_event)
              for event in FOLLOWED_EVENTS],
            await self.nc.subscribe(wire.all_nodes(wire.CAPACITY), cb=self._on_capacity),
            await self.nc.subscribe(wire.subject(wire.IMAGES, node="*", task="*"), cb=self.images.on_request),
        ]
        await self._replies.start()
        await flush_interest(self.nc)  # the server has our interest before any request is sent

    async def close(self) -> None:
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task
        with contextlib.suppress(Exception):
            await self.nc.drain()

    # -- in ------------------------------------------------------------------------------------
    async def _on_chunk(self, msg: Any) -> None:
        _, _, _, node, task = msg.subject.split(".", 4)
        follow = self.follows.get(task)
        if follow is None:
            return
        try:
            chunk = wire.decode_one(msg.data, wire.TokenChunk)
        except wire.ProtocolError as exc:
            self._refuse(msg.subject, exc)
            return
        if (chunk.node_id, chunk.task_id) != (node, task):
            self._refuse(msg.subject, ValueError(
                f"node_id, task_id: a chunk of {chunk.node_id}/{chunk.task_id} on another's subject"))
            return
        if self.stats is not None and chunk.index == 0:
            self.stats.stamp(task, "g_chunk_in")
        follow.items.put_nowait(("chunk", chunk))

    async def _on_event(self, msg: Any) -> None:
        parts = msg.subject.split(".")
        follow = self.follows.get(parts[3]) if len(parts) == 5 else None
        if follow is None:
            return
        try:
            follow.items.put_nowait(("event", EventEnvelope.model_validate_json(msg.data)))
        except ValueError as exc:
            self._refuse(msg.subject, exc)

    async def _on_capacity(self, msg: Any) -> None:
        now = time.monotonic()
        node = msg.subject.rpartition(".")[2]
        last = self.reports.get(node)
        if last is not None and now - last[0] < REDECODE_S:
            # a busy node reports its slots ~4 times a second: the models change rarely, so the
            # report is read only if what the fleet serves is asked for before the next one
            self.unread[node] = (now, msg.data, msg.subject)
            return
        self.unread.pop(node, None)
        self._read_report(now, msg.data, msg.subject)

    def _read_report(self, arrived: float, data: bytes, subject: str) -> None:
        try:
            report = wire.decode(data, wire.CapacityReport)
        except wire.ProtocolError as exc:
            self._refuse(subject, exc)
            return
        before = self.reports.get(report.node_id)
        self.reports[report.node_id] = (arrived, report)
        self._stale.discard(report.node_id)
        serves = _serves(report)
        if before is None or _serves(before[1]) != serves:  # rare: a model loaded, a node came or went
            log.info("node %s serves %s", report.node_id,
                     ", ".join(f"{m}:{q}" for m, q in serves) or f"nothing ({_why_nothing(report)})")

    def _refuse(self, subject: str, exc: Exception) -> None:
        self.refused += 1
        log.warning("refused a message on %s (%d so far): %s", subject, self.refused, exc)

    def served(self, latest: bool = True) -> dict[tuple[str, str], list[str]]:
        """(model, quant) resident on active nodes that reported lately -> those nodes, as of
        each node's latest report (`latest` False: of the reports read, up to REDECODE_S older,
        for a request's quant, where a decode per report would cost the gateway ~2% of its CPU)."""
        while latest and self.unread:
            self._read_report(*self.unread.popitem()[1])
        out: dict[tuple[str, str], list[str]] = {}
        now = time.monotonic()
        for node_id, (seen, report) in sorted(self.reports.items()):
            if now - seen > FRESH_REPORT_S:
                if node_id not in self._stale:  # said once, until it reports again
                    self._stale.add(node_id)
                    log.info("node %s: no capacity report read for %.0f s: not counted as "
                             "serving anything", node_id, now - seen)
                continue
            for model_quant in _serves(report):
                out.setdefault(model_quant, []).append(node_id)
        return out

    # -- out -----------------------------------------------------------------------------------
    def _fields(self) -> dict[str, Any]:
        self.seq += 1
        return {"sender": self.sender, "seq": self.seq, "sent_at": time.time()}

    def stamp(self, task_id: str, stage: str, at: float | None = None) -> None:
        if self.stats is not None:
            self.stats.stamp(task_id, stage, at)

    def follow(self, task_id: str) -> Follow:
        """Start collecting what arrives for ``task_id`` (before submitting it: nothing missed)."""
        follow = self.follows[task_id] = Follow(task_id)
        return follow

    def unfollow(self, task_id: str) -> None:
        self.follows.pop(task_id, None)

    async def submit(self, job_id: str, owner: str, item: SubmitTask) -> dict[str, Any]:
        """Submit one task of a new job (`new_job_id`); returns its placement
        (`heddle.live.control.waiting.placement`)."""
        request = SubmitRequest(**self._fields(), job_id=job_id, owner=owner, source="gateway",
                                tasks=[item], placement=True, fresh_job=True,
                                early_placement=True)
        data = encode_message(request)
        if len(data) > wire.MAX_MESSAGE_BYTES:
            raise GatewayError(413, f"the request is too large for the cluster: {len(data)} bytes "
                               f"as a task, at most {wire.MAX_MESSAGE_BYTES} fit in a message",
                               "request_too_large")
        self.stamp(item.task.id, "g_submit_sent")
        reply = await self._request(wire.SUBMIT, data)
        self.stamp(item.task.id, "g_placed")
        if not reply.ok:
            raise GatewayError(400, f"the control plane refused the task: {reply.error}",
                               "task_refused")
        return reply.detail["placement"][item.task.id]

    async def _request(self, subject: str, data: bytes) -> Reply:
        """The control plane's answer; the request is on the socket before this waits (not at
        the NATS client's next flush, a turn of the busy loop later)."""
        try:
            answer = await publish_request(self._replies, self.nc, subject, data)
            write_pending(self.nc)
            msg = await answer
        except nats.errors.NoRespondersError:
            raise GatewayError(503, "no control plane is listening (start one with `heddle up`)",
                               "no_control_plane") from None
        except (nats.errors.TimeoutError, nats.errors.ConnectionClosedError):
            raise GatewayError(503, f"the control plane did not answer within "
                               f"{SUBMIT_TIMEOUT_S:g} s", "control_plane_timeout") from None
        except PublishPermissionError as exc:  # the cluster's credentials do not let it ask
            raise GatewayError(503, str(exc), "no_control_plane") from None
        return decode_reply(msg.data, Reply)

    def cancel_soon(self, task_id: str, why: str) -> None:
        """Cancel the task in the background (from a request being torn down: the cancel must
        outlive it); a task that has already ended is left as it is."""
        log.info("cancelling %s: %s", task_id, why)
        task = asyncio.get_running_loop().create_task(self._cancel(task_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _cancel(self, task_id: str) -> None:
        request = CancelRequest(**self._fields(), task_id=task_id)
        with contextlib.suppress(GatewayError, wire.ProtocolError):
            await self._request(wire.CANCEL, encode_message(request))


def _serves(report: wire.CapacityReport) -> tuple[tuple[str, str], ...]:
    """The (model, quant) pairs a node's report offers (none unless it takes work)."""
    if report.status.value != "active":
        return ()
    return tuple(sorted((m.model, m.quant) for m in report.resident_models))


def _why_nothing(report: wire.CapacityReport) -> str:
    if report.status.value != "active":
        return report.status.value
    return "no model resident"
