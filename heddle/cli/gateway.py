"""`heddle gateway`: serve an OpenAI- and Ollama-compatible API in front of the live cluster.
Also runnable as ``python -m heddle.cli.gateway`` (faster start-up)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from heddle.cli.common import LazyConsole

err = LazyConsole(stderr=True)

KEYS_FILE_NAME = "gateway-keys.yaml"
"""The keys file's name in the data directory (``~/.heddle``) when --keys is not given."""


def gateway(
    nats: Annotated[str | None, typer.Option("--nats", help="NATS URL of the cluster (default nats://127.0.0.1:4222).")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: other machines may call it).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="HTTP port (0: any free port).")] = 11435,
    keys: Annotated[Path | None, typer.Option("--keys", help=f"API keys file (default <data dir>/{KEYS_FILE_NAME}).")] = None,
    max_wait: Annotated[float, typer.Option("--max-wait", min=0, help="Seconds a request may wait for a place before a 429.")] = 30.0,
    request_timeout: Annotated[float, typer.Option("--request-timeout", min=0.1, help="Seconds a request may take in all.")] = 600.0,
    task_timeout: Annotated[float | None, typer.Option("--task-timeout", min=0.1, help="Per-attempt limit of each task (default: the control plane's).")] = None,
    cloud: Annotated[str | None, typer.Option("--cloud", help="Catalog API offers to list in /v1/models, comma-separated.")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Where the default keys file is (default ~/.heddle).")] = None,
    log_level: Annotated[str | None, typer.Option("--log-level", help="debug, info, warning or error.")] = None,
    credentials: Annotated[Path | None, typer.Option("--credentials", help="Log in to NATS with this credentials file (`heddle up --gateway` writes one).")] = None,
) -> None:
    """Serve /v1/chat/completions, /v1/models and Ollama's /api/chat, /api/generate, /api/tags."""
    import asyncio
    import logging

    from heddle.config import load_settings
    from heddle.gateway import GatewaySettings, KeysFileError, serve
    from heddle.live.cluster.join import Credentials, JoinError
    from heddle.live.control.client import DEFAULT_NATS_URL
    from heddle.models import catalog
    from heddle.models.errors import ConfigError, ModelsError

    try:
        settings = load_settings({"nats_url": nats, "log_level": log_level, "data_dir": data_dir})
        offers = tuple(o.strip() for o in (cloud or "").split(",") if o.strip())
        for offer in offers:
            catalog.offer(offer)
        auth = {} if credentials is None else Credentials.load(credentials.parent, credentials.name).auth_options()
    except (ConfigError, ModelsError, JoinError) as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    chosen = GatewaySettings(
        nats_url=settings.nats_url or DEFAULT_NATS_URL, host=host, port=port,
        keys_file=(keys or settings.data_dir / KEYS_FILE_NAME).expanduser(), max_wait_s=max_wait,
        request_timeout_s=request_timeout, task_timeout_s=task_timeout, cloud_offers=offers, nats_auth=auth,
    )
    try:
        asyncio.run(serve(chosen))
    except KeysFileError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    except OSError as exc:
        err.print(f"[red]error:[/] cannot listen on {host}:{port}: {exc.strerror or exc}")
        raise typer.Exit(1) from None


if __name__ == "__main__":
    typer.run(gateway)
