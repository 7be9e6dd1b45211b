"""The advice in words: the recommendation sentence, and when nothing is worth buying, why.

Every sentence is built from the report's own figures (the ranked table's savings, price and
payback; the causes' counts), so a reader can check it against the tables.
"""

from __future__ import annotations

import math

from heddle.advisor.causes import Cause, plural
from heddle.advisor.roi import Evaluation
from heddle.advisor.settings import AdvisorSettings

__all__ = ["check_text", "months_text", "recommendation_sentence", "what_text"]


def months_text(x: float) -> str:
    if not math.isfinite(x):
        return "never"
    return "1 month" if f"{x:.1f}" == "1.0" else f"{x:.1f} months"


def what_text(e: Evaluation, *, gerund: bool = False) -> str:
    """'Buy 1 x dgx-spark (128 GB)' / 'Replace orin by 1 x ...' (the action, capitalised);
    `gerund`: 'Buying ...' / 'Replacing ...' (the action as a subject)."""
    c = e.candidate
    bought = " + ".join(p.label() for p in c.purchases)
    if c.kind == "replace":
        return f"{'Replacing' if gerund else 'Replace'} {c.removed[0]} by {bought}"
    return f"{'Buying' if gerund else 'Buy'} {bought}"


def _money(x: float) -> str:
    """USD with cents, or three significant figures below a dime (0.00452, not 0.00)."""
    return f"{x:,.2f}" if x >= 0.1 else f"{x:.3g}"


def _price_text(e: Evaluation) -> str:
    c = e.candidate
    if c.resale_usd > 0:
        return (f"{c.purchase_usd:,.0f} USD, {c.net_usd:,.0f} USD after selling {c.removed[0]} "
                f"used for about {c.resale_usd:,.0f} USD")
    return f"{c.purchase_usd:,.0f} USD"


def _parts_text(e: Evaluation) -> str:
    sv = e.savings_usd_per_month
    names = {"cloud": "cloud", "energy": "electricity", "misses": "work now done in time"}
    parts = [f"{names[k]} {sv[k]:+,.0f}" for k in ("cloud", "energy", "misses") if round(sv[k]) != 0]
    return f" ({', '.join(parts)})" if len(parts) > 1 else ""


def _fixes_text(e: Evaluation, causes: list[Cause]) -> str:
    done = [(c, e.fixes.get(c.key, 0.0)) for c in causes]
    done = [(c, n) for c, n in done if n >= 0.5]
    if not done:
        return ""
    total = sum(c.per_month for c in causes)
    n = sum(k for _, k in done)
    merged: dict[str, list[str]] = {}  # "personal x work" -> owners, in order of requests done
    for c, _ in sorted(done, key=lambda t: -t[1]):
        base, _, owner = c.label.partition(" from ")
        merged.setdefault(base, []).extend([owner] if owner else [])
    labels = [base + (f" from {' and '.join(owners)}" if owners else "") for base, owners in merged.items()]
    shown = "; ".join(labels[:2]) + (f"; and {len(labels) - 2} more" if len(labels) > 2 else "")
    return (f" It gets {_count(n)} of the {plural(total, 'request')} a month that fail today done "
            f"in time ({shown}).")


def _changes_text(changes: list[Evaluation], lead: str) -> str:
    """What each no-purchase change would get done (a sentence per change that does something)."""
    out = []
    for e in changes:
        n = sum(e.fixes.values())
        if n < 0.5:
            continue
        cost = -e.savings_usd_per_month["cloud"]
        extra = f", for about {cost:,.2f} USD a month more cloud spend" if cost >= 0.005 else ""
        name = e.candidate.name
        out.append(f" {lead}{name[0].upper() if not lead else name[0]}{name[1:]} would get "
                   f"{plural(n, 'request')} a month done in time{extra}"
                   + (" (a decision for the owners, not a purchase)." if "trusted_owners" in name else "."))
    return "".join(out)


def recommendation_sentence(best: Evaluation | None, candidates: list[Evaluation],
                            settings: AdvisorSettings, causes: list[Cause],
                            note: str = "", changes: list[Evaluation] | None = None) -> str:
    """One or two sentences an owner can act on (and what changes that need no purchase do)."""
    changes = changes or []
    if best is not None:
        band = ""
        if best.uncertainty:
            p = best.uncertainty.pooled
            band = f" (P10-P90 {p['p10']:.1f}-{p['p90']:.1f} across days and growth scenarios)"
        sv = best.savings_usd_per_month["total"]
        return (f"{what_text(best)} for {_price_text(best)}: it saves {sv:,.0f} USD a month at "
                f"today's request rate{_parts_text(best)} and pays back in "
                f"{months_text(best.payback_months)}{band}; 3-year NPV {best.npv_usd:,.0f} USD."
                + _fixes_text(best, causes) + (f" {note}" if note else "")
                + _changes_text(changes, "Without buying anything, "))
    return _keep_sentence(candidates, settings, causes, changes)


