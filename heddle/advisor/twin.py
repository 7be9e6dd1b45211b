"""The advisor's only door to the twin: run `heddle.sim` on candidate fleets and keep, per
replayed day, what ROI needs (cloud spend, energy, missed deadlines, where work ran).

Nothing here simulates: `heddle.sim.run_many` does. This module turns its per-task records
into per-day arrays and re-checks privacy on every record (the twin already refuses a run
that breaks it; the advisor counts violations again so its report can say "0" from its own
evidence).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from heddle.advisor.errors import TwinError
from heddle.models.fleet_types import Fleet
from heddle.models.ids import OwnerId

if TYPE_CHECKING:
    from heddle.sim.executors import RunExecutor

__all__ = ["FAILURE_COLUMNS", "Replay", "privacy_violations", "replay_fleets"]

JOULES_PER_KWH = 3.6e6
"""1 kWh = 3.6 MJ."""


@dataclass(slots=True)
class Replay:
    """One candidate's twin run, per replay slot (a replayed trace day)."""

    label: str
    requests: np.ndarray  # per slot
    cloud_usd: np.ndarray
    busy_energy_usd: np.ndarray  # marginal energy of the work done locally
    busy_energy_kwh: np.ndarray
    misses: np.ndarray  # deadline missed, rejected or failed
    miss_usd: np.ndarray  # the value of those requests (advisor.value)
    local: np.ndarray
    cloud: np.ndarray
    rejected: np.ndarray
    idle_usd_per_day: float  # every node's idle power for a full day
    idle_kwh_per_day: float
    utilization: dict[str, float]  # node -> busy share over the run
    privacy_violations: int
    wall_s: float
    cloud_reasons: dict[str, int] = field(default_factory=dict)
    rejected_reasons: dict[str, int] = field(default_factory=dict)
    cloud_mask: np.ndarray | None = None  # per replayed trace row: went to the cloud
    failures: pd.DataFrame | None = None  # one row per request not done in time (FAILURE_COLUMNS)


FAILURE_COLUMNS = ("row", "status", "reason", "target", "finish_s")
"""What the advisor keeps of each request not done in time: its replayed-trace row, how it
ended (`rejected`, `failed` or `late`), the twin's stated reason, where it ran and when it ended."""


def privacy_violations(records: pd.DataFrame, fleet: Fleet) -> int:
    """Records that broke privacy: non-public work in the cloud, or personal work on a node
    whose owner is not the task's owner and does not trust it."""
    kind = records["target_kind"].astype(str)
    privacy = records["privacy"].astype(str)
    bad = int(((kind == "cloud") & (privacy != "public")).sum())
    personal = records[(kind == "node") & (privacy == "personal")]
    nodes = {n.id: n for n in fleet.nodes}
    for (target, owner), g in personal.groupby(["target", "owner"], observed=True):
        node = nodes.get(target)
        if node is None or not node.may_hold_personal_of(OwnerId(str(owner)) if owner else None):
            bad += len(g)
    return bad


