"""Write an `AdvisorReport` as self-contained HTML (charts embedded as base64 PNG data URIs),
Markdown (charts as PNG files beside it) and JSON."""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

from heddle.advisor.advise import AdvisorReport
from heddle.advisor.charts import CHART_TITLES, render_charts
from heddle.advisor.errors import ReportExistsError
from heddle.advisor.roi import Evaluation
from heddle.advisor.uncertainty import PAYBACK_CEILING_MONTHS
from heddle.advisor.value import describe_value
from heddle.advisor.words import check_text

__all__ = ["CAUSE_COLUMNS", "CHANGE_COLUMNS", "RANKING_COLUMNS", "REPORT_FILES", "cause_rows", "change_rows", "check_out_dir",
           "ranking_rows", "write_report"]

RANKING_COLUMNS = ("#", "candidate", "price USD", "resale USD", "net USD", "cloud saved USD/mo",
                   "energy saved USD/mo", "work done saved USD/mo", "saves USD/mo", "payback mo",
                   "P10-P50-P90 mo", "NPV USD", "3-yr TCO USD", "break-even req/day",
                   "break-even USD/miss", "privacy", "status")
"""The ranked table: saves = cloud + energy + work done (the value of work no longer failing);
payback = net / saves, net = price - resale (a replaced machine sold used)."""

CHANGE_COLUMNS = ("change (no purchase)", "done in time /mo", "more cloud spend USD/mo", "privacy")
"""Changes a setting makes, replayed in the twin but never recommended (the owners decide)."""

CAUSE_COLUMNS = ("cause", "requests/mo", "value USD/mo", "why, in words", "what would fix it",
                 "done in time by the advice /mo")


def _m(x: float) -> str:
    if not math.isfinite(x):
        return "never"
    return f">{PAYBACK_CEILING_MONTHS:.0f}" if x >= PAYBACK_CEILING_MONTHS else f"{x:.1f}"


def _usd(x: float) -> str:
    return f"{x:,.0f}" if math.isfinite(x) else "-"


def _cents(x: float) -> str:
    return f"{round(x, 2) + 0.0:,.2f}" if math.isfinite(x) else "-"  # + 0.0: no "-0.00"


BREAK_EVEN_CAP = 100.0
"""A break-even rate above 100 times today's reads as 'no': it is shown as such, not as a number."""


def _break_even(rate: float, today: float) -> str:
    if not math.isfinite(rate) or (today > 0 and rate > BREAK_EVEN_CAP * today):
        return f">{BREAK_EVEN_CAP:.0f}x today"
    return _usd(rate)


def _row(rank: str, e: Evaluation, best: Evaluation | None, report_rate: float) -> list[str]:
    u = e.uncertainty.pooled if e.uncertainty else None
    band = f"{_m(u['p10'])}-{_m(u['p50'])}-{_m(u['p90'])}" if u else "-"
    if u and u["p10"] >= PAYBACK_CEILING_MONTHS:
        band = _m(u["p10"])
    c, sv = e.candidate, e.savings_usd_per_month
    status = "RECOMMENDED" if e is best else ("baseline" if c.kind == "current" else (e.why_not or "ok"))
    bought = bool(c.purchases)
    return [rank, c.name, _usd(c.purchase_usd), _usd(c.resale_usd), _usd(c.net_usd),
            _cents(sv["cloud"]), _cents(sv["energy"]), _cents(sv["misses"]), _cents(sv["total"]),
            _m(e.payback_months) if bought else "-", band, _usd(e.npv_usd), _usd(e.tco_usd),
            _break_even(e.break_even_requests_per_day, report_rate) if bought else "-",
            _cents(e.break_even_miss_value_usd) if bought else "-",
            f"{e.replay.privacy_violations} violations", status]


def ranking_rows(report: AdvisorReport) -> list[list[str]]:
    """The ranked table (current fleet first, then candidates best NPV first) as strings."""
    rate = report.profile.requests_per_day
    rows = [_row("-", report.baseline, report.recommended, rate)]
    rows += [_row(str(k), e, report.recommended, rate) for k, e in enumerate(report.evaluations, 1)]
    return rows


def cause_rows(report: AdvisorReport) -> list[list[str]]:
    """Why work fails today: one row per cause, most requests first within each kind."""
    best = report.recommended
    return [[c.kind, f"{round(c.per_month):,}", _cents(c.value_usd_per_month), c.sentence, c.fix or "-",
             f"{best.fixes.get(c.key, 0.0):,.0f}" if best else "-"] for c in report.causes]


RESALE_COLUMNS = ("replaced node", "resale USD", "source")


def resale_rows(report: AdvisorReport) -> list[list[str]]:
    """Where each replaced machine's resale figure comes from (one row per node)."""
    seen: dict[str, list[str]] = {}
    for e in report.evaluations:
        c = e.candidate
        for nid in c.removed:
            seen.setdefault(nid, [nid, _usd(c.resale_usd), c.resale_source or "-"])
    return list(seen.values())


