"""`heddle fleet` (the live table, and `heddle fleet export`) and `heddle twin check`: the live
fleet as fleet YAML, and the twin's replay of what the cluster recorded, side by side with it
(docs/fidelity.md)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from heddle.cli.common import LazyConsole

out = LazyConsole()
err = LazyConsole(stderr=True)

fleet_app = typer.Typer(help="The nodes the control plane knows; `export` writes them as fleet YAML.",
                        invoke_without_command=True, no_args_is_help=False)
twin_app = typer.Typer(help="Check the twin against what the live cluster recorded.", no_args_is_help=True)

NatsOpt = Annotated[str | None, typer.Option("--nats", help="NATS URL (default nats://127.0.0.1:4222).")]
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now_s: float | None = None) -> float:
    """``30m``, ``2h``, ``1d`` (ago) or an ISO date/time (UTC unless it names a zone) -> Unix s."""
    now_s = time.time() if now_s is None else now_s
    match = _RELATIVE.match(text.strip())
    if match:
        return now_s - float(match[1]) * _UNIT_S[match[2]]
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(f"{text!r}: expected a time ago like 30m, 2h, 1d or an ISO date "
                                 "like 2026-12-06 or 2026-12-06T14:00") from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _fail(message: str, code: int = 2) -> typer.Exit:
    from rich.markup import escape

    err.print(f"[red]error:[/] {escape(message)}")
    return typer.Exit(code)


def _fleet_reply(nats: str | None, since_s: float | None = None):
    from heddle.cli import live

    return live._run(live._with_client(live._url(nats), lambda c: c.fleet(since_s)))


def _fleet_yaml(reply) -> str:
    import yaml

    if not reply.fleet_file:
        raise _fail("the control plane knows no nodes yet (start an agent: heddle agent)", 1)
    header = "# the live fleet, as `heddle fleet export` wrote it; `heddle sim --fleet` reads it\n"
    return header + yaml.safe_dump(reply.fleet_file, sort_keys=False)


@fleet_app.callback()
def fleet(
    ctx: typer.Context,
    nats: NatsOpt = None,
    watch: Annotated[bool, typer.Option("--watch", help="Keep the table live until Ctrl-C.")] = False,
    credentials: Annotated[Path | None, typer.Option(
        "--credentials", envvar="HEDDLE_CREDENTIALS",
        help="Log in with this credentials file (`heddle users add` writes one).")] = None,
) -> None:
    """The nodes the control plane knows, as their reports describe them."""
    if ctx.invoked_subcommand is None:
        from heddle.cli import live

        live.fleet(nats=nats, watch=watch, credentials=credentials)


@fleet_app.command("export")
def export(
    nats: NatsOpt = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Fleet YAML file to write (default: print it).")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Each node's core speed as its burn steps measured it since then: 30m, 2h, 1d ago, or an ISO date/time (UTC); default: the agents' latest figure.")] = None,
) -> None:
    """Write the live fleet (devices, memory, slots, owners, trust, labels, measured per-core
    speed) as fleet YAML that `heddle sim` and `heddle twin check` read unchanged."""
    text = _fleet_yaml(_fleet_reply(nats, parse_since(since) if since else None))
    if output is None:
        print(text, end="")
        return
    output.write_text(text, encoding="utf-8")
    out.print(f"wrote {output}")


@twin_app.command("check")
def check(
    since: Annotated[str | None, typer.Option("--since", help="Only tasks that arrived since: 30m, 2h, 1d ago, or an ISO date/time (UTC).")] = None,
    fleet_file: Annotated[str | None, typer.Option("--fleet", metavar="FLEET", help="Fleet YAML or shipped fleet name (default: export the running cluster's, via --nats).")] = None,
    recording: Annotated[Path | None, typer.Option("--recording", help="Recorded trace directory (default <data dir>/recorded).")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="The control plane's data dir (default ~/.heddle).")] = None,
    policy: Annotated[str, typer.Option(help="The control plane's placement policy.")] = "fast",
    out_dir: Annotated[Path | None, typer.Option("--out", help="Write fidelity.png, fidelity.json and tasks.csv here.")] = None,
    nats: NatsOpt = None,
) -> None:
    """Replay the recorded trace on the fleet and print live vs twin side by side."""
    from heddle.cli.common import InputError
    from heddle.cli.inputs import fleet_file as fleet_path
    from heddle.cli.live import _settings
    from heddle.models.errors import FleetError
    from heddle.models.fleet import load_fleet, parse_fleet
    from heddle.sim.fidelity import compare, write_chart
    from heddle.traces import TraceError
    from heddle.traces.recorded import load_recorded

    since_s = parse_since(since) if since else None
    directory = recording or (_settings(data_dir=data_dir).data_dir / "recorded")
    try:
        given = load_fleet(fleet_path(fleet_file)) if fleet_file else None  # a bad file: before the rest
        recorded = load_recorded(directory, since_unix_s=since_s)
        fleet = given or parse_fleet(_fleet_yaml(_fleet_reply(nats, since_s)), "live fleet")
        report = compare(recorded, fleet, policy)
    except (TraceError, FleetError, InputError) as exc:
        raise _fail(str(exc)) from None
    out.print(_table(report))
    dist = report.error_distribution
    if dist:
        out.print("per-task latency error (twin / live - 1): "
                  + ", ".join(f"{k} {v:+.1%}" if k != "mean_abs" else f"mean |error| {v:.1%}"
                              for k, v in dist.items()))
    if out_dir is not None:
        for path in write_chart(report, out_dir):
            out.print(f"wrote {path}")


def _table(report):
    from heddle.cli.common import new_table

    t = new_table(title=f"twin vs live — {report.tasks:,} recorded tasks over {report.window_s:,.1f} s")
    for col in ("figure", "live", "twin", "error"):
        t.add_column(col, justify="left" if col == "figure" else "right")
    for r in report.rows:
        if not any(map(_finite, (r.live, r.twin))):
            continue
        digits = 0 if r.metric in ("completed", "rejected", "failed") else 3
        t.add_row(r.metric, _num(r.live, digits), _num(r.twin, digits),
                  "-" if r.error is None else f"{r.error:+.1%}")
    return t


def _finite(value: float) -> bool:
    import math

    return math.isfinite(value)


def _num(value: float, digits: int) -> str:
    return f"{value:,.{digits}f}" if _finite(value) else "-"


def register(app: typer.Typer) -> None:
    """Mount `heddle fleet ...` and `heddle twin ...` (one line in heddle/cli/main.py)."""
    app.add_typer(fleet_app, name="fleet")
    app.add_typer(twin_app, name="twin")
