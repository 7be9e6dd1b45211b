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
from heddle.advisor.roi import Evaluation
from heddle.advisor.uncertainty import PAYBACK_CEILING_MONTHS

__all__ = ["RANKING_COLUMNS", "ranking_rows", "write_report"]

RANKING_COLUMNS = ("#", "candidate", "price USD", "saves USD/mo", "payback mo", "P10-P50-P90 mo",
                   "NPV USD", "3-yr TCO USD", "break-even req/day", "privacy", "status")


def _m(x: float) -> str:
    if not math.isfinite(x):
        return "never"
    return f">{PAYBACK_CEILING_MONTHS:.0f}" if x >= PAYBACK_CEILING_MONTHS else f"{x:.1f}"


def _usd(x: float) -> str:
    return f"{x:,.0f}" if math.isfinite(x) else "-"


def _row(rank: str, e: Evaluation, best: Evaluation | None) -> list[str]:
    u = e.uncertainty.pooled if e.uncertainty else None
    band = f"{_m(u['p10'])}-{_m(u['p50'])}-{_m(u['p90'])}" if u else "-"
    status = "RECOMMENDED" if e is best else ("baseline" if e.candidate.kind == "current"
                                              else (e.why_not or "ok"))
    return [rank, e.candidate.name, _usd(e.candidate.purchase_usd),
            _usd(e.savings_usd_per_month["total"]), _m(e.payback_months) if e.candidate.purchase_usd else "-",
            band, _usd(e.npv_usd), _usd(e.tco_usd), _usd(e.break_even_requests_per_day)
            if e.candidate.purchase_usd else "-",
            f"{e.replay.privacy_violations} violations", status]


def ranking_rows(report: AdvisorReport) -> list[list[str]]:
    """The ranked table (current fleet first, then candidates best NPV first) as strings."""
    rows = [_row("-", report.baseline, report.recommended)]
    rows += [_row(str(k), e, report.recommended) for k, e in enumerate(report.evaluations, 1)]
    return rows


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
        ("deadline misses now", (f"{c.misses_per_month:,.0f}/month, of which rejected "
                                f"{c.rejected_per_month:,.0f}/month")),
        ("current energy", f"{c.energy_usd_per_month:,.2f} USD/month"),
        ("candidates", f"{r.screened} priced analytically, {len(r.evaluations)} replayed in the twin"),
        ("sizing model (CP-SAT)", sizing),
        ("twin replay", replay),
        ("privacy violations", f"{r.privacy_violations} across all twin replays"),
    ]


def _sensitivity(r: AdvisorReport) -> list[tuple[str, str]]:
    e = r.recommended or next((x for x in r.evaluations if x.uncertainty), None)
    if e is None or e.uncertainty is None:
        return []
    u = e.uncertainty
    out = [(f"payback of {e.candidate.name}", "months")]
    out += [(f"growth scenario {k}", f"P10 {_m(v['p10'])} / P50 {_m(v['p50'])} / P90 {_m(v['p90'])}")
            for k, v in u.by_scenario.items()]
    out += [(f"electricity price x{k.removesuffix('x')}", _m(v)) for k, v in u.sensitivity_electricity.items()]
    out += [(f"request growth {k}", _m(v)) for k, v in u.sensitivity_growth.items()]
    return out


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
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>heddle advice: {esc(r.fleet_name)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;margin:1em 0;font-size:.9em}}td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left}}
th{{background:#f3f3f3}}.rec{{font-size:1.2em;background:#eef7ee;padding:.8em;border-left:4px solid #3a3}}
img{{max-width:100%}}figure{{margin:1.5em 0}}</style></head><body>
<h1>What to buy next for fleet “{esc(r.fleet_name)}”</h1>
<p class="rec">{esc(r.sentence)}</p>
<h2>Candidates (replayed in the twin)</h2>
{table(RANKING_COLUMNS, ranking_rows(r))}
<h2>Workload and current fleet</h2>
{table(("", ""), _facts(r))}
<h2>Uncertainty and sensitivity</h2>
{table(("", ""), sens) if sens else "<p>No purchase candidate to analyse.</p>"}
<h2>Charts</h2>
{imgs}
<h2>Method</h2>
<p>Savings = cloud spend avoided + energy difference + value of deadline misses avoided
({r.settings.miss_value_usd:g} USD each), measured by replaying the trace through the twin on the
current fleet and on each shortlisted candidate. Payback = price / monthly savings; NPV at
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
    parts = [f"# What to buy next for fleet \"{r.fleet_name}\"", "", f"**{r.sentence}**", "",
             "## Candidates (replayed in the twin)", "", table(RANKING_COLUMNS, ranking_rows(r)), "",
             "## Workload and current fleet", "", table(("fact", "value"), _facts(r)), ""]
    if sens:
        parts += ["## Uncertainty and sensitivity", "", table(("", ""), sens), ""]
    parts += ["## Charts", ""] + [f"![{CHART_TITLES[k]}]({f})" for k, f in chart_files.items()]
    return "\n".join(parts) + "\n"


def write_report(report: AdvisorReport, out_dir: str | Path) -> dict[str, Path]:
    """Write advice.html, advice.md (+ chart PNGs) and advice.json into `out_dir`."""
    out = Path(out_dir)
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
