"""`heddle models`: predict step times, validate fleets, report the perf model's accuracy,
refit it to recorded runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from heddle.cli.common import InputError, console, guarded, new_table

app = typer.Typer(no_args_is_help=True, help="Performance predictions and fleet files.")


def _check_step(model_id: str, prompt_tokens: int, output_tokens: int | None) -> int:
    """The output tokens to predict; an InputError for a step the model cannot take."""
    from heddle.models import catalog

    spec = catalog.model(model_id)
    if spec.kind == "embedding":
        if output_tokens:
            raise InputError(f"option --output-tokens: {spec.id} is an embedding model; it generates no "
                             "tokens (expected 0 or no --output-tokens)")
        output_tokens = 0
    elif output_tokens is None:
        output_tokens = 128
    if prompt_tokens + output_tokens > spec.context_length:
        raise InputError(f"options --prompt-tokens/--output-tokens: {prompt_tokens:,} + {output_tokens:,} tokens "
                         f"exceed {spec.id}'s context window of {spec.context_length:,} tokens")
    return output_tokens


@app.command()
@guarded("models predict")
def predict(
    device: Annotated[str, typer.Option("--device", metavar="ID", help="Device id, instance offer id or API tier id.")],
    model: Annotated[str, typer.Option("--model", metavar="ID", help="Model id, e.g. llama-3.1-8b.")],
    quant: Annotated[str | None, typer.Option("--quant", metavar="QUANT", help="Quantization [default: q4_k_m, else the model's smallest: what a task naming none gets].")] = None,
    prompt_tokens: Annotated[int, typer.Option("--prompt-tokens", metavar="N", min=0, help="Tokens in the prompt.")] = 512,
    output_tokens: Annotated[int | None, typer.Option("--output-tokens", metavar="N", min=0,
                                                      help="Tokens generated [default: 128; 0 for an embedding model].")] = None,
    batch: Annotated[int, typer.Option("--batch", metavar="N", min=1, help="Requests decoding together.")] = 1,
    cold: Annotated[bool, typer.Option("--cold", help="The model is not loaded yet.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON [default: the `output` setting].")] = False,
) -> None:
    """Predict prefill/decode speed and the time of one LLM step."""
    from heddle.config import load_settings
    from heddle.models.predict import predict_step

    as_json = as_json or load_settings().output == "json"
    output_tokens = _check_step(model, prompt_tokens, output_tokens)
    p = predict_step(device, model, quant, prompt_tokens, output_tokens, batch=batch, resident=not cold)
    if as_json:
        typer.echo(json.dumps(p.as_dict(), indent=2))
        return
    title = f"{p.model} ({p.quant}) on {p.target}" if p.target_kind != "api" else f"hosted model {p.target}"
    t = new_table(title=title, show_header=False)
    t.add_column("what", style="bold")
    t.add_column("value", justify="right")
    if not p.fits:  # a speed for a model that cannot load would be fiction
        t.add_row("memory", f"{p.memory_gb:.1f} GB of {p.device_memory_gb:g} GB ([red]does NOT fit[/red])")
        t.add_row("speed", "none: the model cannot be loaded on this target")
        console().print(t)
        return
    t.add_row("prefill", f"{p.prefill_tokens_per_s:,.1f} tokens/s")
    if p.output_tokens:
        t.add_row("decode (per request)", f"{p.decode_tokens_per_s:,.1f} tokens/s")
    if p.batch > 1 and p.output_tokens:
        t.add_row(f"decode (batch of {p.batch})", f"{p.decode_throughput_tokens_per_s:,.1f} tokens/s")
    if p.target_kind != "api":
        t.add_row("load", f"{p.load_s:.2f} s")
    t.add_row(f"prefill {p.prompt_tokens} tokens", f"{p.prefill_s:.2f} s")
    if p.output_tokens:
        t.add_row(f"decode {p.output_tokens} tokens", f"{p.decode_s:.2f} s")
    t.add_row("step total", f"{p.seconds:.2f} s")
    if p.target_kind != "api":
        t.add_row("memory", f"{p.memory_gb:.1f} GB of {p.device_memory_gb:g} GB (fits)")
    console().print(t)


@app.command()
@guarded("models fleet")
def fleet(
    name_or_path: Annotated[str | None, typer.Argument(
        metavar="FLEET", help="A shipped fleet name or a fleet YAML path [default: the `fleet` setting, demo].")] = None,
) -> None:
    """Validate a fleet file and show its nodes."""
    from heddle.cli.inputs import fleet_file
    from heddle.config import load_settings
    from heddle.models.fleet import load_fleet

    path = fleet_file(name_or_path or load_settings().fleet)
    f = load_fleet(path)
    t = new_table(title=f"fleet {f.name} ({path})")
    for col in ("node", "device", "memory GB", "owner", "trusted", "power", "slots", "labels"):
        t.add_column(col, no_wrap=col in ("node", "device"), overflow="fold")
    for n in f.nodes:
        t.add_row(
            n.id, n.device.id, f"{n.memory_gb:g}", n.owner, ", ".join(sorted(n.trusted_owners)),
            n.power_source.value, str(n.slots), "\n".join(f"{k}={v}" for k, v in n.labels.items()),
        )
    out = console()
    out.print(t)
    out.print("cloud offers: " + (", ".join(o.id for o in f.cloud_offers) or "none"))
    for b in f.budgets.values():
        out.print(f"budget {b.account}: {b.limit_usd:g} USD per {b.period}")


@app.command()
def accuracy() -> None:
    """Refit the performance model and print its error on chips left out of the fit."""
    from heddle.models.calibration import accuracy_report

    typer.echo(accuracy_report())


@app.command()
@guarded("models calibrate")
def calibrate(
    records: Annotated[list[Path] | None, typer.Argument(
        metavar="RECORDS", help="Records files (JSON lines) [default: perf-records.jsonl in the `data_dir` setting].")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the fit; keep the parameters in use.")] = False,
) -> None:
    """Refit the performance model to the speeds this fleet's agents recorded."""
    from heddle.config import load_settings
    from heddle.models.learned import calibrate as fit
    from heddle.models.learned import load_records, save_params
    from heddle.models.perf_params import learned_params, learned_params_path

    paths = records or [load_settings().data_dir / "perf-records.jsonl"]
    rows = [r for path in paths for r in load_records(path)]
    if not rows:
        raise InputError(f"{', '.join(map(str, paths))}: no records yet; agents record each local "
                         "LLM run there (expected at least one prefill and one decode figure)")
    target = learned_params_path()
    existing = learned_params(target)
    fits = fit(rows, existing)
    t = new_table(title=f"performance model refitted to {len(rows)} recorded runs")
    for col in ("backend", "figures", "error before", "error after", "error, each left out"):
        t.add_column(col, justify="left" if col == "backend" else "right")
    for f in fits:
        left = "n/a (too few)" if f.error_left_out_pct is None else f"{f.error_left_out_pct:.1f}%"
        t.add_row(f.backend, str(f.rows), f"{f.error_before_pct:.1f}%", f"{f.error_after_pct:.1f}%", left)
    out = console()
    out.print(t)
    out.print("error: mean absolute percentage error of the predicted prefill and decode tokens/s")
    if dry_run:
        out.print("--dry-run: the parameters in use are unchanged")
        return
    save_params(target, fits, existing)
    out.print(f"saved to {target}: the twin, the optimizer and `heddle models predict` use it")
