"""What each policy trades on the shipped fleets: cost, p95 latency and deadline misses.

Replays a shipped trace on a shipped fleet under every policy and reports the three figures
a household weighs against each other, and which baselines (if any) beat "optimal" on all
three at once. docs/optimizer.md publishes the table this module prints
(`uv run python -m heddle.sim.tradeoffs --write docs/optimizer.md` rewrites it between its
markers), and tests/sim/test_tradeoffs.py re-runs rows of it, so the page cannot drift from
the code.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

from heddle.models.fleet import shipped_fleet_path
from heddle.optimizer import POLICY_NAMES
from heddle.sim.runner import simulate
from heddle.traces.samples import shipped_trace_path

__all__ = ["CASES", "CLAIMED", "TradeoffRow", "dominating", "markdown", "parse_markdown", "tradeoff_row", "write_doc"]

CASES: tuple[tuple[str, str], ...] = (("demo", "demo"), ("office", "demo"), ("demo", "azure-code"),
                                      ("office", "azure-code"))
"""(shipped fleet, shipped trace) pairs the published table covers."""

CLAIMED: tuple[tuple[str, str], ...] = (("demo", "demo"), ("office", "demo"))
"""The pairs on which "optimal" is claimed never to be dominated (the fleets with the shipped
household workload). On the azure-code trace (public code completions, no deadlines) every
policy lands within about 1 % of the others and "optimal" is not claimed to win."""

BEGIN, END = "<!-- tradeoffs:begin -->", "<!-- tradeoffs:end -->"
"""Markers around the generated table in a Markdown page."""


@dataclass(frozen=True, slots=True)
class TradeoffRow:
    """One policy's replay: money (cloud spend + local energy), p95 latency, missed deadlines."""

    fleet: str
    trace: str
    policy: str
    cost_usd: float
    p95_latency_s: float
    miss_rate: float
    completed: int
    rejected: int

    def key(self) -> tuple[float, float, float]:
        """The three figures as printed (the table's rounding), lower is better in each."""
        return (round(self.cost_usd, 3), round(self.p95_latency_s, 1), round(self.miss_rate * 100, 2))


def tradeoff_row(fleet: str, trace: str, policy: str) -> TradeoffRow:
    """Replay shipped `trace` on shipped `fleet` under `policy` (the twin's defaults, seed 0)."""
    s = simulate(shipped_fleet_path(fleet), shipped_trace_path(trace), policy).summary
    return TradeoffRow(fleet, trace, policy, s.cloud_spend_usd + s.energy_cost_usd,
                       float(s.latency_s.get("p95", float("nan"))), s.deadline_miss_rate, s.completed, s.rejected)


def dominating(rows: list[TradeoffRow]) -> list[str]:
    """Policies no worse than "optimal" on cost, p95 latency and misses and better on one
    (compared as printed), within one (fleet, trace)."""
    best = next(r for r in rows if r.policy == "optimal").key()
    return [r.policy for r in rows if r.policy != "optimal"
            and all(a <= b for a, b in zip(r.key(), best)) and r.key() != best]


def markdown(rows: list[TradeoffRow]) -> str:
    """The table as Markdown, one line per (fleet, trace, policy)."""
    header = ("| fleet | trace | policy | cost (USD: cloud + energy) | p95 latency (s) | deadlines missed (%) "
              "| completed | rejected |")
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cost, p95, miss = r.key()
        lines.append(f"| {r.fleet} | {r.trace} | {r.policy} | {cost:.3f} | {p95:.1f} | {miss:.2f} "
                     f"| {r.completed} | {r.rejected} |")
    return "\n".join(lines)


def parse_markdown(text: str) -> list[TradeoffRow]:
    """The rows of a table `markdown` wrote (inside a page: between the markers)."""
    if BEGIN in text:
        text = text.split(BEGIN, 1)[1].split(END, 1)[0]
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 8 or cells[0] in ("fleet", "---"):
            continue
        fleet, trace, policy, cost, p95, miss, completed, rejected = cells
        rows.append(TradeoffRow(fleet, trace, policy, float(cost), float(p95), float(miss) / 100,
                                int(completed), int(rejected)))
    return rows


def write_doc(page: Path, rows: list[TradeoffRow]) -> None:
    """Replace the table between the markers of `page` with `rows`."""
    text = page.read_text()
    if BEGIN not in text or END not in text:
        raise ValueError(f"{page}: no {BEGIN} ... {END} markers to write the table between")
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
    page.write_text(pattern.sub(lambda _m: f"{BEGIN}\n{markdown(rows)}\n{END}", text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="rewrite the table between the markers of this page")
    args = parser.parse_args()
    rows = []
    for fleet, trace in CASES:
        case = [tradeoff_row(fleet, trace, policy) for policy in POLICY_NAMES]
        print(f"{fleet} / {trace}: optimal dominated by {dominating(case) or 'none'}", flush=True)
        rows += case
    print(markdown(rows))
    if args.write:
        write_doc(args.write, rows)


if __name__ == "__main__":
    main()
