"""Joining with a code: a new machine logs in as the ``join`` user (its password is the join
code), asks on `JOIN_SUBJECT` for a node id, and gets that node's own credentials back. The
join service (on the cluster's side, as the control user) adds the node to the roster,
reloads nats-server, checks the new credentials log in, and only then answers. The joining
machine stores them 0600 under its data dir (``credentials.json``); after that it connects
as itself and the code is no longer needed.

A node id that is already a member is refused (revoke it first): a code holder cannot take
over, or lock out, an existing node. A code lets one machine join, within its validity
(`Roster.join_refusal`): the request repeats the code, so a second machine that logged in
with it before the first joined is refused too.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nats
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from heddle.events.jetstream import flush_interest
from heddle.live import protocol as p
from heddle.live.cluster.access import (
    JOIN_SUBJECT,
    JOIN_USER,
    AccessError,
    inbox_prefix,
    write_private,
)
from heddle.live.cluster.roster import NEW_CODE, Roster, normalize_join_code
from heddle.live.cluster.tls import TlsError, client_context, introduce
from heddle.live.cluster.tls import fingerprint as certificate_fingerprint

__all__ = ["CREDENTIALS_FILE", "USER_CREDENTIALS_FILE", "Credentials", "JoinError", "JoinReply", "JoinRequest",
           "join", "serve_joins"]

log = logging.getLogger(__name__)
CREDENTIALS_FILE = "credentials.json"
"""This machine's node (its agent) on a cluster, under the data dir."""
USER_CREDENTIALS_FILE = "user-credentials.json"
"""The person at this machine (`heddle submit`, `status`, `fleet`...), under the data dir."""
JOIN_TIMEOUT_S = 15.0
"""How long `heddle join` waits for the cluster's answer (it reloads nats-server first)."""
RELOAD_TIMEOUT_S = 10.0
"""How long the join service waits for the reloaded server to accept the new credentials."""


class JoinError(RuntimeError):
    """Joining failed: wrong code, unreachable cluster, or a refused node id."""


class JoinRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    node_id: str = Field(pattern=p.ID_PATTERN, min_length=1, max_length=128)
    code: str | None = Field(default=None, max_length=64, repr=False)
    """The code the joiner logged in with (None from clients before single-use codes)."""


