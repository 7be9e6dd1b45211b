"""`heddle ui`: the fleet, the work, what-ifs and purchase advice in a browser (docs/ui.md).

Also runnable as ``python -m heddle.cli.ui`` (without the other commands' imports).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from heddle.cli.common import fail, guarded


@guarded("ui")
def ui(
    host: Annotated[str, typer.Option("--host", help="Address to listen on; anything but 127.0.0.1/localhost needs --token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on (0: any free port).")] = 8737,
    nats: Annotated[str | None, typer.Option("--nats", help="NATS URL of the cluster to show (default: the `nats_url` setting, else nats://127.0.0.1:4222).")] = None,
    token: Annotated[str | None, typer.Option("--token", envvar="HEDDLE_UI_TOKEN", help="Login token of people who may look and drain nodes (at least 16 characters).")] = None,
    viewer_token: Annotated[str | None, typer.Option("--viewer-token", envvar="HEDDLE_UI_VIEWER_TOKEN", help="Login token of people who may only look.")] = None,
    no_drain: Annotated[bool, typer.Option("--no-drain", help="Offer no drain button to anyone.")] = False,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Where the cluster records what it ran (its recorded/ folder); uploads and results go in its ui/ folder (default ~/.heddle).")] = None,
    lost_after: Annotated[float, typer.Option("--lost-after", min=0.1, help="Seconds of silence after which a node shows as lost.")] = 6.0,
) -> None:
    """Serve the web UI: Fleet, Work, What-if and Advice pages (Ctrl-C stops it)."""
    from heddle.config import load_settings
    from heddle.live.control.client import DEFAULT_NATS_URL
    from heddle.ui import UiError, UiSettings, serve

    base = load_settings({"nats_url": nats, "data_dir": data_dir})
    try:
        settings = UiSettings(host=host, port=port, token=token or None, viewer_token=viewer_token or None,
                              allow_drain=not no_drain, nats_url=base.nats_url or DEFAULT_NATS_URL,
                              data_dir=base.data_dir, work_dir=base.data_dir / "ui",
                              lost_after_s=lost_after, seed=base.seed)
        serve(settings)
    except UiError as exc:
        fail("ui", str(exc))


if __name__ == "__main__":  # `python -m heddle.cli.ui ...`
    typer.run(ui)