def _count(n: float) -> str:
    return "fewer than one" if 0 < n < 0.5 else f"{round(n):,}"


def _keep_sentence(candidates: list[Evaluation], settings: AdvisorSettings, causes: list[Cause],
                   changes: list[Evaluation]) -> str:
    head = (f"Keep the current fleet: no purchase within the {settings.budget_usd:,.0f} USD budget "
            f"pays back within {settings.horizon_months} months")
    paying = [e for e in candidates if e.npv_usd > 0 and math.isfinite(e.payback_months)]
    blocked = [e for e in paying if not e.eligible]
    if paying and len(blocked) == len(paying):
        head += f" without breaking a rule ({blocked[0].candidate.name}: {blocked[0].why_not})"
    total = sum(c.per_month for c in causes)
    if total < 0.5:
        return head + ", and today's fleet does all its work in time."
    stuck = [c for c in causes if not c.fixable_by_purchase]
    fixable = [c for c in causes if c.fixable_by_purchase]
    n_stuck = sum(c.per_month for c in stuck)
    n_fix = sum(c.per_month for c in fixable)
    parts = []
    if n_stuck >= 0.5:
        n_stuck = sum(round(c.per_month) for c in stuck)  # the sum of the table's rows, as printed
        parts.append(f"{_count(n_stuck)} of the {plural(total, 'request')} a month that fail today "
                     "ask for a model tier no local model serves, which no purchase changes (see why "
                     "work fails)")
    if n_fix >= 0.5:
        usd = sum(c.value_usd_per_month for c in fixable)
        rest = max(round(total) - round(n_stuck), 0) if parts else 0  # the counts add up as shown
        lead = f"the other {rest:,}" if parts else f"the {plural(total, 'request')} a month that fail today"
        parts.append(f"{lead} {'is' if round(n_fix) <= 1 else 'are'} worth {usd:,.2f} USD a month "
                     + ("at their cloud price (set --miss-value if they are worth more to you)"
                        if settings.miss_value_usd is None and not settings.miss_value_usd_by_priority
                        else "at the value you set for work not done in time"))
    replayed = {e.candidate.aim for e in changes}
    for c in (c for c in causes if c.kind == "budget" and c.key not in replayed):
        parts.append(f"raising the {c.account} budget by about {c.value_usd_per_month:,.2f} USD a month "
                     f"would let {_count(c.per_month)} of them use the cloud")
    aimed = [e for e in candidates if e.eligible and e.misses_avoided_per_month >= 0.5
             and math.isfinite(e.break_even_miss_value_usd) and e.candidate.net_usd > 0]
    tail = ""
    if n_fix >= 0.5 and not any(sum(e.fixes.values()) >= 0.5 for e in candidates):
        parts.append(f"none of the {len(candidates)} candidates replayed in the twin gets them done in time")
    if aimed:
        e = min(aimed, key=lambda x: x.break_even_miss_value_usd)
        tail = (f" {what_text(e, gerund=True)} would get {plural(e.misses_avoided_per_month, 'more request')} a "
                f"month done in time; it pays back within {settings.horizon_months} months if each "
                f"is worth at least {_money(e.break_even_miss_value_usd)} USD to you (--miss-value).")
    return (head + (". " + "; ".join(parts)[0].upper() + "; ".join(parts)[1:] if parts else "") + "." + tail
            + _changes_text(changes, ""))


def check_text(best: Evaluation | None, causes: list[Cause]) -> str:
    """How a reader checks the advice with the report's own tables and a calculator."""
    if best is not None:
        c, sv = best.candidate, best.savings_usd_per_month
        net = (f"net price {c.purchase_usd:,.0f} - resale {c.resale_usd:,.0f} = {c.net_usd:,.0f} USD; "
               if c.resale_usd else f"net price {c.net_usd:,.0f} USD; ")
        return (f"How to check it (the RECOMMENDED row below): saves = cloud {sv['cloud']:,.2f} + "
                f"energy {sv['energy']:,.2f} + work done {sv['misses']:,.2f} = {sv['total']:,.2f} USD a "
                f"month; {net}payback = {c.net_usd:,.0f} / {sv['total']:,.2f} = "
                f"{months_text(c.net_usd / sv['total'] if sv['total'] > 0 else math.inf)}.")
    if not causes:
        return ""
    counts = [round(c.per_month) for c in causes]  # as the table shows them
    parts = " + ".join(f"{k:,} ({c.kind})" for c, k in zip(causes, counts))
    total = round(sum(c.per_month for c in causes))
    exact = "" if sum(counts) == total else f" ({total:,} before rounding each row)"
    return (f"How to check it (the table of why work fails below): {parts} = {sum(counts):,}{exact} "
            "requests a month not done in time.")
