"""The control plane: the live body around the shared scheduling core.

It turns NATS messages into core events (submitted, completed, failed, lost, slot freed,
node joined/left, tick) and the core's decisions into work: each `start` is re-checked
against the fleet's privacy rules, recorded as TaskPlaced and sent to the node as a
request the agent must acknowledge; a cloud placement goes to an agent that can call the
offer, and its price is charged to the task's budget account (budget.py). Every change of a task is an event in the journal
(JetStream); a restarted control plane replays it and carries on (see recovery.py). It holds
no placement or queueing rule of its own: those are `place()`'s and the core's.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import nats.errors
from nats.aio.client import Client as NATS

from heddle.events import CommandRejected, EventEnvelope, JetStreamEventLog, TaskStatus
from heddle.events.jetstream import flush_interest
from heddle.events.jetstream_acks import AckRouter, publish_request, write_pending
from heddle.live import protocol as wire
from heddle.live.control.book import LiveTask, outcome
from heddle.live.control.budget import Ledger
from heddle.live.control.deciding import Decider, live_policy
from heddle.live.control.fleetview import FleetView
from heddle.live.control.journal import Journal
from heddle.live.control.privacy import PrivacyViolationError, check_cloud_privacy, check_privacy
from heddle.live.control.recorder import Recorder
from heddle.live.control.settings import ControlSettings
from heddle.live.control.stalls import LoopStats
from heddle.live.control.window import EndedTask, EndedWindow, small_result
from heddle.models import NodeId
from heddle.models.cost import api_cost_usd
from heddle.optimizer import CoreSettings, Decision, SchedulingCore, TargetKind

__all__ = ["SCHEDULER", "ControlPlane"]

logger = logging.getLogger(__name__)

SCHEDULER = "framework:scheduler"
"""issued_by of the scheduler's own decisions (placed, retried, rejected, failed, timed out)."""
TIMEOUT_HEAP_SLACK = 1024
"""Timeout entries of attempts that are over, tolerated beyond twice the working set before
the heap is rebuilt without them (they otherwise stay until due: the task timeout, 600 s)."""
WATCH_INTERVAL_S = 0.1
"""How often liveness, timeouts and the core's tick are checked."""
RECONNECT_POLL_S = 0.05
"""How often the dispatcher looks whether the NATS connection is back."""
ASSIGN_BATCH = 256
"""Most assignments per request to one node (protocol 1.2 `AssignBatch`): under load one
round of decisions for a node goes out as one request instead of one per task."""


def bridge(executor_kind: str) -> str:
    """issued_by of what an agent reported about a task (seed: ``bridge:{worker_type}``)."""
    return f"bridge:{executor_kind}"


