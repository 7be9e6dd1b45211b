"""The express twin: the same model as `Twin`, run with less Python per request.

`ExpressTwin` is a `Twin` (same state, same methods, same SimPy heap) with these changes on
the hot path, none of which changes a result:

- **Placement.** The scheduling core drives the express twin exactly as it drives `Twin`;
  only its `decide` differs. A one-task call first asks the optimizer's `ExpressPlacer`,
  which answers exactly when `place()` would put the task on a local node (same node, same
  estimate); for anything else (deferral, rejection, the cloud) the twin asks `place()` as
  before. Each row's task class is an integer code computed once for the whole trace
  (`class_codes`), so a placement reads the class from a list and passes four numbers; no
  `Task` is built unless `place()` or the core needs one. Before it, only the backlogs the
  express path reads are refreshed (`_waiting`: full nodes that still have a free slot).
- **Starting and finishing.** An LLM task that is not personal goes to its node without a row
  tuple, with the model taken from the class code. Its common case (a free slot, no queue, the
  model resident with room for the KV cache) is written out in `_llm_to_node`: what
  `_try_start`, `NodeRt.admit`, `_start_on_node` and `publish` would do, in one function;
  anything else goes through `Twin._assign`. Token rates and marginal powers come from
  `perf.llm_rates` and `cost.step_power_w` through a per-run memo keyed by (class code, node,
  batch), and the step's energy is `cost.step_energy_kwh` written out with them, the same
  floating-point operations in the same order. `_node_finished` likewise writes out
  `NodeRt.release`, the completion's records and `publish` for a node without a queue, then
  reports the completion to the core. Arrivals go to the core inline (`_on_arrivals`).
- **The event loop.** `heddle.sim.clock.run_inline` pops SimPy's heap itself: completions on
  nodes are handled inline, the next arrival is held outside the heap with the event id
  SimPy would have given it, and every other event (fleet dynamics, cloud, the core's ticks)
  goes through `env.step()`. Events therefore fire in exactly SimPy's order ((time,
  priority, id)).

tests/sim/test_express.py holds the records of both twins equal, field by field, on random
fleets, traces, policies, scenarios and horizons.
"""

from __future__ import annotations

import math
from array import array
from time import perf_counter
from typing import Any

import numpy as np

from heddle.models import NodeStatus, TaskId, cost, perf
from heddle.optimizer import Decision, DecisionStatus, Policy, TargetKind
from heddle.optimizer.express import EXPRESS_POLICIES, ExpressPlacer
from heddle.optimizer.fleet_cache import CONTEXT_BUCKET_TOKENS
from heddle.sim.clock import HeldEvent, push_pair, run_inline
from heddle.sim.engine import Twin
from heddle.sim.nodes import NodeRt
from heddle.sim.records import KIND_NODE, ST_COMPLETED, ST_PENDING
from heddle.sim.workload import Workload

__all__ = ["ExpressTwin", "express_ok"]

_INF = math.inf
_PLACED, _NODE, _ACTIVE = DecisionStatus.PLACED, TargetKind.NODE, NodeStatus.ACTIVE
_J_PER_KWH = cost.J_PER_KWH


def express_ok(policy: Any) -> bool:
    """True if one-task calls under `policy` go through `place_one` (so place_row may stand in)."""
    return isinstance(policy, Policy) and policy.name in EXPRESS_POLICIES and not policy.explain


