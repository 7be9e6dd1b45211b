"""The scheduling core's bookkeeping: waiting work indexed by constraint class, which nodes
each class may ever use, and the budget periods that reset cloud spend.

A constraint class groups tasks that the hard constraints treat alike: kind, model and
quantization, privacy (and the owner of personal work), tier, budget account, the features
the task needs, and the size
of the memory the task pins (tokens for LLM steps, working memory for processor steps) in
powers of two. Which nodes a class may use is asked of the optimizer's own scoring
(`scored()` on an idle fleet: a node is usable unless a permanent constraint rules it out),
so the index holds no constraint of its own.

Cloud spend is charged through `charge` by both bodies (the twin when it sends a task to an
offer, the live control plane when it places one and when the call reports its cost), and
reset per account by `BudgetPeriods` at boundaries counted from time 0 of the caller's clock.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterator
from dataclasses import dataclass

from heddle.models import AccountId, Fleet, FleetState, Privacy, Task, TaskId, TaskKind
from heddle.optimizer.policy import Policy
from heddle.optimizer.reasons import FIRST_TRANSIENT

__all__ = ["BUDGET_PERIOD_S", "BudgetPeriods", "ClassIndex", "Waiter", "charge", "constraint_class",
           "period_start_s"]

ClassKey = tuple
"""(kind, model, quant, privacy, owner of personal work, tier, account, size bucket, needs)."""


def _bucket(amount: float) -> int:
    """Power-of-two size bucket: 0 for nothing, k for amounts in [2**(k-1), 2**k)."""
    return int(amount).bit_length() if amount > 0 else 0


def _bucket_floor(bucket: int) -> int:
    """The smallest amount in `bucket` (what the class's representative task pins)."""
    return 1 << (bucket - 1) if bucket > 0 else 0


MB_PER_GB = 1024
"""Processor working memory is bucketed in MB (a 0.5 GB task and a 0.9 GB task share a class)."""


def constraint_class(task: Task) -> ClassKey:
    """The constraint class of `task` (see the module docstring)."""
    personal = task.privacy is Privacy.PERSONAL
    if task.kind is TaskKind.LLM:
        size = _bucket(max(task.prompt_tokens, 0) + max(task.output_tokens, 0))
    else:
        size = _bucket(task.memory_gb * MB_PER_GB)
    return (task.kind, task.model, task.quant, task.privacy, task.owner if personal else None,
            task.tier, task.account, size, task.needs)


def representative(key: ClassKey) -> Task:
    """The least demanding task of a class: if a permanent constraint rules a node out for
    it, it rules the node out for every task of the class."""
    kind, model, quant, privacy, owner, tier, account, size, needs = key
    floor = _bucket_floor(size)
    if kind is TaskKind.LLM:
        return Task(TaskId("class"), kind, model=model, quant=quant, prompt_tokens=floor, privacy=privacy,
                    owner=owner, tier=tier, account=account, needs=needs)
    return Task(TaskId("class"), kind, memory_gb=floor / MB_PER_GB, privacy=privacy, owner=owner, tier=tier,
                account=account, needs=needs)


def usable_targets(fleet: Fleet, key: ClassKey, policy: Policy) -> frozenset[str]:
    """Node and offer ids the class may ever use: not ruled out by a permanent constraint on
    an idle fleet (slots, free memory, courtesy and departures come and go)."""
    from heddle.optimizer.engine import scored  # engine imports the solvers; keep this module light

    sc = scored(FleetState.idle(fleet), [representative(key)], policy)
    codes = sc.codes[0]
    return frozenset(name for j, name in enumerate(sc.fa.target_names)
                     if codes[j] == 0 or codes[j] >= FIRST_TRANSIENT)


@dataclass(slots=True, eq=False)
class Waiter:
    """A task in the waiting set."""

    seq: int  # FIFO position (given at release, kept across retries)
    since_s: float  # when it last started waiting (the maximum wait counts from here)
    cls: ClassKey
    reason: str = ""  # the last reason it was deferred


class ClassIndex:
    """Waiting tasks by class, each class a heap of (seq, key): the oldest first.

    Entries are removed lazily: `live(key)` tells whether a heap entry still stands for a
    waiting task (a task may have been cancelled, rejected or offered since)."""

    def __init__(self) -> None:
        self.by_class: dict[ClassKey, list[tuple[int, Hashable]]] = {}
        self._usable: dict[ClassKey, frozenset[str]] = {}
        self._usable_fleet: Fleet | None = None

    def push(self, key: Hashable, w: Waiter) -> None:
        heap = self.by_class.get(w.cls)
        if heap is None:
            heap = self.by_class[w.cls] = []
        heapq.heappush(heap, (w.seq, key))

    def head(self, cls: ClassKey, waiting: dict) -> tuple[int, Hashable] | None:
        """The oldest waiting task of `cls` (stale entries dropped), or None."""
        heap = self.by_class.get(cls)
        while heap:
            seq, key = heap[0]
            w = waiting.get(key)
            if w is not None and w.seq == seq and w.cls == cls:
                return seq, key
            heapq.heappop(heap)
        if heap is not None:
            del self.by_class[cls]
        return None

    def pop(self, cls: ClassKey) -> None:
        heapq.heappop(self.by_class[cls])

    def heads(self, waiting: dict, target: str | None, fleet: Fleet, policy: Policy) -> list[tuple[int, ClassKey]]:
        """(seq of its oldest task, class) of every class with waiting work that may use
        `target` (None: every class), as a heap."""
        out = []
        for cls in list(self.by_class):
            if target is not None and target not in self.usable(cls, fleet, policy):
                continue
            top = self.head(cls, waiting)
            if top is not None:
                out.append((top[0], cls))
        heapq.heapify(out)
        return out

    def usable(self, cls: ClassKey, fleet: Fleet, policy: Policy) -> frozenset[str]:
        if fleet is not self._usable_fleet:  # a node joined the fleet: ask again
            self._usable.clear()
            self._usable_fleet = fleet
        found = self._usable.get(cls)
        if found is None:
            found = self._usable[cls] = usable_targets(fleet, cls, policy)
        return found

    def drain(self, waiting: dict) -> Iterator[Hashable]:
        """Every waiting key, oldest first, emptying the index."""
        entries = sorted((w.seq, key) for key, w in waiting.items())
        self.by_class.clear()
        for _, key in entries:
            yield key


BUDGET_PERIOD_S: dict[str, float] = {"day": 86_400.0, "week": 604_800.0, "month": 2_592_000.0}
"""Budget periods in seconds; a month is 30 days (on the caller's clock)."""


def _period_s(period: str) -> float:
    return BUDGET_PERIOD_S.get(period, BUDGET_PERIOD_S["month"])


def period_start_s(period: str, now_s: float) -> float:
    """When the budget period holding `now_s` began (boundaries at multiples of its length)."""
    p = _period_s(period)
    return now_s // p * p


def charge(state: FleetState, account: AccountId | None, usd: float) -> None:
    """Add `usd` (negative: give back) to `account`'s cloud spend of the current period."""
    if usd:
        spend = state.cloud_spend_usd
        spend[account] = spend.get(account, 0.0) + usd


class BudgetPeriods:
    """Resets each budget account's spend at its period boundary (day/week/month), counted
    from time 0 of the caller's clock; the first boundary is the one after `now_s` (a body
    whose clock starts late, the live one on Unix time, keeps the spend it starts with)."""

    def __init__(self, fleet: Fleet, now_s: float = 0.0):
        self.periods = {acct: _period_s(b.period) for acct, b in fleet.budgets.items()}
        self.next_s = {acct: period_start_s(b.period, now_s) + self.periods[acct]
                       for acct, b in fleet.budgets.items()}
        self.soonest = min(self.next_s.values(), default=float("inf"))

    def roll(self, now_s: float, state: FleetState) -> bool:
        """Reset the spend of every account whose period ended by `now_s`; True if any did."""
        if now_s < self.soonest:
            return False
        for acct, t in self.next_s.items():
            if now_s >= t:
                state.cloud_spend_usd[acct] = 0.0
                p = self.periods[acct]
                self.next_s[acct] = t + p * (1 + (now_s - t) // p)
        self.soonest = min(self.next_s.values())
        return True
