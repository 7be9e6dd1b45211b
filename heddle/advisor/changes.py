"""Changes that need no purchase, aimed at causes a setting can fix: letting an owner's personal
work run on a node that can hold it (`trust`), and raising an account's cloud budget (`budget`).

They are replayed in the twin like the purchase candidates, so the report can say what each
would get done, but they are never *recommended*: widening who may run personal work where is
the owners' decision (the advisor never makes it for them), and a budget raise is a running cost
the owner weighs against the work it buys. The report lists them beside the purchase advice.
"""

from __future__ import annotations

from dataclasses import replace

from heddle.advisor.candidates import Candidate
from heddle.advisor.causes import Cause
from heddle.advisor.settings import DAYS_PER_MONTH
from heddle.models.fleet_types import Fleet
from heddle.models.ids import AccountId, OwnerId

__all__ = ["MAX_CHANGES", "PERIOD_DAYS", "free_changes"]

MAX_CHANGES = 3
"""Changes replayed at most (the largest causes first): each costs one more twin run."""

PERIOD_DAYS = {"day": 1.0, "week": 7.0, "month": DAYS_PER_MONTH}
"""Days in a budget period (a month is the mean Gregorian month)."""


def _trust(fleet: Fleet, c: Cause) -> Candidate:
    nid = c.nodes[0]
    node = fleet.node(nid)
    wider = replace(node, trusted_owners=node.trusted_owners | {OwnerId(c.owner)})
    f = replace(fleet, nodes=tuple(wider if n.id == nid else n for n in fleet.nodes))
    return Candidate(f"adding {c.owner} to {nid}'s trusted_owners ({node.owner}'s machine)", "change",
                     f, aim=c.key)


def _budget(fleet: Fleet, c: Cause) -> Candidate:
    acct = AccountId(c.account)
    b = fleet.budgets[acct]
    extra = c.value_usd_per_month * PERIOD_DAYS.get(b.period, DAYS_PER_MONTH) / DAYS_PER_MONTH
    budgets = {**fleet.budgets, acct: replace(b, limit_usd=b.limit_usd + extra)}
    return Candidate(f"raising the {c.account} budget by {extra:,.2f} USD a {b.period}", "change",
                     replace(fleet, budgets=budgets), aim=c.key)


def free_changes(fleet: Fleet, causes: list[Cause]) -> list[Candidate]:
    """One change per trust or budget cause (largest first, at most MAX_CHANGES)."""
    out = []
    for c in sorted(causes, key=lambda c: -c.per_month):
        if c.kind == "trust" and c.nodes and c.owner:
            out.append(_trust(fleet, c))
        elif c.kind == "budget" and AccountId(c.account) in fleet.budgets:
            out.append(_budget(fleet, c))
    return out[:MAX_CHANGES]
