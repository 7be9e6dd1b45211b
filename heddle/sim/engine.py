"""The twin's event loop: arrivals, placement through `optimizer.place()`, service on nodes and
cloud offers, completions, deferral, retries and fleet events, on a SimPy clock.

Hot-path design: one SimPy event per arrival instant and per completion, handled by
plain callbacks (no process per task) and pushed straight onto SimPy's heap
(`heddle.sim.clock.after`, the same order as `env.timeout`); the `FleetState` handed to
`place()` is built once and mutated in place; per-task results go straight into
preallocated arrays (`Records`).
Invariant: a task that arrives is, when the run ends, in exactly one terminal state (or
`in_flight` at a horizon); a placement that breaks privacy raises at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from heapq import heappush
from time import perf_counter
from typing import Any

import numpy as np
import simpy
from simpy.events import NORMAL

from heddle.models import Fleet, FleetState, OfferKind, Privacy, TaskKind, cost, perf
from heddle.models.catalog_stub import model_spec
from heddle.optimizer import DecisionStatus, TargetKind, place
from heddle.sim.clock import NodeDone, after
from heddle.sim.cloud import INSTANCE_SLOTS_PER_GPU, CloudDispatch, OfferRt
from heddle.sim.errors import PrivacyViolationError, WorkloadError
from heddle.sim.fleet_events import FleetDynamics
from heddle.sim.nodes import NodeRt
from heddle.sim.records import (
    KIND_NODE,
    ST_COMPLETED,
    ST_FAILED,
    ST_IN_FLIGHT,
    ST_PENDING,
    ST_REJECTED,
    Records,
)
from heddle.sim.workload import Workload

__all__ = ["Twin", "TwinSettings"]

_PLACED, _DEFERRED, _REJECTED = DecisionStatus.PLACED, DecisionStatus.DEFERRED, DecisionStatus.REJECTED
_CLOUD = TargetKind.CLOUD
_PUBLIC, _PERSONAL, _LLM = Privacy.PUBLIC, Privacy.PERSONAL, TaskKind.LLM


@dataclass(frozen=True, slots=True)
class TwinSettings:
    """Knobs of one run (all times in simulated seconds)."""

    batch_window_s: float = 0.0  # 0: place on each arrival (fast path); > 0: batch windows
    batch_max_tasks: int = 2000  # most tasks handed to one batch call
    max_retries: int = 3  # re-placements after a node failure before a task fails
    max_defer_s: float = 3600.0  # a task deferred longer than this is rejected with the reason
    defer_retry_s: float = 5.0  # deferred tasks are re-offered at least this often
    retry_scan: int = 8  # deferred tasks re-offered past the free slots / per periodic retry
    instance_keepalive_s: float = 300.0  # an idle instance shuts down after this
    service_cv: float = 0.0  # lognormal noise on service times (0 = the perf model exactly)
    progress_every: int = 8192  # arrivals between progress callbacks
    express: bool = True  # the ExpressTwin (same results, less Python per request); False: Twin


class Twin(CloudDispatch):
    """One simulation run. Build, `run()`, then read `records` and the node/offer state."""

    def __init__(self, fleet: Fleet, workload: Workload, policy: Any, *, settings: TwinSettings,
                 dynamics: FleetDynamics | None, rng: np.random.Generator,
                 horizon_s: float | None, progress: Callable[[int, int], None] | None = None):
        self.env = simpy.Environment()
        self.w = workload
        self.policy = policy
        self.cfg = settings
        self.horizon_s = horizon_s
        self.progress = progress
        self.state = FleetState.idle(fleet)
        self.state.time_s = -1.0  # forces the first _prepare_state
        self.nodes: list[NodeRt] = []
        self.offers: list[OfferRt] = []
        self.targets: list[NodeRt | OfferRt] = []  # index = target code in the records
        self._full: set[NodeRt] = set()  # nodes with no free slot (their backlog moves with time)
        self.target_by_name: dict[str, NodeRt | OfferRt] = {}
        for node in fleet.nodes:
            self.add_node(node, present=True)
        slots_per_gpu = getattr(policy, "instance_slots_per_gpu", INSTANCE_SLOTS_PER_GPU)
        for offer in fleet.cloud_offers:
            rt = OfferRt(idx=-1, offer=offer, slots=max(offer.gpu_count, 1) * slots_per_gpu)
            if offer.kind is OfferKind.INSTANCE:
                rt.device = perf.offer_device(offer)
            rt.idx = len(self.targets)
            self.offers.append(rt)
            self.targets.append(rt)
            self.target_by_name[offer.id] = rt
        self.rec = Records.empty(workload.n)
        self.arrived = bytearray(workload.n)  # 1 = arrived (`arrived_mask()` is the numpy view)
        self.deps_left = workload.deps_left.tolist()
        self.dep_failed = bytearray(workload.n)
        # per-task scratch as Python lists: indexing them is much cheaper than numpy scalars
        n = workload.n
        self.token = [0] * n  # bumped when an attempt is lost: its completion event is stale
        self.mem_key = [-1] * n  # (model, quant) key of the task, -1 = no model
        self.mem_need = [0.0] * n  # GB the task pins while it runs (KV cache / working memory)
        self.est_s = [0.0] * n  # the optimizer's service estimate (for queued work)
        self.task_kwh = [0.0] * n  # energy of the current attempt, known at its start
        self.noise = (rng.lognormal(-0.5 * np.log1p(settings.service_cv ** 2),
                                    np.sqrt(np.log1p(settings.service_cv ** 2)), workload.n).tolist()
                      if settings.service_cv > 0 else None)
        self.live: dict[int, Any] = {}  # task index -> Task while not terminal
        self._arrival: list[float] = []
        self._next = 0  # next trace row to arrive
        self.deferred: deque[int] = deque()
        self.pending: list[int] = []  # batch mode: released, waiting for the window
        self.retry_armed = False
        self.window_armed = False
        self.outstanding = 0
        self.place_calls = 0
        self.place_wall_s = 0.0  # wall-clock seconds spent inside place()
        self.budget_roll = _BudgetRoller(fleet)
        self._mq: dict[tuple[str, str], tuple] = {}  # (model, quant) -> see _model_quant
        self._mq_by_key: list[tuple] = []
        self.dynamics = dynamics
        if dynamics is not None:
            dynamics.attach(self)

    # -- fleet bookkeeping ----------------------------------------------------------------
    def add_node(self, node, *, present: bool) -> NodeRt:
        ns = self.state.nodes.get(node.id)
        if ns is None:
            ns = FleetState.idle(Fleet("one", (node,))).nodes[node.id]
            self.state.nodes[node.id] = ns
        fleet = self.state.fleet
        dev = node.device
        rt = NodeRt(
            idx=len(self.targets), node=node, ns=ns,
            usable_gb=node.memory_gb - node.reserved_memory_gb,
            busy_w_per_slot=max(cost.step_power_w(dev, "decode") - dev.idle_power_w, 0.0) / max(node.slots, 1),
            idle_w=dev.idle_power_w, price_usd_per_kwh=fleet.price_usd_per_kwh(node),
            present=present,
        )
        self.nodes.append(rt)
        self.targets.append(rt)
        self.target_by_name[node.id] = rt
        self.publish(rt, self.env.now)
        return rt

    def target_names(self) -> list[str]:
        return [rt.node.id if isinstance(rt, NodeRt) else rt.offer.id for rt in self.targets]

    # -- run ------------------------------------------------------------------------------
    def run(self) -> None:
        self._arrival = self.w.arrival_s.tolist()
        self._next = 0
        self._schedule_arrival()
        if self.horizon_s is None:
            self.env.run()
        else:
            self.env.run(until=self.horizon_s)
        self._close()

    def _schedule_arrival(self) -> None:
        """One timer to the next arrival instant (a callback chain: cheaper than a process)."""
        i, n = self._next, self.w.n
        if i >= n or (self.horizon_s is not None and self._arrival[i] >= self.horizon_s):
            if self.progress is not None:
                self.progress(n, n)
            return
        after(self.env, self._arrival[i] - self.env.now, None, self._on_arrivals)

    def _on_arrivals(self, _ev) -> None:
        now, arrival, n = self.env.now, self._arrival, self.w.n
        i = self._next
        every = self.cfg.progress_every
        while i < n and arrival[i] <= now:  # everything arriving at this instant, in trace order
            self._next = i + 1
            self.arrived[i] = 1
            self.outstanding += 1
            if self.deps_left[i] == 0:
                self._release(i)
            if self.progress is not None and i % every == 0:
                self.progress(i, n)
            i += 1
        self._schedule_arrival()

    def arrived_mask(self) -> np.ndarray:
        """Boolean numpy view of which tasks arrived (shares memory with `arrived`)."""
        return np.frombuffer(self.arrived, dtype=np.bool_)

    def _close(self) -> None:
        """At the end: anything not terminal is in flight (horizon) — or a bug (no horizon)."""
        rec = self.rec
        open_ = np.flatnonzero(self.arrived_mask() & (rec.status_array() == ST_PENDING))
        if len(open_):
            if self.horizon_s is None:
                raise WorkloadError(f"task {self.w.task_id[int(open_[0])]!r} never reached a terminal state")
            status = rec.status
            for i in open_.tolist():
                status[i] = ST_IN_FLIGHT
        now = self.env.now
        for rt in self.offers:  # instances still up are billed to the end of the run
            if rt.up and rt.last_task >= 0:
                usd = rt.charge_to(now)
                rec.cost_usd[rt.last_task] += usd
                self._charge_budget(rt.last_task, usd)

    # -- release and placement ------------------------------------------------------------
    def _release(self, i: int) -> None:
        if self.dep_failed[i]:
            self._terminal(i, ST_REJECTED, "a stage it depends on did not complete")
            return
        self.rec.release_s[i] = self.env.now
        self.live[i] = self.w.make_task(i)
        if self.cfg.batch_window_s > 0:
            self.pending.append(i)
            self._arm_window()
        elif self._place_one(i):
            self.deferred.append(i)
            self._arm_retry()

    def _advance_clock(self) -> float:
        """Bring the FleetState's clock (and budget periods) to now; returns now."""
        state, now = self.state, self.env._now
        if now != state.time_s:
            state.time_s = now
            if now >= self.budget_roll.soonest:
                self.budget_roll.roll(now, state)
        return now

    def _prepare_state(self) -> None:
        """Bring the time-dependent parts of the FleetState to now: the clock, budget periods
        and the backlog of every full node (only theirs moves with the clock)."""
        now = self._advance_clock()
        for rt in self._full:
            rt.refresh_backlog(now)

    def _place_one(self, i: int) -> bool:
        """Ask the optimizer about one task (the fast path). True if it was deferred again."""
        self._prepare_state()
        self.place_calls += 1
        t0 = perf_counter()
        d = place(self.state, [self.live[i]], self.policy).decisions[0]
        self.place_wall_s += perf_counter() - t0
        return self._act(i, d)

    def _place(self, batch: list[int]) -> list[int]:
        """Ask the optimizer about `batch`; act on each decision. Returns re-deferred indices."""
        if len(batch) == 1:
            return batch if self._place_one(batch[0]) else []
        self._prepare_state()
        tasks = [self.live[i] for i in batch]
        self.place_calls += 1
        t0 = perf_counter()
        decisions = place(self.state, tasks, self.policy).decisions
        self.place_wall_s += perf_counter() - t0
        by_id = {d.task_id: d for d in decisions}
        return [i for i, t in zip(batch, tasks) if self._act(i, by_id[t.id])]

    def _act(self, i: int, d) -> bool:
        """Carry out one decision. True if the task stays deferred."""
        status = d.status
        if status is _PLACED:
            self._dispatch(i, d)
            return False
        if status is _DEFERRED:
            return self._defer(i, d.reason)
        if status is _REJECTED:
            self._terminal(i, ST_REJECTED, d.reason or "rejected by the optimizer")
            return False
        raise WorkloadError(f"optimizer returned unknown status {status!r} for task {d.task_id!r}")

    def _defer(self, i: int, reason: str) -> bool:
        """Count a deferral; False if the task has waited too long and was rejected."""
        rec = self.rec
        rec.defers[i] += 1
        if self.env.now - rec.release_s[i] > self.cfg.max_defer_s:
            self._terminal(i, ST_REJECTED, f"deferred for over {self.cfg.max_defer_s:g} s: {reason}")
            return False
        rec.set_reason(i, reason)
        return True

    def _dispatch(self, i: int, d) -> None:
        target = self.target_by_name.get(d.target)
        if target is None:
            raise WorkloadError(f"optimizer placed task {d.task_id!r} on unknown target {d.target!r}")
        if isinstance(target, OfferRt):
            privacy = self.live[i].privacy
            if privacy is not _PUBLIC or d.target_kind is not _CLOUD:
                raise PrivacyViolationError(
                    f"task {d.task_id!r} ({privacy.value}) was placed on cloud offer {d.target!r}")
            self._to_offer(i, target)
            return
        self._to_node(i, target, d.est_seconds, self.w.row(i))

    def _to_node(self, i: int, target: NodeRt, est_seconds: float, row: tuple) -> None:
        """Send task i (`row`: its Task field values) to a node: start it or queue it there."""
        if row[9] is _PERSONAL and not target.node.may_hold_personal_of(row[10]):
            raise PrivacyViolationError(
                f"personal task {row[0]!r} of owner {row[10]!r} was placed on node "
                f"{target.node.id!r} (owner {target.node.owner!r})")
        if not target.accepts_work():  # a stale decision: offer it again later
            if self._defer(i, f"node {target.node.id} is {target.ns.status.value}"):
                self.deferred.append(i)
                self._arm_retry()
            return
        if row[1] is _LLM:
            mq = self._mq.get((row[3], row[4]))
            if mq is None:
                mq = self._model_quant(row[3], row[4])
            self._assign(i, target, est_seconds, mq[0], mq[3] * (row[5] + row[6]))
        else:
            self._assign(i, target, est_seconds, -1, row[8])

    def _assign(self, i: int, target: NodeRt, est_seconds: float, mem_key: int, mem_need: float) -> None:
        """Task i (checked: privacy, the node takes work) goes to `target`: it starts there or
        joins the node's queue. `mem_key`: its (model, quant) key, -1 none; `mem_need`: GB it pins."""
        rec = self.rec
        rec.target[i] = target.idx
        rec.target_kind[i] = KIND_NODE
        self.mem_key[i] = mem_key
        self.mem_need[i] = mem_need
        self.est_s[i] = est_seconds
        if target.queue or len(target.running) >= target.node.slots or not self._try_start(i, target):
            target.queue.append(i)
            target.queued_work_s += est_seconds
        self.publish(target, self.env._now)

    def publish(self, rt: NodeRt, now: float) -> None:
        """Refresh rt's NodeState and remember whether its backlog moves with the clock."""
        if rt.publish(now):
            self._full.add(rt)
        else:
            self._full.discard(rt)

    # -- local nodes ----------------------------------------------------------------------
    def _model_quant(self, model: str, quant: str) -> tuple:
        """(key, spec, weights GB, KV GB per token, (model, quant)) for one model + quant."""
        try:
            spec = model_spec(model)
        except KeyError as exc:
            raise WorkloadError(f"field 'model': {model!r} is not in the model catalog") from exc
        if quant not in spec.bytes_per_weight:
            raise WorkloadError(f"field 'quant': model {model!r} has no quantization {quant!r}; "
                                f"expected one of {sorted(spec.bytes_per_weight)}")
        mq = (len(self._mq_by_key), spec, spec.weights_gb(quant), spec.kv_bytes_per_token / 1e9, (model, quant))
        self._mq[(model, quant)] = mq
        self._mq_by_key.append(mq)
        return mq

    def _try_start(self, i: int, rt: NodeRt) -> bool:
        """Start task i on rt if its memory fits now. False: it must wait for memory."""
        key = self.mem_key[i]
        need = self.mem_need[i]
        if key >= 0:
            mq = self._mq_by_key[key]
            ok, missing = rt.admit(key, mq[2], need, mq[4])
        else:
            ok, missing = rt.admit(-1, 0.0, need, ("", ""))
        if ok:
            self._start_on_node(i, rt, key, missing)
            return True
        if rt.running:
            return False  # wait for the memory that running tasks hold
        self._interrupt(i, rt, f"does not fit in the memory of node {rt.node.id}", requeue=True)
        return True

    def _start_next(self, rt: NodeRt) -> None:
        queue = rt.queue
        while queue and len(rt.running) < rt.node.slots:
            i = queue[0]
            if not self._try_start(i, rt):
                break
            queue.popleft()
            left = rt.queued_work_s - self.est_s[i]
            rt.queued_work_s = max(0.0, left)

    def _start_on_node(self, i: int, rt: NodeRt, key: int, missing: bool) -> None:
        env, rec = self.env, self.rec
        now = env._now
        sf = rt.ns.speed_factor or 1.0
        if key >= 0:
            # decode slows when several requests share the node's memory bandwidth
            load_s, prefill_s, decode_s, kwh = self._llm_step(i, rt, key, missing, len(rt.running) + 1)
            wait_load = 0.0
            if missing:
                rt.loaded_at_s[key] = now + load_s / sf
            else:
                ready = rt.loaded_at_s.get(key, 0.0)
                if ready > now:
                    wait_load = ready - now
            service = wait_load + (load_s + prefill_s + decode_s) / sf
            first_token = wait_load + (load_s + prefill_s) / sf
            # marginal energy of the step (load phase at its own power), shared by the slots
            kwh = kwh / sf / rt.node.slots
        else:
            service = perf.processor_seconds(rt.node.device, self.w.row(i)[7]) / sf
            first_token = service
            kwh = cost.energy_kwh(rt.busy_w_per_slot, service)
        if self.noise is not None:
            service *= self.noise[i]
            first_token *= self.noise[i]
            kwh *= self.noise[i]
        self.task_kwh[i] = kwh
        rec.start_s[i] = now
        rec.service_s[i] = service
        rec.ttft_s[i] = now - self._arrival[i] + first_token
        rt.running.add(i)
        rt.finish_sum_s += now + service
        self._push_done(now + service, i)

    def _push_done(self, at_s: float, i: int) -> None:
        """Task i's completion at `at_s`, on SimPy's heap as `after()` would put it."""
        env = self.env
        heappush(env._queue, (at_s, NORMAL, next(env._eid), NodeDone((i, self.token[i]), self._on_node_finish)))

    def _llm_step(self, i: int, rt: NodeRt, key: int, missing: bool, batch: int) -> tuple[float, float, float, float]:
        """(load s, prefill s, decode s, marginal kWh) of task i's LLM step on rt, unthrottled."""
        row = self.w.row(i)
        st = perf.llm_step(rt.node.device, self._mq_by_key[key][1], row[4], row[5], row[6],
                           resident=not missing, batch=batch)
        return st.load_s, st.prefill_s, st.decode_s, cost.step_energy_kwh(rt.node.device, st)

    def _on_node_finish(self, ev) -> None:
        self._node_finished(*ev._value)

    def _node_finished(self, i: int, tok: int) -> None:
        if self.token[i] != tok:
            return  # the node failed under this attempt
        rec = self.rec
        rt = self.targets[rec.target[i]]
        now = self.env._now
        service = rec.service_s[i]
        rt.running.discard(i)
        rt.finish_sum_s -= rec.start_s[i] + service
        rt.release(self.mem_key[i], self.mem_need[i])
        rt.busy_slot_s += service
        kwh = self.task_kwh[i]
        rec.energy_kwh[i] += kwh
        rec.cost_usd[i] += kwh * rt.price_usd_per_kwh
        rec.finish_s[i] = now
        self._completed(i)
        if rt.queue:
            self._start_next(rt)
        self.publish(rt, now)
        if self.deferred and self.cfg.batch_window_s <= 0:  # capacity freed: offer deferred work
            self._retry(1)

    def _completed(self, i: int) -> None:
        self._terminal(i, ST_COMPLETED, "")

    def _interrupt(self, i: int, rt: NodeRt | None, why: str, *, requeue: bool) -> None:
        """A task lost its place (node failed/left, or it cannot fit): retry it, bounded."""
        rec = self.rec
        if rt is not None and i in rt.running:
            ran = self.env.now - rec.start_s[i]
            rt.busy_slot_s += ran
            kwh = cost.energy_kwh(rt.busy_w_per_slot, ran)
            rec.energy_kwh[i] += kwh
            rec.cost_usd[i] += kwh * rt.price_usd_per_kwh
        self.token[i] += 1
        rec.retries[i] += 1
        rec.retry_reason[i] = rec.code(why)
        if rec.retries[i] > self.cfg.max_retries:
            rec.finish_s[i] = self.env.now
            self._terminal(i, ST_FAILED, f"failed after {self.cfg.max_retries} retries: {why}")
            return
        rec.target[i] = -1
        rec.target_kind[i] = 0
        rec.start_s[i] = np.nan
        if requeue:
            self.deferred.appendleft(i)
            self._arm_retry()

    # -- terminal states, dependencies, deferral ------------------------------------------
    def _terminal(self, i: int, status: int, reason: str) -> None:
        rec = self.rec
        if rec.status[i] != ST_PENDING:
            raise WorkloadError(f"task {self.w.task_id[i]!r} reached a second terminal state")
        rec.status[i] = status
        if status != ST_COMPLETED:
            rec.set_reason(i, reason)
            if rec.finish_s[i] != rec.finish_s[i]:
                rec.finish_s[i] = self.env.now
        self.live.pop(i, None)
        self.outstanding -= 1
        for j in self.w.dependents.get(i, ()):
            if status != ST_COMPLETED:
                self.dep_failed[j] = 1
            self.deps_left[j] -= 1
            if self.deps_left[j] == 0 and self.arrived[j]:
                self._release(j)

    def _free_slots(self) -> int:
        return sum(rt.ns.free_slots for rt in self.nodes if rt.present)

    def _retry(self, minimum: int) -> None:
        """Re-offer deferred tasks one at a time, oldest first, while local slots are free
        (at least `minimum`; at most `retry_scan` past the free slots, so a head that cannot
        use the freed slot does not block the rest). One at a time keeps the queue FIFO."""
        dq = self.deferred
        kept: list[int] = []
        attempts = 0
        budget = max(minimum, self._free_slots())
        limit = budget + self.cfg.retry_scan
        while dq and attempts < limit and (attempts < minimum or self._free_slots() > 0):
            i = dq.popleft()
            attempts += 1
            if self._place_one(i):
                kept.append(i)
        dq.extendleft(reversed(kept))
        if dq:
            self._arm_retry()

    def _arm_retry(self) -> None:
        if not self.retry_armed and self.cfg.batch_window_s <= 0:
            self.retry_armed = True
            ev = self.env.timeout(self.cfg.defer_retry_s)
            ev.callbacks.append(self._retry_tick)

    def _retry_tick(self, _ev) -> None:
        self.retry_armed = False
        dq, rec, now, limit = self.deferred, self.rec, self.env.now, self.cfg.max_defer_s
        while dq and now - rec.release_s[dq[0]] > limit:
            i = dq.popleft()
            self._terminal(i, ST_REJECTED,
                           f"deferred for over {limit:g} s: {rec.reasons[rec.reason[i]]}")
        if self.offers or self._free_slots() > 0:  # else only a freed slot can help
            self._retry(min(len(dq), self.cfg.retry_scan))
        elif dq:
            self._arm_retry()

    def _arm_window(self) -> None:
        if not self.window_armed:
            self.window_armed = True
            ev = self.env.timeout(self.cfg.batch_window_s)
            ev.callbacks.append(self._window_tick)

    def _window_tick(self, _ev) -> None:
        self.window_armed = False
        batch = list(self.deferred) + self.pending
        self.deferred.clear()
        self.pending = []
        cap = self.cfg.batch_max_tasks
        for k in range(0, len(batch), cap):
            self.deferred.extend(self._place(batch[k:k + cap]))
        if self.deferred or self.pending:
            self._arm_window()

    def requeue_batch(self, indices: list[int]) -> None:
        """Tasks thrown off a node go back to the front of the deferred queue, in order."""
        if self.cfg.batch_window_s > 0:
            self._arm_window()
        else:
            self._retry(max(1, len(indices)))


BUDGET_PERIOD_S: dict[str, float] = {"day": 86_400.0, "week": 604_800.0, "month": 2_592_000.0}
"""Budget periods in seconds; a month is 30 days of simulated time."""


class _BudgetRoller:
    """Resets each budget account's spend at its period boundary (day/week/month)."""

    def __init__(self, fleet: Fleet):
        self.periods = {acct: BUDGET_PERIOD_S.get(b.period, BUDGET_PERIOD_S["month"])
                        for acct, b in fleet.budgets.items()}
        self.next_s = {acct: p for acct, p in self.periods.items()}
        self.soonest = min(self.next_s.values(), default=float("inf"))

    def roll(self, now_s: float, state: FleetState) -> None:
        if now_s < self.soonest:
            return
        for acct, t in self.next_s.items():
            if now_s >= t:
                state.cloud_spend_usd[acct] = 0.0
                p = self.periods[acct]
                self.next_s[acct] = t + p * (1 + (now_s - t) // p)
        self.soonest = min(self.next_s.values())
