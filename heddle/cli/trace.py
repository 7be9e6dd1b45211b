"""`heddle trace`: import public traces, synthesize traces, show their statistics, convert old files."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.table import Table

from heddle.cli.common import InputError, LazyConsole, guarded, new_table

app = typer.Typer(no_args_is_help=True, help="Workload traces: import, synthesize, inspect.")
out = LazyConsole()
err = LazyConsole(stderr=True)

FORMATS = ("azure", "burstgpt", "csv")
"""`heddle trace import` formats (heddle.traces.importers.FORMATS; a test holds them equal)."""
SYNTH_OPTIONS = {"duration_h": "--days/--hours", "rate_per_h": "--rate", "diurnal_amplitude": "--amplitude",
                 "peak_hour": "--peak-hour", "growth_per_week": "--growth", "burst_factor": "--burst-factor",
                 "privacy_mix": "--privacy", "shape_mix": "--shapes"}
"""SynthConfig field -> the `trace synth` option that sets it (errors name the option)."""


def _fail(message: str) -> InputError:
    """The error to raise for bad input: the command's `guarded` prints it as one line
    (`heddle trace <command>: ...`) and exits 2."""
    return InputError(message)


def _set_error(error: dict) -> str:
    """What is wrong with one `--set FIELD=VALUE`, in words (not pydantic's)."""
    if error["type"] == "extra_forbidden":
        from heddle.traces.importers import ImportDefaults

        return f"no such field; expected one of {', '.join(ImportDefaults.model_fields)}"
    return error["msg"].removeprefix("Value error, ")


def _synth_error(exc) -> str:
    parts = []
    for e in exc.errors()[:3]:
        field = str(e["loc"][0]) if e["loc"] else ""
        name = f"option {SYNTH_OPTIONS[field]}" if field in SYNTH_OPTIONS else (f"--config field {field}" if field else "--config")
        parts.append(f"{name}: {e['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def _no_unknown_models(trace, source: Path) -> None:
    """An imported trace may only name catalog models: otherwise every row would be rejected."""
    from heddle.models.preflight import close_matches, unknown_models

    unknown = unknown_models(trace.df)
    if unknown:
        name, count = max(unknown.items(), key=lambda kv: kv[1])
        raise InputError(f"{source}: {count:,} rows name model {name!r}, which the catalog does not know "
                         f"({close_matches(name)}); nothing written")


def _pairs(items: list[str] | None, option: str) -> dict[str, str]:
    """`a=b` items (repeatable, or comma-separated) -> dict."""
    result: dict[str, str] = {}
    for item in items or []:
        for part in item.split(","):
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                raise _fail(f"{option} {part!r}: expected FIELD=VALUE")
            result[key.strip()] = value.strip()
    return result


@app.command("import")
@guarded("trace import")
def import_cmd(
    fmt: Annotated[str, typer.Argument(metavar="FORMAT", help=f"one of {', '.join(FORMATS)}")],
    file: Annotated[Path, typer.Argument(metavar="FILE", help="CSV file (plain or .gz)")],
    output: Annotated[Path, typer.Option("-o", "--output", metavar="FILE", help="trace file to write (.parquet)")],
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="skip bad rows, report them")] = False,
    mapping: Annotated[list[str] | None, typer.Option(
        "--map", metavar="FIELD=COLUMN", help="csv format: FIELD=CSV_COLUMN (repeatable)")] = None,
    mapping_file: Annotated[Path | None, typer.Option(
        "--mapping", metavar="FILE", help="csv format: YAML with columns:/defaults:")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", metavar="FIELD=VALUE", help="default for a field the source lacks (repeatable)")] = None,
) -> None:
    """Import a public trace (Azure LLM 2023, BurstGPT) or any CSV into a Parquet trace."""
    from pydantic import ValidationError

    from heddle.cli.inputs import output_file
    from heddle.traces import TraceError, write_trace
    from heddle.traces.importers import CsvMapping, ImportDefaults, import_trace, load_mapping

    output_file(output)
    try:
        defaults = ImportDefaults.model_validate(_pairs(set_, "--set")) if set_ else None
        csv_mapping = None
        if mapping_file is not None:
            csv_mapping = load_mapping(mapping_file)
        elif mapping:
            csv_mapping = CsvMapping(columns=_pairs(mapping, "--map"))
        with err.status(f"importing {file}"):
            result = import_trace(fmt, file, skip_bad=skip_bad, defaults=defaults,
                                  mapping=csv_mapping)
            _no_unknown_models(result.trace, file)
            write_trace(result.trace, output)
    except ValidationError as exc:
        raise _fail("; ".join(f"--set {'.'.join(map(str, e['loc']))}: {_set_error(e)}"
                              for e in exc.errors()[:3])) from None
    except TraceError as exc:
        raise _fail(str(exc)) from None
    report = result.report
    out.print(f"imported {report.rows_kept:,} of {report.rows_read:,} rows from {file} "
              f"-> {output}")
    if report.skipped:
        table = new_table(title=f"skipped {report.rows_skipped:,} rows")
        for col in ("reason", "rows", "first lines"):
            table.add_column(col, justify="right" if col == "rows" else "left")
        for reason, count in report.skipped.most_common():
            lines = ", ".join(str(x) for x in report.example_lines.get(reason, []))
            table.add_row(reason, f"{count:,}", lines)
        out.print(table)


@app.command("synth")
@guarded("trace synth")
def synth_cmd(
    output: Annotated[Path, typer.Option("-o", "--output", metavar="FILE", help="trace file to write (.parquet)")],
    seed: Annotated[int | None, typer.Option(metavar="N", help="random seed (same seed, same trace) [default: 0]")] = None,
    days: Annotated[float | None, typer.Option(metavar="DAYS", help="length in days [default: 1]")] = None,
    hours: Annotated[float | None, typer.Option(metavar="HOURS", help="length in hours (instead of --days)")] = None,
    rate: Annotated[float | None, typer.Option(metavar="PER-HOUR", help="workflows per hour, day average [default: 120]")] = None,
    amplitude: Annotated[float | None, typer.Option(metavar="A", help="diurnal amplitude, 0 = flat [default: 0.6]")] = None,
    peak_hour: Annotated[float | None, typer.Option(metavar="HOUR", help="hour of the daily peak [default: 14]")] = None,
    growth: Annotated[float | None, typer.Option(metavar="SHARE", help="week-over-week growth, 0.1 = +10% [default: 0]")] = None,
    burst_factor: Annotated[float | None, typer.Option(metavar="X", help="MMPP burst/calm rate, 1 = none [default: 1]")] = None,
    tokens: Annotated[str | None, typer.Option(metavar="PROFILE", help="token profile: conv | code [default: conv]")] = None,
    privacy: Annotated[str | None, typer.Option(
        metavar="MIX", help="privacy mix [default: public=0.6,sensitive=0.25,personal=0.15]")] = None,
    shapes: Annotated[str | None, typer.Option(
        metavar="MIX", help="workflow mix [default: single=0.85,pipeline=0.1,council=0.05]")] = None,
    config: Annotated[Path | None, typer.Option(metavar="FILE", help="YAML with any SynthConfig fields")] = None,
) -> None:
    """Synthesize a trace: modulated Poisson arrivals, Azure-fitted tokens, workflows."""
    import numpy as np
    import yaml
    from pydantic import ValidationError

    from heddle.cli.inputs import output_file, text_of
    from heddle.traces import TraceError, write_trace
    from heddle.traces.synth import SynthConfig, synthesize

    output_file(output)
    try:
        fields = yaml.safe_load(text_of(config, "synth config")) or {} if config else {}
        if not isinstance(fields, dict):
            raise _fail(f"{config}: expected a mapping of SynthConfig fields")
        flags = {"seed": seed, "rate_per_h": rate, "diurnal_amplitude": amplitude,
                 "peak_hour": peak_hour, "growth_per_week": growth,
                 "burst_factor": burst_factor, "tokens": tokens}
        fields |= {k: v for k, v in flags.items() if v is not None}
        if days is not None or hours is not None:
            fields["duration_h"] = (days or 0.0) * 24 + (hours or 0.0)
        if privacy:
            fields["privacy_mix"] = _mix(privacy, "--privacy")
        if shapes:
            fields["shape_mix"] = _mix(shapes, "--shapes")
        cfg = SynthConfig.model_validate(fields)
        with err.status("synthesizing"):
            trace = synthesize(cfg, np.random.default_rng(cfg.seed))
            write_trace(trace, output)
    except ValidationError as exc:
        raise _fail(_synth_error(exc)) from None
    except yaml.YAMLError as exc:
        raise _fail(f"{config}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    except (TraceError, ValueError) as exc:
        raise _fail(str(exc)) from None
    out.print(f"wrote {len(trace):,} rows ({cfg.duration_h:g} h, seed {cfg.seed}) -> {output}")


MIN_RATE_H = 1 / 60
"""Shortest span `trace stats` turns into a rate per hour: a workload file's tasks all arrive
at 0 s, and 12 rows over a nanosecond are not 43 trillion rows an hour."""


def _number(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.0f}"  # an empty trace has no percentiles


def _mix(text: str, option: str) -> dict[str, float]:
    mix = {}
    for key, value in _pairs([text], option).items():
        try:
            mix[key] = float(value)
        except ValueError:
            raise _fail(f"{option} {key}={value!r}: expected a number") from None
    return mix


def _mix_text(mix: dict[str, float]) -> str:
    return ", ".join(f"{k or '-'} {v:.1%}" for k, v in mix.items())


@app.command("stats")
@guarded("trace stats")
def stats_cmd(
    file: Annotated[str, typer.Argument(metavar="WORK", help="trace file or directory, shipped name such as 'demo', or workload YAML")],
    plots: Annotated[Path | None, typer.Option(metavar="DIR", help="write PNG plots into this directory")] = None,
) -> None:
    """Rates, token percentiles, the diurnal profile and the privacy mix of a trace."""
    from heddle.cli.inputs import output_dir, trace_file
    from heddle.traces import TraceError, is_legacy, read_trace
    from heddle.traces.stats import PERCENTILES, trace_stats, write_plots

    if plots is not None:
        output_dir(plots)
    try:
        with err.status(f"reading {file}"), tempfile.TemporaryDirectory(prefix="heddle-trace-") as scratch:
            path = trace_file(file, Path(scratch))
            trace = read_trace(path)
    except TraceError as exc:
        raise _fail(str(exc)) from None
    if is_legacy(path):
        err.print(f"note: {file} is in the legacy .htr format, read for this release only; "
                  f"'heddle trace convert {file}' rewrites it as Parquet", highlight=False,
                  soft_wrap=True)
    s = trace_stats(trace)
    table = new_table(title=f"{file}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    rows = [
        ("rows / workflows", f"{s.rows:,} / {s.workflows:,}"),
        ("duration", f"{s.duration_h:,.2f} h"),
        ("rate", f"{s.rows_per_h:,.1f} rows/h, {s.workflows_per_h:,.1f} workflows/h" if s.duration_h >= MIN_RATE_H
         else f"n/a (the rows span {s.duration_h * 3600:,.0f} s)"),
        ("busiest hour", f"{s.peak_rows_per_h:,} rows"),
        ("workflow shapes", _mix_text(s.shape_mix)),
        ("kinds", _mix_text(s.kind_mix)),
        ("privacy (rows)", _mix_text(s.privacy_rows)),
        ("privacy (workflows)", _mix_text(s.privacy_workflows)),
        ("models", _mix_text(s.model_mix)),
        ("owners", ", ".join(f"{k or '(none)'} {v:,}" for k, v in s.owners.items())),
        ("prompt tokens " + "/".join(f"p{p}" for p in PERCENTILES),
         " / ".join(_number(v) for v in s.prompt_percentiles.values())),
        ("output tokens " + "/".join(f"p{p}" for p in PERCENTILES),
         " / ".join(_number(v) for v in s.output_percentiles.values())),
        ("diurnal", "n/a (< 1 day)" if s.diurnal_amplitude is None else
         f"amplitude {s.diurnal_amplitude:.2f}, peak at {s.diurnal_peak_hour:.1f} h"),
        ("growth / week", "n/a (< 3 days)" if s.growth_per_week is None
         else f"{s.growth_per_week:+.1%}"),
        ("dispersion (per min)", "-" if math.isnan(s.dispersion_per_min) else f"{s.dispersion_per_min:.2f} (Poisson = 1)"),
        ("rows with a deadline", f"{s.deadline_share:.1%}"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    out.print(table)
    if s.hourly_profile:
        out.print(_profile_table(s.hourly_profile))
    if plots is not None:
        for path in write_plots(trace, s, plots):
            out.print(f"wrote {path}")


def _profile_table(hourly: list[float]) -> Table:
    profile = new_table(title="hourly profile (workflows / mean)")
    profile.add_column("hour", justify="right")
    profile.add_column("x mean", justify="right")
    profile.add_column("")
    for hour, value in enumerate(hourly):
        profile.add_row(str(hour), f"{value:.2f}", "█" * round(value * 20))
    return profile


@app.command("samples")
@guarded("trace samples")
def samples_cmd() -> None:
    """List the sample traces shipped with heddle."""
    from heddle.traces import read_trace, shipped_trace_names, shipped_trace_path

    table = new_table(title="shipped traces")
    for col in ("name", "rows", "hours", "source"):
        table.add_column(col)
    for name in shipped_trace_names():
        trace = read_trace(shipped_trace_path(name))
        source = trace.meta.get("attribution") or trace.meta.get("generator", "")
        table.add_row(name, f"{len(trace):,}", f"{trace.duration_s / 3600:.1f}", source)
    out.print(table)


HEAD_COLUMNS = "arrival_s,task_id,model,prompt_tokens,output_tokens,privacy,owner,depends_on"
"""Columns `heddle trace head` shows unless --columns says otherwise (all 18 do not fit)."""


@app.command("head")
@guarded("trace head")
def head_cmd(
    file: Annotated[str, typer.Argument(metavar="WORK", help="trace file or directory, shipped name such as 'demo', or workload YAML")],
    rows: Annotated[int, typer.Option("-n", "--rows", metavar="N", help="rows to show")] = 10,
    columns: Annotated[str, typer.Option(metavar="NAMES", help="comma-separated columns")] = HEAD_COLUMNS,
) -> None:
    """Show the first rows of a trace."""
    from heddle.cli.inputs import trace_file
    from heddle.traces import TraceError, iter_trace

    try:
        with tempfile.TemporaryDirectory(prefix="heddle-trace-") as scratch:
            chunk = next(iter_trace(trace_file(file, Path(scratch))), None)
    except TraceError as exc:
        raise _fail(str(exc)) from None
    if chunk is None:
        out.print(f"{file}: empty trace")
        return
    names = [c.strip() for c in columns.split(",") if c.strip()]
    if unknown := [c for c in names if c not in chunk.df.columns]:
        raise _fail(f"--columns: unknown {unknown}; columns: {', '.join(chunk.df.columns)}")
    table = new_table(title=f"{file} (first {rows} rows)")
    for name in names:
        short = name.replace("_tokens", "").replace("_seconds", "_s")
        table.add_column(short, justify="right" if chunk.df[name].dtype.kind in "fiu" else "left")
    for record in chunk.df[names].head(rows).astype(object).itertuples(index=False):
        table.add_row(*(_cell(v) for v in record))
    out.print(table)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:,.2f}"
    return str(value) if value != "" else "-"


@app.command("convert")
@guarded("trace convert")
def convert_cmd(
    files: Annotated[list[Path], typer.Argument(
        metavar="FILE...", help="legacy .htr/.htr.gz files, or directories of Parquet files")],
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", metavar="FILE", help="Parquet file to write (one input only; default: the input's "
        "name with .parquet)")] = None,
) -> None:
    """Rewrite traces as Parquet: legacy .htr files, or a directory of Parquet files as one."""
    from heddle.traces import TraceError, convert_trace

    if output is not None and len(files) > 1:
        raise _fail("-o/--output takes one input file; without it each FILE gets a .parquet "
                    "next to it")
    for file in files:
        try:
            with err.status(f"converting {file}"):
                rows, target = convert_trace(file, output)
        except (TraceError, OSError) as exc:
            raise _fail(str(exc)) from None
        before = file.stat().st_size if file.is_file() else sum(
            p.stat().st_size for p in file.iterdir() if p.is_file())
        out.print(f"{file} -> {target}: {rows:,} rows, {before / 1e6:,.2f} MB -> "
                  f"{target.stat().st_size / 1e6:,.2f} MB")
