"""Cloud targets in the twin: hosted APIs (per-token billing, network latency, a requests-per-
minute limit) and rented instances (per-hour billing, start-up latency, an idle keep-alive).

Billing invariant: every dollar an offer bills is charged to some task, so the run's cloud
spend equals the sum of the per-task costs. An instance session is billed by the cost model
(per second, with a minimum); each task on it pays the session's bill up to its own finish
minus what earlier tasks paid (so start-up goes to the first), and the idle tail before
shut-down goes to the last task served.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from heddle.models import CloudOffer, DeviceSpec, OfferKind, TaskKind, cost, perf
from heddle.optimizer.waiting import charge
from heddle.sim.clock import after
from heddle.sim.records import KIND_CLOUD, ST_COMPLETED

__all__ = ["INSTANCE_SLOTS_PER_GPU", "RATE_WINDOW_S", "OfferRt"]

INSTANCE_SLOTS_PER_GPU = 4
"""Concurrent requests one rented GPU serves (same default as the optimizer's Policy)."""

RATE_WINDOW_S = 60.0
"""Rate limits are requests per minute, enforced over a sliding 60-second window."""


@dataclass(slots=True)
class OfferRt:
    """Runtime state of one cloud offer."""

    idx: int  # target index (after the nodes)
    offer: CloudOffer
    slots: int  # concurrent tasks (instances); APIs are unlimited
    device: DeviceSpec | None = None  # instances: perf.offer_device(offer)
    sent_s: deque[float] = field(default_factory=deque)  # API send times in the rate window
    queue: deque[int] = field(default_factory=deque)  # waiting for the rate limit / a slot
    wake_armed: bool = False
    running: int = 0
    up: bool = False  # instance started (booting or ready)
    ready_at_s: float = 0.0
    session_start_s: float = 0.0  # instance: when the current session was started
    charged_usd: float = 0.0  # instance: this session's bill already charged to tasks
    last_task: int = -1
    idle_token: int = 0
    billed_usd: float = 0.0
    starts: int = 0

    @property
    def is_api(self) -> bool:
        return self.offer.kind is OfferKind.API

    def api_cost_usd(self, prompt_tokens: int, output_tokens: int) -> float:
        return cost.api_cost_usd(self.offer, prompt_tokens, output_tokens)

    def start_session(self, now_s: float) -> None:
        self.up = True
        self.starts += 1
        self.session_start_s = now_s
        self.charged_usd = 0.0
        self.ready_at_s = now_s + self.offer.startup_s

    def rate_free_at(self, now_s: float) -> float:
        """Earliest time another request may be sent (now if under the limit)."""
        rpm = self.offer.rate_limit_rpm
        if rpm <= 0:
            return now_s
        sent = self.sent_s
        while sent and sent[0] <= now_s - RATE_WINDOW_S:
            sent.popleft()
        if len(sent) < rpm:
            return now_s
        return sent[0] + RATE_WINDOW_S

    def has_capacity(self, now_s: float) -> bool:
        if self.is_api:
            return self.rate_free_at(now_s) <= now_s
        return self.running < self.slots

    def charge_to(self, now_s: float) -> float:
        """Instance: the session's bill up to `now_s` (the cost model's per-second billing
        with its minimum) minus what was already charged; returns the new USD."""
        total = cost.instance_cost_usd(self.offer, now_s - self.session_start_s)
        usd = total - self.charged_usd
        if usd <= 0.0:
            return 0.0
        self.charged_usd = total
        self.billed_usd += usd
        return usd


class CloudDispatch:
    """The twin's cloud side (mixed into `Twin`, whose state it uses): send tasks to offers,
    start instances, bill, and complete cloud tasks."""

    def _to_offer(self, i: int, rt: OfferRt) -> None:
        rec, now = self.rec, self.env.now
        rec.target[i] = rt.idx
        rec.target_kind[i] = KIND_CLOUD
        if rt.is_api:
            usd = rt.api_cost_usd(int(self.w.prompt_tokens[i]), int(self.w.output_tokens[i]))
            rec.cost_usd[i] += usd
            self._charge_budget(i, usd)
        elif not rt.up:
            rt.start_session(now)
            self.state.instance_ready_at_s[rt.offer.id] = rt.ready_at_s
        rt.queue.append(i)
        self._offer_pump(rt)

    def _offer_pump(self, rt: OfferRt) -> None:
        now = self.env.now
        while rt.queue and rt.has_capacity(now):
            i = rt.queue.popleft()
            self._start_on_offer(i, rt)
        if rt.queue and rt.is_api and not rt.wake_armed:
            rt.wake_armed = True
            ev = self.env.timeout(rt.rate_free_at(now) - now, rt)
            ev.callbacks.append(self._offer_wake)

    def _offer_wake(self, ev) -> None:
        rt = ev.value
        rt.wake_armed = False
        self._offer_pump(rt)

    def _start_on_offer(self, i: int, rt: OfferRt) -> None:
        w, rec, now = self.w, self.rec, self.env.now
        o = rt.offer
        p, q = int(w.prompt_tokens[i]), int(w.output_tokens[i])
        if rt.is_api:
            rt.sent_s.append(now)
            st = perf.api_step(o, p, q)
            first, service = o.network_latency_s + st.prefill_s, st.seconds
            delay = 0.0
        else:
            rt.running += 1
            delay = max(0.0, rt.ready_at_s - now)
            task = self.live[i]
            if task.kind is TaskKind.LLM:
                mq = self._mq.get((task.model, task.quant)) or self._model_quant(task.model, task.quant)
                st = perf.llm_step(rt.device, mq.spec, task.quant, p, q, resident=True)
                first, service = o.network_latency_s + st.prefill_s, o.network_latency_s + st.seconds
            else:
                service = first = o.network_latency_s + perf.processor_seconds(rt.device, float(w.cpu_seconds[i]))
        if self.noise is not None:
            service *= self.noise[i]
            first *= self.noise[i]
        rec.start_s[i] = now + delay
        rec.service_s[i] = service
        rec.ttft_s[i] = now + delay - w.arrival_s[i] + first
        after(self.env, delay + service, (i, self.token[i], rt), self._on_offer_finish)

    def _on_offer_finish(self, ev) -> None:
        i, _tok, rt = ev.value
        now, rec = self.env.now, self.rec
        rec.finish_s[i] = now
        if not rt.is_api:
            rt.running -= 1
            usd = rt.charge_to(now)
            rec.cost_usd[i] += usd
            self._charge_budget(i, usd)
            rt.last_task = i
            if rt.running == 0 and not rt.queue:
                rt.idle_token += 1
                t = self.env.timeout(self.cfg.instance_keepalive_s, (rt, rt.idle_token))
                t.callbacks.append(self._instance_idle)
        self._terminal(i, ST_COMPLETED, "")
        self._offer_pump(rt)
        self.core.completed(now, i)

    def _instance_idle(self, ev) -> None:
        rt, tok = ev.value
        if tok != rt.idle_token or rt.running or rt.queue:
            return
        usd = rt.charge_to(self.env.now)  # the idle tail goes to the last task served
        self.rec.cost_usd[rt.last_task] += usd
        self._charge_budget(rt.last_task, usd)
        rt.up = False
        self.state.instance_ready_at_s.pop(rt.offer.id, None)

    def _charge_budget(self, i: int, usd: float) -> None:
        if usd:  # the rule the live control plane charges by too
            charge(self.state, self.w.accounts[self.w.account_code[i]], usd)
