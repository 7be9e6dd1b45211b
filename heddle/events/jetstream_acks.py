"""AckRouter: JetStream publishes of one connection and the routing of their acks.

A JetStream publish is acknowledged by a message to its reply subject. nats-py's
``nc.request`` gives each publish its own future, done-callback and ``wait_for`` timer, and
``js.publish`` then builds a full ``PubAck``: per event that costs more client CPU than the
append itself. The router instead subscribes once to ``<inbox>.*`` (a fresh inbox beneath the
connection's own prefix, the only place a cluster member may subscribe), hands out reply
subjects ending in a counter token, and calls ``on_ack(tag, msg)`` for each ack: a plain
function call, so a batch of thousands of appends needs no future per event.

``publish`` writes the HPUB frame itself when the client allows it: nats-py re-validates and
re-encodes a header dict on every publish (measured 13 us per publish with our three CAS
headers vs 4.5 us with none, nats-py 2.16 on the 2-core dev machine). It uses the same
internal calls as ``Client._send_publish`` (``_send_command`` then a flusher kick), checked
once per connection; any client without them, a connection that is not up, a payload over
the server's limit or a header value nats-py would rewrite all take ``nc.publish`` instead.

A publish the server refuses for permissions gets no ack; the server says so only in an
``-ERR`` that nats-py hands to the connection's error callback. ``permission_watch`` wraps
that callback once per connection (keeping the user's callback) so the router can fail
the refused publish at once with PublishPermissionError instead of after its ack timeout.
``write_pending`` and ``publish_now`` put messages on the socket in the caller's turn of the
loop rather than at nats-py's flusher's next one (``_pending``, ``_pending_data_size``,
``_transport``: the flusher's own buffer and transport). Every private attribute this module
touches (those, ``_send_command``/``_flush_pending`` and ``_error_cb``) is checked for before
use; without them the slower public path is taken. nats-py is pinned below 2.17 for them.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import api
from nats.protocol.command import pub_cmd

from heddle.events.errors import PublishPermissionError
from heddle.events.jetstream import flush_interest

__all__ = [
    "NO_RESPONDERS_STATUS",
    "AckCallback",
    "AckRouter",
    "PermissionWatch",
    "no_responders",
    "permission_watch",
    "publish_now",
    "publish_request",
    "raise_if_refused",
    "resolve_future",
    "write_pending",
]

T = TypeVar("T")

AckCallback = Callable[[Any, "Msg | Exception"], None]
"""Called as ``on_ack(tag, msg)`` in the connection's subscription task, or as
``on_ack(tag, PublishPermissionError)`` when the server refused the publish; must not block."""
DenialListener = Callable[[str, str], None]
"""Called as ``listener(subject, server_message)``; ``subject`` is lower-cased, because
nats-py lower-cases the server's whole error line."""

NO_RESPONDERS_STATUS = "503"
"""Status header of the server's reply when nothing subscribes to a published subject."""

_DENIED_PUBLISH = re.compile(r'permissions violation for publish to "([^"]+)"')