def change_rows(report: AdvisorReport) -> list[list[str]]:
    return [[e.candidate.name, f"{sum(e.fixes.values()):,.0f}", _cents(-e.savings_usd_per_month["cloud"]),
             f"{e.replay.privacy_violations} violations"] for e in report.changes]


def _facts(r: AdvisorReport) -> list[tuple[str, str]]:
    p, c = r.profile, r.current
    why = ", ".join(f"{k} {v:.0%}" for k, v in c.why_cloud.items()) or "nothing went to the cloud"
    replay = (f"{r.plan.days.size} representative days of {r.plan.n_days} (ratio-estimated)"
              if r.plan.sampled else f"all {r.plan.n_days} days")
    sz = r.screen.sizing
    sizing = "-" if sz is None else (
        f"{sz.status}: " + (", ".join(f"{v} x {k.removeprefix('buy:')}" for k, v in sz.bought.items())
                            or "buy nothing") + f" ({sz.wall_s:.2f} s)")
    return [
        ("trace", f"{r.trace_label}: {p.n_requests:,} requests over {p.duration_days:.2f} days"),
        ("request rate", (f"{p.requests_per_day:,.0f}/day; peak hour {p.peak_hour_requests_per_s * 3600:,.0f}/h "
                         f"(P{r.settings.design_percentile:g} of hours)")),
        ("growth trend", f"{p.growth_per_month:+.1%}/month ({p.growth_per_year:+.0%}/year)"
                         + (f" - {'; '.join(p.notes)}" if p.notes else "")),
        ("tokens", (f"prompt p50/p90/p99 {p.prompt_tokens_pct['p50']:.0f}/{p.prompt_tokens_pct['p90']:.0f}/"
                   f"{p.prompt_tokens_pct['p99']:.0f}; output {p.output_tokens_pct['p50']:.0f}/"
                   f"{p.output_tokens_pct['p90']:.0f}/{p.output_tokens_pct['p99']:.0f}; "
                   f"{p.tokens_per_day:,.0f} tokens/day")),
        ("model mix", ", ".join(f"{k} {v:.0%}" for k, v in list(p.model_mix.items())[:8])),
        ("privacy mix", ", ".join(f"{k} {v:.0%}" for k, v in p.privacy_mix.items())),
        ("with a deadline", f"{p.deadline_share:.0%} of requests"),
        ("current cloud spend", f"{c.cloud_usd_per_month:,.2f} USD/month ({c.cloud_share:.1%} of requests)"),
        ("why cloud", why),
        ("not done in time now", (f"{c.misses_per_month:,.0f} requests/month (rejected "
                                 f"{c.rejected_per_month:,.0f}, the rest failed or late)")),
        ("value of work not done in time", describe_value(r.settings)),
        ("current energy", f"{c.energy_usd_per_month:,.2f} USD/month"),
        ("candidates", f"{r.screened} priced analytically, {len(r.evaluations)} replayed in the twin"),
        ("sizing model (CP-SAT)", sizing),
        ("twin replay", replay),
        ("privacy violations", f"{r.privacy_violations} across all twin replays"),
    ]


def _sensitive_one(r: AdvisorReport) -> Evaluation | None:
    """The candidate whose payback sensitivity is shown: the recommended one, else the best
    that pays back at all (a payback of 'never' has no sensitivity worth a table)."""
    return r.recommended or next((x for x in r.evaluations if x.uncertainty
                                  and math.isfinite(x.payback_months)), None)


def _sensitivity(r: AdvisorReport) -> list[tuple[str, str]]:
    e = _sensitive_one(r)
    if e is None or e.uncertainty is None:
        return []
    u = e.uncertainty
    out = [(f"growth scenario {k}", f"P10 {_m(v['p10'])} / P50 {_m(v['p50'])} / P90 {_m(v['p90'])}")
            for k, v in u.by_scenario.items()]
    out += [(f"electricity price x{k.removesuffix('x')}", _m(v)) for k, v in u.sensitivity_electricity.items()]
    out += [(f"request growth {k}", _m(v)) for k, v in u.sensitivity_growth.items()]
    return out


def _sensitivity_head(r: AdvisorReport) -> tuple[str, str]:
    e = _sensitive_one(r)
    return ("what changes", f"payback of {e.candidate.name if e else '-'}, months")


def _html(r: AdvisorReport, charts: dict[str, bytes]) -> str:
    esc = html.escape

    def table(head, rows) -> str:
        h = "".join(f"<th>{esc(x)}</th>" for x in head)
        b = "".join("<tr>" + "".join(f"<td>{esc(str(x))}</td>" for x in row) + "</tr>" for row in rows)
        return f"<table><thead><tr>{h}</tr></thead><tbody>{b}</tbody></table>"

    imgs = "".join(
        f"<figure><img alt=\"{esc(CHART_TITLES[k])}\" src=\"data:image/png;base64,"
        f"{base64.b64encode(v).decode('ascii')}\"><figcaption>{esc(CHART_TITLES[k])}</figcaption></figure>"
        for k, v in charts.items())
    sens = _sensitivity(r)
    causes = (table(CAUSE_COLUMNS, cause_rows(r)) if r.causes
              else "<p>Nothing: the current fleet does all the work in time.</p>")
    check = check_text(r.recommended, r.causes)  # the note is in the sentence already
    note = f"<p>{esc(check)}</p>" if check else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>heddle advice: {esc(r.fleet_name)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;margin:1em 0;font-size:.9em}}td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left}}
