"""What users send the control plane: submissions, status and fleet queries, cancel, drain.

A submission is acknowledged only once its TaskSubmitted events are in the log, so an
accepted task survives a crash of the control plane right after the reply. Its placement
does not wait for that: an accepted task goes to the core at once, and its assignment may
leave before the log has the submission (the log still has the task's TaskSubmitted before
its TaskPlaced: the journal appends one aggregate's events in order). Waiting cost every
task a JetStream round trip before it could start, ~6 ms of the gateway's time to first
token at half of saturation (benchmarks/bench_gateway.py --stages). A crash in between
leaves an attempt nobody was told of: the submitter had no reply (and retries), the next
control plane refuses the attempt's reports as of an unknown task. A submission that asks for
``early_placement`` (protocol 1.8: the gateway's) is answered at once as well, with its
placement: at the tail of the gateway's time to first token that acknowledgement came after
the first token (a crash in between then loses the record of a task whose caller may still
get its whole answer from the running attempt). While such submissions keep coming, the
journal's appends wait (`Journal.hold`: until 5 ms after the last, at most 100 ms), so their
JetStream work does not compete with the first tokens' way for the machine's cores.
Submissions reach the core in the order they arrived (a later part of a job may depend on
an earlier one). A bad request gets a reply naming the field, and is counted. A cluster
user's own subjects reach the same handlers, which then show and touch only that user's
jobs (access.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from heddle.events import TaskAggregate
from heddle.events.jetstream_acks import write_pending
from heddle.live import protocol as wire
from heddle.live.control.access import (
    UserLogins,
    claim_refusal,
    owner_tag,
    owns_job,
    owns_task,
    requester,
    user_subjects,
)
from heddle.live.control.book import LiveTask, outcome
from heddle.live.control.export import fleet_document
from heddle.live.control.messages import (
    BudgetRow,
    CancelRequest,
    DrainRequest,
    FleetReply,
    NodeRow,
    QueryRequest,
    Reply,
    StatusReply,
    SubmitRequest,
    SubmitTask,
    TaskRow,
    decode_request,
    decode_request_raw,
    encode_message,
)
from heddle.live.control.streams import last_event
from heddle.live.control.waiting import placement
from heddle.live.control.window import ended_from_event, row
from heddle.live.features import task_needs
from heddle.models import Privacy

if TYPE_CHECKING:
    from heddle.live.control.plane import ControlPlane

__all__ = ["subscribe"]

logger = logging.getLogger(__name__)


def user_issuer(sender: str) -> str:
    """issued_by of what a user asked for through the CLI (seed: ``user:system:{component}``)."""
    return f"user:system:cli:{sender}"


async def subscribe(plane: ControlPlane) -> list[Any]:
    intake = _Intake(plane)
    nc = plane.nc
    own = user_subjects()
    return [
        await nc.subscribe(wire.SUBMIT, cb=intake.on_submit),
        await nc.subscribe(wire.subject(wire.QUERY, what="status"), cb=intake.on_status),
        await nc.subscribe(wire.subject(wire.QUERY, what="fleet"), cb=intake.on_fleet),
        await nc.subscribe(wire.CANCEL, cb=intake.on_cancel),
        await nc.subscribe(wire.DRAIN, cb=intake.on_drain),
        await nc.subscribe(own["submit"], cb=intake.on_submit),
        await nc.subscribe(own["status"], cb=intake.on_status),
        await nc.subscribe(own["cancel"], cb=intake.on_cancel),
    ]


class _Intake:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.admitted: asyncio.Future[None] | None = None  # the last submission's admission
        self.accepted: asyncio.Future[None] | None = None  # the last submission's acceptance
        self.logins = UserLogins(plane.settings.users_file)

    def stamp(self, job_id: str, stage: str, at: float | None = None) -> None:
        if self.plane.stats is not None:
            self.plane.stats.stamp(job_id, stage, at)

    def reply(self, msg: Any, message: Any) -> None:
        if msg.reply:
            asyncio.get_running_loop().create_task(self.plane.nc.publish(msg.reply, encode_message(message)))

    async def reply_now(self, msg: Any, message: Any) -> None:
        """Published and on the socket before this returns, with whatever was published
        before it (the caller is waiting for it)."""
        if msg.reply:
            await self.plane.nc.publish(msg.reply, encode_message(message))
        write_pending(self.plane.nc)

    def answer(self, msg: Any, error: str | None, **detail: Any) -> None:
        self.reply(msg, self.answered(error, **detail))

    def answered(self, error: str | None, **detail: Any) -> Reply:
        return Reply(sender=self.plane.settings.sender, seq=self.plane.next_seq(),
                     sent_at=self.plane.now(), ok=error is None, error=error, detail=detail)

    def decode(self, msg: Any, kind: type, label: str) -> Any:
        try:
            return decode_request(msg.data, kind)
        except wire.ProtocolError as exc:
            self.refuse(msg, label, exc)
            return None

    def refuse(self, msg: Any, label: str, exc: Exception) -> None:
        self.plane.refused[label] += 1
        logger.warning("refused a %s request (%d so far): %s", label, self.plane.refused[label], exc)
        self.answer(msg, f"refused: {exc}")

    # -- submit --------------------------------------------------------------------------------
    async def on_submit(self, msg: Any) -> None:
        """Decode here, the rest in a task of its own: the subscription hands over the next
        submission at once instead of after this one's look-ups in the log (one at a time,
        a busy log held every later submission: 0.1-1.3 s in benchmarks/bench_live.py)."""
        received = self.plane.now()
        try:
            request, raw = decode_request_raw(msg.data, SubmitRequest)
        except wire.ProtocolError as exc:
            self.refuse(msg, "submit", exc)
            return
        self.stamp(request.job_id, "received", received)
        previous = self.accepted
        if (previous is None or previous.done()) and not self.lookups(request, requester(msg)):
            # nothing to look up and no one ahead (a gateway's request): accepted now, not a
            # turn of the loop later
            self.stamp(request.job_id, "recalled")
            await self.accept_in_turn(msg, request, raw)
            return
        turn = self.accepted = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().create_task(self.take(msg, request, raw, previous, turn))

    async def take(self, msg: Any, request: SubmitRequest, raw: dict[str, Any], previous: Any, turn: Any) -> None:
        """Look up what the request refers to (concurrently with other submissions), then
        accept it in arrival order: after every submission that arrived before it."""
        try:
            try:
                await self.recall(request, requester(msg))
            except Exception as exc:  # noqa: BLE001 - the log is unreachable now: the client retries
                self.answer(msg, f"cannot read the event log now ({exc!r}); try again")
                return
            finally:
                if previous is not None:
                    await previous
            self.stamp(request.job_id, "recalled")
            await self.accept_in_turn(msg, request, raw)
        finally:
            turn.set_result(None)

    async def accept_in_turn(self, msg: Any, request: SubmitRequest, raw: dict[str, Any]) -> None:
        user = requester(msg)
        error = self.check(request, user)
        if error is not None:
            self.plane.refused["submit"] += 1
            self.plane.drop_idle_job(request.job_id)  # recalled for nothing: memory stays bounded
            self.answer(msg, error)
            return
        fresh, must_be_durable = self.accept(request, raw["tasks"], user)
        if not fresh:
            self.plane.drop_idle_job(request.job_id)  # all known already: nothing to keep
        now = self.plane.now()
        for live in fresh:
            self.plane.core_submit(live, now)
        placed = None
        if request.placement:  # as the core offered them now (the reply may leave later)
            placed = {item.task.id: placement(self.plane, self.plane.tasks.get(item.task.id), now, item.task.id)
                      for item in request.tasks}
        if placed is not None and request.early_placement:
            # the assignment goes to the socket now, the answer behind it in the same write
            # (protocol 1.8: its TaskSubmitted follows in the log, as the assignment does),
            # which the caller needs before the first token comes; the log's appends wait
            # until such submissions stop coming (Journal.hold)
            self.plane.journal.hold()
            await self.plane.dispatch_now(write=False)
            self.stamp(request.job_id, "admitted")
            await self.reply_now(msg, self.answered(None, job_id=request.job_id, accepted=len(fresh),
                                                    placement=placed))
            return
        previous, done = self.admitted, asyncio.get_running_loop().create_future()
        self.admitted = done
        asyncio.get_running_loop().create_task(
            self.admit(msg, request, len(fresh), placed, self.plane.journal.durable(must_be_durable),
                       previous, done)
        )

    def lookups(self, request: SubmitRequest, user: str | None) -> tuple[bool, list[str]] | None:
        """What `recall` must read from the log: (the job?, dependencies), or None: nothing."""
        plane = self.plane
        # a fresh job is new to the log; a cluster user's claim of it is not taken on trust
        job = request.job_id not in plane.journal.jobs and not (request.fresh_job and user is None)
        ids = {item.task.id for item in request.tasks}
        deps = [dep for item in request.tasks for dep in item.after
                if dep not in ids and plane.state_of(dep) is None]
        return (job, deps) if job or deps else None

    async def recall(self, request: SubmitRequest, user: str | None = None) -> None:
        """Bring back from the log what the request refers to and memory no longer holds:
        its job (so a task submitted long ago is not submitted again) and the dependencies
        that ended before the window of ended tasks."""
        plane = self.plane
        job, deps = self.lookups(request, user) or (False, [])
        if job:
            await plane.journal.recall_job(request.job_id)
        for dep in deps:
            if plane.state_of(dep) is None:  # (another submission's look-up may have it now)
                last = await last_event(plane.js, TaskAggregate.aggregate_type, dep)
                ended = ended_from_event(last) if last is not None else None
                if ended is not None:
                    plane.window.add(ended)

    def known(self, task_id: str, job_id: str) -> bool:
        """Was this task submitted before (in memory, or listed by its job in the log)?"""
        plane = self.plane
        if task_id in plane.tasks or plane.window.get(task_id) is not None:
            return True
        job = plane.journal.jobs.get(job_id)
        return job is not None and task_id in job.children.get(TaskAggregate.aggregate_type, ())

    def check(self, request: SubmitRequest, user: str | None = None) -> str | None:
        """Why the request cannot be accepted (naming the field), or None."""
        job = self.plane.journal.jobs.get(request.job_id)
        if job is not None and job.submitted and not owns_job(self.plane, user, request.job_id):
            return f"job_id: job {request.job_id!r} was submitted by someone else; choose another job id"
        refusal = claim_refusal(self.logins, user, request.tasks)
        if refusal is not None:
            return refusal
        ids = set()
        for i, item in enumerate(request.tasks):
            task = item.task
            where = f"tasks[{i}].task"
            if not task.id.startswith(request.job_id + "-"):
                return f"{where}.id: {task.id!r} must start with the job id {request.job_id!r} and '-'"
            if not _safe(task.id):
                return f"{where}.id: {task.id!r} may hold only letters, digits, '_' and '-'"
            if task.privacy is Privacy.PERSONAL and not task.owner:
                return f"{where}.owner: personal work needs an owner"
            known = self.plane.tasks.get(task.id)
            if known is not None and known.spec != item:
                return f"{where}.id: task {task.id} was already submitted with other contents"
            for j, dep in enumerate(item.after):
                if dep not in ids and self.plane.state_of(dep) is None:
                    return f"tasks[{i}].after[{j}]: unknown task {dep!r} (list it before its dependents)"
            ids.add(task.id)
        return None

    def accept(self, request: SubmitRequest, raw_tasks: list[dict[str, Any]],
               user: str | None = None) -> tuple[list[LiveTask], list[Any]]:
        """Record JobSubmitted (once), TaskSubmitted per new task and the job's list of them:
        in its JobSubmitted when the job is new (one event fewer: a gateway request is a job
        of one task), else in one JobTasksAdded; returns the new tasks and the events that
        must be in the log before the reply (a JobTasksAdded may trail: TaskSubmitted names
        the job too)."""
        plane, journal = self.plane, self.plane.journal
        issued_by = user_issuer(user or request.sender)
        owner = owner_tag(user) if user is not None else request.owner or "-"
        now = plane.now()
        job = journal.job(request.job_id)
        new: dict[str, tuple[SubmitTask, dict[str, Any]]] = {}
        for item, raw in zip(request.tasks, raw_tasks, strict=True):
            if item.task.id not in new and not self.known(item.task.id, request.job_id):
                new[item.task.id] = (item, raw)  # (else a retried request: already accepted)
        envelopes = []
        added = {"task_ids": list(new)} if new else {}
        if not job.submitted:
            envelopes.append(journal.record(job, "SubmitJob", {"owner": owner, **added}, issued_by,
                                            {"source": request.source}))
            added = {}
        fresh = []
        for item, raw in new.values():
            spec = item.task
            deadline = None if spec.deadline_s is None else now + spec.deadline_s - spec.arrival_s
            task = replace(spec.to_task(), arrival_s=now, deadline_s=deadline,
                           needs=task_needs(spec.kind, item.payload))
            live = LiveTask(spec=item, task=task, job_id=request.job_id)
            plane.adopt(live)
            envelopes.append(journal.record(
                journal.task(task.id), "SubmitTask",
                {"job_id": request.job_id, "model": spec.model or "", "owner": spec.owner or "",
                 "privacy": spec.privacy.value},
                issued_by, {"spec": raw, "submitted_at": now},  # the validated JSON, as sent
            ))
            fresh.append(live)
        if added:
            journal.record(job, "AddTasks", added, issued_by)
        return fresh, envelopes

    async def admit(self, msg: Any, request: SubmitRequest, accepted: int,
                    placed: dict[str, Any] | None, durable: Any, previous: Any, done: Any) -> None:
        """Answer once the submission is in the log, after the submissions before it;
        ``placed``: each task's placement, for a caller that answers its own from it (the gateway)."""
        try:
            await durable
            self.stamp(request.job_id, "durable")
            if previous is not None:
                await previous
            self.stamp(request.job_id, "admitted")
            if placed is None:
                self.answer(msg, None, job_id=request.job_id, accepted=accepted)
            else:
                self.answer(msg, None, job_id=request.job_id, accepted=accepted, placement=placed)
        finally:
            done.set_result(None)

    # -- queries --------------------------------------------------------------------------------
    async def on_status(self, msg: Any) -> None:
        request = self.decode(msg, QueryRequest, "query")
        if request is None:
            return
        plane, user = self.plane, requester(msg)
        if request.job_id is not None and not owns_job(plane, user, request.job_id):
            self.answer(msg, f"job_id: no job {request.job_id!r} of yours in memory")
            return
        counts: Counter[str] = Counter(plane.window.totals)
        jobs: dict[str, Counter[str]] = {job: Counter(c) for job, c in plane.window.jobs.items()}
        rows = []
        for task_id, live in plane.tasks.items():  # the working set: what has not ended
            aggregate = plane.journal.tasks.get(task_id)
            if aggregate is None:
                continue
            state = outcome(aggregate)
            counts[state] += 1
            jobs.setdefault(live.job_id, Counter())[state] += 1
            if live.job_id == request.job_id and len(rows) < request.limit:
                rows.append(TaskRow(task_id=task_id, job_id=live.job_id, status=state, node=aggregate.target,
                                    attempts=live.attempt, reason=aggregate.failure_reason or
                                    ("" if live.node else live.wait_reason), result=live.result))
        if request.job_id is not None:
            if request.job_id not in jobs and request.job_id not in plane.journal.jobs:
                self.answer(msg, f"job_id: no job {request.job_id!r} in memory (a job that ended long "
                                 "ago is in the event log only)")
                return
            for ended in plane.window.rows(request.job_id):
                if len(rows) >= request.limit:
                    break
                rows.append(row(ended))
        if user is not None:  # a user's counts are its own jobs' only
            jobs = {job: c for job, c in jobs.items() if owns_job(plane, user, job)}
            counts = sum(jobs.values(), Counter())
        if plane.recorder is not None:  # the twin's predicted service time next to the actual one
            last = plane.recorder.shadow.last
            rows = [r.model_copy(update={"predicted_s": last[r.task_id][0], "actual_s": last[r.task_id][1]})
                    if r.task_id in last else r for r in rows]
        self.reply(msg, StatusReply(
            sender=plane.settings.sender, seq=plane.next_seq(), sent_at=plane.now(),
            counts=dict(counts), tasks=rows, jobs={j: dict(c) for j, c in jobs.items()},
            refused_messages=dict(plane.refused) if user is None else {},
            shadow=plane.recorder.shadow.figure().as_dict() if plane.recorder else {},
        ))

    async def on_fleet(self, msg: Any) -> None:
        request = self.decode(msg, QueryRequest, "query")
        if request is None:
            return
        plane, now = self.plane, self.plane.now()
        rows = []
        for node_id, live in sorted(plane.fleet.nodes.items()):
            state = plane.fleet.state.nodes[node_id]
            rows.append(NodeRow(
                node_id=node_id, device=live.node.device.id, owner=live.node.owner,
                status="lost" if live.lost else "left" if live.left else state.status.value,
                slots=live.node.slots, running=len(live.running),
                free_memory_gb=round(state.free_memory_gb, 2),
                last_report_s_ago=round(now - live.last_seen_s, 2),
                thermal=state.thermal.value, power=state.power_source.value,
                speed_relative=live.report.cpu.speed_relative,
                shadow_error=plane.recorder.shadow.figure(node_id).median_abs_error if plane.recorder else None,
            ))
        running = sum(len(live.running) for live in plane.fleet.nodes.values())
        present = [(live.node, live.report) for _, live in sorted(plane.fleet.nodes.items())
                   if not (live.lost or live.left)]
        spent = plane.fleet.state.cloud_spend_usd
        budgets = [BudgetRow(account=a, period=b.period, limit_usd=b.limit_usd, spent_usd=spent.get(a, 0.0))
                   for a, b in sorted(plane.fleet.state.fleet.budgets.items())]
        recorder, since = plane.recorder, request.since_unix_s
        speeds = recorder.speeds_since(since) if recorder is not None and since is not None else {}
        profiles = recorder.speed_profiles_since(since) if recorder is not None and since is not None else {}
        spreads = plane.recorder.shadow.measured(since, profiles) if plane.recorder is not None else {}
        self.reply(msg, FleetReply(
            sender=plane.settings.sender, seq=plane.next_seq(), sent_at=now, nodes=rows, budgets=budgets,
            waiting=plane.core.waiting(), running=running,
            shadow=plane.recorder.shadow.figure().as_dict() if plane.recorder else {},
            fleet_file=fleet_document(present, speeds, spreads, profiles) if present else {},
        ))

    # -- cancel, drain -----------------------------------------------------------------------
    async def on_cancel(self, msg: Any) -> None:
        request = self.decode(msg, CancelRequest, "cancel")
        if request is None:
            return
        plane, user = self.plane, requester(msg)
        if not owns_task(plane, user, request.task_id):
            self.answer(msg, f"task_id: no task {request.task_id!r} of yours is waiting or running")
            return
        error = plane.cancel(request.task_id, user_issuer(user or request.sender))
        if error is not None and plane.state_of(request.task_id) is None:  # ended long ago?
            last = await last_event(plane.js, TaskAggregate.aggregate_type, request.task_id)
            ended = ended_from_event(last) if last is not None else None
            if ended is not None:
                error = f"task {request.task_id} has already ended ({ended.status})"
        self.answer(msg, error)

    async def on_drain(self, msg: Any) -> None:
        request = self.decode(msg, DrainRequest, "drain")
        if request is not None:
            self.answer(msg, self.plane.drain(request.node_id, request.deadline_s))


def _safe(task_id: str) -> bool:
    return all(c.isalnum() or c in "_-" for c in task_id) and task_id.isascii()
