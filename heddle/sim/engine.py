"""The twin: the body that the scheduling core (`heddle.optimizer.scheduling`) drives on a
SimPy clock. Arrivals go to the core; the core decides when each task is offered to
`place()` and tells the twin to start, defer, reject or fail it; the twin runs started
tasks on its node and cloud models and reports completions, lost attempts and fleet events
back to the core. No placement or queueing rule lives here: the twin owns its clock, its
node model (running tasks, a node's local queue when a task is placed on a node whose
memory is still held, memory admission), cloud offers and the records.

Hot-path design: one SimPy event per arrival instant and per completion, handled by
plain callbacks (no process per task) and pushed straight onto SimPy's heap
(`heddle.sim.clock`, the same order as `env.timeout`); the `FleetState` handed to
`place()` is built once and mutated in place; per-task results go straight into
preallocated arrays (`Records`).
Invariant: a task that arrives is, when the run ends, in exactly one terminal state (or
`in_flight` at a horizon); a placement that breaks privacy raises at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import numpy as np
import simpy

from heddle.models import Fleet, FleetState, OfferKind, Privacy, TaskKind, cost, perf
from heddle.models.catalog_stub import model_spec
from heddle.optimizer import CoreSettings, Decision, SchedulingCore, TargetKind
from heddle.sim.clock import NodeDone, after, at, push_done
from heddle.sim.cloud import INSTANCE_SLOTS_PER_GPU, CloudDispatch, OfferRt
from heddle.sim.errors import PrivacyViolationError, WorkloadError
from heddle.sim.fleet_events import FleetDynamics
from heddle.sim.nodes import ModelQuant, NodeRt
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

_CLOUD = TargetKind.CLOUD
_PUBLIC, _PERSONAL, _LLM = Privacy.PUBLIC, Privacy.PERSONAL, TaskKind.LLM


@dataclass(frozen=True, slots=True)
class TwinSettings:
    """Knobs of one run (all times in simulated seconds). The first five are the
    scheduling core's (`CoreSettings`)."""

    batch_window_s: float = 0.0  # 0: place on each arrival (fast path); > 0: batch windows
    batch_max_tasks: int = 2000  # most tasks handed to one batch call
    max_retries: int = 3  # re-placements after a node failure before a task fails
    max_defer_s: float = 3600.0  # a task deferred longer than this is rejected with the reason
    defer_retry_s: float = 5.0  # deferred tasks are re-offered at least this often
    instance_keepalive_s: float = 300.0  # an idle instance shuts down after this
    service_cv: float = 0.0  # lognormal noise on service times (0 = the perf model exactly)
    progress_every: int = 8192  # arrivals between progress callbacks
    express: bool = True  # the ExpressTwin (same results, less Python per request); False: Twin

    def core(self) -> CoreSettings:
        return CoreSettings(max_retries=self.max_retries, max_defer_s=self.max_defer_s,
                            defer_retry_s=self.defer_retry_s, batch_window_s=self.batch_window_s,
                            batch_max_tasks=self.batch_max_tasks)