class PermissionWatch:
    """The publish refusals one connection's server reports, fanned out to listeners."""

    def __init__(self) -> None:
        self._listeners: list[DenialListener] = []

    def add(self, listener: DenialListener) -> None:
        self._listeners.append(listener)

    def remove(self, listener: DenialListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def notify(self, server_message: str) -> None:
        match = _DENIED_PUBLISH.search(server_message)
        if match is not None:
            for listener in list(self._listeners):
                listener(match.group(1), server_message)


_WATCHES: weakref.WeakKeyDictionary[NATS, PermissionWatch] = weakref.WeakKeyDictionary()


def permission_watch(nc: NATS) -> PermissionWatch | None:
    """The connection's PermissionWatch, installed on first use by wrapping its error
    callback (the user's callback still gets every error). None when this nats-py keeps
    no ``_error_cb``: refused publishes then end in their ack timeout, as they used to."""
    watch = _WATCHES.get(nc)
    if watch is not None:
        return watch
    original = getattr(nc, "_error_cb", None)
    if not callable(original):
        return None
    watch = PermissionWatch()

    async def on_error(exc: Exception) -> None:
        watch.notify(str(exc))
        await original(exc)

    nc._error_cb = on_error
    _WATCHES[nc] = watch
    return watch


def matching_subject(denied: str, subjects: set[str]) -> str | None:
    """The one subject among ``subjects`` that the lower-cased ``denied`` names, or None if
    none does or several differ only in case (then which one was refused is unknowable,
    and the affected publishes are left to their timeout)."""
    hits = {subject for subject in subjects if subject.lower() == denied}
    return hits.pop() if len(hits) == 1 else None


async def raise_if_refused(nc: NATS, subject: str, operation: Awaitable[T]) -> T:
    """Await ``operation`` (which publishes to ``subject``), but raise PublishPermissionError
    as soon as the server refuses that publish instead of waiting for the request's timeout."""
    watch = permission_watch(nc)
    if watch is None:
        return await operation
    denied: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def listener(refused: str, server_message: str) -> None:
        if not denied.done() and matching_subject(refused, {subject}) is not None:
            denied.set_result(server_message)

    watch.add(listener)
    task = asyncio.ensure_future(operation)
    try:
        await asyncio.wait({task, denied}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        raise PublishPermissionError(subject, denied.result())
    finally:
        watch.remove(listener)
        if not task.done():
            task.cancel()


class AckRouter:
    """Routes acks arriving on one wildcard inbox to per-publish callbacks."""

    def __init__(self, nc: NATS, ack_timeout_s: float) -> None:
        self._nc = nc
        self.ack_timeout_s = ack_timeout_s
        # (deadline, token, future) in arming order; with one timeout per router the
        # deadlines are sorted, so one timer for the front entry serves them all.
        self._deadlines: deque[tuple[float, str, asyncio.Future[Msg]]] = deque()
        self._sweeper: asyncio.TimerHandle | None = None
        self._prefix = ""
        # token -> (on_ack, tag, subject published to)
        self._routes: dict[str, tuple[AckCallback, Any, str]] = {}
        self._tokens = itertools.count()
        self._lock = asyncio.Lock()
        self.raw_writes = all(
            callable(getattr(nc, name, None)) for name in ("_send_command", "_flush_pending")
        ) and hasattr(nc, "_flush_queue")
        """True: publish() writes HPUB frames itself (see the module docstring)."""

    async def start(self) -> None:
        """Subscribe once; returns when the server has registered the interest, since the
        acks come from the server's JetStream, i.e. from another client's point of view."""
        if self._prefix:
            return
        async with self._lock:
            if self._prefix:
                return
            # Beneath the connection's inbox prefix: a cluster member may subscribe only there
            # (heddle.live.cluster.access); an agent's reports under `_INBOX.<random>` got no acks.
            prefix = self._nc.new_inbox() + "."
            watch = permission_watch(self._nc)
            if watch is not None:
                watch.add(self._on_denied)
            await self._nc.subscribe(prefix + "*", cb=self._on_reply)
            await flush_interest(self._nc)
            self._prefix = prefix

    def route(self, on_ack: AckCallback, tag: Any, subject: str = "") -> tuple[str, str]:
        """A fresh (token, reply subject); the ack to that subject calls ``on_ack(tag, msg)``
        once. With the ``subject`` about to be published to, a refusal of that publish
        calls ``on_ack(tag, PublishPermissionError)`` instead. Call after ``start()``."""
        token = str(next(self._tokens))
        self._routes[token] = (on_ack, tag, subject)
        return token, self._prefix + token

    def arm_timeout(self, token: str, future: asyncio.Future[Msg]) -> None:
        """Fail ``future`` with nats.errors.TimeoutError if no ack came ``ack_timeout_s``
        from now. One shared timer instead of a ``wait_for``/``asyncio.timeout`` per
        publish: with hundreds of appends in flight the per-call timers cost a fifth of
        the client's CPU (heap pushes and cancellations)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ack_timeout_s
        self._deadlines.append((deadline, token, future))
        if self._sweeper is None:
            self._sweeper = loop.call_at(deadline, self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._deadlines:
            deadline, token, future = self._deadlines[0]
            if not future.done() and deadline > now:
                self._sweeper = loop.call_at(deadline, self._sweep)
                return
            self._deadlines.popleft()
            if not future.done():
                self._routes.pop(token, None)
                future.set_exception(nats.errors.TimeoutError())

    def forget(self, token: str) -> None:
        """Drop a route whose ack will not be waited for (timed out or cancelled)."""
        self._routes.pop(token, None)

    async def publish(
        self, subject: str, payload: bytes, reply: str, headers: dict[str, str]
    ) -> None:
        """``nc.publish(subject, payload, reply=reply, headers=headers)``, with the header
        block encoded here when possible. Subjects must already be valid (ours are built
        from validated ids)."""
        nc = self._nc
        if not self.raw_writes or not nc.is_connected or len(payload) > nc.max_payload:
            await nc.publish(subject, payload, reply=reply, headers=headers)
            return
        lines = ["NATS/1.0\r\n"]
        for key, value in headers.items():
            # nats-py strips values and turns CR/LF into spaces: such values go its way.
            if not value.isprintable() or value.strip() != value:
                await nc.publish(subject, payload, reply=reply, headers=headers)
                return
            lines.append(f"{key}: {value}\r\n")
        lines.append("\r\n")
        header_block = "".join(lines).encode()
        frame = (
            f"HPUB {subject} {reply} {len(header_block)} "
            f"{len(header_block) + len(payload)}\r\n".encode()
            + header_block
            + payload
            + b"\r\n"
        )
        nc.stats["out_msgs"] += 1
        nc.stats["out_bytes"] += len(payload)
        await nc._send_command(frame)
        if nc._flush_queue is not None and nc._flush_queue.empty():
            await nc._flush_pending()

    @property
    def pending(self) -> int:
        """Routes still waiting for their ack."""
        return len(self._routes)

    async def _on_reply(self, msg: Msg) -> None:
        route = self._routes.pop(msg.subject[len(self._prefix) :], None)
        if route is not None:
            route[0](route[1], msg)

    def _on_denied(self, denied: str, server_message: str) -> None:
        # Rare (a misconfigured role or a forgery attempt): a scan of the routes is fine.
        subject = matching_subject(denied, {route[2] for route in self._routes.values()})
        if subject is None:
            return
        for token in [t for t, route in self._routes.items() if route[2] == subject]:
            on_ack, tag, _ = self._routes.pop(token)
            on_ack(tag, PublishPermissionError(subject, server_message))


def resolve_future(future: asyncio.Future[Msg], msg: Msg | Exception) -> None:
    """An AckCallback for a single awaited publish (the tag is its future)."""
    if not future.done():
        if isinstance(msg, Exception):
            future.set_exception(msg)
        else:
            future.set_result(msg)


def write_pending(nc: NATS) -> None:
    """Write what the connection has buffered to its socket now, instead of when nats-py's
    flusher task next runs: a turn of the event loop later, ~1-2 ms on a busy one (the
    flusher then finds nothing to write). For messages on a request's way to its first
    token. Uses the flusher's own attributes (``_pending``, ``_pending_data_size``,
    ``_transport``), checked for; without them, or while the connection is not up (nats-py
    keeps the buffer for the reconnect), the flusher writes as usual."""
    if not _writable(nc) or not nc._pending:
        return
    pending, nc._pending, nc._pending_data_size = nc._pending, [], 0
    nc._transport.writelines(pending)


def _writable(nc: NATS) -> bool:
    """Has the connection the flusher's buffer and transport (`write_pending`), and is it up?"""
    return (isinstance(getattr(nc, "_pending", None), list)
            and getattr(nc, "_transport", None) is not None and nc.is_connected)


def no_responders(msg: Msg) -> bool:
    """Is ``msg`` the server's answer that nothing subscribes to the subject a request went to?"""
    return bool(msg.headers) and msg.headers.get(api.Header.STATUS) == NO_RESPONDERS_STATUS


async def publish_request(router: AckRouter, nc: NATS, subject: str, data: bytes) -> asyncio.Future[Msg]:
    """Publish a request whose answer ``router`` routes (started before); returns the future
    of that answer: the reply, or nats.errors.TimeoutError (none within the router's
    timeout), NoRespondersError (nothing listens on ``subject``), PublishPermissionError
    or what the publish raised. Unlike ``nc.request``, the caller is not held until the
    answer: it may `write_pending` first, or go on and read the answer in a callback."""
    future: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()
    token, reply = router.route(_resolve_reply, future, subject)
    router.arm_timeout(token, future)
    future.add_done_callback(lambda _: router.forget(token))
    try:
        await nc.publish(subject, data, reply=reply)
    except Exception as exc:  # noqa: BLE001 - the caller hears it from the future
        resolve_future(future, exc)
    return future


def _resolve_reply(future: asyncio.Future[Msg], msg: Msg | Exception) -> None:
    if not isinstance(msg, Exception) and no_responders(msg):
        msg = nats.errors.NoRespondersError()
    resolve_future(future, msg)


def publish_now(nc: NATS, subject: str, data: bytes, *, write: bool = True) -> bool:
    """Publish ``data`` on ``subject`` from code that cannot await, and (``write``) write it
    to the socket at once: ``nc.publish`` is a coroutine, and a task to run it costs a turn
    of the loop, then the flusher another. The frame is nats-py's own (``pub_cmd``),
    appended behind whatever the connection holds, so messages keep their order (several
    published with ``write`` False go out in one write: `write_pending`). False, having
    done nothing, when the client lacks the attributes `write_pending` uses, is not
    connected or draining, or ``data`` is over the server's limit: publish the usual way."""
    if not _writable(nc) or nc.is_draining_pubs or len(data) > nc.max_payload:
        return False
    frame = pub_cmd(subject, "", data)
    nc._pending.append(frame)
    nc._pending_data_size += len(frame)
    nc.stats["out_msgs"] += 1
    nc.stats["out_bytes"] += len(data)
    if write:
        write_pending(nc)
    return True
