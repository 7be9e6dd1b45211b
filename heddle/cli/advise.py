"""`heddle advise`: what hardware to buy next, from a workload trace replayed in the twin.

With no arguments: the shipped demo fleet and the two-week demo trace (`demo-14d`, the
setting `advise_trace`): purchase advice needs weeks of workload, not the 3-hour `demo`.
Prints a ranked table, why work fails today and the recommendation; writes advice.html (charts
embedded), advice.md and advice.json, into a folder that holds no report yet (or with --force).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from heddle.cli.common import LazyConsole, console, fail, guarded, new_table

err = LazyConsole(stderr=True)

CONSOLE_COLUMNS = ("#", "candidate", "net USD", "saves USD/mo", "payback mo", "P10-P50-P90 mo",
                   "NPV USD", "status")
"""The ranked table's columns that fit a terminal (the HTML/Markdown report has them all)."""

DEFAULT_OUT = Path("heddle-advice")
"""Where the report goes when --out is not given (relative to the working directory)."""


def _pairs(values: list[str] | None, option: str, expected: str) -> dict[str, str]:
    """KEY=VALUE options into a dict; a malformed one names the option and the expected form."""
    out = {}
    for v in values or []:
        key, sep, val = v.partition("=")
        try:
            if not sep or not key:
                raise ValueError
            float(val)
            if option == "--miss-value-priority":
                int(key)
        except ValueError:
            raise ValueError(f"option {option}: {v!r} is not {expected}") from None
        if float(val) < 0:
            raise ValueError(f"option {option}: {v!r} is negative; expected {expected}")
        out[key] = val
    return out


