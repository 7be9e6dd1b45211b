"""NATS authorization for heddle's four roles: framework, application, observer, workshop.

Only ``framework`` may publish ``*.InternalFinalized`` events (and ``InternalFinalize``
commands): the structural defense behind Aggregate.apply()'s provenance check. Each role also
gets the JetStream API subjects its clients really use (stream info, message get, consumer
create/next/delete, acks, flow control) and ``_INBOX.>`` for replies; only ``framework`` may
create or change streams and KV buckets, write snapshots and take finalization leases. A
snapshot stands in for the events it covers (a restored one skips apply()'s provenance
check), so writing one is as privileged as publishing InternalFinalized; the other roles
read snapshots (message get) but cannot write them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from heddle.events.nats_kv import DEFAULT_BUCKET

__all__ = ["ROLES", "mask_secret", "nats_auth_config", "role_permissions"]

ROLES = ("framework", "application", "observer", "workshop")
"""The four roles of ADR-013 (seed, "NATS auth and publish ACLs")."""

_JS_READ = [
    "$JS.API.INFO",
    "$JS.API.STREAM.NAMES",
    "$JS.API.STREAM.LIST",
    "$JS.API.STREAM.INFO.*",
    "$JS.API.STREAM.MSG.GET.*",
    "$JS.API.DIRECT.GET.>",
    "$JS.API.CONSUMER.CREATE.>",
    "$JS.API.CONSUMER.DURABLE.CREATE.>",
    "$JS.API.CONSUMER.INFO.>",
    "$JS.API.CONSUMER.DELETE.>",
    "$JS.API.CONSUMER.MSG.NEXT.>",
    "$JS.ACK.>",
    "$JS.FC.>",
]
_FORGED_FINALIZATION = [
    "heddle.events.*.*.InternalFinalized",
    "heddle.commands.*.*.InternalFinalize",
]


def mask_secret(secret: str) -> str:
    """How a secret is shown after creation: its length only, never any of its characters
    (a prefix or suffix would hand out part of the password)."""
    return f"<{len(secret)} characters, hidden>"


def role_permissions(
    role: str, *, kv_bucket: str = DEFAULT_BUCKET
) -> dict[str, dict[str, list[str]]]:
    """The nats-server ``permissions`` block for one role."""
    if role == "framework":
        return {
            "publish": {
                "allow": [
                    "heddle.>",
                    "$JS.API.>",
                    "$JS.ACK.>",
                    "$JS.FC.>",
                    f"$KV.{kv_bucket}.>",
                    "_INBOX.>",
                ]
            },
            "subscribe": {"allow": ["heddle.>", "_INBOX.>", f"$KV.{kv_bucket}.>"]},
        }
    if role == "application":
        return {
            "publish": {
                "allow": [
                    "heddle.events.>",
                    "heddle.commands.>",
                    "heddle.rejections.>",
                    "heddle.dedup.>",
                    *_JS_READ,
                ],
                "deny": list(_FORGED_FINALIZATION),
            },
            "subscribe": {"allow": ["heddle.>", "_INBOX.>"]},
        }
    if role == "observer":
        return {
            "publish": {
                "allow": ["heddle.events.>", *_JS_READ],
                "deny": list(_FORGED_FINALIZATION),
            },
            "subscribe": {"allow": ["heddle.events.>", "heddle.rejections.>", "_INBOX.>"]},
        }
    if role == "workshop":
        return {
            "publish": {
                "allow": ["heddle.commands.>", *_JS_READ],
                "deny": list(_FORGED_FINALIZATION),
            },
            "subscribe": {"allow": ["heddle.>", "_INBOX.>"]},
        }
    raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")


def nats_auth_config(
    passwords: Mapping[str, str],
    *,
    usernames: Mapping[str, str] | None = None,
    kv_bucket: str = DEFAULT_BUCKET,
) -> str:
    """A nats-server configuration fragment (``authorization { users = [...] }``).

    ``passwords`` maps role -> password for the roles to include; the user name is the role
    unless ``usernames`` says otherwise. Values are JSON-quoted, so ``$JS...`` subjects are
    not read as nats-server variables.
    """
    users = []
    for role, password in passwords.items():
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
        users.append(
            {
                "user": (usernames or {}).get(role, role),
                "password": password,
                "permissions": role_permissions(role, kv_bucket=kv_bucket),
            }
        )
    return "authorization " + json.dumps({"users": users}, indent=2) + "\n"