class ControlPlane:
    """One control plane on one NATS connection: ``open()``, then ``close()``. Its
    ``start``/``deferred``/``reject``/``fail`` methods are the core's sink."""

    def __init__(self, nc: NATS, settings: ControlSettings | None = None) -> None:
        settings = settings or ControlSettings()
        self.nc = nc
        self.js = nc.jetstream()
        self.settings = settings
        self.journal = Journal(JetStreamEventLog(self.js))
        # the budget periods count from now: the core reads the start from the state's clock
        self.fleet = FleetView(settings.fallback_device, settings.fleet, self.now())
        self.ledger = Ledger(self.fleet.state)  # cloud spend per budget account
        policy = live_policy(settings.policy)
        self.decider = Decider(self.fleet.state, policy, lambda key: self.tasks[key].task,
                               lambda now, keys: self.core.place_keys(now, keys), self.fleet.refresh_backlog)
        self.core: SchedulingCore[str] = SchedulingCore(
            self.fleet.state,
            policy,
            self,
            CoreSettings(max_retries=settings.max_retries, max_defer_s=settings.max_defer_s),
            decide=self.decider,
        )
        self.tasks: dict[str, LiveTask] = {}  # tasks that have not ended (or still hold a slot)
        self.window = EndedWindow(settings.keep_ended, settings.keep_jobs, self.job_busy, self._forget_job)
        self._job_tasks: Counter[str] = Counter()  # job -> its tasks in self.tasks
        self.refused: Counter[str] = Counter()  # refused messages by subject kind
        self.privacy_violations = 0
        self.seq = 0
        self._timeouts: list[tuple[float, str, int]] = []  # (when, task, attempt) heap
        self._outbox: list[wire.Assignment] = []
        self._wake_dispatch = asyncio.Event()
        self._replies = AckRouter(nc, settings.ack_timeout_s)  # the agents' answers to assignments
        self._background: list[asyncio.Task] = []
        self._subs: list[Any] = []
        self.ready = asyncio.Event()
        self.recover_until_s: float | None = None  # recovering work's nodes must report by then
        self._outage = False  # the NATS connection was down at the last check
        self._checked_s: float | None = None  # when the watchdog last looked
        self._reporting: list[tuple[float, str, int, str]] = []  # (until, task, attempt, node that left)
        self._parked: dict[str, LiveTask] = {}  # waiting for work in flight at a restart
        self._unparking = False
        # Work held until every node had one loss window to report after our start.
        self._warming: list[LiveTask] | None = []
        self._warm_until_s = self.now() + settings.silence_s
        self.stats: LoopStats | None = None  # the debug mode of stalls.py: stage instants
        self.recorder: Recorder | None = None  # every ended task into a trace (recorder.py)
        if settings.record_dir is not None:
            self.recorder = Recorder(self, Path(settings.record_dir))

    @staticmethod
    def now() -> float:
        return time.time()

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    # -- lifecycle of the process ----------------------------------------------------------
    async def open(self) -> None:
        from heddle.live.control import intake, recovery, reports

        now = self.now()
        self._warm_until_s, self._checked_s = now + self.settings.silence_s, now
        self.journal.start()
        await recovery.recover(self)
        loop = asyncio.get_running_loop()
        self._background += [
            loop.create_task(self._dispatcher(), name="dispatch"),
            loop.create_task(self._watch(), name="watch"),
        ]
        self._subs += await reports.subscribe(self)
        self._subs += await intake.subscribe(self)
        await self._replies.start()
        if self.recorder is not None:
            self.recorder.start()
        await flush_interest(self.nc)  # ready: a request from any connection finds us
        self.ready.set()

    async def close(self) -> None:
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.recorder is not None:
            await self.recorder.stop()
        await self.journal.stop()

    # -- recording --------------------------------------------------------------------------
    def record(
        self, task_id: str, command: str, payload: dict[str, Any], issued_by: str, **extra: Any
    ) -> EventEnvelope | None:
        """Record a change of a task; None (logged) if its state machine refuses it."""
        try:
            envelope = self.journal.record(
                self.journal.task(task_id), command, payload, issued_by, extra or None
            )
        except CommandRejected as exc:
            logger.warning("task %s: %s refused: %s", task_id, command, exc)
            return None
        if self.recorder is not None:
            self.recorder.observe(task_id, command, payload, extra)
        return envelope

    # -- the working set: tasks come in, ended ones leave -------------------------------------
    def adopt(self, live: LiveTask) -> None:
        """A task enters the working set (submitted, or recovered from the log unfinished)."""
        self.tasks[live.key] = live
        self._job_tasks[live.job_id] += 1

    def job_busy(self, job_id: str) -> bool:
        return job_id in self._job_tasks

    def retire(self, live: LiveTask) -> None:
        """An ended task that holds no slot leaves memory for the window of ended tasks (the
        log keeps everything). Idempotent."""
        if self.tasks.pop(live.key, None) is None:
            return
        self._parked.pop(live.key, None)
        self.ledger.forget(live.key)
        left = self._job_tasks[live.job_id] - 1
        if left:
            self._job_tasks[live.job_id] = left
        else:
            del self._job_tasks[live.job_id]
        aggregate = self.journal.tasks.get(live.key)
        if aggregate is not None:
            self.journal.forget(aggregate)
        state = outcome(aggregate) if aggregate is not None else TaskStatus.FAILED
        self.window.add(EndedTask(
            task_id=live.key, job_id=live.job_id, status=state, node=aggregate.target if aggregate else "",
            attempts=live.attempt, reason=aggregate.failure_reason if aggregate else "",
            result=small_result(live.result),
        ))
        if len(self._timeouts) > 2 * len(self.tasks) + TIMEOUT_HEAP_SLACK:
            self._compact_timeouts()

    def _forget_job(self, job_id: str) -> None:
        job = self.journal.jobs.get(job_id)
        if job is not None and not self.job_busy(job_id):
            self.journal.forget(job)

    def drop_idle_job(self, job_id: str) -> None:
        """Forget a job with nothing in memory (it can be recalled from the log)."""
        if job_id not in self.window.jobs:
            self._forget_job(job_id)

    def _compact_timeouts(self) -> None:
        """Drop the timeouts of attempts that are over (they would wait until due)."""
        live_entries = [
            entry for entry in self._timeouts
            if (live := self.tasks.get(entry[1])) is not None and live.attempt == entry[2]
        ]
        heapq.heapify(live_entries)
        self._timeouts = live_entries

    # -- the core's sink ----------------------------------------------------------------------
    def start(self, key: str, decision: Decision) -> None:
        live = self.tasks[key]
        cloud = decision.target_kind is TargetKind.CLOUD
        node_id = (self.fleet.relay_for(decision.target or "") or "") if cloud else decision.target or ""
        now = self.now()
        if not self.fleet.usable(node_id):
            # The decision went stale (the node stopped taking work since the state was read).
            self.core.declined(now, key, f"no agent can call {decision.target} now" if cloud
                               else f"node {node_id} is not taking work")
            return
        try:
            if cloud:
                check_cloud_privacy(live.task)
            else:
                check_privacy(live.task, self.fleet.nodes[NodeId(node_id)].node)
        except PrivacyViolationError as exc:
            self.privacy_violations += 1
            logger.error("PLACEMENT REFUSED for %s on %s: %s", key, node_id, exc)
            reason = f"placement refused: {exc}"
            self.record(key, "FailTask", {"reason": reason, "retryable": True}, SCHEDULER)
            self.core.lost(now, key, reason)  # bounded: the core fails it after max_retries
            return
        live.attempt += 1
        live.node, live.acked, live.offer = node_id, False, decision.target if cloud else ""
        live.est_end_s = now + decision.est_seconds
        timeout = live.spec.timeout_s or self.settings.task_timeout_s
        live.timeout_at_s = now + timeout + self.settings.timeout_grace_s
        heapq.heappush(self._timeouts, (live.timeout_at_s, key, live.attempt))
        executor, extra = live.spec.executor, {}
        if cloud:
            extra = self._start_cloud(live, node_id)
            executor = executor.to_cloud(live.offer)
        else:
            self.fleet.assigned(NodeId(node_id), key, live.attempt, now + decision.est_seconds)
        self.record(
            key, "PlaceTask", {"target": node_id}, SCHEDULER,
            attempt=live.attempt, est_seconds=decision.est_seconds, reason=decision.reason, **extra,
        )  # fmt: skip
        self._outbox.append(
            wire.Assignment(
                sender=self.settings.sender, seq=self.next_seq(), sent_at=now,
                node_id=node_id, task=live.spec.task, attempt=live.attempt,
                executor=executor, payload=live.spec.payload, timeout_s=timeout, queued_at=now,
            )
        )  # fmt: skip
        self._wake_dispatch.set()

    def _start_cloud(self, live: LiveTask, node_id: str) -> dict[str, Any]:
        """A cloud attempt: relayed by ``node_id`` (no slot taken), its catalog price for the
        task's declared tokens charged to the account until the call reports what it cost
        (the twin's rule); returns what TaskPlaced records of it."""
        task = live.task
        usd = api_cost_usd(self.fleet.state.fleet.offer(live.offer), task.prompt_tokens, task.output_tokens)
        self.ledger.reserve(live.key, live.attempt, task.account, usd)
        self.fleet.relayed(NodeId(node_id), live.key, live.attempt)
        return {"offer": live.offer, "reserved_usd": usd, "account": task.account}

    def charged(self, live: LiveTask) -> dict[str, Any]:
        """Event metadata: what the task's calls cost so far (recovery charges it again)."""
        return self.ledger.charged(live.key, live.task.account)

    def deferred(self, key: str, reason: str) -> None:
        """Bookkeeping only: the task waits in the core (TaskSubmitted already says so)."""
        self.tasks[key].wait_reason = reason

    def reject(self, key: str, reason: str) -> None:
        self._terminal(key, "RejectTask", {"reason": reason}, SCHEDULER)

    def fail(self, key: str, reason: str) -> None:
        self._terminal(key, "FailTask", {"reason": reason, "retryable": False}, SCHEDULER)

    def _terminal(self, key: str, command: str, payload: dict[str, Any], issued_by: str) -> None:
        live = self.tasks.get(key)
        if live is None or live.terminal:
            return
        live.terminal = True
        self.record(key, command, payload, issued_by, **self.charged(live))
        if not live.node:  # not running anywhere: it leaves now (else when its slot is freed)
            self.retire(live)

    def warming_left_s(self, now: float) -> float | None:
        """Seconds until held work is offered (every node had a loss window to report after
        our start), or None once it has been."""
        return None if self._warming is None else max(self._warm_until_s - now, 0.0)

    # -- what the core knows of each task ------------------------------------------------------
    def core_submit(self, live: LiveTask, now: float) -> None:
        """Hand a task to the core. Dependencies that already ended are settled here (the core
        may never have seen them: a restart); a task waiting for work that was in flight at a
        restart (which the core does not run) is parked until that work is in the core or
        has ended. Before the fleet is known (warm-up) everything is held, in order."""
        if self.recorder is not None:
            self.recorder.released(live.key, now)
        if self._warming is not None:  # offering now would reject work for want of nodes
            self._warming.append(live)
            return
        pending = []
        for dep in live.spec.after:
            state = self.state_of(dep) or TaskStatus.SUBMITTED
            if state == TaskStatus.COMPLETED:
                continue
            if state in TaskStatus.ENDED:
                self._parked.pop(live.key, None)
                self.reject(live.key, f"dependency {dep} did not complete")
                return
            other = self.tasks.get(dep)
            if other is not None and not other.in_core:
                self._parked[live.key] = live
                return
            pending.append(dep)
        self._parked.pop(live.key, None)
        live.in_core = True
        self.core.submit(now, live.key, live.task, pending)
        self._unpark(now)

    def state_of(self, task_id: str) -> str | None:
        """A task's state if it is in memory (working set or window of ended tasks)."""
        aggregate = self.journal.tasks.get(task_id)
        if aggregate is not None:
            return outcome(aggregate)
        ended = self.window.get(task_id)
        return ended.status if ended is not None else None

    def _unpark(self, now: float) -> None:
        """Offer parked work again (a task it waited for entered the core or ended)."""
        if self._unparking or not self._parked:
            return
        self._unparking = True
        try:
            for parked in list(self._parked.values()):
                if parked.key in self._parked and not parked.terminal:
                    self.core_submit(parked, now)
        finally:
            self._unparking = False

    def ended(self, live: LiveTask, ok: bool, reason: str = "") -> None:
        """The current attempt ended for good (completed, failed, cancelled while running):
        its slot is free and the core (if it runs it) hears the outcome. A task whose retry
        waits in the core never ends here (reports.py ignores its lost attempt's reports):
        the core would keep a key the working set no longer has."""
        node, now = live.node, self.now()
        released = bool(node) and self.fleet.released(NodeId(node), live.key)
        self.ledger.release(live.key, live.attempt)  # a call cut without its report: not billed to us
        live.node, live.offer = "", ""
        if live.in_core and node:
            if ok:
                self.core.completed(now, live.key)  # counts as the freed slot
            else:
                self.core.failed(now, live.key, reason)
                if released:
                    self.core.slot_freed(now, NodeId(node))
        elif released:
            self.core.slot_freed(now, NodeId(node))
        self._unpark(now)
        if live.terminal:
            self.retire(live)

    def attempt_lost(self, key: str, attempt: int, reason: str, *, cancel: bool = True) -> None:
        """The current attempt will not finish (node lost/left, no ack, refused, timeout): the
        core retries it (TaskFailed, retryable) or fails it after max_retries."""
        live = self.tasks.get(key)
        if live is None or live.terminal or live.attempt != attempt or not live.node:
            return
        node = live.node
        if not self._unsent(key, attempt) and cancel and self.fleet.usable(node):
            self.send_control(node, "cancel", task_id=key, attempt=attempt, reason=reason)
        released = self.fleet.released(NodeId(node), key)
        self.ledger.release(key, attempt)  # a late report of it is still charged (once)
        live.node, live.offer, live.recovering = "", "", False
        self.record(key, "FailTask", {"reason": reason, "retryable": True}, SCHEDULER, attempt=attempt,
                    **self.charged(live))
        now = self.now()
        if live.in_core:
            self.core.lost(now, key, reason)
        else:  # in flight at a restart: the core meets it now
            self.core_submit(live, now)
        if released:
            self.core.slot_freed(now, NodeId(node))

    def node_gone(self, node_id: NodeId, reason: str, *, left: bool,
                  abandoned: frozenset[tuple[str, int]] | None = None,
                  goodbye: tuple[int, float] | None = None) -> None:
        """A node went silent (``left`` False: its attempts are lost) or said goodbye. An agent
        says goodbye once the reports of what it finished are in the report stream, and names
        the attempts it cut (``abandoned``: lost now); the others' reports may still be on
        their way through the stream (the goodbye, on plain NATS, can overtake them), so they
        are lost only if none came within a loss window."""
        work = self.fleet.mark_gone(node_id, left=left, goodbye=goodbye)
        now = self.now()
        lost = work if abandoned is None else [ref for ref in work if ref in abandoned]
        logger.warning("node %s %s; %d attempts to re-place", node_id, reason, len(lost))
        for task_id, attempt in work:
            live = self.tasks.get(task_id)
            if live is None or live.attempt != attempt or live.terminal:
                continue
            if (task_id, attempt) in lost:
                self.attempt_lost(task_id, attempt, f"node {node_id} {reason}", cancel=False)
            else:
                self._reporting.append((now + self.settings.silence_s, task_id, attempt, node_id))
        self.core.node_left(now, node_id)

    def _unreported(self, now: float) -> None:
        """Attempts of a node that left whose reports never came: lost."""
        due = [entry for entry in self._reporting if entry[0] <= now]
        if not due:
            return
        self._reporting = [entry for entry in self._reporting if entry[0] > now]
        for _, task_id, attempt, node_id in due:
            live = self.tasks.get(task_id)
            if live is not None and live.attempt == attempt and live.node == node_id and not live.terminal:
                self.attempt_lost(task_id, attempt, f"node {node_id} left without reporting it", cancel=False)

    def _unsent(self, key: str, attempt: int) -> bool:
        """Take the attempt's assignment back if the dispatcher has not sent it yet: sent now,
        it would reach the agent after a cancel sent now, and run there in a slot counted free."""
        for i, assignment in enumerate(self._outbox):
            if assignment.task.id == key and assignment.attempt == attempt:
                del self._outbox[i]
                return True
        return False

    def send_control(self, node: str, action: str, **fields: Any) -> None:
        message = wire.Control(
            sender=self.settings.sender, seq=self.next_seq(), sent_at=self.now(),
            node_id=node, action=action, **fields,
        )  # fmt: skip
        data = wire.encode(message)
        asyncio.get_running_loop().create_task(
            self._publish(wire.subject(wire.CONTROL, node=node), data)
        )

    async def _publish(self, subject: str, data: bytes) -> None:
        with contextlib.suppress(Exception):  # best effort: a lost cancel is caught by timeouts
            await self.nc.publish(subject, data)

    # -- dispatch ------------------------------------------------------------------------------
    async def _dispatcher(self) -> None:
        """Sends what the core decided, a turn of the loop after it (the decisions of that
        turn together: one request per node)."""
        while True:
            await self._wake_dispatch.wait()
            while not self.nc.is_connected:  # nats-server away: hold the work, don't burn retries
                await asyncio.sleep(RECONNECT_POLL_S)
            await self._send_outbox()

    async def dispatch_now(self, *, write: bool = True) -> None:
        """Send what the outbox holds now, from the caller's turn of the loop (a gateway's
        submission: its assignment leaves with its placement, not 2 turns later when the
        dispatcher runs and then its request's task); while the NATS connection is down the
        dispatcher holds it, as it holds everything. ``write`` False: the caller writes it to
        the socket with what it publishes next (`write_pending`: each write costs ~0.1 ms of
        CPU on the dev machine's VM)."""
        if self._outbox and self.nc.is_connected:
            await self._send_outbox(write=write)

    async def _send_outbox(self, *, write: bool = True) -> None:
        """Every assignment waiting goes out now, to the socket (no task per request: the
        answers come to `_replied`): to an agent that takes batches, those of one node in one
        `AssignBatch` request (up to ASSIGN_BATCH), else one request each."""
        self._wake_dispatch.clear()
        batch, self._outbox = self._outbox, []
        await self._replies.start()  # (at once but the first time)
        by_node: dict[str, list[wire.Assignment]] = {}
        for assignment in batch:
            by_node.setdefault(assignment.node_id, []).append(assignment)
        for node_id, assignments in by_node.items():
            if len(assignments) > 1 and self.fleet.accepts(node_id, "assign_batch"):
                for start in range(0, len(assignments), ASSIGN_BATCH):
                    await self._assign_batch(node_id, assignments[start : start + ASSIGN_BATCH])
            else:
                for assignment in assignments:
                    await self._assign(assignment)
        if write:
            write_pending(self.nc)  # on the socket now, not at the NATS client's next flush

    async def _assign(self, assignment: wire.Assignment) -> None:
        try:
            data = wire.encode(assignment)
        except wire.ProtocolError as exc:  # cannot be sent: the attempt is lost (see _undelivered)
            self._undelivered([assignment], exc)
            return
        await self._request([assignment], data, wire.AssignReply)

    async def _assign_batch(self, node_id: str, assignments: list[wire.Assignment]) -> None:
        """Many assignments to one node in one request (protocol 1.2), halved until it fits."""
        message = wire.AssignBatch(sender=self.settings.sender, seq=self.next_seq(), sent_at=self.now(),
                                   node_id=node_id, assignments=tuple(assignments))
        try:
            data = wire.encode(message)
        except wire.ProtocolError:  # too large for one message: two smaller requests
            if len(assignments) == 1:
                return await self._assign(assignments[0])  # refused there too, with the reason
            half = len(assignments) // 2
            await self._assign_batch(node_id, assignments[:half])
            await self._assign_batch(node_id, assignments[half:])
            return
        await self._request(assignments, data, wire.AssignBatchReply)

    async def _request(self, assignments: list[wire.Assignment], data: bytes,
                       kind: type[wire.AssignReply | wire.AssignBatchReply]) -> None:
        """Publish one assignment request; its answer, or its failure (no answer within
        ``ack_timeout_s``, nobody listening, a refused publish), goes to `_replied`."""
        if self.stats is not None:
            for assignment in assignments:
                self.stats.stamp(assignment.task.id, "assign_sent")
        answer = await publish_request(self._replies, self.nc,
                                       wire.subject(wire.ASSIGN, node=assignments[0].node_id), data)
        answer.add_done_callback(lambda done: self._replied(assignments, kind, done))

    def _replied(self, assignments: list[wire.Assignment],
                 kind: type[wire.AssignReply | wire.AssignBatchReply], done: asyncio.Future[Any]) -> None:
        if done.cancelled():  # (the loop is closing)
            return
        try:
            reply = wire.decode(done.result().data, kind)
        except Exception as exc:  # noqa: BLE001 - every failure loses the attempts (see _undelivered)
            self._undelivered(assignments, exc)
            return
        if isinstance(reply, wire.AssignReply):
            self._answered(assignments[0], reply)
            return
        node_id = assignments[0].node_id
        answers = {(r.task_id, r.attempt): r for r in reply.replies}
        for assignment in assignments:
            answer = answers.get((assignment.task.id, assignment.attempt))
            if answer is None:
                self.refused["assign_reply"] += 1
                self.attempt_lost(assignment.task.id, assignment.attempt,
                                  f"no answer for it in the batch reply of {node_id}")
            else:
                self._answered(assignment, answer)

    def _undelivered(self, assignments: list[wire.Assignment], exc: Exception) -> None:
        """The request carrying ``assignments`` failed: each of its attempts is lost."""
        node_id = assignments[0].node_id
        cancel = True
        if isinstance(exc, nats.errors.NoRespondersError):
            if NodeId(node_id) in self.fleet.nodes:
                self.fleet.mark_unreachable(NodeId(node_id))
            reason, cancel = f"no agent listening on {node_id}", False
        elif isinstance(exc, nats.errors.TimeoutError):
            reason = f"assignment not acknowledged by {node_id}"
        elif isinstance(exc, wire.ProtocolError):
            self.refused["assign_reply"] += 1
            reason = f"bad acknowledgement from {node_id}: {exc}"
        else:  # connection trouble: the attempt is lost, retried
            reason = f"assignment to {node_id} failed: {exc!r}"
        for assignment in assignments:
            self.attempt_lost(assignment.task.id, assignment.attempt, reason, cancel=cancel)

    def _answered(self, assignment: wire.Assignment, reply: wire.AssignReply) -> None:
        key, attempt = assignment.task.id, assignment.attempt
        if not reply.accepted:
            self.attempt_lost(key, attempt, f"refused by {assignment.node_id}: {reply.reason}", cancel=False)
            return
        live = self.tasks.get(key)
        if live is not None and live.attempt == attempt:
            live.acked = True

    # -- time ------------------------------------------------------------------------------------
    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)  # a periodic check, not synchronisation
            try:
                self.check_time(self.now())
            except Exception:
                logger.exception("watchdog failed")

    def check_time(self, now: float) -> None:
        self._discount_deafness(now)
        if not self.nc.is_connected:  # our own outage: silence now says nothing about nodes
            self._outage = True
            return
        if self._outage:  # back: every node gets a fresh loss window to report again
            self._outage = False
            for live in self.fleet.nodes.values():
                live.last_seen_s = max(live.last_seen_s, now)
        for node_id in self.fleet.overdue(now, self.settings.silence_s):
            self.node_gone(node_id, f"missed {self.settings.missed_reports} reports", left=False)
        self._unreported(now)
        while self._timeouts and self._timeouts[0][0] <= now:
            _, key, attempt = heapq.heappop(self._timeouts)
            live = self.tasks.get(key)
            if live is not None and live.attempt == attempt and live.timeout_at_s <= now:
                self.attempt_lost(key, attempt, "attempt timed out")
        if self._warming is not None and now >= self._warm_until_s:
            held, self._warming = self._warming, None
            for live in held:
                if not live.terminal:
                    self.core_submit(live, now)
        if self.recover_until_s is not None and now > self.recover_until_s:
            self.recover_until_s = None
            for live in [t for t in self.tasks.values() if t.recovering]:
                if live.recovering:  # its node never reported after the restart
                    self.attempt_lost(live.key, live.attempt, f"node {live.node} silent after restart",
                                      cancel=False)
        tick = self.core.next_tick_s()
        if tick is not None and tick <= now:
            self.core.tick(now)

    def _discount_deafness(self, now: float) -> None:
        """Silence while this process was not listening does not count against a node: when
        the watchdog looks more than a report interval after its last look (our loop held or
        starved), reports that came meanwhile may be unread still, so the excess moves every
        node's last report forward, and the ends of the start-up waits: each look holds at
        most one report interval of silence against a node. (A restarted control plane on a
        loaded machine, its loop held for seconds, declared every node lost with their
        reports waiting unread; the work it offered at that moment was rejected for want of
        any node.)"""
        last, self._checked_s = self._checked_s, now
        allowed_s = max(WATCH_INTERVAL_S, self.settings.report_interval_s)
        deaf_s = 0.0 if last is None else now - last - allowed_s
        if deaf_s > 0:
            for live in self.fleet.nodes.values():
                live.last_seen_s = min(live.last_seen_s + deaf_s, max(live.last_seen_s, now))
            if self._warming is not None:  # the nodes' windows to report after our start, likewise
                self._warm_until_s += deaf_s
            if self.recover_until_s is not None:
                self.recover_until_s += deaf_s
            self._reporting = [(until + deaf_s, *rest) for until, *rest in self._reporting]

    # -- user actions (intake.py calls these) --------------------------------------------------
    def cancel(self, key: str, issued_by: str) -> str | None:
        """Cancel a task; None if done, else why it cannot be."""
        live = self.tasks.get(key)
        if live is None:
            ended = self.window.get(key)
            return f"task {key} has already ended ({ended.status})" if ended else f"no unfinished task {key!r}"
        if live.terminal:
            return f"task {key} has already ended"
        self._terminal(key, "CancelTask", {"reason": f"cancelled by {issued_by}"}, issued_by)
        if live.node:  # running (or sent): stop it there
            if not self._unsent(key, live.attempt):
                self.send_control(live.node, "cancel", task_id=key, attempt=live.attempt, reason="cancelled by user")
            self.ended(live, ok=False, reason="cancelled")
        elif live.in_core:
            self.core.cancel(self.now(), key)
        else:
            self._parked.pop(key, None)
        return None

    def drain(self, node_id: str, deadline_s: float | None) -> str | None:
        if NodeId(node_id) not in self.fleet.nodes:
            return f"no node {node_id!r} (known: {', '.join(sorted(self.fleet.nodes)) or 'none'})"
        self.fleet.mark_draining(NodeId(node_id))
        self.send_control(node_id, "drain", deadline_s=deadline_s or self.settings.drain_deadline_s)
        return None
