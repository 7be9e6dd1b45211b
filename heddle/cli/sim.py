"""`heddle sim` (stub: filled in by the package owner)."""

from __future__ import annotations

import typer


def sim() -> None:
    """Not built yet."""
    typer.echo("heddle sim: not built yet")
    raise typer.Exit(1)
