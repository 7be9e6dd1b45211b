"""Cloud spend, live: the twin's budget rule on wall-clock work.

A cloud placement is charged to its task's budget account when it is made, at the catalog's
price for the task's declared tokens: the twin's rule (`heddle.optimizer.waiting.charge` with
`cloud_charge_usd`), so placements made together see each other's spend and a budget that
runs out stops cloud placement where it does in the twin. When the attempt's report arrives,
that reservation is replaced by what the call cost (the agent prices the tokens the API
counted, at the same catalog prices); an attempt that ends without a report (node lost, no
acknowledgement, timed out) gives its reservation back. Each attempt is settled at most
once: a redelivered report, a second finish or a retry never charges twice.

Durability: every event that ends an attempt of a task that cost something carries the
task's cost so far (``charged_usd``) and its account; a cloud placement carries its
reservation. A restarted control plane charges each task's last recorded cost that falls in
the current budget period and reserves again for cloud work still in flight (recovery.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from heddle.models import AccountId, FleetState
from heddle.optimizer.waiting import charge, period_start_s

__all__ = ["Ledger", "billed_usd"]


def billed_usd(result: Any) -> float:
    """What an attempt's result says its call cost (the agents' ``cost_usd``; 0 if none)."""
    cost = result.get("cost_usd") if isinstance(result, dict) else None
    return float(cost) if isinstance(cost, int | float) and cost > 0 else 0.0


@dataclass(slots=True)
class _Reservation:
    account: AccountId | None
    usd: float


class Ledger:
    """Reservations of cloud attempts in flight and what each task's settled attempts cost,
    charged to the spend in ``state`` (the state the scheduling core reads budgets from)."""

    def __init__(self, state: FleetState) -> None:
        self.state = state
        self._reserved: dict[tuple[str, int], _Reservation] = {}
        self._settled: dict[str, set[int]] = {}  # task -> attempts whose report was charged
        self._cost: dict[str, float] = {}  # task -> USD of its settled attempts

    def reserve(self, task_id: str, attempt: int, account: AccountId | None, usd: float) -> None:
        """A cloud attempt was placed: its predicted price counts as spent until it reports."""
        self.release(task_id, attempt)
        self._reserved[(task_id, attempt)] = _Reservation(account, usd)
        charge(self.state, account, usd)

    def release(self, task_id: str, attempt: int) -> None:
        """The attempt will not report through us (lost): its reservation is given back."""
        held = self._reserved.pop((task_id, attempt), None)
        if held is not None:  # never below zero: a period may have rolled in between
            spent = self.state.cloud_spend_usd.get(held.account, 0.0)
            charge(self.state, held.account, -min(held.usd, spent))

    def settle(self, task_id: str, attempt: int, account: AccountId | None, usd: float) -> bool:
        """The attempt reported what it cost; False (nothing charged) if it had already."""
        if (task_id, attempt) not in self._reserved and not usd:
            return False  # no cloud call: nothing to settle
        settled = self._settled.setdefault(task_id, set())
        if attempt in settled:
            return False
        settled.add(attempt)
        self.release(task_id, attempt)
        if usd:
            charge(self.state, account, usd)
            self._cost[task_id] = self._cost.get(task_id, 0.0) + usd
        return True

    def cost(self, task_id: str) -> float:
        """What the task's settled attempts cost (written on the events that end them)."""
        return self._cost.get(task_id, 0.0)

    def charged(self, task_id: str, account: AccountId | None) -> dict[str, Any]:
        """Event metadata recording the task's cost so far ({} when it cost nothing)."""
        usd = self._cost.get(task_id, 0.0)
        return {"charged_usd": usd, "account": account} if usd else {}

    def restore(self, task_id: str | None, account: AccountId | None, usd: float, at_s: float,
                now_s: float) -> None:
        """Recovery: a task's recorded cost, charged if recorded in the current budget period
        (``task_id`` given: the task is unfinished and later events carry on from it)."""
        if task_id is not None:
            self._cost[task_id] = usd
        budget = self.state.fleet.budgets.get(account) if account is not None else None
        if budget is not None and at_s >= period_start_s(budget.period, now_s):
            charge(self.state, account, usd)

    def forget(self, task_id: str) -> None:
        """The task left memory (its last event recorded its cost)."""
        self._settled.pop(task_id, None)
        self._cost.pop(task_id, None)

    def spent(self) -> dict[AccountId, float]:
        return {a: usd for a, usd in self.state.cloud_spend_usd.items() if a is not None}
