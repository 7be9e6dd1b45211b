"""`heddle place` (stub: filled in by the package owner)."""

from __future__ import annotations

import typer


def place() -> None:
    """Not built yet."""
    typer.echo("heddle place: not built yet")
    raise typer.Exit(1)