th{{background:#f3f3f3}}.rec{{font-size:1.2em;background:#eef7ee;padding:.8em;border-left:4px solid #3a3}}
img{{max-width:100%}}figure{{margin:1.5em 0}}</style></head><body>
<h1>What to buy next for fleet “{esc(r.fleet_name)}”</h1>
<p class="rec">{esc(r.sentence)}</p>{note}
<h2>Why work fails today</h2>
{causes}
<h2>Candidates (replayed in the twin)</h2>
{table(RANKING_COLUMNS, ranking_rows(r))}
{"<h3>Resale figures</h3>" + table(RESALE_COLUMNS, resale_rows(r)) if resale_rows(r) else ""}
{"<h2>Changes that need no purchase</h2>" + table(CHANGE_COLUMNS, change_rows(r)) if r.changes else ""}
<h2>Workload and current fleet</h2>
{table(("fact", "value"), _facts(r))}
<h2>Uncertainty and sensitivity</h2>
{table(_sensitivity_head(r), sens) if sens else "<p>No candidate pays back: no sensitivity to show.</p>"}
<h2>Charts</h2>
{imgs}
<h2>Method</h2>
<p>Savings = cloud spend avoided + energy difference + the value of work no longer failing
({esc(describe_value(r.settings))}), measured by replaying the trace through the twin on the
current fleet and on each shortlisted candidate. Payback = (price - resale of a replaced machine)
/ monthly savings; NPV at
{r.settings.discount_rate_annual:.0%}/year over {r.settings.horizon_months} months; see docs/advisor.md.</p>
</body></html>
"""


def _markdown(r: AdvisorReport, chart_files: dict[str, str]) -> str:
    def table(head, rows) -> str:
        def cell(x) -> str:
            return str(x).replace("|", "\\|")
        lines = ["| " + " | ".join(cell(h) for h in head) + " |",
                 "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(cell(x) for x in row) + " |" for row in rows]
        return "\n".join(lines)

    sens = _sensitivity(r)
    parts = [f"# What to buy next for fleet \"{r.fleet_name}\"", "", f"**{r.sentence}**", ""]
    if check_text(r.recommended, r.causes):
        parts += [check_text(r.recommended, r.causes), ""]
    parts += ["## Why work fails today", "",
              table(CAUSE_COLUMNS, cause_rows(r)) if r.causes
              else "Nothing: the current fleet does all the work in time.", "",
              "## Candidates (replayed in the twin)", "", table(RANKING_COLUMNS, ranking_rows(r)), ""]
    if resale_rows(r):
        parts += ["### Resale figures", "", table(RESALE_COLUMNS, resale_rows(r)), ""]
    if r.changes:
        parts += ["## Changes that need no purchase", "", table(CHANGE_COLUMNS, change_rows(r)), ""]
    parts += ["## Workload and current fleet", "", table(("fact", "value"), _facts(r)), ""]
    if sens:
        parts += ["## Uncertainty and sensitivity", "",
                  table(_sensitivity_head(r), sens), ""]
    parts += ["## Charts", ""] + [f"![{CHART_TITLES[k]}]({f})" for k, f in chart_files.items()]
    return "\n".join(parts) + "\n"


REPORT_FILES = ("advice.html", "advice.md", "advice.json")
"""What `write_report` writes (besides the chart PNGs); an existing one is never overwritten
unless asked (`force`)."""


def check_out_dir(out_dir: str | Path, *, force: bool = False) -> Path:
    """Refuse (`ReportExistsError`) a folder that already holds a report, unless `force`."""
    out = Path(out_dir)
    if not force and out.is_dir() and any((out / f).exists() for f in REPORT_FILES):
        raise ReportExistsError(f"{out} already holds a report (advice.html, advice.md or "
                                "advice.json); choose another --out or pass --force to overwrite it")
    return out


def write_report(report: AdvisorReport, out_dir: str | Path, *, force: bool = False) -> dict[str, Path]:
    """Write advice.html, advice.md (+ chart PNGs) and advice.json into `out_dir`; a folder that
    already holds a report is refused (`ReportExistsError`) unless `force`."""
    out = check_out_dir(out_dir, force=force)
    out.mkdir(parents=True, exist_ok=True)
    charts = render_charts(report)
    files = {}
    for name, png in charts.items():
        f = out / f"advice-{name}.png"
        f.write_bytes(png)
        files[name] = f.name
    paths = {"html": out / "advice.html", "markdown": out / "advice.md", "json": out / "advice.json"}
    paths["html"].write_text(_html(report, charts), encoding="utf-8")
    paths["markdown"].write_text(_markdown(report, files), encoding="utf-8")
    paths["json"].write_text(json.dumps(_clean(report.as_dict()), indent=2), encoding="utf-8")
    return paths


def _clean(value):
    """JSON has no inf/NaN: write null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return _clean(value.item())
    return value
