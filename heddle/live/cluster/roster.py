"""The cluster's roster: every member's credentials, kept 0600 under the data dir, and the
nats-server configuration generated from it. Changing the roster rewrites the config and
tells the running server to reload it (SIGHUP to the pid in its pid file): a revoked node's
connection is closed by the server at once, and its password no longer logs in.

A join code lets one machine join, within `JOIN_CODE_VALID_S` of being made: the join service
marks it used (``join.used_by``) and refuses it afterwards, and refuses it once expired.

Layout under ``<data dir>/cluster/``: ``roster.json`` (members and the join code),
``nats-auth.conf`` (what nats-server reads, ``-c``), ``nats.pid`` (written by the server),
``tls/`` (the cluster's certificate and key, when it uses TLS: the config then requires it),
``users.json`` (each user login's owner and account, no secret: the control plane checks a
user's tasks against it), ``address`` (the NATS URL other machines reach, written by
`heddle up`: the logins `heddle users add` writes name it).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from heddle.live.cluster.access import (
    CONTROL_USER,
    JOIN_USER,
    AccessError,
    Member,
    cluster_auth_config,
    new_secret,
    write_private,
)
from heddle.live.cluster.tls import fingerprint as certificate_fingerprint
from heddle.live.cluster.tls import server_tls_config

__all__ = ["JOIN_CODE_ALPHABET", "JOIN_CODE_VALID_S", "SERVER_NAME", "Roster", "new_join_code"]

SERVER_NAME = "nats-server"
"""The process name `Roster.reload_server` signals."""

JOIN_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
"""No 0/O, 1/I/L or U: a code read aloud or copied from a screen is typed right."""
JOIN_CODE_LENGTH = 12
"""12 characters of 30: ~59 bits, far beyond guessing over a LAN while the code is valid
(one join, within `JOIN_CODE_VALID_S`)."""
NEW_CODE = "make a new one with `heddle join-code` on the cluster's machine"
"""What a refused joiner is told to do."""
JOIN_CODE_VALID_S = 600.0
"""How long a join code works (10 min): time to walk to the other machine and type it, short
enough that a code seen on a screen or in a chat is useless by the next day."""


def new_join_code() -> str:
    raw = "".join(secrets.choice(JOIN_CODE_ALPHABET) for _ in range(JOIN_CODE_LENGTH))
    return "-".join(raw[i:i + 4] for i in range(0, JOIN_CODE_LENGTH, 4))


def normalize_join_code(code: str) -> str:
    """What the user typed, as the server stores it (case and dashes forgiven)."""
    raw = "".join(ch for ch in code.upper() if ch not in "- ")
    return "-".join(raw[i:i + 4] for i in range(0, len(raw), 4))


@dataclass(slots=True)
class Roster:
    directory: Path
    members: dict[str, Member] = field(default_factory=dict)
    join_expires_at: float = 0.0
    """Unix time the join code stops working."""
    join_used_by: str | None = None
    """The node that joined with the current code (None: not used yet)."""

    @property
    def file(self) -> Path:
        return self.directory / "roster.json"

    @property
    def config_file(self) -> Path:
        return self.directory / "nats-auth.conf"

    @property
    def users_file(self) -> Path:
        return self.directory / "users.json"

    @property
    def pid_file(self) -> Path:
        return self.directory / "nats.pid"

    @property
    def tls_dir(self) -> Path:
        """Where `heddle up` keeps the cluster's certificate (``server.pem``) and key."""
        return self.directory / "tls"

    @property
    def address(self) -> str | None:
        """The NATS URL other machines reach the cluster at (as `heddle up` last announced it)."""
        try:
            return (self.directory / "address").read_text(encoding="utf-8").strip() or None
        except OSError:
            return None

    def remember_address(self, url: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "address").write_text(url + "\n", encoding="utf-8")

    @property
    def certificate(self) -> str | None:
        """The cluster's TLS certificate (PEM), or None if it has none (no TLS)."""
        try:
            return (self.tls_dir / "server.pem").read_text(encoding="ascii")
        except OSError:
            return None

    @classmethod
    def load(cls, data_dir: Path) -> Roster:
        """The roster under ``data_dir``; a new one (control user and join code) if none."""
        roster = cls(Path(data_dir).expanduser() / "cluster")
        if not roster.file.exists():
            roster.members[CONTROL_USER] = Member(CONTROL_USER, "control", new_secret())
            roster.rotate_join_code()
            roster.save()
            return roster
        try:
            raw = json.loads(roster.file.read_text(encoding="utf-8"))
            for entry in raw["members"]:
                member = Member(entry["name"], entry["role"], entry["password"], entry.get("owner", ""),
                                entry.get("account", ""))
                roster.members[member.name] = member
            join = raw.get("join", {})  # absent in a roster from before codes expired: expired
            roster.join_expires_at = float(join.get("expires_at", 0.0))
            roster.join_used_by = join.get("used_by")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise AccessError(f"{roster.file}: not a heddle roster ({exc})") from None
        return roster

    def reread(self) -> Roster:
        """The roster as its file says now (another command may have changed it)."""
        return Roster.load(self.directory.parent)

    def save(self) -> None:
        members = [{"name": m.name, "role": m.role, "password": m.password}
                   | ({"owner": m.owner} if m.owner else {}) | ({"account": m.account} if m.account else {})
                   for m in self.members.values()]
        join = {"expires_at": self.join_expires_at, "used_by": self.join_used_by}
        write_private(self.file, json.dumps({"members": members, "join": join}, indent=2) + "\n")
        users = {m.name: {"owner": m.owner, "account": m.account} for m in self.members.values() if m.role == "user"}
        write_private(self.users_file, json.dumps({"users": users}, indent=2) + "\n")
        config = cluster_auth_config(self.members.values(), pid_file=self.pid_file)
        if self.certificate is not None:
            config += server_tls_config(self.tls_dir / "server.pem", self.tls_dir / "server.key")
        write_private(self.config_file, config)

    @property
    def join_code(self) -> str:
        return self.members[JOIN_USER].password

    @property
    def control(self) -> Member:
        return self.members[CONTROL_USER]

    def add(self, name: str, role: str, *, owner: str = "", account: str = "") -> Member:
        """A new member with a fresh password (an existing one of that name is replaced)."""
        if name in (CONTROL_USER, JOIN_USER):
            raise AccessError(f"name: {name!r} is reserved")
        member = Member(name, role, new_secret(), owner, account)
        self.members[name] = member
        return member

    def revoke(self, name: str) -> Member:
        member = self.members.get(name)
        if member is None or name in (CONTROL_USER, JOIN_USER):
            known = ", ".join(sorted(n for n in self.members if n not in (CONTROL_USER, JOIN_USER))) or "none"
            raise AccessError(f"node: no member {name!r} to revoke (members: {known})")
        return self.members.pop(name)

    @property
    def fingerprint(self) -> str:
        """A public fingerprint of this cluster's identity (shown in its mDNS announcement):
        its TLS certificate's, which joining machines check; without TLS a hash of the
        control user's secret, which cannot be turned back into it."""
        if self.certificate is not None:
            return certificate_fingerprint(self.certificate)
        digest = hashlib.sha256(b"heddle-cluster-identity:" + self.control.password.encode()).hexdigest()
        return ":".join(digest[i:i + 4] for i in range(0, 16, 4))

    def rotate_join_code(self, valid_s: float = JOIN_CODE_VALID_S) -> str:
        """A new join code, valid for one join within ``valid_s`` seconds; the old one stops
        working (its open connections are closed when the server reloads)."""
        if not valid_s > 0:
            raise AccessError(f"valid_s: a join code must be valid for some time, got {valid_s!r}")
        self.members[JOIN_USER] = Member(JOIN_USER, "joiner", new_join_code())
        self.join_expires_at = time.time() + valid_s
        self.join_used_by = None
        return self.join_code

    def join_refusal(self, code: str | None) -> str | None:
        """Why a join with ``code`` (as typed; None: not sent, an older client that logged in
        with it) cannot go ahead now, in one line, or None."""
        again = NEW_CODE
        if code is not None and not secrets.compare_digest(normalize_join_code(code), self.join_code):
            return f"the join code is wrong (or was replaced by a newer one); {again}"
        if self.join_used_by is not None:
            return f"the join code was already used (each code lets one machine join); {again}"
        if time.time() >= self.join_expires_at:
            return f"the join code has expired; {again}"
        return None

    def reload_server(self) -> bool:
        """Ask the running nats-server to re-read the config; False if none is running. The
        pid file outlives a server that was killed, and its pid may belong to another process
        since (SIGHUP ends most): only a process named nats-server gets the signal."""
        try:
            server = psutil.Process(int(self.pid_file.read_text().strip()))
            if server.name() != SERVER_NAME:
                return False
            server.send_signal(signal.SIGHUP)
        except (OSError, ValueError, psutil.Error):
            return False
        return True
