"""`heddle events` commands (stub: filled in by the package owner)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="events commands")


@app.callback()
def _group() -> None:
    """events commands."""
