"""`heddle models`: predict step times, validate fleets, report the perf model's accuracy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from heddle.config import load_settings
from heddle.models.errors import ModelsError
from heddle.models.fleet import load_fleet, shipped_fleet_path
from heddle.models.predict import predict_step

app = typer.Typer(no_args_is_help=True, help="Performance predictions and fleet files.")


def _fail(exc: Exception) -> None:
    Console(stderr=True).print(f"[red]error:[/red] {exc}", highlight=False)
    raise typer.Exit(2)


@app.command()
def predict(
    device: Annotated[str, typer.Option("--device", help="Device id, instance offer id or API tier id.")],
    model: Annotated[str, typer.Option("--model", help="Model id, e.g. llama-3.1-8b.")],
    quant: Annotated[str | None, typer.Option("--quant", help="Quantization (default: the model's smallest).")] = None,
    prompt_tokens: Annotated[int, typer.Option("--prompt-tokens", min=0)] = 512,
    output_tokens: Annotated[int, typer.Option("--output-tokens", min=0)] = 128,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Requests decoding together.")] = 1,
    cold: Annotated[bool, typer.Option("--cold", help="The model is not loaded yet.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (default: the `output` setting).")] = False,
) -> None:
    """Predict prefill/decode speed and the time of one LLM step."""
    try:
        as_json = as_json or load_settings().output == "json"
        p = predict_step(device, model, quant, prompt_tokens, output_tokens, batch=batch, resident=not cold)
    except ModelsError as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps(p.as_dict(), indent=2))
        return
    title = f"{p.model} ({p.quant}) on {p.target}" if p.target_kind != "api" else f"hosted model {p.target}"
    t = Table(title=title, show_header=False)
    t.add_column("what", style="bold")
    t.add_column("value", justify="right")
    t.add_row("prefill", f"{p.prefill_tokens_per_s:,.1f} tokens/s")
    t.add_row("decode (per request)", f"{p.decode_tokens_per_s:,.1f} tokens/s")
    if p.batch > 1:
        t.add_row(f"decode (batch of {p.batch})", f"{p.decode_throughput_tokens_per_s:,.1f} tokens/s")
    if p.target_kind != "api":
        t.add_row("load", f"{p.load_s:.2f} s")
    t.add_row(f"prefill {p.prompt_tokens} tokens", f"{p.prefill_s:.2f} s")
    t.add_row(f"decode {p.output_tokens} tokens", f"{p.decode_s:.2f} s")
    t.add_row("step total", f"{p.seconds:.2f} s")
    if p.target_kind != "api":
        verdict = "fits" if p.fits else "[red]does NOT fit[/red]"
        t.add_row("memory", f"{p.memory_gb:.1f} GB of {p.device_memory_gb:g} GB ({verdict})")
    Console().print(t)


@app.command()
def fleet(
    name_or_path: Annotated[
        str | None, typer.Argument(help="A shipped fleet name or a fleet YAML path (default: the `fleet` setting).")
    ] = None,
) -> None:
    """Validate a fleet file and show its nodes."""
    try:
        name_or_path = name_or_path or load_settings().fleet
        path = Path(name_or_path) if Path(name_or_path).suffix in (".yaml", ".yml") else shipped_fleet_path(name_or_path)
        f = load_fleet(path)
    except ModelsError as exc:
        _fail(exc)
    t = Table(title=f"fleet {f.name} ({path})")
    for col in ("node", "device", "memory GB", "owner", "trusted", "power", "slots", "labels"):
        t.add_column(col, no_wrap=col in ("node", "device"), overflow="fold")
    for n in f.nodes:
        t.add_row(
            n.id, n.device.id, f"{n.memory_gb:g}", n.owner, ", ".join(sorted(n.trusted_owners)),
            n.power_source.value, str(n.slots), "\n".join(f"{k}={v}" for k, v in n.labels.items()),
        )
    console = Console()
    console.print(t)
    console.print("cloud offers: " + (", ".join(o.id for o in f.cloud_offers) or "none"))
    for b in f.budgets.values():
        console.print(f"budget {b.account}: {b.limit_usd:g} USD per {b.period}")


@app.command()
def accuracy() -> None:
    """Refit the performance model and print its error on chips left out of the fit."""
    from heddle.models.calibration import accuracy_report

    typer.echo(accuracy_report())
