"""`heddle events` commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from heddle.cli.common import console, guarded

app = typer.Typer(no_args_is_help=True, help="Event-sourcing tools (schemas, NATS auth).")


@app.callback()
def _group() -> None:
    """Event-sourcing tools (schemas, NATS auth)."""


@app.command("export-schemas")
@guarded("events export-schemas")
def export_schemas_cmd(
    out: Annotated[Path, typer.Option("--out", metavar="DIR", help="Directory for *.schema.json.")] = Path(
        "schemas/v1"
    ),
) -> None:
    """Write the JSON Schemas of the event, command and rejection envelopes and of the live
    wire protocol (under live/)."""
    from heddle.cli.inputs import output_dir
    from heddle.events.schemas import export_schemas
    from heddle.live.schemas import export_live_schemas

    for path in [*export_schemas(output_dir(out)), *export_live_schemas(out)]:
        console().print(f"wrote {path}")


@app.command("nats-auth")
@guarded("events nats-auth")
def nats_auth_cmd(
    out: Annotated[Path, typer.Option("--out", metavar="FILE", help="Where to write the nats-server config.")],
) -> None:
    """Write a nats-server authorization block for the four roles, with fresh passwords.

    The passwords go only into OUT, created owner-read/write (0600); the terminal shows
    each role's user and a masked password, never the password itself.
    """
    import os
    import secrets

    from heddle.cli.inputs import output_file
    from heddle.events.acl import ROLES, mask_secret, nats_auth_config

    output_file(out)
    # Credentials come from the OS CSPRNG, not from a seeded generator: they must not repeat.
    passwords = {role: secrets.token_urlsafe(24) for role in ROLES}
    # Created 0600 (not chmod-ed after writing): the file never exists readable by others.
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT: tighten it
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(nats_auth_config(passwords))
    shown = console()
    shown.print(f"wrote {out} (mode 0600; include it from your nats-server config, or pass -c)")
    for role in ROLES:
        shown.print(f"  {role}: user={role} password={mask_secret(passwords[role])} (in {out})")
