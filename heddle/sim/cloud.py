"""Cloud targets in the twin: hosted APIs (per-token billing, network latency, a requests-per-
minute limit) and rented instances (per-hour billing, start-up latency, an idle keep-alive).

Billing invariant: every dollar an offer bills is charged to some task, so the run's cloud
spend equals the sum of the per-task costs. An instance's start-up and idle time are charged
to the tasks that run on it: each task pays the billed time from the end of what was already
charged up to its own finish, and the idle tail before shut-down goes to the last task.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from heddle.models import CloudOffer, DeviceSpec, OfferKind

__all__ = ["INSTANCE_SLOTS_PER_GPU", "OfferRt", "RATE_WINDOW_S"]

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
    charged_until_s: float = 0.0  # instance: billed time already charged to tasks
    last_task: int = -1
    idle_token: int = 0
    billed_s: float = 0.0
    starts: int = 0

    @property
    def is_api(self) -> bool:
        return self.offer.kind is OfferKind.API

    @property
    def usd_per_s(self) -> float:
        return self.offer.price_usd_per_hour / 3600.0

    def api_cost_usd(self, prompt_tokens: int, output_tokens: int) -> float:
        o = self.offer
        return (prompt_tokens * o.price_usd_per_m_input_tokens
                + output_tokens * o.price_usd_per_m_output_tokens) / 1e6

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
        """Instance: bill from what was charged so far up to `now_s`; return the USD."""
        start = self.charged_until_s
        if now_s <= start:
            return 0.0
        self.charged_until_s = now_s
        self.billed_s += now_s - start
        return (now_s - start) * self.usd_per_s
