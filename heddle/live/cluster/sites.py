"""Two sites, one cluster: the office's nats-server joins the home one as a leaf node over
TLS. Each site keeps its own roster (its own clients log in locally); the leaf link itself
logs in as a dedicated user on the hub and is encrypted and checked against the hub's CA,
so messages between sites cross the internet only inside TLS.

Both fragments go after the site's `cluster_auth_config` in its nats-server configuration.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["LeafLink", "hub_leaf_config", "leaf_remote_config"]


@dataclass(frozen=True, slots=True)
class LeafLink:
    """How the leaf site logs in to the hub; ``password`` is a secret like any member's."""

    user: str
    password: str = field(repr=False)


def hub_leaf_config(link: LeafLink, cert_file: Path, key_file: Path, *, host: str = "0.0.0.0",
                    port: int = 7422) -> str:
    """The hub's ``leafnodes`` block: listen (``port`` -1: any free port), TLS with this
    certificate, and only the leaf link's user may connect."""
    block = {
        "host": host, "port": port,
        "tls": {"cert_file": str(cert_file), "key_file": str(key_file), "timeout": 5},
        "authorization": {"user": link.user, "password": link.password},
    }
    return "leafnodes " + json.dumps(block, indent=2) + "\n"


def leaf_remote_config(link: LeafLink, hub: str, ca_file: Path) -> str:
    """The leaf site's ``leafnodes`` block: connect to ``hub`` (host:port) over TLS,
    trusting only ``ca_file``, as the leaf link's user."""
    remote = {"url": f"tls://{link.user}:{link.password}@{hub}", "tls": {"ca_file": str(ca_file)}}
    return "leafnodes " + json.dumps({"remotes": [remote]}, indent=2) + "\n"
