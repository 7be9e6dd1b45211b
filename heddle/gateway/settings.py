"""Settings of the gateway process (`heddle gateway` fills them from flags and config)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DEFAULT_KEYS_FILE", "DEFAULT_PORT", "READY_LINE", "GatewaySettings"]

READY_LINE = "heddle gateway ready"
"""Printed once the gateway listens (tests and `heddle up --gateway` wait for it)."""

DEFAULT_PORT = 11435
"""Next to Ollama's 11434, so an app's Ollama URL changes by one digit."""
DEFAULT_KEYS_FILE = Path("~/.heddle/gateway-keys.yaml")


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    nats_url: str = "nats://127.0.0.1:4222"
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    keys_file: Path = field(default_factory=lambda: DEFAULT_KEYS_FILE.expanduser())
    max_wait_s: float = 30.0
    """Longest a request waits for a place when the fleet is saturated; a longer estimate (or
    no place by then) is answered 429 with Retry-After. 0: answer 429 at once."""
    request_timeout_s: float = 600.0
    """Longest a request waits for its whole answer (then 504 and the task is cancelled)."""
    task_timeout_s: float | None = None
    """Per-attempt limit sent with each task (None: the control plane's)."""
    nats_auth: dict = field(default_factory=dict, repr=False)
    """``nats.connect`` arguments that log in (user, password, inbox prefix, TLS); {}: none."""
    cloud_offers: tuple[str, ...] = ()
    """Catalog API offers /v1/models lists besides what the nodes serve (some agent must have
    the offer's key configured)."""