class Twin(CloudDispatch):
    """One simulation run. Build, `run()`, then read `records` and the node/offer state.
    The twin is the scheduling core's sink (`start`, `deferred`, `reject`, `fail`)."""

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
        self.state.time_s = -1.0
        self.nodes: list[NodeRt] = []
        self.offers: list[OfferRt] = []
        self.targets: list[NodeRt | OfferRt] = []  # index = target code in the records
        self._full: set[NodeRt] = set()  # nodes with no free slot (their backlog moves with time)
        self.target_by_name: dict[str, NodeRt | OfferRt] = {}
        # each task's standard normal draw, for nodes measured to vary (NodeRt.spread)
        self.spread_z: list[float] | None = (rng.standard_normal(workload.n).tolist()
                                             if any(n.measured_spread for n in fleet.nodes) else None)
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
        self.live: dict[int, Any] = self._task_store()  # task index -> Task while not terminal
        self._after = workload.depends_on()  # task index -> the indices it waits for
        self._arrival: list[float] = []
        self._next = 0  # next trace row to arrive
        self.place_calls = 0
        self.place_wall_s = 0.0  # wall-clock seconds inside placement calls
        self._mq: dict[tuple[str, str], ModelQuant] = {}
        self._mq_by_key: list[ModelQuant] = []
        self.core: SchedulingCore[int] = SchedulingCore(
            self.state, policy, self, settings.core(), tasks=self.live, decide=self._decide,
            on_wake=self._wake, on_release=self._released)
        self.dynamics = dynamics
        if dynamics is not None:
            dynamics.attach(self)

    def _task_store(self) -> dict:
        return {}

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
            present=present, dispatch_s=node.dispatch_s,
            idle_dispatch_s=node.dispatch_s if node.idle_dispatch_s is None else node.idle_dispatch_s,
        )
        if node.measured_spread and self.spread_z is not None:
            rt.measure_spread(node.service_cv, node.service_quantiles, node.wake_s)
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
            self._arrive(i, now)
            if self.progress is not None and i % every == 0:
                self.progress(i, n)
            i += 1
        self._schedule_arrival()

    def _arrive(self, i: int, now: float) -> None:
        """Task i arrived: hand it to the core (with the stages it waits for, if any)."""
        self.arrived[i] = 1
        deps = self._after.get(i)
        if deps is None:
            self.rec.release_s[i] = now
            deps = ()
        # a stage others wait for: its outcome must outlive it (they may arrive after it ends)
        self.core.submit(now, i, self._new_task(i), after=deps, remember=i in self.w.dependents)

    def _new_task(self, i: int):
        return self.w.make_task(i)

    def _released(self, i: int, now: float) -> None:
        self.rec.release_s[i] = now

    def _wake(self, at_s: float) -> None:
        """The core wants `tick()` at `at_s` (a retry tick or the end of a batch window)."""
        at(self.env, at_s, None, self._on_tick)

    def _on_tick(self, _ev) -> None:
        self.core.tick(self.env.now)

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

    def run_end_s(self) -> float:
        """Where the run ends for utilization and idle energy: the horizon, or the last time
        a task reached a terminal state (timers left after it measure nothing)."""
        if self.horizon_s is not None:
            return self.horizon_s
        finish = np.asarray(self.rec.finish_s)[self.arrived_mask()]
        return float(np.nanmax(finish)) if len(finish) and not np.isnan(finish).all() else 0.0

    # -- placement: the core asks, the twin answers through place() ------------------------
    def _decide(self, now: float, keys) -> list[Decision]:
        """The core's `decide`: `place()` on a state whose backlogs are brought to now."""
        for rt in self._full:
            rt.refresh_backlog(now)
        self.place_calls += 1
        t0 = perf_counter()
        decisions = self.core.place_keys(now, keys)
        self.place_wall_s += perf_counter() - t0
        return decisions

    # -- the core's sink ------------------------------------------------------------------
    def start(self, i: int, d: Decision) -> None:
        """Run task i where the core's decision placed it."""
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
        self._to_node(i, target, d.est_seconds)

    def deferred(self, i: int, reason: str) -> None:
        rec = self.rec
        rec.defers[i] += 1
        rec.set_reason(i, reason)

    def reject(self, i: int, reason: str) -> None:
        self._terminal(i, ST_REJECTED, reason)

    def fail(self, i: int, reason: str) -> None:
        self.rec.finish_s[i] = self.env.now
        self._terminal(i, ST_FAILED, reason)

    # -- local nodes ----------------------------------------------------------------------
    def _to_node(self, i: int, target: NodeRt, est_seconds: float) -> None:
        """Send task i to a node: start it or queue it there (a stale decision goes back)."""
        task = self.live[i]
        if task.privacy is _PERSONAL and not target.node.may_hold_personal_of(task.owner):
            raise PrivacyViolationError(
                f"personal task {task.id!r} of owner {task.owner!r} was placed on node "
                f"{target.node.id!r} (owner {target.node.owner!r})")
        if not target.accepts_work():  # a stale decision: the core offers it again later
            self.core.declined(self.env.now, i, f"node {target.node.id} is {target.ns.status.value}")
            return
        if task.kind is _LLM:
            mq = self._mq.get((task.model, task.quant))
            if mq is None:
                mq = self._model_quant(task.model, task.quant)
            self._assign(i, target, est_seconds, mq.key, mq.kv_gb_per_token * (task.prompt_tokens + task.output_tokens))
        else:
            self._assign(i, target, est_seconds, -1, task.memory_gb)

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
        self.publish(target, self.env.now)

    def publish(self, rt: NodeRt, now: float) -> None:
        """Refresh rt's NodeState and remember whether its backlog moves with the clock."""
        if rt.publish(now):
            self._full.add(rt)
        else:
            self._full.discard(rt)

    def _model_quant(self, model: str, quant: str) -> ModelQuant:
        """The twin's memory facts of one model + quant (checked against the catalog)."""
        try:
            spec = model_spec(model)
        except KeyError as exc:
            raise WorkloadError(f"field 'model': {model!r} is not in the model catalog") from exc
        if quant not in spec.bytes_per_weight:
            raise WorkloadError(f"field 'quant': model {model!r} has no quantization {quant!r}; "
                                f"expected one of {sorted(spec.bytes_per_weight)}")
        mq = ModelQuant(len(self._mq_by_key), spec, spec.weights_gb(quant), spec.kv_bytes_per_token / 1e9,
                        (model, quant))
        self._mq[(model, quant)] = mq
        self._mq_by_key.append(mq)
        return mq

    def _try_start(self, i: int, rt: NodeRt) -> bool:
        """Start task i on rt if its memory fits now. False: it must wait for memory (it is
        left where it is). A task that cannot fit even on the empty node is lost (True)."""
        key = self.mem_key[i]
        need = self.mem_need[i]
        if key >= 0:
            mq = self._mq_by_key[key]
            ok, missing = rt.admit(key, mq.weights_gb, need, mq.name)
        else:
            ok, missing = rt.admit(-1, 0.0, need, ("", ""))
        if ok:
            self._start_on_node(i, rt, key, missing)
            return True
        if rt.running:
            return False  # wait for the memory that running tasks hold
        self._interrupt(i, rt, f"does not fit in the memory of node {rt.node.id}")
        return True

    def _start_next(self, rt: NodeRt) -> None:
        """Start what the node's queue holds while slots and memory allow."""
        queue = rt.queue
        while queue and len(rt.running) < rt.node.slots:
            i = queue[0]
            if not self._try_start(i, rt):
                break
            if queue and queue[0] == i:
                queue.popleft()
                left = rt.queued_work_s - self.est_s[i]
                rt.queued_work_s = max(0.0, left)

    def _start_on_node(self, i: int, rt: NodeRt, key: int, missing: bool) -> None:
        rec = self.rec
        idle = rt.idle_at(self.env.now)
        now = self.env.now + rt.start_delay_s(idle)  # the step's start: the slot is taken from its placement
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
            service = perf.processor_seconds(rt.node.device, self.live[i].cpu_seconds) / (sf * rt.pace)
            first_token = service
            kwh = cost.energy_kwh(rt.busy_w_per_slot, service)
        if self.noise is not None:
            service *= self.noise[i]
            first_token *= self.noise[i]
            kwh *= self.noise[i]
        if rt.spread is not None:  # measured: drawn around the model's, the wake added on an idle node
            z, wakes = self.spread_z[i], idle and key < 0  # a processor step's core wakes
            drawn = rt.spread.drawn(service, z, wakes)
            first_token = rt.spread.drawn(first_token, z, wakes)
            kwh *= drawn / service if service > 0 else 1.0
            service = drawn
        self.task_kwh[i] = kwh
        rec.start_s[i] = now
        rec.service_s[i] = service
        rec.ttft_s[i] = now - self._arrival[i] + first_token
        rt.running.add(i)
        rt.finish_sum_s += now + service
        self._push_done(now + service, i)

    def _push_done(self, at_s: float, i: int) -> None:
        """Task i's completion at `at_s`, on SimPy's heap as `after()` would put it."""
        push_done(self.env, at_s, NodeDone((i, self.token[i]), self._on_node_finish))

    def _llm_step(self, i: int, rt: NodeRt, key: int, missing: bool, batch: int) -> tuple[float, float, float, float]:
        """(load s, prefill s, decode s, marginal kWh) of task i's LLM step on rt, unthrottled."""
        task = self.live[i]
        st = perf.llm_step(rt.node.device, self._mq_by_key[key].spec, task.quant, task.prompt_tokens,
                           task.output_tokens, resident=not missing, batch=batch)
        return st.load_s, st.prefill_s, st.decode_s, cost.step_energy_kwh(rt.node.device, st)

    def _on_node_finish(self, ev) -> None:
        self._node_finished(*ev.value)

    def _node_finished(self, i: int, tok: int) -> None:
        if self.token[i] != tok:
            return  # the node failed under this attempt
        rec = self.rec
        rt = self.targets[rec.target[i]]
        now = self.env.now
        service = rec.service_s[i]
        rt.running.discard(i)
        rt.last_end_s = now
        rt.finish_sum_s -= rec.start_s[i] + service
        rt.release(self.mem_key[i], self.mem_need[i])
        rt.busy_slot_s += service
        kwh = self.task_kwh[i]
        rec.energy_kwh[i] += kwh
        rec.cost_usd[i] += kwh * rt.price_usd_per_kwh
        rec.finish_s[i] = now
        self._terminal(i, ST_COMPLETED, "")
        if rt.queue:
            self._start_next(rt)
        self.publish(rt, now)
        self.core.completed(now, i)  # the slot is free in the state: the core offers waiting work

    def account_partial_run(self, i: int, rt: NodeRt) -> None:
        """The part of task i's run on rt until now counts toward utilization and energy."""
        rec = self.rec
        ran = max(0.0, self.env.now - rec.start_s[i])  # lost before its start (dispatch_s): nothing ran
        rt.busy_slot_s += ran
        kwh = cost.energy_kwh(rt.busy_w_per_slot, ran)
        rec.energy_kwh[i] += kwh
        rec.cost_usd[i] += kwh * rt.price_usd_per_kwh

    def _interrupt(self, i: int, rt: NodeRt | None, why: str) -> None:
        """Task i lost its attempt (node failed/left, or it cannot fit): its partial run on
        rt is accounted, then the core decides whether it is retried or failed."""
        rec = self.rec
        now = self.env.now
        if rt is not None and i in rt.running:
            self.account_partial_run(i, rt)
        self.token[i] += 1
        rec.retries[i] += 1
        rec.retry_reason[i] = rec.code(why)
        rec.target[i] = -1
        rec.target_kind[i] = 0
        rec.start_s[i] = np.nan
        self.core.lost(now, i, why)

    # -- terminal states ------------------------------------------------------------------
    def _terminal(self, i: int, status: int, reason: str) -> None:
        rec = self.rec
        if rec.status[i] != ST_PENDING:
            raise WorkloadError(f"task {self.w.task_id[i]!r} reached a second terminal state")
        rec.status[i] = status
        now = self.env.now
        if status != ST_COMPLETED:
            rec.set_reason(i, reason)
            if rec.finish_s[i] != rec.finish_s[i]:
                rec.finish_s[i] = now
