"""`heddle catalog`: list and show the shipped devices, AI models and cloud offers."""

from __future__ import annotations

import dataclasses
import json
from enum import Enum
from typing import Annotated

import typer

from heddle.cli.common import console, guarded, new_table
from heddle.cli.tables import Column, PlainTable, print_tables

app = typer.Typer(no_args_is_help=True, help="The shipped device, model and cloud-offer catalog.")


class Kind(str, Enum):
    device = "device"
    model = "model"
    offer = "offer"


def _columns(headers: tuple[str, ...], left: tuple[str, ...]) -> tuple[Column, ...]:
    """Columns named `headers`: the `left` ones left-justified, numbers right; ids never wrap."""
    return tuple(Column(h, "left" if h in left else "right", no_wrap=h == "id") for h in headers)


def _devices_table() -> PlainTable:
    from heddle.models import catalog

    headers = ("id", "machine", "GPU cores", "GB/s", "FP16 TFLOPS", "memory GB", "W idle/typ/max", "USD")
    t = PlainTable("Devices", _columns(headers, left=("id", "machine")))
    for d in catalog.devices().values():
        t.rows.append((
            d.id, d.machine, str(d.gpu_cores), f"{d.memory_bandwidth_gb_s:g}", f"{d.gpu_fp16_tflops:g}",
            "/".join(str(m) for m in d.memory_options_gb),
            f"{d.idle_power_w:g}/{d.typical_power_w:g}/{d.max_power_w:g}", f"{d.price_usd:,.0f}",
        ))
    return t


def _models_table() -> PlainTable:
    from heddle.models import catalog

    headers = ("id", "kind", "params B", "active B", "layers", "KV KiB/token", "context", "quantizations")
    t = PlainTable("AI models", _columns(headers, left=("id", "kind", "quantizations")))
    for m in catalog.models().values():
        t.rows.append((
            m.id, m.kind, f"{m.params_b:g}", f"{m.active_params_b:g}", str(m.layers),
            f"{m.kv_bytes_per_token / 1024:g}", f"{m.context_length:,}",
            ", ".join(f"{q} ({m.weights_gb(q):.1f} GB)" for q in m.bytes_per_weight),
        ))
    return t


def _offers_table() -> PlainTable:
    from heddle.models import catalog
    from heddle.models.ids import OfferKind

    headers = ("id", "kind", "tier", "price USD", "GPUs", "start-up s")
    t = PlainTable("Cloud offers", _columns(headers, left=headers))
    for o in catalog.offers().values():
        if o.kind == OfferKind.API:
            price = f"{o.price_usd_per_m_input_tokens:g}/{o.price_usd_per_m_output_tokens:g} per M tok in/out"
            gpus = "-"
        else:
            price = f"{o.price_usd_per_hour:g} per hour"
            gpus = f"{o.gpu_count} x {o.gpu_memory_gb:g} GB, {o.gpu_bandwidth_gb_s:g} GB/s"
        t.rows.append((o.id, o.kind.value, o.tier.value, price, gpus, f"{o.startup_s:g}"))
    return t


@app.command("list")
@guarded("catalog list")
def list_(
    kind: Annotated[Kind | None, typer.Option("--kind", help="Only this kind of entry.")] = None,
) -> None:
    """List catalog entries as tables."""
    builders = {Kind.device: _devices_table, Kind.model: _models_table, Kind.offer: _offers_table}
    print_tables([build() for k, build in builders.items() if kind is None or kind == k])


def _plain(value: object) -> object:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | frozenset | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@app.command("show")
@guarded("catalog show")
def show(
    item_id: Annotated[str, typer.Argument(metavar="ID", help="A device, model or offer id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show every field of one catalog entry, with its source."""
    from heddle.models import catalog

    entry = catalog.lookup(item_id)  # an unknown id: one line naming close matches, exit 2
    fields = {f.name: _plain(getattr(entry, f.name)) for f in dataclasses.fields(entry)}
    if as_json:
        typer.echo(json.dumps(fields, indent=2))
        return
    t = new_table(title=f"{type(entry).__name__} {item_id}", show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value", overflow="fold")
    for name, value in fields.items():
        t.add_row(name, str(value))
    console().print(t)
