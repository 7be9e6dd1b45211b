"""The express twin: the same model as `Twin`, run with less Python per request.

`ExpressTwin` is a `Twin` (same state, same methods, same SimPy heap) with three changes on
the hot path, none of which changes a result:

- **Placement.** A one-task call first asks `optimizer.express.place_row`, which answers
  exactly when `place()` would put the task on a local node (same node, same estimate); for
  anything else (deferral, rejection, the cloud) the twin asks `place()` as before. No
  `Task` object is built unless `place()` needs one.
- **Service times.** Token rates come from `perf.llm_rates` through a per-run memo keyed
  by (node, model, batch, context buckets), and the step's energy is `cost.step_energy_kwh`
  written out with per-node powers; the same floating-point operations in the same order.
- **The event loop.** It pops SimPy's heap itself: completions on nodes are handled inline,
  the next arrival is held outside the heap with the event id SimPy would have given it, and
  every other event (fleet dynamics, cloud, retry timers) goes through `env.step()`. Events
  therefore fire in exactly SimPy's order ((time, priority, id)).

tests/sim/test_express.py holds the records of both twins equal, field by field, on random
fleets, traces, policies, scenarios and horizons.
"""

from __future__ import annotations

import math
from heapq import heappop, heappush
from time import perf_counter
from typing import Any

from heddle.models import cost, perf
from heddle.optimizer import Policy, place
from heddle.optimizer.express import EXPRESS_POLICIES, place_row
from heddle.optimizer.fleet_cache import CONTEXT_BUCKET_TOKENS, fleet_arrays
from heddle.sim.engine import Twin
from heddle.sim.nodes import NodeRt
from heddle.sim.workload import Workload

__all__ = ["ExpressTwin", "express_ok"]

_NORMAL = 1  # simpy.events.NORMAL
_INF = math.inf
_J_PER_KWH = cost.J_PER_KWH


def express_ok(policy: Any) -> bool:
    """True if one-task calls under `policy` go through `place_one` (so place_row may stand in)."""
    return isinstance(policy, Policy) and policy.name in EXPRESS_POLICIES and not policy.explain


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
        super().__init__(*args, **kwargs)
        self.live = _LazyTasks(self.w)
        self._express = express_ok(self.policy)
        self._rates: dict[tuple, tuple[float, float]] = {}
        self._load_s: dict[tuple[int, int], float] = {}
        self._powers: dict[int, tuple[float, float]] = {}
        self._t_arr = _INF  # the next arrival instant, held outside the heap ...
        self._e_arr = 0  # ... with the event id SimPy would have given it

    # -- the event loop -----------------------------------------------------------------
    def run(self) -> None:
        env = self.env
        q = env._queue
        self._arrival = self.w.arrival_s.tolist()
        self._next = 0
        self._schedule_arrival()
        end = _INF if self.horizon_s is None else self.horizon_s
        finished = self._node_finished
        step = env.step
        while True:
            t_arr = self._t_arr
            if q:
                top = q[0]
                t = top[0]
                if t < t_arr or (t == t_arr and (top[1] < _NORMAL or (top[1] == _NORMAL and top[2] < self._e_arr))):
                    if t >= end:
                        break
                    if len(top) == 5:  # a completion pushed by _push_done below
                        heappop(q)
                        env._now = t
                        finished(top[3], top[4])
                    else:
                        step()
                    continue
            if t_arr >= end:  # also: nothing left at all (t_arr is inf)
                break
            env._now = t_arr
            self._on_arrivals(None)
        if self.horizon_s is not None:
            env._now = self.horizon_s  # as env.run(until=horizon) leaves the clock
        self._close()

    def _schedule_arrival(self) -> None:
        i, n = self._next, self.w.n
        if i >= n or (self.horizon_s is not None and self._arrival[i] >= self.horizon_s):
            self._t_arr = _INF
            if self.progress is not None:
                self.progress(n, n)
            return
        now = self.env._now
        self._t_arr = now + (self._arrival[i] - now)  # the time `after()` would have pushed
        self._e_arr = next(self.env._eid)

    # -- placement ----------------------------------------------------------------------
    def _release(self, i: int) -> None:
        if self.dep_failed[i] or self.cfg.batch_window_s > 0:
            super()._release(i)
            return
        self.rec.release_s[i] = self.env._now
        if self._place_one(i):
            self.deferred.append(i)
            self._arm_retry()

    def _place_one(self, i: int) -> bool:
        if not self._express:
            return super()._place_one(i)
        state = self.state
        now = self._advance_clock()  # _prepare_state, except the backlogs (below)
        # place_row reads the backlog of nodes with a free slot only; of the full nodes
        # (whose backlog moves with the clock) that is those with a queue waiting for memory
        for rt in self._full:
            if rt.ns.free_slots > 0:
                rt.refresh_backlog(now)
        self.place_calls += 1
        t0 = perf_counter()
        fa = fleet_arrays(state.fleet)
        row = self.w.row(i)
        found = place_row(fa, state, row, self.policy)
        if found is not None:
            self.place_wall_s += perf_counter() - t0
            self._to_node(i, self.target_by_name[fa.node_ids[found[0]]], found[1], row)
            return False
        self._prepare_state()  # place() reads every backlog
        d = place(state, [self.live[i]], self.policy).decisions[0]
        self.place_wall_s += perf_counter() - t0
        return self._act(i, d)

    def _push_done(self, at_s: float, i: int) -> None:
        """As Twin's, but the heap entry carries the task itself: (time, NORMAL, id, i, token).
        Event ids are unique, so tuples never compare past the id, and only the loop above
        pops these entries (it calls env.step() only when another kind of event is first)."""
        env = self.env
        heappush(env._queue, (at_s, _NORMAL, next(env._eid), i, self.token[i]))

    # -- service times ------------------------------------------------------------------
    def _llm_step(self, i: int, rt: NodeRt, key: int, missing: bool, batch: int) -> tuple[float, float, float, float]:
        row = self.w.row(i)
        p, o = row[5], row[6]
        ck = (rt.idx, key, batch, -(-max(p, 0) // CONTEXT_BUCKET_TOKENS),
              -(-max(p + o // 2, 0) // CONTEXT_BUCKET_TOKENS))
        rates = self._rates.get(ck)
        device = rt.node.device
        if rates is None:
            spec = self._mq_by_key[key][1]
            rates = self._rates[ck] = (
                perf.llm_rates(device, spec, row[4], batch=batch, context_tokens=p)[0],
                perf.llm_rates(device, spec, row[4], batch=batch, context_tokens=p + o // 2)[1])
        prefill_s = p / rates[0]
        decode_s = o / rates[1]
        if missing:
            load_s = self._load_s.get((rt.idx, key))
            if load_s is None:
                load_s = self._load_s[rt.idx, key] = perf.load_seconds(device, self._mq_by_key[key][1], row[4])
        else:
            load_s = 0.0
        powers = self._powers.get(rt.idx)
        if powers is None:  # cost.step_energy_kwh's two marginal powers
            base = device.idle_power_w
            powers = self._powers[rt.idx] = (cost.step_power_w(device, "decode") - base,
                                             cost.step_power_w(device, "load") - base)
        kwh = powers[0] * (prefill_s + decode_s) / _J_PER_KWH + powers[1] * load_s / _J_PER_KWH
        return load_s, prefill_s, decode_s, kwh
