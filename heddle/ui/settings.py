"""Settings of `heddle ui` and the one rule about where it may listen.

The UI binds 127.0.0.1 by default: only people at this machine reach it. Binding any other
address exposes the fleet view (and the drain button) to the network, so it requires a login
token; `check_binding` refuses the combination before anything starts.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DEFAULT_PORT", "UiError", "UiSettings", "check_binding", "is_loopback"]

DEFAULT_PORT = 8737
"""Where `heddle ui` listens by default (an unassigned port; 0 picks any free one)."""
MIN_TOKEN_CHARS = 16
"""Shortest login token accepted: a guessable token on a network-facing UI is no lock."""


class UiError(ValueError):
    """A setting, an upload or a request the UI cannot accept; the CLI prints it and exits,
    the web pages show it next to the form that caused it."""


class UiSettings(BaseModel):
    """Everything the web app needs (the CLI fills it from flags and heddle's settings)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    token: str | None = Field(None, description="Login token of people who may also drain nodes.")
    viewer_token: str | None = Field(None, description="Login token of people who may only look.")
    allow_drain: bool = Field(True, description="Offer the drain button at all (to operators).")
    nats_url: str | None = Field(None, description="The live cluster; None: the shipped demo only.")
    data_dir: Path = Field(Path("~/.heddle"), description="Where recorded traces are looked for.")
    work_dir: Path = Field(description="Uploads, what-if charts and advice reports of this run.")
    lost_after_s: float = Field(6.0, gt=0, description="A node silent this long shows as lost.")
    seed: int = 0


def is_loopback(host: str) -> bool:
    """True for addresses only this machine reaches (127.0.0.0/8, ::1, "localhost")."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_binding(settings: UiSettings) -> None:
    """Refuse (UiError) to listen beyond loopback without a login token, or with a short one."""
    for name, token in (("--token", settings.token), ("--viewer-token", settings.viewer_token)):
        if token is not None and len(token) < MIN_TOKEN_CHARS:
            raise UiError(f"option {name}: the token is {len(token)} characters; expected at "
                          f"least {MIN_TOKEN_CHARS} (e.g. from `python -c 'import secrets; "
                          f"print(secrets.token_urlsafe())'`)")
    if settings.token and settings.viewer_token and settings.token == settings.viewer_token:
        raise UiError("option --viewer-token: it equals --token; expected a different token")
    if not is_loopback(settings.host) and not (settings.token or settings.viewer_token):
        raise UiError(f"option --host: {settings.host} is reachable from other machines; "
                      f"pass --token (or set HEDDLE_UI_TOKEN) so only people with it get in")
