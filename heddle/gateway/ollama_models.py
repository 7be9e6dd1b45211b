"""Ollama's model calls on a cluster whose models are installed on its nodes: the load and
unload asks apps make before a chat, ``keep_alive``, and model management.

Load and unload: Ollama loads a model on ``/api/generate`` without a prompt, ``/api/chat``
with no messages and ``/api/embed`` without input (``/api/embeddings`` without a prompt), and
unloads it on the first two with ``keep_alive`` 0; apps call these to warm a model before the
user types (Open WebUI, ``ollama run``, editors). The gateway answers them as Ollama does,
after the checks a task gets (key, header rules, model, tier): ``done_reason`` ``"load"`` or
``"unload"`` with nothing generated, or no vectors, and ``heddle.nodes``, the nodes the model
is resident on now. It does no work for them: where a model is resident is placement's
decision, per task (a node that has it, or one where placement judges loading it worth its
load time, which it charges). A load ask is no task: placing a zero-output one would pick a
node for a request that may never come and could evict a model other callers' work is using
there; an unload would take a model from under them. The first real request pays a load if
one is needed, as it does whichever node gets it.

``keep_alive`` (all four routes): a duration string in Go's syntax (``"5m"``, ``"1h30m"``,
``"0"``; negative: for ever) or a number of seconds, as Ollama takes it; anything else is a
400 naming the field. It only tells a load from an unload (under a second: unload): the
nodes keep their models resident as their own servers are configured.

Model management (``/api/pull``, ``/api/delete``, ``/api/copy``, ``/api/create``,
``/api/push``, ``/api/blobs/<digest>``): heddle serves the models its nodes' servers have
installed and never downloads, deletes or writes one. A pull of a model the cluster serves
now (what ``/api/tags`` lists) succeeds at once, so a script or app that pulls before it
chats goes on; any other call is a 501 in Ollama's error shape saying so (a 404 reads as an
old server to apps).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from heddle.gateway.bodies import TaskBody
from heddle.gateway.errors import GatewayError
from heddle.gateway.options import refused
from heddle.live.backends.generation import GenerationError

__all__ = ["LOAD", "MANAGEMENT", "UNLOAD", "KeepAlive", "keep_alive_s", "managed", "now", "pulled"]

LOAD, UNLOAD = "load", "unload"
_UNITS_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION = re.compile(rf"[-+]?(?:{_PART.pattern})+")
EXPECTED = 'a duration such as "5m", "1h30m" or "0" (Go\'s syntax), or a number of seconds'
MANAGEMENT = {"/api/pull": "pull", "/api/delete": "delete", "/api/copy": "copy",
              "/api/create": "create", "/api/push": "push", "/api/blobs/": "upload"}
"""Ollama's model-management routes (the blobs route takes a digest after the prefix) and the
verb each asks for."""


def now() -> str:
    """Ollama's ``created_at``: the UTC time, RFC 3339."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def keep_alive_s(value: Any) -> float | None:
    """``keep_alive`` in seconds (inf: for ever; None: not given), as Ollama reads it; 400
    naming the field for anything else."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return math.inf if value < 0 else float(value)
    if isinstance(value, str) and value.lstrip("+-") == "0":
        return 0.0
    if isinstance(value, str) and _DURATION.fullmatch(value):
        seconds = sum(float(n) * _UNITS_S[unit] for n, unit in _PART.findall(value))
        return math.inf if value.startswith("-") and seconds > 0 else seconds
    raise refused(GenerationError("keep_alive", EXPECTED, value))


class KeepAlive(TaskBody):
    """An Ollama body that takes ``keep_alive`` and may ask only to load or unload its model."""

    keep_alive: Any = None

    def _load_only(self, empty: bool, unloads: bool = True) -> str | None:
        """LOAD or UNLOAD when the body asks for nothing (``empty``), else None; ``keep_alive``
        checked either way. ``unloads``: keep_alive under a second unloads (``/api/embed``
        only loads)."""
        seconds = keep_alive_s(self.keep_alive)
        if not empty:
            return None
        return UNLOAD if unloads and seconds is not None and seconds < 1 else LOAD


def pulled(name: str, served: bool) -> dict[str, Any]:
    """``POST /api/pull``'s answer: success for a model the cluster serves now, else a 501
    saying heddle does not download."""
    if served:
        return {"status": "success"}
    raise GatewayError(501, f"model {name!r} is not on the cluster's nodes now: models are "
                       "installed on the cluster's nodes (with their own server, e.g. `ollama "
                       "pull` on a node); heddle does not download them (GET /api/tags lists "
                       "what it serves)", "not_supported", param="model")


def managed(verb: str) -> GatewayError:
    """The 501 for a model-management call heddle does not do (`MANAGEMENT`)."""
    return GatewayError(501, f"models are installed on the cluster's nodes (with their own "
                        f"server, e.g. `ollama pull` on a node); heddle does not download, "
                        f"delete, copy, create or push them, so it cannot {verb} one", "not_supported")
