"""What the current fleet does with the workload (from its twin replay): cloud spend, deadline
misses, and why work went to the cloud.

The twin states a reason per decision; the advisor also classifies each cloud-bound request
from first principles, by its slice, so the answer does not depend on the wording of the
optimizer's reasons: `memory` (no local node can hold the model), `deadline` (a node can hold
it but none is fast enough for the deadline), `capacity` (a node could have served it in time,
but the local nodes were busy or the optimizer judged the cloud cheaper at that moment).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from heddle.advisor.days import DayPlan
from heddle.advisor.roi import DailyCosts
from heddle.advisor.settings import DAYS_PER_MONTH
from heddle.advisor.slices import Slice, row_keys, service_seconds, unit_types_of
from heddle.advisor.twin import Replay
from heddle.models.fleet_types import Fleet

__all__ = ["CloudUse", "cloud_use"]


@dataclass(slots=True)
class CloudUse:
    cloud_usd_per_month: float
    cloud_requests_per_month: float
    energy_usd_per_month: float
    misses_per_month: float
    rejected_per_month: float
    local_share: float
    cloud_share: float
    why_cloud: dict[str, float]  # memory / deadline / capacity -> share of cloud requests
    twin_reasons: dict[str, int] = field(default_factory=dict)  # most common stated reasons
    rejected_reasons: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}


def _slice_reason(s: Slice, fleet: Fleet) -> str:
    units = unit_types_of(fleet)
    times = [service_seconds(u, s, tail=True) for u in units]
    if not any(math.isfinite(t) for t in times):
        return "memory"
    if min(times) > s.deadline_s:
        return "deadline"
    return "capacity"


def cloud_use(replay_df: pd.DataFrame, replay: Replay, costs: DailyCosts, plan: DayPlan,
              slices: list[Slice], fleet: Fleet) -> CloudUse:
    w = plan.weight_days / plan.weight_days.sum()
    per_day = plan.scale / plan.weight_days

    def monthly(x: np.ndarray) -> float:
        return float((x * per_day) @ w * DAYS_PER_MONTH)

    why: dict[str, float] = {}
    if replay.cloud_mask is not None and replay.cloud_mask.any():
        keys = row_keys(replay_df.loc[replay.cloud_mask])
        by_key = {s.key: s for s in slices}
        counts = pd.Series(keys).value_counts()
        total = float(counts.sum())
        for key, n in counts.items():
            s = by_key.get(key)
            reason = _slice_reason(s, fleet) if s is not None else "capacity"
            why[reason] = why.get(reason, 0.0) + n / total
    req = float(replay.requests.sum()) or 1.0
    top = dict(sorted(replay.cloud_reasons.items(), key=lambda kv: -kv[1])[:5])
    return CloudUse(
        cloud_usd_per_month=float(costs.cloud_usd @ w * DAYS_PER_MONTH),
        cloud_requests_per_month=monthly(replay.cloud),
        energy_usd_per_month=float(costs.energy_usd @ w * DAYS_PER_MONTH),
        misses_per_month=monthly(replay.misses),
        rejected_per_month=monthly(replay.rejected),
        local_share=float(replay.local.sum() / req),
        cloud_share=float(replay.cloud.sum() / req),
        why_cloud={k: round(v, 4) for k, v in sorted(why.items())},
        twin_reasons=top,
        rejected_reasons=dict(sorted(replay.rejected_reasons.items(), key=lambda kv: -kv[1])[:5]),
    )
