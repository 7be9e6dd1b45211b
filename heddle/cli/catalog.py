"""`heddle catalog` commands (stub: filled in by the package owner)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="catalog commands")


@app.callback()
def _group() -> None:
    """catalog commands."""