def _per_slot(values: np.ndarray, slot: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(slot, weights=values.astype(np.float64), minlength=n)[:n]


def _digest(label: str, result, fleet: Fleet, row_of_task: dict, slots: np.ndarray,
            values: np.ndarray) -> Replay:
    rec = result.records
    n_slots = int(slots.max()) + 1 if slots.size else 0
    try:
        row = rec["task_id"].astype(str).map(row_of_task).to_numpy()
    except KeyError as exc:
        raise TwinError(f"twin records lack column {exc}") from exc
    if np.isnan(row.astype(np.float64)).any():
        raise TwinError(f"{label}: twin returned tasks that were not in the replayed trace")
    row = row.astype(np.int64)
    slot = slots[row]
    kind = rec["target_kind"].astype(str).to_numpy()
    status = rec["status"].astype(str).to_numpy()
    on_node, on_cloud = kind == "node", kind == "cloud"
    price = {n.id: fleet.price_usd_per_kwh(n) for n in fleet.nodes}
    node_price = rec["target"].map(price).fillna(0.0).to_numpy(np.float64)
    kwh = rec["energy_kwh"].to_numpy(np.float64) * on_node
    met = rec["deadline_met"]
    missed = (met.fillna(True) == False).to_numpy(bool)
    missed |= np.isin(status, ("rejected", "failed"))
    idle_kwh = sum(n.device.idle_power_w for n in fleet.nodes) * 86_400 / JOULES_PER_KWH
    idle_usd = sum(n.device.idle_power_w * fleet.price_usd_per_kwh(n) for n in fleet.nodes) \
        * 86_400 / JOULES_PER_KWH
    reason = rec["reason"].astype(str)
    ended = np.where(np.isin(status, ("rejected", "failed")), status, "late")
    failures = pd.DataFrame({"row": row[missed], "status": ended[missed],
                             "reason": reason.to_numpy()[missed],
                             "target": rec["target"].astype(str).to_numpy()[missed],
                             "finish_s": rec["finish"].to_numpy(np.float64)[missed]})
    cloud_mask = np.zeros(slots.size, dtype=bool)
    cloud_mask[row[on_cloud]] = True
    return Replay(
        label=label,
        requests=_per_slot(np.ones(len(rec)), slot, n_slots),
        cloud_usd=_per_slot(rec["cost_usd"].to_numpy(np.float64) * on_cloud, slot, n_slots),
        busy_energy_usd=_per_slot(kwh * node_price, slot, n_slots),
        busy_energy_kwh=_per_slot(kwh, slot, n_slots),
        misses=_per_slot(missed, slot, n_slots),
        miss_usd=_per_slot(missed * values[row], slot, n_slots),
        local=_per_slot(on_node & (status == "completed"), slot, n_slots),
        cloud=_per_slot(on_cloud & (status == "completed"), slot, n_slots),
        rejected=_per_slot(status == "rejected", slot, n_slots),
        idle_usd_per_day=float(idle_usd),
        idle_kwh_per_day=float(idle_kwh),
        utilization=dict(getattr(result.summary, "utilization", {}) or {}),
        privacy_violations=privacy_violations(rec, fleet),
        wall_s=float(getattr(result.summary, "wall_s", 0.0)),
        cloud_reasons=reason[on_cloud].value_counts().to_dict(),
        rejected_reasons=reason[status == "rejected"].value_counts().to_dict(),
        cloud_mask=cloud_mask,
        failures=failures,
    )


def replay_fleets(
    fleets: Sequence[tuple[str, Fleet]],
    trace_df: pd.DataFrame,
    slot: np.ndarray,
    *,
    policy: str,
    seed: int,
    workers: int,
    values: np.ndarray | None = None,
    executor: RunExecutor | None = None,
) -> list[Replay]:
    """Replay `trace_df` on every fleet through `heddle.sim.run_many` (`workers` parallel
    processes, unless `executor` says where: `heddle.sim.executors`).

    `slot[i]` is the replay slot (day) of row i of `trace_df`; `values[i]` what row i is worth
    if it is not done in time (default 0).
    """
    values = np.zeros(len(trace_df)) if values is None else np.asarray(values, np.float64)
    from heddle import sim

    row_of_task = {t: i for i, t in enumerate(trace_df["task_id"].astype(str))}
    specs = [sim.RunSpec(fleet=f, trace=trace_df, policy=policy, seed=seed, label=label)
             for label, f in fleets]
    try:
        results = sim.run_many(specs, max_workers=workers, executor=executor)
    except Exception as exc:  # the twin's own errors (privacy, bad workload) end the advice
        raise TwinError(f"twin run failed: {exc}") from exc
    return [_digest(label, r, f, row_of_task, np.asarray(slot), values) for (label, f), r in zip(fleets, results)]
