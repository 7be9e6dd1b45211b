"""heddle.gateway: an OpenAI- and Ollama-compatible HTTP endpoint in front of the live runtime.
Each request becomes a task placed by the control plane's scheduling core under the caller's
privacy, deadline and budget rules, and its output streams back from the node that runs it."""

from heddle.gateway.app import build_app
from heddle.gateway.bridge import Bridge
from heddle.gateway.errors import GatewayError
from heddle.gateway.keys import HEADERS, KeyRing, KeysFileError, load_keys
from heddle.gateway.serve import READY_LINE, serve
from heddle.gateway.settings import DEFAULT_PORT, GatewaySettings

__all__ = [
    "DEFAULT_PORT",
    "HEADERS",
    "READY_LINE",
    "Bridge",
    "GatewayError",
    "GatewaySettings",
    "KeyRing",
    "KeysFileError",
    "build_app",
    "load_keys",
    "serve",
]
