"""The agent process: capacity reports out, assignments in, attempts run within a slot limit.

One asyncio loop. Capacity is reported every interval, and between those when free slots
change, at most once per CHANGE_GAP_S (a status change or a reconnect is reported at once). An assignment addressed to this node is
accepted into a free slot, or into a small local queue, or refused with the reason: no room,
draining, an executor this node lacks, or personal work of an owner this node does not
belong to or is not trusted by (defence in depth: the control plane never sends that). Task
reports go through the `Outbox` (JetStream, acked, retried). A drain (SIGTERM or a control
message) takes no new work, lets in-flight work finish until the deadline, cancels the rest,
publishes `Left` and exits. Garbage on any subject is counted, logged and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import nats
import nats.errors
from nats.aio.msg import Msg
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import NotFoundError

from heddle.live import protocol as p
from heddle.live.agent.executors import ExecutionError, ExecutorRegistry, Progress
from heddle.live.agent.images import has_image_refs, with_images
from heddle.live.agent.outbox import Outbox
from heddle.live.agent.perflog import PerfLog
from heddle.live.agent.probe import MachineSample, Probe
from heddle.live.agent.settings import AgentSettings
from heddle.live.agent.tokens import TokenPublisher, TokenSink, wants_tokens
from heddle.models.fleet_types import Node
from heddle.models.ids import NodeStatus, OwnerId, Privacy

__all__ = ["Agent"]

log = logging.getLogger("heddle.live.agent")

CONNECT_BACKOFF_S = (0.25, 0.5, 1.0, 2.0, 5.0)
"""Waits between first-connection attempts while nats-server is not up yet (then 5 s each)."""
REMEMBER_ENDED = 10_000
"""Ended attempts remembered for duplicate assignments: far more than a control plane has
in flight to one node while it retries an unanswered request."""
ACCEPTS = ("assign_batch",)
"""Message types beyond protocol 1.0 this agent takes (told in every capacity report)."""
FLUSH_ON_EXIT_S = 10.0
"""How long a leaving agent waits for its last reports to be acknowledged."""
CHANGE_GAP_S = 0.25
"""Least time between a capacity report and the next one sent for a change of slots (or the
report interval, if shorter). The control plane counts free slots from its own assignments
and the task reports, so these reports only keep its view of the node current; sent on
every loop turn with a change they were ~30/s per agent at 1,300 tasks/s, each ~0.6 ms of
the agent's CPU and ~0.17 ms of the control plane's (benchmarks/bench_live.py)."""


@dataclass(frozen=True, slots=True)
class _Identity:
    """The two fields the privacy rule reads (`Node.may_hold_personal_of`)."""

    owner: OwnerId
    trusted_owners: frozenset[OwnerId]


@dataclass(slots=True)
class _Attempt:
    assignment: p.Assignment
    received_at: float
    progress: Progress = field(default_factory=Progress)
    started_at: float | None = None
    runner: asyncio.Task | None = None
    cancel_reason: str | None = None
    tokens: TokenSink | None = None  # the attempt's output goes out as produced (gateway)

    @property
    def key(self) -> tuple[str, int]:
        return (self.assignment.task.id, self.assignment.attempt)

    @property
    def remote(self) -> bool:
        """A call to a cloud API: it runs beside the slots (it loads the network, not the machine)."""
        return self.assignment.executor.calls_cloud()

    def timings(self, finished_at: float | None = None) -> p.Timings:
        return p.Timings(
            queued_at=self.assignment.queued_at, received_at=self.received_at,
            started_at=self.started_at, first_token_at=self.progress.first_token_at,
            finished_at=finished_at, cpu_s=self.progress.cpu_s,
        )


class Agent:
    """One node's agent. `run()` returns the process exit code once it has left."""

    def __init__(self, settings: AgentSettings, registry: ExecutorRegistry, probe: Probe,
                 perf_log: PerfLog | None = None) -> None:
        self.settings = settings
        self.perf_log = perf_log  # measured LLM speeds, for `heddle models calibrate`
        self.registry = registry
        self.probe = probe
        self.device = settings.device
        self.identity = _Identity(OwnerId(settings.owner),
                                  frozenset(OwnerId(o) for o in settings.trusted_owners))
        self.status = NodeStatus.ACTIVE
        self.running: dict[tuple[str, int], _Attempt] = {}
        self.queue: deque[_Attempt] = deque()
        self.cloud_offers = registry.cloud_offers()  # reported: cloud work for these comes here
        self.features = registry.features()  # reported: work needing one comes only if offered
        # Attempts that ended lately: a retried assignment of one is acknowledged, not re-run.
        self.ended: dict[tuple[str, int], None] = {}
        # attempts cancelled before their assignment came (assignments and cancels arrive on
        # different subscriptions, in no order between them): refused when they come
        self.cancelled_early: dict[tuple[str, int], str] = {}
        self.refused: Counter[str] = Counter()  # garbage messages by subject
        self._seq = 0
        self._sample: MachineSample | None = None
        self._capacity_due = asyncio.Event()  # a change to report (coalesced)
        self._capacity_now = asyncio.Event()  # a change to report at once
        self._idle = asyncio.Event()
        self._idle.set()
        self._drain: asyncio.Task | None = None
        self._drain_deadline_at = 0.0
        self._cut = asyncio.Event()  # set by a second signal: cut in-flight work now
        self._left = asyncio.Event()
        self._nc: Any = None
        self._closing = False  # our own close: a disconnect is expected, not news
        self._said_unreachable = False  # warned about the current outage already
        self._connecting: asyncio.Task | None = None
        self._outbox: Outbox | None = None
        self.stats: Any = None  # the HEDDLE_LOOP_STATS debug mode (LoopStats): stage instants

    # --- lifecycle ----------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig.name)
        self._nc = await self._connect()
        if self._nc is None:  # drained before nats-server ever answered
            return 0
        self._outbox = Outbox(self._nc, log, merge=self._merge_reports)
        self._tokens_out = TokenPublisher(self._nc)
        node = self.settings.node_id
        await self._nc.subscribe(p.subject(p.ASSIGN, node=node), cb=self._on_assign)
        await self._nc.subscribe(p.subject(p.CONTROL, node=node), cb=self._on_control)
        background = [
            asyncio.create_task(self._ensure_report_stream()),
            asyncio.create_task(self._outbox.run()),
            asyncio.create_task(self._report_capacity()),
        ]
        log.info("agent %s up: node %s, %d slots, owner %s, nats %s", self.settings.sender, node,
                 self.settings.slots, self.settings.owner, self.settings.nats_url)
        await self._left.wait()
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await self.registry.close()
        if self.perf_log is not None:
            self.perf_log.close()
        self._closing = True
        with contextlib.suppress(Exception):
            await self._nc.drain()
        return 0

    async def _connect(self) -> Any:
        """The connection, or None if drained first. nats-py keeps retrying the first connect
        by itself (max_reconnect_attempts=-1); a drain cancels that."""
        failures = 0
        while self._drain is None:
            self._connecting = asyncio.create_task(nats.connect(
                self.settings.nats_url, name=f"heddle-agent-{self.settings.node_id}",
                max_reconnect_attempts=-1, reconnect_time_wait=0.25, connect_timeout=2,
                disconnected_cb=self._on_disconnected, reconnected_cb=self._on_reconnected,
                error_cb=self._on_error, **self.settings.auth_options(),
            ))
            try:
                nc = await self._connecting
                self._said_unreachable = False
                return nc
            except asyncio.CancelledError:
                if self._drain is None:  # not our drain: someone cancels the agent itself
                    raise
            except Exception as exc:  # noqa: BLE001 -- nats-py raises several types here
                wait_s = CONNECT_BACKOFF_S[min(failures, len(CONNECT_BACKOFF_S) - 1)]
                failures += 1
                log.warning("cannot reach nats at %s (%s); retrying in %s s",
                            self.settings.nats_url, exc, wait_s)
                await asyncio.sleep(wait_s)
        return None

    async def _on_disconnected(self) -> None:
        if self._closing:
            return
        log.warning("disconnected from nats; reconnecting (reports are kept until acknowledged)")

    async def _on_reconnected(self) -> None:
        self._said_unreachable = False
        log.info("reconnected to nats at %s", self._nc.connected_url.netloc if self._nc else "?")
        self._report_soon(now=True)

    async def _on_error(self, exc: Exception) -> None:
        # Every failed (re)connect attempt lands here: say it once until connected, the rest
        # at debug level. Anything else, e.g. a handler that raised, is worth seeing.
        connection = isinstance(exc, OSError | TimeoutError | nats.errors.ConnectionClosedError
                                | nats.errors.StaleConnectionError | nats.errors.UnexpectedEOF
                                | nats.errors.NoServersError)
        if connection and not self._said_unreachable:
            self._said_unreachable = True
            log.warning("cannot reach nats at %s (%s: %s); still trying",
                        self.settings.nats_url, type(exc).__name__, exc)
            return
        log.log(logging.DEBUG if connection else logging.WARNING, "nats: %s: %s",
                type(exc).__name__, exc)

    async def _ensure_report_stream(self) -> None:
        """Create the report stream if no one has yet (reports are durable from the start)."""
        js = self._nc.jetstream()
        while True:
            try:
                try:
                    await js.stream_info(p.REPORT_STREAM)
                except NotFoundError:
                    await js.add_stream(StreamConfig(
                        name=p.REPORT_STREAM, subjects=list(p.REPORT_STREAM_SUBJECTS),
                        storage=StorageType.FILE, duplicate_window=p.REPORT_DUPLICATE_WINDOW_S,
                        max_age=p.REPORT_STREAM_MAX_AGE_S,
                    ))
                return
            except Exception as exc:  # noqa: BLE001 -- server down, JetStream off, a race: retry
                log.warning("report stream %s not ready (%s); retrying", p.REPORT_STREAM, exc)
                await asyncio.sleep(CONNECT_BACKOFF_S[1])

    # --- capacity -----------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def capacity_report(self) -> p.CapacityReport:
        sample = self._sample or self.probe.sample()
        s = self.settings
        installed = self.registry.installed_models()  # None: unknown (a server not asked yet)
        return p.CapacityReport(
            sender=s.sender, seq=self._next_seq(), sent_at=time.time(), node_id=s.node_id,
            agent_id=s.sender, hostname=sample.hostname, os=sample.os, arch=sample.arch,
            chip=sample.chip, device=self.device, memory=sample.memory, cpu=self.probe.current_cpu(sample.cpu),
            measured=s.measured if self.device is None else None,
            gpu=sample.gpu, neural_engine=sample.neural_engine, thermal=sample.thermal,
            power=sample.power, labels=s.labels, owner=s.owner, trusted_owners=s.trusted_owners,
            status=self.status, slots=s.slots, free_slots=max(0, s.slots - self._busy()),
            queued=len(self.queue), reserved_memory_gb=s.reserved_memory_gb,
            resident_models=tuple(p.ResidentModel(model=m, quant=q)
                                  for m, q in self.registry.resident_models()),
            running=tuple(p.TaskRef(task_id=k[0], attempt=k[1]) for k in self.running),
            refused_messages=sum(self.refused.values()), accepts=ACCEPTS,
            cloud_offers=self.cloud_offers, features=self.features,
            installed=None if installed is None else tuple(p.ResidentModel(model=m, quant=q) for m, q in installed),
        )

    def _report_soon(self, *, now: bool = False) -> None:
        """Capacity changed: report it within CHANGE_GAP_S of the last report, together with
        the changes until then, or at once (``now``)."""
        self._capacity_due.set()
        if now:
            self._capacity_now.set()

    async def _report_capacity(self) -> None:
        """Every interval with a fresh probe; between ticks on a change (see _report_soon)."""
        subject = p.subject(p.CAPACITY, node=self.settings.node_id)
        gap_s = min(CHANGE_GAP_S, self.settings.report_every_s)
        next_probe = 0.0
        while True:
            try:
                if time.monotonic() >= next_probe:
                    next_probe = time.monotonic() + self.settings.report_every_s
                    self._sample = self.probe.sample()
                if self._nc.is_connected:  # while away, a fresh report follows the reconnect
                    await self._nc.publish(subject, p.encode(self.capacity_report()))
            except Exception:  # a failed probe or publish must not end the reports
                log.exception("capacity report failed; next one at the interval")
            sent = time.monotonic()
            # asyncio.timeout, not wait_for: Python 3.11's wait_for loses a cancel (the agent
            # stopping) that comes in the turn the event is set, and this loop would go on
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(next_probe - sent):
                    await self._capacity_due.wait()
            hold_s = min(sent + gap_s, next_probe) - time.monotonic()
            if hold_s > 0 and not self._capacity_now.is_set():
                with contextlib.suppress(TimeoutError):  # changes until then go in one report
                    async with asyncio.timeout(hold_s):
                        await self._capacity_now.wait()
            self._capacity_due.clear()
            self._capacity_now.clear()

    # --- assignments --------------------------------------------------------------------

    def _decode(self, msg: Msg, expect: type) -> Any:
        try:
            return p.decode(msg.data, expect)
        except p.ProtocolError as exc:
            self.refused[msg.subject] += 1
            log.warning("refused a message on %s (%d so far): %s", msg.subject,
                        sum(self.refused.values()), exc)
            return None

    def refusal(self, a: p.Assignment) -> str | None:
        """Why this node will not take assignment ``a``, or None."""
        if a.node_id != self.settings.node_id:
            return f"addressed to node {a.node_id!r}, this is {self.settings.node_id!r}"
        if self.status is not NodeStatus.ACTIVE:
            return "node is draining: no new work"
        task = a.task
        # The one privacy rule, read on this node's own owner and trust (no device needed).
        if task.privacy is Privacy.PERSONAL and not Node.may_hold_personal_of(
            self.identity, OwnerId(task.owner) if task.owner else None  # type: ignore[arg-type]
        ):
            return (f"privacy: personal work of owner {task.owner!r} runs only on nodes of its "
                    f"owner or trusted by it; node {self.settings.node_id!r} belongs to "
                    f"{self.settings.owner!r} and trusts {list(self.settings.trusted_owners)}")
        return self.registry.refusal(a.executor)

    async def _on_assign(self, msg: Msg) -> None:
        message = self._decode(msg, (p.Assignment, p.AssignBatch))
        if message is None:
            return
        if isinstance(message, p.AssignBatch):  # 1.2: one request, one answer per assignment
            replies = tuple(self._take(a) for a in message.assignments)
            answer: p.AssignReply | p.AssignBatchReply = p.AssignBatchReply(
                sender=self.settings.sender, seq=self._next_seq(), sent_at=time.time(),
                node_id=self.settings.node_id, replies=replies,
            )
        else:
            answer = self._take(message)
        if msg.reply:
            await msg.respond(p.encode(answer))

    def _take(self, a: p.Assignment) -> p.AssignReply:
        """Start, queue or refuse one assignment; the answer to send back."""
        attempt = _Attempt(a, received_at=time.time())
        if self.stats is not None:
            self.stats.stamp(a.task.id, "a_assigned", attempt.received_at)
        known = a.node_id == self.settings.node_id and self._known(attempt.key)
        reason = None if known else self.refusal(a)  # a retry is acknowledged, even mid-drain
        if reason is None and not known and attempt.key in self.cancelled_early:
            reason = f"cancelled before it arrived ({self.cancelled_early.pop(attempt.key)})"
        queued = known and any(q.key == attempt.key for q in self.queue)
        if reason is None and not known:
            if attempt.remote or self._busy() < self.settings.slots:
                self._start(attempt)
            elif len(self.queue) < self.settings.local_queue:
                self.queue.append(attempt)
                self._idle.clear()
                queued = True
            else:
                reason = (f"no free slot ({self.settings.slots} running) and the local queue "
                          f"is full ({self.settings.local_queue})")
        if reason is not None:
            log.info("refused %s attempt %d: %s", a.task.id, a.attempt, reason)
        return p.AssignReply(
            sender=self.settings.sender, seq=self._next_seq(), sent_at=time.time(),
            node_id=self.settings.node_id, task_id=a.task.id, attempt=a.attempt,
            accepted=reason is None, queued=queued, reason=reason,
        )

    def _busy(self) -> int:
        """Slots taken: running attempts other than cloud calls."""
        return sum(1 for attempt in self.running.values() if not attempt.remote)

    def _known(self, key: tuple[str, int]) -> bool:
        """A repeated assignment (the control plane retried its request): accepted again,
        not run again, whether the attempt runs, waits or has ended (its report is sent)."""
        return key in self.running or key in self.ended or any(q.key == key for q in self.queue)

    def _start(self, attempt: _Attempt) -> None:
        self.running[attempt.key] = attempt
        if wants_tokens(attempt.assignment):
            attempt.tokens = TokenSink(self._tokens_out, self.settings.sender, self.settings.node_id,
                                       attempt.assignment, self._next_seq)
            attempt.tokens.stats = self.stats
            attempt.progress.on_text = attempt.tokens
            attempt.progress.on_vectors = attempt.tokens.vectors
            attempt.progress.on_thinking = attempt.tokens.thinking
        self._idle.clear()
        executor = self.registry.get(attempt.assignment.executor.kind)
        try:
            if not has_image_refs(attempt.assignment):  # else its images come first (`_run`)
                executor.begin(attempt.assignment, attempt.progress)  # e.g. the model request, now
        except Exception:  # it must not raise; if it does, `run` starts the attempt as usual
            log.exception("executor %s: begin raised on %s", attempt.assignment.executor.kind,
                          attempt.assignment.task.id)
        if attempt.progress.begun is not None and self.stats is not None:
            self.stats.stamp(attempt.assignment.task.id, "a_run")
        attempt.runner = asyncio.create_task(self._run(attempt))
        self._report_soon()

    async def _run(self, attempt: _Attempt) -> None:
        a = attempt.assignment
        attempt.started_at = time.time()
        self._send_report(p.TaskStarted(
            sender=self.settings.sender, seq=self._next_seq(), sent_at=attempt.started_at,
            node_id=self.settings.node_id, task_id=a.task.id, attempt=a.attempt,
            timings=attempt.timings(),
        ))
        timeout_s = a.timeout_s or self.settings.task_timeout_s
        outcome, reason, result = "ok", None, None
        if self.stats is not None and attempt.progress.begun is None:
            self.stats.stamp(a.task.id, "a_run")
        try:
            async with asyncio.timeout(timeout_s):
                if has_image_refs(a):  # the bytes, from the gateway that holds them
                    a = await with_images(self._nc, self.settings.sender, self._next_seq, a)
                result = await self.registry.get(a.executor.kind).run(a, attempt.progress)
        except TimeoutError:
            outcome, reason = "failed", f"timeout: still running after {timeout_s} s"
        except ExecutionError as exc:
            outcome, reason, result = "failed", str(exc), exc.result
        except asyncio.CancelledError:
            outcome, reason = "cancelled", attempt.cancel_reason or "cancelled"
        except Exception as exc:
            log.exception("executor %s raised on %s", a.executor.kind, a.task.id)
            outcome, reason = "failed", f"executor error: {type(exc).__name__}: {exc}"
        if result is None:  # cut by a timeout or a cancel: what the executor had by then
            result = attempt.progress.partial
        self._finish(attempt, outcome, reason, result)
        if outcome == "ok" and self.perf_log is not None:
            self.perf_log.observe(a.task, result)  # after the report; written later, off the loop

    def _finish(self, attempt: _Attempt, outcome: str, reason: str | None, result: Any) -> None:
        a = attempt.assignment
        finished = p.TaskFinished(
            sender=self.settings.sender, seq=self._next_seq(), sent_at=time.time(),
            node_id=self.settings.node_id, task_id=a.task.id, attempt=a.attempt, outcome=outcome,
            reason=reason, result=result, timings=attempt.timings(finished_at=time.time()),
        )
        if attempt.progress.begun is not None:  # ended before `run` took it over
            attempt.progress.begun.close()
            attempt.progress.begun = None
        if attempt.tokens is not None:
            attempt.tokens.end(outcome, reason, result)
        try:
            self._send_report(finished)
        except p.ProtocolError as exc:  # the result does not fit in a message
            self._send_report(finished.model_copy(update={
                "outcome": "failed", "result": None, "reason": f"result too large: {exc}"}))
        self.running.pop(attempt.key, None)
        _remember(self.ended, attempt.key, None)
        while self.queue and self._busy() < self.settings.slots:
            self._start(self.queue.popleft())
        if not self.running and not self.queue:
            self._idle.set()
        self._report_soon()

    def _merge_reports(self, reports: list[bytes], msg_ids: list[str]) -> tuple[bytes, str]:
        """Encoded reports -> one encoded `TaskReports` (spliced: each is valid JSON already)
        and its dedup id (the first report's id and the count: a retry is the same message)."""
        head = json.dumps({
            "v": p.PROTOCOL_VERSION, "type": "task_reports", "sender": self.settings.sender,
            "seq": self._next_seq(), "sent_at": time.time(), "node_id": self.settings.node_id,
        }, separators=(",", ":")).encode()
        return head[:-1] + b',"reports":[' + b",".join(reports) + b"]}", f"{msg_ids[0]}+{len(msg_ids)}"

    def _send_report(self, report: p.TaskStarted | p.TaskFinished) -> None:
        assert self._outbox is not None
        data = p.encode(report)
        self._outbox.put(p.subject(p.REPORT, node=self.settings.node_id), data, p.report_msg_id(report))

    # --- control ------------------------------------------------------------------------

    async def _on_control(self, msg: Msg) -> None:
        c = self._decode(msg, p.Control)
        if c is None:
            return
        ok, reason = True, None
        if c.node_id != self.settings.node_id:
            ok, reason = False, f"addressed to node {c.node_id!r}"
        elif c.action == "drain":
            if not self.drain(c.deadline_s, c.reason or "drain requested"):
                reason = "already draining"
        else:
            ok = self.cancel(c.task_id or "", c.attempt, c.reason or "cancel requested")
            reason = None if ok else f"no attempt of task {c.task_id!r} here"
        if msg.reply:
            await msg.respond(p.encode(p.ControlReply(
                sender=self.settings.sender, seq=self._next_seq(), sent_at=time.time(),
                node_id=self.settings.node_id, action=c.action, ok=ok, reason=reason,
            )))

    def cancel(self, task_id: str, attempt_no: int | None, reason: str) -> bool:
        """Cancel a running or queued attempt (any attempt of the task if ``attempt_no`` is None)."""
        found = False
        for attempt in list(self.queue):
            if attempt.key[0] == task_id and attempt_no in (None, attempt.key[1]):
                self.queue.remove(attempt)
                self._finish(attempt, "cancelled", reason, None)
                found = True
        for attempt in list(self.running.values()):
            if attempt.key[0] == task_id and attempt_no in (None, attempt.key[1]) and attempt.runner:
                attempt.cancel_reason = reason
                attempt.runner.cancel()
                found = True
                if attempt.started_at is None:
                    # Its runner has not begun (the assignment came in this same turn of the
                    # loop): a task cancelled before its first step never runs its body, so
                    # `_run` would never finish it and its slot stayed taken for good (the
                    # node queued every later assignment: gateway requests timed out).
                    self._finish(attempt, "cancelled", reason, None)
        if not found and attempt_no is not None and (task_id, attempt_no) not in self.ended:
            _remember(self.cancelled_early, (task_id, attempt_no), reason)
        return found

    def _on_signal(self, name: str) -> None:
        """SIGTERM / Ctrl-C drains; a second one (the user insists) cuts in-flight work now."""
        if self._drain is not None:
            log.info("signal %s during the drain: cutting in-flight work now", name)
            self._cut.set()
            return
        self.drain(None, f"signal {name}")

    def drain(self, deadline_s: float | None, reason: str) -> bool:
        """Take no new work; in-flight work finishes until the deadline; then leave.

        False (and nothing changes) if a drain is already under way: a repeated request,
        say a control plane retrying, must not cut work short.
        """
        if self._drain is not None:
            return False
        log.info("draining (%s): %d running, %d queued", reason, len(self.running), len(self.queue))
        if self._nc is None and self._connecting is not None:
            self._connecting.cancel()  # never connected: nothing to drain, leave now
        self.status = NodeStatus.DRAINING
        self._report_soon(now=True)
        self._drain_deadline_at = time.monotonic() + (deadline_s or self.settings.drain_deadline_s)
        self._drain = asyncio.create_task(self._drain_and_leave(reason))
        return True

    async def _drain_and_leave(self, reason: str) -> None:
        idle, cut = asyncio.create_task(self._idle.wait()), asyncio.create_task(self._cut.wait())
        await asyncio.wait({idle, cut}, timeout=max(0.0, self._drain_deadline_at - time.monotonic()),
                           return_when=asyncio.FIRST_COMPLETED)
        idle.cancel()
        cut.cancel()
        why = "drain cut short by a second signal" if self._cut.is_set() else "drain deadline passed"
        abandoned = [a.key for a in (*self.queue, *self.running.values())]
        for task_id, attempt_no in abandoned:
            self.cancel(task_id, attempt_no, why)
        runners = [a.runner for a in self.running.values() if a.runner]
        await asyncio.gather(*runners, return_exceptions=True)
        if self._nc is None:
            self._left.set()
            return
        if self._outbox is not None and not await self._outbox.flushed(FLUSH_ON_EXIT_S):
            log.error("leaving with %d report(s) not acknowledged", len(self._outbox))
        left = p.Left(sender=self.settings.sender, seq=self._next_seq(), sent_at=time.time(),
                      node_id=self.settings.node_id, reason=reason,
                      abandoned=tuple(p.TaskRef(task_id=t, attempt=n) for t, n in abandoned))
        with contextlib.suppress(Exception):
            await self._nc.publish(p.subject(p.LEFT, node=self.settings.node_id), p.encode(left))
            await self._nc.flush(timeout=2)
        log.info("left: %s (%d attempt(s) cut at the deadline)", reason, len(abandoned))
        self._left.set()


def _remember(memory: dict[Any, Any], key: Any, value: Any) -> None:
    """Keep ``key`` in a bounded memory of attempts (REMEMBER_ENDED), forgetting the oldest."""
    memory[key] = value
    if len(memory) > REMEMBER_ENDED:
        del memory[next(iter(memory))]  # dicts keep insertion order: the oldest
