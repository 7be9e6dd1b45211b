"""`heddle events` commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(no_args_is_help=True, help="Event-sourcing tools (schemas, NATS auth).")


@app.callback()
def _group() -> None:
    """Event-sourcing tools (schemas, NATS auth)."""


@app.command("export-schemas")
def export_schemas_cmd(
    out: Annotated[Path, typer.Option("--out", help="Directory for *.schema.json.")] = Path(
        "schemas/v1"
    ),
) -> None:
    """Write the JSON Schemas of the event, command and rejection envelopes."""
    from heddle.events.schemas import export_schemas

    for path in export_schemas(out):
        Console().print(f"wrote {path}")
