"""Run the web app: listen, say where, serve until Ctrl-C (`heddle ui`)."""

from __future__ import annotations

import socket

from heddle.ui.settings import UiError, UiSettings, check_binding

__all__ = ["READY_LINE", "serve"]

READY_LINE = "heddle ui at"
"""Printed with the URL once the server accepts connections (tests wait for it)."""
SHUTDOWN_GRACE_S = 2.0
"""Open pages (event streams) get this long to close when the server stops."""


def listen(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: any free one); UiError naming the address if it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UiError(f"option --host/--port: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)  # connections wait in the backlog until uvicorn accepts them
    return sock


def serve(settings: UiSettings, say=print) -> None:
    import uvicorn

    from heddle.ui.app import create_app

    check_binding(settings)
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    sock = listen(settings.host, settings.port)
    app = create_app(settings)
    config = uvicorn.Config(app, log_level="warning", lifespan="on",
                            timeout_graceful_shutdown=SHUTDOWN_GRACE_S)
    server = uvicorn.Server(config)
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    say(f"{READY_LINE} http://{host}:{sock.getsockname()[1]}/  (Ctrl-C stops it)")
    server.run(sockets=[sock])