class JoinReply(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    ok: bool
    reason: str = ""
    user: str = ""
    password: str = Field(default="", repr=False)


class Credentials(BaseModel):
    """What a joined node, or a person given a login (`heddle users add`), keeps (0600): how
    to connect as itself, and the cluster's TLS certificate it pins (None: the cluster does
    not use TLS)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    nats_url: str
    user: str
    password: str = Field(repr=False)
    tls_cert: str | None = Field(default=None, repr=False)
    role: str = ""
    """A person's role ("user", "observer"); a "user" asks on its own subjects. Empty for a
    node, the control plane and the person at the cluster's machine (who ask on the shared ones)."""
    owner: str = ""
    account: str = ""

    def auth_options(self) -> dict[str, Any]:
        """Keyword arguments for ``nats.connect`` that log in as this member, with its own
        inbox prefix (the only one it may subscribe beneath), over TLS to the pinned
        certificate when the cluster has one."""
        return {"user": self.user, "password": self.password, "inbox_prefix": inbox_prefix(self.user),
                **tls_options(self.tls_cert)}

    def connect_options(self) -> dict[str, Any]:
        """Keyword arguments for ``nats.connect``: where, and as whom."""
        return {"servers": [self.nats_url], **self.auth_options()}

    def save(self, data_dir: Path, file: str = CREDENTIALS_FILE) -> Path:
        path = Path(data_dir).expanduser() / file
        write_private(path, self.model_dump_json(indent=2, exclude_defaults=True) + "\n")
        return path

    @property
    def asker(self) -> str | None:
        """The login a `ControlClient` asks as on its own subjects (a "user"), or None."""
        return self.user if self.role == "user" else None

    @classmethod
    def find(cls, data_dir: Path, file: str = CREDENTIALS_FILE) -> Credentials | None:
        """The stored credentials, or None if there are none (a malformed file is an error)."""
        if not (Path(data_dir).expanduser() / file).exists():
            return None
        return cls.load(data_dir, file)

    @classmethod
    def load(cls, data_dir: Path, file: str = CREDENTIALS_FILE) -> Credentials:
        path = Path(data_dir).expanduser() / file
        try:
            return cls.model_validate_json(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise JoinError(f"{path}: cannot read ({exc.strerror})") from None
        except ValidationError as exc:
            first = exc.errors()[0]
            raise JoinError(f"{path}: field {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


async def _quiet(exc: Exception) -> None:
    """nats-py's default error callback prints a traceback for a refused login; the caller
    reports the refusal itself, in one line."""


def tls_options(certificate: str | None) -> dict[str, Any]:
    """``nats.connect`` arguments for a cluster with this certificate (None: no TLS)."""
    return {} if certificate is None else {"tls": client_context(certificate)}


async def _logs_in(url: str, user: str, password: str, certificate: str | None) -> bool:
    try:
        nc = await nats.connect(url, user=user, password=password, allow_reconnect=False, connect_timeout=2,
                                inbox_prefix=inbox_prefix(user), error_cb=_quiet, **tls_options(certificate))
    except Exception:  # noqa: BLE001 -- nats-py raises several types for a refused login
        return False
    await nc.close()
    return True


async def serve_joins(nc: Any, roster: Roster, url: str,
                      on_joined: Callable[[str], None] | None = None) -> Any:
    """Answer join requests on ``nc`` (connected as the control user); returns the
    subscription. ``url`` is where the new credentials are checked; ``on_joined(node)`` is
    told of each node that joined."""

    async def on_join(msg: Any) -> None:
        nonlocal roster
        try:
            # The file is the truth: `heddle nodes revoke` or `join-code` may have changed it
            # since the last join, and saving a stale copy would undo that.
            roster = roster.reread()
            request = JoinRequest.model_validate_json(msg.data)
            refusal = roster.join_refusal(request.code)
            if refusal is not None:
                raise AccessError(refusal)
            if request.node_id in roster.members:
                raise AccessError(f"node_id: {request.node_id!r} is already a member; "
                                  f"revoke it first (`heddle nodes revoke {request.node_id}`)")
            member = roster.add(request.node_id, "agent")
        except (ValidationError, AccessError) as exc:
            await msg.respond(JoinReply(ok=False, reason=str(exc)).model_dump_json().encode())
            return
        # Used up now; its password stays until the next code, so this joiner's connection
        # is not closed by the reload before it reads the answer.
        roster.join_used_by = member.name
        roster.save()
        roster.reload_server()
        async with asyncio.timeout(RELOAD_TIMEOUT_S):  # answer once the server knows the node
            while not await _logs_in(url, member.name, member.password, roster.certificate):
                await asyncio.sleep(0.05)
        log.info("node %s joined", member.name)
        await msg.respond(JoinReply(ok=True, user=member.name, password=member.password).model_dump_json().encode())
        if on_joined is not None:
            on_joined(member.name)

    subscription = await nc.subscribe(JOIN_SUBJECT, cb=on_join)
    await flush_interest(nc)  # listening before the caller announces the join code
    return subscription


async def join(url: str, code: str, node_id: str, data_dir: Path, fingerprint: str | None = None) -> Credentials:
    """Exchange a join code for this node's credentials and store them; returns them.

    A cluster with TLS is pinned by its certificate: ``fingerprint`` (from its mDNS
    announcement) must match the one the server presents, or nothing is sent; without one
    the certificate is trusted on first use (the caller shows its fingerprint)."""
    try:
        intro = await asyncio.to_thread(introduce, url)
    except TlsError as exc:
        raise JoinError(f"cannot join {url}: {exc}") from None
    certificate = intro.certificate
    if certificate is not None and fingerprint is not None and certificate_fingerprint(certificate) != fingerprint:
        raise JoinError(f"cannot join {url}: its certificate (fingerprint {certificate_fingerprint(certificate)}) "
                        f"is not the one the cluster announced ({fingerprint}); another machine may be answering there")
    try:
        nc = await nats.connect(url, user=JOIN_USER, password=normalize_join_code(code), allow_reconnect=False,
                                connect_timeout=3, inbox_prefix=inbox_prefix(JOIN_USER), error_cb=_quiet,
                                **tls_options(certificate))
    except Exception as exc:  # noqa: BLE001
        reason = (f"the join code is wrong (or was replaced by a newer one); {NEW_CODE}"
                  if "authorization" in str(exc).lower() else str(exc) or type(exc).__name__)
        raise JoinError(f"cannot join {url}: {reason}") from None
    try:
        request = JoinRequest(node_id=node_id, code=normalize_join_code(code))
        answer = await nc.request(JOIN_SUBJECT, request.model_dump_json().encode(),
                                  timeout=JOIN_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001
        raise JoinError(f"cannot join {url}: no answer from the cluster ({type(exc).__name__})") from None
    finally:
        await nc.close()
    try:
        reply = JoinReply.model_validate(json.loads(answer.data))
    except (ValueError, ValidationError) as exc:
        raise JoinError(f"cannot join {url}: malformed answer ({exc})") from None
    if not reply.ok:
        raise JoinError(f"cannot join {url}: {reply.reason}")
    credentials = Credentials(nats_url=url, user=reply.user, password=reply.password, tls_cert=certificate)
    credentials.save(data_dir)
    return credentials
