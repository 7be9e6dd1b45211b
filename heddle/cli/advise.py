"""`heddle advise` (stub: filled in by the package owner)."""

from __future__ import annotations

import typer


def advise() -> None:
    """Not built yet."""
    typer.echo("heddle advise: not built yet")
    raise typer.Exit(1)