@guarded("advise")
def advise(
    trace: Annotated[str | None, typer.Option("--trace", "-t", metavar="WORK", help="Trace file, shipped trace name (demo, demo-14d) or workload YAML [default: the `advise_trace` setting, demo-14d].")] = None,
    fleet: Annotated[str | None, typer.Option("--fleet", "-f", metavar="FLEET", help="Fleet YAML or shipped fleet name [default: the `fleet` setting, demo].")] = None,
    budget: Annotated[float | None, typer.Option("--budget", help="Purchase budget in USD.", min=0)] = None,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Directory for advice.html, advice.md, advice.json.")] = DEFAULT_OUT,
    miss_value: Annotated[float | None, typer.Option("--miss-value", help="USD value of one request not done in time (default: its cloud price at the requested tier).", min=0)] = None,
    miss_value_priority: Annotated[list[str] | None, typer.Option("--miss-value-priority", help="PRIORITY=USD: value of one request of that priority not done in time (repeatable).")] = None,
    resale: Annotated[list[str] | None, typer.Option("--resale", help="NODE=USD: what a node sells for used (overrides the catalog; repeatable).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite a report already in --out.")] = False,
    discount_rate: Annotated[float | None, typer.Option("--discount-rate", help="Annual discount rate for NPV (0.08 = 8%).", min=0, max=1)] = None,
    electricity: Annotated[float | None, typer.Option("--electricity", help="Electricity price USD/kWh (default: the fleet's).", min=0)] = None,
    sample_days: Annotated[int | None, typer.Option("--sample-days", help="Representative days replayed for long traces (0 = all days).", min=0)] = None,
    shortlist: Annotated[int | None, typer.Option("--shortlist", help="Candidates replayed in the twin.", min=1)] = None,
    policy: Annotated[str | None, typer.Option("--policy", "-p", help="Placement policy the twin uses.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the bootstrap and the twin.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON instead of tables.")] = False,
    check: Annotated[bool, typer.Option("--check-sampling", help="Also replay every day and print how far the sampled-days payback is.")] = False,
    ray: Annotated[str | None, typer.Option("--ray", metavar="ADDRESS", help="Run the twin replays on Ray: auto (a running cluster, else a local one), local, or a cluster address; needs the `ray` extra [default: local processes].")] = None,
    workers: Annotated[int | None, typer.Option("--workers", "-w", metavar="N", min=1, max=64, help="Twin replays run at once: local processes, or CPUs of a local Ray cluster [default: 2].")] = None,
) -> None:
    """Advise what to buy: rank candidate purchases by payback, NPV and TCO from twin replays."""
    from pydantic import ValidationError

    from heddle.advisor import AdvisorError, AdvisorSettings, WorkloadError, check_sampling
    from heddle.advisor import advise as run_advice
    from heddle.advisor.report import RANKING_COLUMNS, check_out_dir, ranking_rows, write_report
    from heddle.cli.check import findings_for, read_work
    from heddle.cli.check import report as print_findings
    from heddle.cli.inputs import fleet_file, output_dir, trace_file
    from heddle.config import load_settings
    from heddle.models.errors import ModelsError
    from heddle.models.fleet import load_fleet
    from heddle.optimizer import POLICY_NAMES
    from heddle.sim import SimError
    from heddle.sim.executors import make_executor
    from heddle.traces import TraceError

    try:
        by_priority = {int(k): float(v) for k, v in _pairs(miss_value_priority, "--miss-value-priority",
                                                             "PRIORITY=USD, e.g. 1=0.50").items()}
        resale_usd = {k: float(v) for k, v in _pairs(resale, "--resale", "NODE=USD, e.g. orin=1200").items()}
    except ValueError as exc:
        fail("advise", str(exc))
    if policy is not None and policy not in POLICY_NAMES:
        fail("advise", f"option --policy: unknown policy {policy!r}; expected one of {', '.join(POLICY_NAMES)}")
    try:
        base = load_settings({"advise_trace": trace, "fleet": fleet, "seed": seed,
                              "electricity_usd_per_kwh": electricity})
        flags = {"budget_usd": budget, "miss_value_usd": miss_value,
                 "discount_rate_annual": discount_rate, "sample_days": sample_days,
                 "shortlist": shortlist, "policy": policy, "workers": workers,
                 "miss_value_usd_by_priority": by_priority or None, "resale_usd": resale_usd or None}
        settings = AdvisorSettings(
            seed=base.seed, electricity_usd_per_kwh=base.electricity_usd_per_kwh,
            **{k: v for k, v in flags.items() if v is not None})
        check_out_dir(output_dir(out_dir), force=force)  # before minutes of work, not after
        the_fleet = load_fleet(fleet_file(base.fleet))
        unknown = sorted(set(resale_usd) - {n.id for n in the_fleet.nodes})
        if unknown:
            raise AdvisorError(f"option --resale: no node {', '.join(unknown)} in fleet "
                               f"{the_fleet.name}; expected one of its node ids")
        scratch = tempfile.TemporaryDirectory(prefix="heddle-advise-")
        trace_path = trace_file(base.advise_trace, Path(scratch.name))  # a workload YAML -> a trace
        print_findings("advise", findings_for(the_fleet, read_work(trace_path)))
        executor = make_executor(workers=settings.workers, ray_address=ray)
        with err.status("advising...") as status:
            report = run_advice(trace_path, the_fleet, settings, executor=executor,
                                progress=lambda msg: status.update(f"advising: {msg}"))
        paths = write_report(report, out_dir, force=force)
        chk = None
        if check and report.plan.sampled and (report.recommended or report.evaluations):
            with err.status("replaying every day to check the sampled answer..."):
                chk = check_sampling(report, trace_path, executor=executor)
        scratch.cleanup()
    except ValidationError as exc:
        e = exc.errors()[0]
        fail("advise", f"option --{str(e['loc'][0]).replace('_', '-')}: {e['msg']}")
    except WorkloadError as exc:  # about the trace: name it (a workload YAML's is a scratch file)
        fail("advise", f"{base.advise_trace}: {exc}")
    except (AdvisorError, SimError, ModelsError, TraceError, OSError) as exc:
        fail("advise", str(exc))

    out = console()
    if as_json:
        out.print_json(paths["json"].read_text(encoding="utf-8"))
        return
    table = new_table(title=f"heddle advise — fleet {report.fleet_name}, trace {report.trace_label}")
    keep = [RANKING_COLUMNS.index(c) for c in CONSOLE_COLUMNS]
    for col in CONSOLE_COLUMNS:
        table.add_column(col, justify="left" if col in ("candidate", "status") else "right",
                         overflow="fold", max_width=44 if col == "candidate" else 24,
                         min_width=11 if col == "status" else None)
    for row in ranking_rows(report):
        table.add_row(*(row[k] for k in keep), style="bold green" if row[-1] == "RECOMMENDED" else None)
    out.print(table)
    if report.causes:
        out.print("[bold]Why work fails today[/bold]")
        for c in report.causes:
            fix = f" What would fix it: {c.fix}." if c.fix else ""
            out.print(f"  - {c.sentence}{fix}", highlight=False)
    out.print(f"[bold]{report.sentence}[/bold]")
    out.print(f"report: {paths['html']} (also {paths['markdown'].name}, {paths['json'].name}); "
              f"privacy violations in all replays: {report.privacy_violations}")
    if chk is not None:
        out.print(f"sampling check ({chk.candidate}): payback {chk.sampled_payback_months:.2f} months "
                  f"from {chk.days_sampled} days vs {chk.full_payback_months:.2f} from all "
                  f"{chk.days_total} days ({chk.payback_error:.1%} apart); twin "
                  f"{chk.sampled_twin_s:.1f} s vs {chk.full_twin_s:.1f} s")
    elif check:
        out.print("sampling check: the trace was replayed whole (no sampled days to check)")
