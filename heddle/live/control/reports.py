"""What agents tell the control plane: capacity reports, task reports, goodbyes.

Task reports come from a JetStream stream through a durable consumer, so a restarted
control plane misses none; each is acknowledged once the events it caused are in the log.
A report is applied at most once per (task, attempt, kind) by the task's state machine, and
a task is recorded completed exactly once: the first successful finish of any of its
attempts wins, later ones are ignored. What a report says its call cost is charged to the
task's budget account once per attempt (budget.py), whichever attempt it is.
Garbage is counted, logged and acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from nats.js import api

from heddle.events import TaskStatus
from heddle.live import protocol as wire
from heddle.live.control.budget import billed_usd
from heddle.live.control.plane import SCHEDULER, bridge
from heddle.live.control.streams import REPORT_CONSUMER, ensure_report_stream
from heddle.models import NodeId

if TYPE_CHECKING:
    from heddle.live.control.plane import ControlPlane

__all__ = ["subscribe"]

logger = logging.getLogger(__name__)

REPORT_ACK_WAIT_S = 30.0
"""A report not acknowledged this long after delivery is delivered again (idempotent)."""
MAX_ACK_PENDING = 100_000
"""Reports delivered and not yet acknowledged (waiting for their events to be durable)."""


async def subscribe(plane: ControlPlane) -> list[Any]:
    handler = _Reports(plane)
    nc = plane.nc
    await ensure_report_stream(plane.js)
    config = api.ConsumerConfig(
        ack_policy=api.AckPolicy.EXPLICIT,
        ack_wait=REPORT_ACK_WAIT_S,
        max_ack_pending=MAX_ACK_PENDING,
        deliver_policy=api.DeliverPolicy.ALL,
    )
    return [
        await nc.subscribe(wire.all_nodes(wire.CAPACITY), cb=handler.on_capacity),
        await nc.subscribe(wire.all_nodes(wire.LEFT), cb=handler.on_left),
        await plane.js.subscribe(
            wire.all_nodes(wire.REPORT).replace(".*", ".>"),
            durable=REPORT_CONSUMER,
            stream=wire.REPORT_STREAM,
            cb=handler.on_report,
            manual_ack=True,
            config=config,
        ),
    ]


class _Reports:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    def refuse(self, label: str, exc: Exception) -> None:
        self.plane.refused[label] += 1
        logger.warning("refused a %s message (%d so far): %s", label, self.plane.refused[label], exc)

    # -- capacity and goodbyes -----------------------------------------------------------------
    async def on_capacity(self, msg: Any) -> None:
        plane = self.plane
        try:
            report = wire.decode(msg.data, wire.CapacityReport)
            if msg.subject != wire.subject(wire.CAPACITY, node=report.node_id):
                raise wire.ProtocolError("node_id", f"{report.node_id!r} reported on {msg.subject}")
            joined = plane.fleet.observe(report, plane.now())
        except wire.ProtocolError as exc:
            self.refuse("capacity", exc)
            return
        if joined != "seen":
            logger.info("node %s %s (%d slots)", report.node_id, joined, report.slots)
            self.reconcile(report)
            plane.core.node_joined(plane.now(), NodeId(report.node_id))

    def reconcile(self, report: wire.CapacityReport) -> None:
        """After a restart: attempts this node no longer runs are lost; those it runs hold slots."""
        plane = self.plane
        running = {(ref.task_id, ref.attempt) for ref in report.running}
        for live in [t for t in plane.tasks.values() if t.recovering and t.node == report.node_id]:
            live.recovering = False
            if (live.key, live.attempt) in running and live.offer:
                plane.fleet.relayed(NodeId(live.node), live.key, live.attempt)
            elif (live.key, live.attempt) in running:
                plane.fleet.assigned(NodeId(live.node), live.key, live.attempt)
            else:
                plane.attempt_lost(live.key, live.attempt, f"node {live.node} no longer runs it", cancel=False)

    async def on_left(self, msg: Any) -> None:
        plane = self.plane
        try:
            left = wire.decode(msg.data, wire.Left)
            if NodeId(left.node_id) not in plane.fleet.nodes:
                raise wire.ProtocolError("node_id", f"unknown node {left.node_id!r}")
        except wire.ProtocolError as exc:
            self.refuse("left", exc)
            return
        plane.node_gone(NodeId(left.node_id), f"left ({left.reason})", left=True,
                        abandoned=frozenset((ref.task_id, ref.attempt) for ref in left.abandoned),
                        goodbye=(left.seq, left.sent_at))

    # -- task reports ----------------------------------------------------------------------------
    async def on_report(self, msg: Any) -> None:
        try:
            message = wire.decode(msg.data, (wire.TaskStarted, wire.TaskFinished, wire.TaskReports))
        except wire.ProtocolError as exc:
            self.refuse("report", exc)
            await self.ack(msg)
            return
        reports = message.reports if isinstance(message, wire.TaskReports) else (message,)
        envelopes = [envelope for report in reports for envelope in self.apply(report)]
        if not envelopes:
            await self.ack(msg)
        else:
            durable = self.plane.journal.durable(envelopes)
            durable.add_done_callback(lambda _: asyncio.ensure_future(self.ack(msg)))
        # nats-py hands a subscription's queued messages over back to back, without a turn of
        # the loop between them: a burst of reports held submissions and acks waiting behind it
        await asyncio.sleep(0)

    def apply(self, report: wire.TaskStarted | wire.TaskFinished) -> list[Any]:
        """Take one report; returns the events it caused (to be durable before the ack)."""
        plane = self.plane
        live = plane.tasks.get(report.task_id)
        if live is None:
            if plane.window.get(report.task_id) is None:  # an ended task's late report is no news
                self.refuse("report", wire.ProtocolError("task_id", f"unknown task {report.task_id!r}"))
            return []
        return self.started(live, report) if isinstance(report, wire.TaskStarted) else self.finished(live, report)

    @staticmethod
    async def ack(msg: Any) -> None:
        with contextlib.suppress(Exception):  # a lost ack means one idempotent redelivery
            await msg.ack()

    def catch_up(self, live: Any, report: Any, issued_by: str) -> list[Any]:
        """Bring the task to STARTED for this report's attempt (its TaskPlaced may be missing
        after a crash, or the report overtook it); returns the events recorded."""
        plane, out = self.plane, []
        aggregate = plane.journal.task(live.key)
        if aggregate.status == TaskStatus.SUBMITTED:
            out.append(plane.record(live.key, "PlaceTask", {"target": report.node_id}, SCHEDULER,
                                    attempt=report.attempt))
        if aggregate.status == TaskStatus.PLACED:
            out.append(plane.record(live.key, "StartTask", {}, issued_by, node=report.node_id,
                                    attempt=report.attempt, started_at=report.timings.started_at))
        return [e for e in out if e is not None]

    def started(self, live: Any, report: wire.TaskStarted) -> list[Any]:
        if live.terminal or not _current(live, report):
            return []  # an attempt declared lost still running somewhere: its finish is handled below
        return self.catch_up(live, report, bridge(live.spec.executor.kind))

    def finished(self, live: Any, report: wire.TaskFinished) -> list[Any]:
        plane = self.plane
        plane.ledger.settle(live.key, report.attempt, live.task.account, billed_usd(report.result))
        if live.terminal:
            return []  # exactly once: a re-run's second finish changes nothing
        current = _current(live, report)
        issued_by = bridge(live.spec.executor.kind)
        if report.outcome == "ok":  # whichever attempt it is, while one runs
            if not live.node:
                # An attempt declared lost while its retry waits in the core: the retry will
                # run (the log holds no placement to complete it from, and the core keeps it).
                return []
            out = self.catch_up(live, report, issued_by)
            done = plane.record(
                live.key, "CompleteTask", {}, issued_by, result=report.result, node=report.node_id,
                attempt=report.attempt, timings=report.timings.model_dump(), **plane.charged(live),
            )
            live.terminal, live.result = True, report.result
            if not current and plane.fleet.usable(live.node):
                plane.send_control(live.node, "cancel", task_id=live.key, attempt=live.attempt,
                                   reason="another attempt completed")
            plane.ended(live, ok=True)
            return out + ([done] if done is not None else [])
        if not current:
            return []  # an attempt declared lost failing: its retry carries on
        if report.outcome == "cancelled":
            plane.attempt_lost(live.key, live.attempt, f"cancelled on {report.node_id}: {report.reason}",
                               cancel=False)
            return []
        reason = f"{report.reason or 'failed'} (on {report.node_id}, attempt {report.attempt})"
        live.terminal = True
        failed = plane.record(live.key, "FailTask", {"reason": reason, "retryable": False}, issued_by,
                              timings=report.timings.model_dump(), **plane.charged(live))
        plane.ended(live, ok=False, reason=reason)
        return [failed] if failed is not None else []


def _current(live: Any, report: wire.TaskStarted | wire.TaskFinished) -> bool:
    """Is ``report`` about the attempt out there now? Not so for an attempt declared lost,
    even while its retry waits with the same attempt number (``live.node`` is empty then)."""
    return report.attempt == live.attempt and bool(live.node)
