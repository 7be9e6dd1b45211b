"""Who may do what on a live cluster's nats-server: one user per node, per person, and one
for the control plane, each with the narrowest permissions its work needs.

- **control** (the control plane) has the ``framework`` role of `heddle.events.acl`: it alone
  publishes assignments, control messages and framework events (``InternalFinalized``
  included) and manages streams.
- **agent** ``<node>`` publishes only its own capacity, report and left subjects, receives
  only its own assignments and control messages, and answers the requests it received
  (``allow_responses``) without being able to publish on anyone else's inbox.
- **user** ``<name>`` submits, asks for status and cancels on its own subjects only
  (``heddle.v1.user.<name>.>``), where the control plane answers for its own jobs alone, and
  reads the fleet view; it has no JetStream API, so it cannot read the event log (anyone's
  task results) either; **observer** ``<name>`` only asks for the fleet view (members and
  machines discovered but not joined): no job, payload or result;
  **admin** (the person at the cluster's own machine) does what a user and an observer do,
  drains nodes and may watch the nodes' capacity reports; **gateway** (`heddle gateway` under `heddle up`) submits, cancels and
  asks, and follows what it submitted: token chunks, task events, capacity reports; it answers
  the agents' requests for a task's images (``heddle.v1.images.<node>.<task>``: an agent asks
  only under its own node id, and the gateway answers only the node the task was placed on).

Replies reach a client on its own inbox prefix (`inbox_prefix`, ``_INBOX.<name>``), so no
client can read another's replies; clients connect with ``inbox_prefix=inbox_prefix(name)``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from heddle.events.acl import role_permissions
from heddle.live import protocol as p

__all__ = [
    "ADMIN_USER",
    "CLUSTER_ROLES",
    "CONTROL_USER",
    "DISCOVERED_SUBJECT",
    "GATEWAY_USER",
    "JOIN_SUBJECT",
    "JOIN_USER",
    "AccessError",
    "Member",
    "cluster_auth_config",
    "inbox_prefix",
    "member_permissions",
    "new_secret",
    "write_private",
]

CLUSTER_ROLES = ("control", "agent", "user", "observer", "admin", "gateway", "joiner")
CONTROL_USER = "control"
ADMIN_USER = "admin"
"""The member `heddle up` makes for the person at the cluster's machine."""
GATEWAY_USER = "gateway"
"""The member `heddle up --gateway` makes for its gateway."""
JOIN_USER = "join"
"""The one user a join code logs in as: it may only ask to join."""
JOIN_SUBJECT = p.SUBJECT_PREFIX + ".join"
"""joiner -> control side, request/reply: a join code exchanged for a node's credentials."""
DISCOVERED_SUBJECT = p.subject(p.QUERY, what="discovered")
"""client -> `heddle up`'s cluster services, request/reply: machines seen on the network
that have not joined."""
SECRET_BYTES = 24
"""Random bytes per password (32 URL-safe characters): far beyond guessing over a LAN."""


class AccessError(ValueError):
    """A member, role or credential file the cluster's access rules cannot accept."""


@dataclass(slots=True)
class Member:
    """One nats-server user: ``name`` is a node id for agents, a person for users/observers."""

    name: str
    role: str
    password: str = field(repr=False)
    owner: str = ""
    """A person's owner id for personal work (users); empty for the other roles."""
    account: str = ""
    """The account a person's work is billed to (users); empty: none."""

    def __post_init__(self) -> None:
        if self.role not in CLUSTER_ROLES:
            raise AccessError(f"role: unknown role {self.role!r}; expected one of {', '.join(CLUSTER_ROLES)}")
        # A name becomes a subject token: a '.', '*' or '>' in it would widen the grant.
        if not re.fullmatch(p.ID_PATTERN, self.name) or len(self.name) > 128:
            raise AccessError(f"name: {self.name!r} is not a valid id (letters, digits, '_' and '-')")


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def inbox_prefix(name: str) -> str:
    """The inbox prefix a member's client must use; it may subscribe only beneath it."""
    return f"_INBOX.{name}"


def member_permissions(member: Member) -> dict:
    """The nats-server ``permissions`` block for one member."""
    name, inbox = member.name, inbox_prefix(member.name) + ".>"
    if member.role == "control":
        return role_permissions("framework")
    if member.role == "agent":
        return {
            "publish": {"allow": [
                p.subject(p.CAPACITY, node=name),
                p.subject(p.REPORT, node=name),
                p.subject(p.LEFT, node=name),
                p.subject(p.TOKENS, node=name, task="*"),  # output of the LLM work it runs (gateway)
                p.subject(p.IMAGES, node=name, task="*"),  # the images of the tasks it runs (gateway)
                "$JS.API.INFO",
                f"$JS.API.STREAM.INFO.{p.REPORT_STREAM}",
            ]},
            "subscribe": {"allow": [p.subject(p.ASSIGN, node=name), p.subject(p.CONTROL, node=name), inbox]},
            "allow_responses": True,
        }
    if member.role == "user":
        return {
            "publish": {"allow": [p.subject(p.USER, user=name, what=">"), p.subject(p.QUERY, what="fleet"),
                                  DISCOVERED_SUBJECT]},
            "subscribe": {"allow": [inbox]},
        }
    if member.role == "observer":
        return {
            "publish": {"allow": [p.subject(p.QUERY, what="fleet"), DISCOVERED_SUBJECT]},
            "subscribe": {"allow": [inbox]},
        }
    if member.role == "admin":
        return {
            "publish": {"allow": [p.SUBMIT, p.CANCEL, p.DRAIN, p.subject(p.QUERY, what="*")]},
            # The fleet as it reports itself, for a live view (`heddle ui`).
            "subscribe": {"allow": [p.all_nodes(p.CAPACITY), p.all_nodes(p.LEFT), inbox]},
        }
    if member.role == "gateway":
        return {
            "publish": {"allow": [p.SUBMIT, p.CANCEL, p.subject(p.QUERY, what="*")]},
            "subscribe": {"allow": [p.subject(p.TOKENS, node="*", task="*"), "heddle.events.Task.*.*",
                                    p.all_nodes(p.CAPACITY), p.subject(p.IMAGES, node="*", task="*"),
                                    inbox]},
            "allow_responses": True,  # the answers to the agents' image requests
        }
    return {"publish": {"allow": [JOIN_SUBJECT]}, "subscribe": {"allow": [inbox]}}  # joiner


def cluster_auth_config(members: Iterable[Member], *, pid_file: Path | None = None) -> str:
    """The nats-server configuration: an ``authorization`` block with every member (and the
    pid file `heddle nodes revoke` signals to reload it). Values are JSON-quoted so ``$JS``
    subjects are not read as variables."""
    users = [{"user": m.name, "password": m.password, "permissions": member_permissions(m)}
             for m in members]
    names = [u["user"] for u in users]
    if len(set(names)) != len(names):
        raise AccessError("name: two members share a user name")
    head = f"pid_file: {json.dumps(str(pid_file))}\n" if pid_file is not None else ""
    return head + "authorization " + json.dumps({"users": users}, indent=2) + "\n"


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (0600 from the start, never world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
