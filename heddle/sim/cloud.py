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

from heddle.models import CloudOffer, DeviceSpec, OfferKind, cost

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
