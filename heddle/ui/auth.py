"""Who may use the UI and what they may do.

Without tokens (the default, bound to 127.0.0.1) everyone who reaches the page is at this
machine and may do everything the settings allow. With tokens, a person logs in once with
theirs (a cookie holds a hash of it, never the token) or sends ``Authorization: Bearer``:
``--token`` lets them drain nodes, ``--viewer-token`` only lets them look.

Every request that changes something (POST) must carry the ``X-Heddle-UI`` header, which the
page's own script sets and a form on another site cannot: no cross-site request forgery.
Bound to loopback, requests naming another host are refused (no DNS rebinding).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any
from urllib.parse import quote

from heddle.ui.settings import UiSettings, is_loopback

__all__ = ["COOKIE", "CSRF_HEADER", "Access", "AccessMiddleware"]

COOKIE = "heddle_ui"
CSRF_HEADER = "x-heddle-ui"
OPERATOR, VIEWER = "operator", "viewer"
OPEN_PATHS = ("/login", "/static/")
"""Reachable without logging in: the login form and the files it needs."""
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def _digest(token: str) -> str:
    return hashlib.sha256(("heddle-ui:" + token).encode()).hexdigest()


class Access:
    def __init__(self, settings: UiSettings) -> None:
        self.tokens = {role: _digest(t) for role, t in ((OPERATOR, settings.token),
                                                         (VIEWER, settings.viewer_token)) if t}
        self.allow_drain = settings.allow_drain
        self.check_host = is_loopback(settings.host)

    @property
    def open(self) -> bool:
        return not self.tokens

    def role_of(self, token: str | None = None, digest: str | None = None) -> str | None:
        """The role a token (or a cookie's digest) logs in as; None if it matches none."""
        if self.open:
            return OPERATOR
        if token is not None:
            digest = _digest(token)
        if not digest:
            return None
        for role, known in self.tokens.items():
            if hmac.compare_digest(known, digest):
                return role
        return None

    def cookie_for(self, token: str) -> str | None:
        return _digest(token) if self.role_of(token=token) else None

    def may_drain(self, role: str | None) -> bool:
        return self.allow_drain and role == OPERATOR


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _host_name(header: str) -> str:
    """The host of a Host header, without its port ("[::1]:8737" -> "[::1]")."""
    if header.startswith("["):
        return header.split("]")[0] + "]"
    return header.rsplit(":", 1)[0]


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


class AccessMiddleware:
    """Pure ASGI middleware (streams such as server-sent events pass through untouched)."""

    def __init__(self, app: Any, access: Access, extra_headers: list[tuple[bytes, bytes]] = ()) -> None:
        self.app = app
        self.access = access
        self.extra_headers = list(extra_headers)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        path = scope["path"]
        if self.access.check_host:
            host = _host_name(headers.get("host", ""))
            if host not in LOOPBACK_HOSTS:
                await _plain(send, 421, f"this UI answers only on 127.0.0.1, not {host!r}")
                return
        if scope["method"] == "POST" and headers.get(CSRF_HEADER) != "1" and path != "/login":
            await _plain(send, 403, "refused: a change must come from the heddle page itself")
            return
        bearer = headers.get("authorization", "")
        role = (self.access.role_of(token=bearer[7:]) if bearer.lower().startswith("bearer ")
                else self.access.role_of(digest=_cookie(headers.get("cookie", ""), COOKIE)))
        if role is None and not path.startswith(OPEN_PATHS):
            if scope["method"] == "GET" and "text/html" in headers.get("accept", ""):
                target = path + ("?" + scope["query_string"].decode() if scope.get("query_string") else "")
                await _redirect(send, "/login?next=" + quote(target, safe=""))
            else:
                await _plain(send, 401, "log in first: this UI needs a token")
            return
        scope.setdefault("state", {})["role"] = role

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.extra_headers]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _plain(send: Any, status: int, text: str) -> None:
    body = json.dumps({"error": text}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Any, location: str) -> None:
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", location.encode("latin-1")), (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})
