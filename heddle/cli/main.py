"""The `heddle` command: one typer app that mounts each package's commands.

The command modules import only typer and rich at the top; each command imports the packages
it needs when it runs, so `heddle --help` starts about as fast as typer and rich themselves.
"""

from __future__ import annotations

import typer

from heddle.cli import (
    advise,
    agent,
    catalog,
    check,
    cluster,
    events,
    gateway,
    live,
    models_cmd,
    place,
    sim,
    sweep,
    trace,
    twin,
    ui,
)
from heddle.cli.common import install_help_format

install_help_format()

app = typer.Typer(
    name="heddle",
    help="Schedule AI work across an ad-hoc fleet, simulate it, and advise what to buy.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,  # plain help: typer's rich help imports markdown and pygments (~0.3 s)
)
app.add_typer(catalog.app, name="catalog")
app.add_typer(models_cmd.app, name="models")
app.add_typer(trace.app, name="trace")
app.add_typer(events.app, name="events")
app.command("sim")(sim.sim)
app.command("check")(check.check)
app.command("place")(place.place)
app.command("advise")(advise.advise)
app.command("agent")(agent.agent)
app.command("sweep")(sweep.sweep)
app.command("ui")(ui.ui)
app.command("gateway")(gateway.gateway)
live.register(app)
cluster.register(app)
twin.register(app)

if __name__ == "__main__":
    app()