def class_codes(w: Workload) -> tuple[list[int], np.ndarray]:
    """Per row, a code such that rows with one code have one `optimizer.express.class_key`
    (the partition may be finer: the key ignores the owner of non-personal work, the model
    and buckets of processor steps; so do the codes). Returns (codes, the first row of each
    code)."""
    if w.n == 0:
        return [], np.zeros(0, dtype=np.int64)
    llm = w.kind == 0
    personal = w.privacy == 2

    def bucket(tokens: np.ndarray) -> np.ndarray:
        return np.where(llm, -(-np.maximum(tokens, 0) // CONTEXT_BUCKET_TOKENS), 0)

    parts = [w.kind.astype(np.int64), np.where(llm, w.model_code, -1), np.where(llm, w.quant_code, -1),
             w.privacy.astype(np.int64), np.where(personal, w.owner_code, -1), w.tier_code.astype(np.int64),
             bucket(w.prompt_tokens), bucket(w.prompt_tokens + w.output_tokens // 2)]
    parts = [np.asarray(x, dtype=np.int64) - int(np.min(x)) for x in parts]
    radix = [int(np.max(x)) + 1 for x in parts]
    if math.prod(radix) < 1 << 62:  # one mixed-radix integer per row
        combined = np.zeros(w.n, dtype=np.int64)
        for x, r in zip(parts, radix):
            combined = combined * r + x
        _, first, codes = np.unique(combined, return_index=True, return_inverse=True)
    else:
        _, first, codes = np.unique(np.stack(parts, axis=1), axis=0, return_index=True, return_inverse=True)
    return codes.reshape(-1).tolist(), first


_UNSET = object()


class _LazyTasks(dict):
    """task index -> Task, built on first use (`place()` and the cloud path need Tasks; the
    express path reads the workload's row tuples)."""

    def __init__(self, workload: Workload):
        super().__init__()
        self.w = workload

    def __missing__(self, i: int):
        task = self[i] = self.w.make_task(i)
        return task


class ExpressTwin(Twin):
    """`Twin` with the express placement, cached service times and an inlined event loop."""

    def __init__(self, *args: Any, **kwargs: Any):
        self._waiting: set[NodeRt] = set()  # see publish(); Twin's __init__ already publishes
        super().__init__(*args, **kwargs)
        self._express = express_ok(self.policy)
        # per row: its class code and the numbers the express placement reads
        w = self.w
        llm = w.kind == 0
        self._code, first = class_codes(w)
        self._n_codes = len(first)
        self._code_llm_shared = ((w.kind[first] == 0) & (w.privacy[first] != 2)).tolist()  # see start()
        self._code_mq: list = [None] * self._n_codes  # code -> Twin._model_quant's ModelQuant
        self._xa = array("d", np.where(llm, w.prompt_tokens, w.cpu_seconds).astype(np.float64).tobytes())
        self._xb = array("d", np.where(llm, w.output_tokens, w.memory_gb).astype(np.float64).tobytes())
        if self._express:
            deadline = w.arrival_s + w.deadline_rel_s
            self._deadline = array("d", np.where(np.isnan(deadline), np.inf, deadline).tobytes())
            self._priority = w.priority.tolist()
            self._new_placer()
        # (code, node, batch) -> (prefill, decode tokens/s, decode and load marginal W)
        self._steps: dict[tuple[int, int, int], tuple[float, float, float, float]] = {}
        self._load_s: dict[tuple[int, int], float] = {}
        self._held = HeldEvent()  # the next arrival instant, held outside the heap

    def _task_store(self) -> dict:
        return _LazyTasks(self.w)

    def _new_task(self, i: int):
        return None  # built on first use (_LazyTasks)

    # -- the event loop -----------------------------------------------------------------
    def run(self) -> None:
        self._arrival = self.w.arrival_s.tolist()
        self._next = 0
        self._arrive_with = (self._arrival, self.w.n, self.cfg.progress_every, self.progress, self._after,
                             self.w.dependents, self.arrived, self.rec.release_s, self.core.submit,
                             self._held, self.env)  # what _on_arrivals reads, in one attribute
        rec = self.rec  # likewise for _llm_to_node and _node_finished (lists and arrays: never rebound)
        self._start_with = (self._code_mq, rec.target, rec.target_kind, self.mem_key, self.mem_need,
                            self._steps, self.noise, self.task_kwh, rec.start_s, rec.service_s, rec.ttft_s,
                            self._arrival, self.env, self.token, self._full, self._waiting)
        self._finish_with = (self.token, self.targets, rec.target, rec.service_s, rec.start_s, self.mem_need,
                             self.mem_key, self.task_kwh, rec.energy_kwh, rec.cost_usd, rec.finish_s,
                             rec.status, self.env, self._full, self._waiting, self.core.completed)
        self._schedule_arrival()
        run_inline(self.env, _INF if self.horizon_s is None else self.horizon_s, self._held,
                   self._on_arrivals, self._node_finished)
        self._close()

    def _on_arrivals(self, _ev=None) -> None:
        """Twin's, with `_arrive` and the next arrival instant (`_schedule_arrival`) written
        out."""
        (arrival, n, every, progress, after_of, dependents, arrived, release_s, submit, held,
         env) = self._arrive_with
        now = env.now
        i = self._next
        while i < n and arrival[i] <= now:  # everything arriving at this instant, in trace order
            arrived[i] = 1
            if after_of and (i in dependents or i in after_of):  # a pipeline stage: Twin._arrive
                deps = after_of.get(i, ())
                if not deps:
                    release_s[i] = now
                submit(now, i, None, deps, remember=i in dependents)
            else:
                release_s[i] = now
                submit(now, i)
            if progress is not None and i % every == 0:
                progress(i, n)
            i += 1
        self._next = i
        if i < n and (self.horizon_s is None or arrival[i] < self.horizon_s):
            held.set(env, now + (arrival[i] - now))  # the time `after()` would have pushed
        else:
            self._schedule_arrival()

    def _schedule_arrival(self) -> None:
        i, n = self._next, self.w.n
        if i >= n or (self.horizon_s is not None and self._arrival[i] >= self.horizon_s):
            self._held.time_s = _INF
            if self.progress is not None:
                self.progress(n, n)
            return
        now = self.env.now
        self._held.set(self.env, now + (self._arrival[i] - now))  # the time `after()` would have pushed

    # -- placement ----------------------------------------------------------------------
    def _decide(self, now: float, keys) -> list[Decision]:
        """The core's `decide`: one task goes to the express placement first; anything it
        does not answer (and every batch) goes to `place()`."""
        if not self._express or len(keys) != 1:
            return super()._decide(now, keys)
        i = keys[0]
        # the express placement reads the backlog of nodes with a free slot only; of the full
        # nodes (whose backlog moves with the clock) that is those with a queue waiting for memory
        for rt in self._waiting:
            rt.refresh_backlog(now)
        self.place_calls += 1
        t0 = perf_counter()
        placer = self._placer
        state = self.state
        if state.fleet is not placer.fleet or len(state.nodes) != placer.n_views:  # not current()
            placer = self._new_placer()
        code = self._code[i]
        cls = self._cls[code]
        if cls is _UNSET:
            cls = self._cls[code] = placer.klass(self.w.row_alone(i))
        if cls is not None:
            found = placer.place(cls, self._xa[i], self._xb[i], self._deadline[i], self._priority[i])
            if found is not None:
                self.place_wall_s += perf_counter() - t0
                # one Decision per node, reused: the core hands it to start() at once and keeps
                # nothing of it (task_id is not read on this path)
                d = self._placed[found[0]]
                d.est_seconds = found[1]
                return (d,)
        for rt in self._full:  # place() reads every backlog
            rt.refresh_backlog(now)
        decisions = self.core.place_keys(now, keys)
        self.place_wall_s += perf_counter() - t0
        return decisions

    def start(self, i: int, d: Decision) -> None:
        """Twin's; an LLM task that is not personal (so no owner to check) on a node that
        takes work goes to `_llm_to_node` without building its Task (the class code gives the
        model)."""
        code = self._code[i]
        if self._code_llm_shared[code]:
            rt = self.target_by_name.get(d.target)
            if rt.__class__ is NodeRt and rt.present and rt.ns.status is _ACTIVE:
                self._llm_to_node(i, rt, d.est_seconds, code, self._xa[i], self._xb[i], self.state.time_s)
                return
        super().start(i, d)

    def publish(self, rt: NodeRt, now: float) -> None:
        """Twin's, also keeping `_waiting`: the full nodes with a free slot (a queue waiting for
        memory), the only backlogs the express placement reads that move with the clock."""
        if rt.publish(now):
            self._full.add(rt)
            if rt.ns.free_slots > 0:
                self._waiting.add(rt)
            else:
                self._waiting.discard(rt)
        else:
            self._full.discard(rt)
            self._waiting.discard(rt)

    def _code_model(self, code: int, i: int):
        """`Twin._model_quant`'s ModelQuant for the model of class `code` (row i has that code)."""
        mq = self._code_mq[code]
        if mq is None:
            row = self.w.row_alone(i)
            mq = self._code_mq[code] = self._mq.get((row.model, row.quant)) or self._model_quant(row.model, row.quant)
        return mq

    # -- the common start and finish, inline -------------------------------------------
    def _llm_to_node(self, i: int, rt: NodeRt, est_seconds: float, code: int, a: float, b: float,
                     now: float) -> None:
        """`_assign` for an LLM task that is not personal, to a node that takes work (both
        checked), with its common case written out: the node has a free slot and no queue, and
        the model is resident with room for the task's KV cache. That case does what
        `_try_start`, `NodeRt.admit`, `_start_on_node`, `_llm_step` and `publish` would, in
        the same floating-point order; any other goes through `_assign`. `a`, `b`: the task's
        prompt and output tokens; `now`: the clock."""
        (code_mq, r_target, r_kind, mem_key, mem_need, steps, noise, task_kwh, r_start, r_service, r_ttft,
         arrival, env, token, full, waiting) = self._start_with
        mq = code_mq[code]
        if mq is None:
            mq = self._code_model(code, i)
        key = mq.key
        need = mq.kv_gb_per_token * (a + b)
        resident, running, slots = rt.resident, rt.running, rt.node.slots
        if (rt.queue or len(running) >= slots or key not in resident
                or need > rt.usable_gb - rt.resident_gb - rt.pinned_gb):
            self._assign(i, rt, est_seconds, key, need)
            return
        r_target[i] = rt.idx
        r_kind[i] = KIND_NODE
        mem_key[i] = key
        mem_need[i] = need  # (est_s is read for queued tasks only; this one starts now)
        # NodeRt.admit: the model is resident and the task fits
        resident.move_to_end(key)
        in_use = rt.in_use
        uses = in_use.get(key, 0)
        if uses == 0:
            rt.in_use_weights_gb += resident[key]
        in_use[key] = uses + 1
        rt.pinned_gb += need
        # _start_on_node (resident model) and _llm_step
        ns = rt.ns
        sf = ns.speed_factor or 1.0
        batch = len(running) + 1
        step = steps.get((code, rt.idx, batch))
        if step is None:
            load_s, prefill_s, decode_s, kwh = self._llm_step(i, rt, key, False, batch)
        else:
            load_s = 0.0
            prefill_s = a / step[0]
            decode_s = b / step[1]
            kwh = step[2] * (prefill_s + decode_s) / _J_PER_KWH + step[3] * load_s / _J_PER_KWH
        now += rt.start_delay_s(rt.idle_at(now))  # the step's start (Twin._start_on_node)
        ready = rt.loaded_at_s.get(key, 0.0)
        wait_load = ready - now if ready > now else 0.0
        service = wait_load + (load_s + prefill_s + decode_s) / sf
        first_token = wait_load + (load_s + prefill_s) / sf
        kwh = kwh / sf / slots
        if noise is not None:
            service *= noise[i]
            first_token *= noise[i]
            kwh *= noise[i]
        if rt.spread is not None:  # Twin._start_on_node
            z = self.spread_z[i]
            drawn = rt.spread.drawn(service, z, False)  # an LLM step: no wake
            first_token = rt.spread.drawn(first_token, z, False)
            kwh *= drawn / service if service > 0 else 1.0
            service = drawn
        task_kwh[i] = kwh
        r_start[i] = now
        r_service[i] = service
        r_ttft[i] = now - arrival[i] + first_token
        running.add(i)
        rt.finish_sum_s += now + service
        push_pair(env, now + service, i, token[i])
        # publish: no queue, `batch` tasks running
        mem = rt.usable_gb - rt.pinned_gb - rt.resident_gb
        ns.free_memory_gb = mem if mem > 0.0 else 0.0  # noqa: FURB136 (as NodeRt.publish)
        if batch < slots:
            ns.free_slots = slots - batch
            ns.backlog_s = 0.0
            full.discard(rt)
            waiting.discard(rt)
        else:  # full: its backlog is refreshed before anything reads it (`_decide`;
            ns.free_slots = 0  # the express placement skips nodes without a free slot)
            full.add(rt)
            waiting.discard(rt)

    def _node_finished(self, i: int, tok: int) -> None:
        """Twin's, with `NodeRt.release`, the completion's records and, when the node has no
        queue, `publish` written out."""
        (token, targets, r_target, r_service, r_start, mem_need, mem_key, task_kwh, r_energy, r_cost, r_finish,
         r_status, env, full, waiting, completed) = self._finish_with
        if token[i] != tok:
            return  # the node failed under this attempt
        rt = targets[r_target[i]]
        now = env.now
        service = r_service[i]
        running = rt.running
        running.discard(i)
        rt.last_end_s = now
        rt.finish_sum_s -= r_start[i] + service
        rt.pinned_gb -= mem_need[i]  # NodeRt.release
        key = mem_key[i]
        in_use = rt.in_use
        if key >= 0 and key in in_use:
            uses = in_use[key] - 1
            if uses <= 0:
                del in_use[key]
                rt.in_use_weights_gb -= rt.resident.get(key, 0.0)
            else:
                in_use[key] = uses
        rt.busy_slot_s += service
        kwh = task_kwh[i]
        r_energy[i] += kwh
        r_cost[i] += kwh * rt.price_usd_per_kwh
        r_finish[i] = now
        if r_status[i] == ST_PENDING:  # Twin._terminal for a completion
            r_status[i] = ST_COMPLETED
        else:
            self._terminal(i, ST_COMPLETED, "")
        if rt.queue:
            self._start_next(rt)
            self.publish(rt, now)
        else:  # publish: a free slot (this one), no queue
            ns = rt.ns
            ns.free_slots = rt.node.slots - len(running)
            mem = rt.usable_gb - rt.pinned_gb - rt.resident_gb
            ns.free_memory_gb = mem if mem > 0.0 else 0.0  # noqa: FURB136 (as NodeRt.publish)
            ns.backlog_s = 0.0
            full.discard(rt)
            waiting.discard(rt)
        completed(now, i)  # the slot is free in the state: the core offers waiting work

    def _new_placer(self) -> ExpressPlacer:
        placer = self._placer = ExpressPlacer(self.state, self.policy)
        self._cls: list = [_UNSET] * self._n_codes  # class code -> ExpressClass (or None)
        self._placed = [Decision(TaskId(""), _PLACED, name, _NODE) for name in placer.fa.node_ids]
        return placer

    def _push_done(self, at_s: float, i: int) -> None:
        """As Twin's, but a bare heap entry that `run_inline` hands to `_node_finished`."""
        push_pair(self.env, at_s, i, self.token[i])

    # -- service times ------------------------------------------------------------------
    def _llm_step(self, i: int, rt: NodeRt, key: int, missing: bool, batch: int) -> tuple[float, float, float, float]:
        p, o = self._xa[i], self._xb[i]  # token counts: exact in a float
        ck = (self._code[i], rt.idx, batch)  # the code fixes model, quant and context buckets
        step = self._steps.get(ck)
        device = rt.node.device
        mq = self._mq_by_key[key]
        if step is None:
            spec, quant = mq.spec, mq.name[1]
            p_int, o_int = int(p), int(o)
            base = device.idle_power_w  # cost.step_energy_kwh's two marginal powers
            step = self._steps[ck] = (
                perf.llm_rates(device, spec, quant, batch=batch, context_tokens=p_int)[0],
                perf.llm_rates(device, spec, quant, batch=batch, context_tokens=p_int + o_int // 2)[1],
                cost.step_power_w(device, "decode") - base, cost.step_power_w(device, "load") - base)
        prefill_s = p / step[0]
        decode_s = o / step[1]
        if missing:
            load_s = self._load_s.get((rt.idx, key))
            if load_s is None:
                load_s = self._load_s[rt.idx, key] = perf.load_seconds(device, mq.spec, mq.name[1])
        else:
            load_s = 0.0
        kwh = step[2] * (prefill_s + decode_s) / _J_PER_KWH + step[3] * load_s / _J_PER_KWH
        return load_s, prefill_s, decode_s, kwh
