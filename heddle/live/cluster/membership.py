"""How a process on this machine gets the credentials it connects with.

- `heddle up` makes its own members directly in the roster (`local_member`): the local
  agent's node, the control plane and the person at this machine (``admin``), each stored
  0600 under the data dir, and reused on the next start while the roster still knows them.
- `heddle agent` on another machine (`node_credentials`) uses the credentials it stored when
  it joined; without any it finds the cluster on the LAN (or takes ``--nats``), exchanges
  the join code for them, stores them and then connects as itself.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from heddle.live import protocol as p
from heddle.live.agent.settings import default_node_id
from heddle.live.cluster.access import CONTROL_USER
from heddle.live.cluster.discovery import (
    Announcer,
    DiscoveredCluster,
    DiscoveredNode,
    local_address_towards,
)
from heddle.live.cluster.join import CREDENTIALS_FILE, Credentials, JoinError, join
from heddle.live.cluster.roster import Roster
from heddle.live.cluster.tls import TlsError, introduce

__all__ = ["CONTROL_CREDENTIALS_FILE", "GATEWAY_CREDENTIALS_FILE", "local_member", "node_credentials"]

CONTROL_CREDENTIALS_FILE = "cluster/control.json"
"""The control plane's login, beside the roster (which holds it already): `heddle up` hands
the file's path to its `heddle scheduler` child, never the password itself."""
GATEWAY_CREDENTIALS_FILE = "cluster/gateway.json"
"""The gateway's login (`heddle up --gateway` hands its path to `heddle gateway`)."""


def local_member(roster: Roster, data_dir: Path, name: str, role: str, file: str, url: str) -> Credentials:
    """Credentials for a member on the cluster's own machine, stored in ``data_dir/file``:
    the stored ones if the roster still has them (with today's URL), else new ones.
    Saves the roster when it changed; the caller reloads or (re)starts the server."""
    stored = Credentials.find(data_dir, file)
    member = roster.members.get(name)
    if member is None or member.role != role or stored is None or stored.user != name \
            or not secrets.compare_digest(stored.password, member.password):
        if name == CONTROL_USER:
            member = roster.control
        else:
            member = roster.add(name, role)
            roster.save()
    credentials = Credentials(nats_url=url, user=name, password=member.password, tls_cert=roster.certificate)
    if credentials != stored:
        credentials.save(data_dir, file)
    return credentials


def node_credentials(data_dir: Path, *, nats_url: str | None, node_id: str | None, code: str | None,
                     find: Callable[[], DiscoveredCluster], ask_code: Callable[[str], str | None],
                     device: str | None = None) -> Credentials | None:
    """This node's credentials, joining first if it has none.

    - stored credentials: used (``nats_url``, if given, overrides where they connect);
    - none, ``nats_url`` given, no ``code``, and the server there asks no login (or cannot
      be reached yet): None, connect without credentials (a nats-server without access
      control, e.g. one you run yourself for `heddle scheduler`);
    - otherwise: the cluster at ``nats_url`` or the one ``find()`` picks on the LAN (mDNS;
      its certificate must match the fingerprint it announced), the join ``code`` or
      ``ask_code(url)``, exchanged for this node's credentials, stored 0600. While it asks,
      the machine announces itself over mDNS, so `heddle fleet` on the cluster lists it as
      waiting to join.

    Raises JoinError (no code, wrong code, a node id that is taken, another node's files).
    """
    stored = Credentials.find(data_dir, CREDENTIALS_FILE)
    if stored is not None:
        if node_id is not None and node_id != stored.user:
            raise JoinError(f"{Path(data_dir) / CREDENTIALS_FILE}: this machine joined as node {stored.user!r}, "
                            f"not {node_id!r}; drop --node-id, or use another --data-dir to join as {node_id!r}")
        return stored if nats_url is None else stored.model_copy(update={"nats_url": nats_url})
    if nats_url is not None and code is None:
        try:
            if not introduce(nats_url).auth_required:
                return None
        except TlsError:
            return None
    fingerprint = None
    if nats_url is None:
        cluster = find()
        nats_url, fingerprint = cluster.url, cluster.fingerprint
    url = nats_url
    node_id = node_id or default_node_id()
    if not code:
        waiting = DiscoveredNode(node_id, device or "", p.PROTOCOL_VERSION)
        announcer = Announcer(waiting, local_address_towards(urlsplit(url).hostname or "127.0.0.1")).start()
        try:
            code = ask_code(url)
        finally:
            announcer.close()
    if not code:
        raise JoinError(f"this machine has not joined {url} yet: give the code `heddle up` printed "
                        f"(heddle agent --join-code CODE)")
    return asyncio.run(join(url, code, node_id, data_dir, fingerprint))
