"""Talking to a running control plane: what `heddle submit / status / fleet / drain /
cancel` and the tests use. Each call is one NATS request (a large submission is split into
several with the same job id: a retried part is accepted once)."""

from __future__ import annotations

import asyncio
import getpass
import os
import re
import time
from collections.abc import Sequence

import nats
import nats.errors
from nats.aio.client import Client as NATS

from heddle.live import protocol as wire
from heddle.live.control.messages import (
    CancelRequest,
    DrainRequest,
    FleetReply,
    QueryRequest,
    Reply,
    StatusReply,
    SubmitRequest,
    SubmitTask,
    decode_reply,
    encode_message,
)
from heddle.live.control.submission import SubmittedTask

__all__ = ["DEFAULT_NATS_URL", "ControlClient", "ControlError", "new_job_id"]

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
"""Where `heddle up` listens by default, and where the client commands look without a URL."""
REQUEST_TIMEOUT_S = 10.0
"""A submission waits for its events to be durable; the server may be busy."""
SUBMIT_CHUNK = 400
"""Tasks per submit request (a TaskSpec is well under 1 KB; the limit is 512 KiB)."""
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_REFUSED = re.compile(r'permissions violation for publish to "([^"]+)"', re.IGNORECASE)


class ControlError(RuntimeError):
    """The control plane refused a request or cannot be reached; the CLI prints it."""


def new_job_id(stem: str) -> str:
    """A fresh job id from a file name: ``<stem>-<8 hex>``."""
    return f"{_UNSAFE.sub('_', stem)[:40] or 'job'}-{os.urandom(4).hex()}"


class ControlClient:
    """``asker``: a cluster user's login name; its submit, status and cancel then go to its own
    subjects (``heddle.v1.user.<asker>.<what>``, the only ones its login may use) and are
    answered for its own jobs only."""

    def __init__(self, nc: NATS, sender: str | None = None, asker: str | None = None) -> None:
        self.nc = nc
        self.sender = sender or asker or _UNSAFE.sub("_", getpass.getuser()) or "user"
        self.asker = asker
        self.seq = 0
        self._refusals: dict[str, asyncio.Future[str]] = {}  # subject -> the server's refusal

    @classmethod
    async def connect(cls, url: str, *, asker: str | None = None, **auth) -> ControlClient:
        """``auth``: ``nats.connect`` arguments that log in (`Credentials.auth_options`)."""
        refusals: dict[str, asyncio.Future[str]] = {}

        async def on_error(exc: Exception) -> None:
            # The server refuses what a login may not publish with an error, not a reply:
            # end the request waiting on it now rather than at its timeout.
            match = _REFUSED.search(str(exc))
            waiting = refusals.get(match.group(1).lower()) if match else None
            if waiting is not None and not waiting.done():
                waiting.set_result(str(exc).strip().strip("'"))

        try:
            # max_reconnect_attempts=1: nats-py 2.16 otherwise retries a first connect that is
            # refused 60 times, 2 s apart, allow_reconnect or not: `heddle status` with no
            # cluster sat silent for two minutes before it said so
            nc = await nats.connect(url, connect_timeout=3, allow_reconnect=False, max_reconnect_attempts=1,
                                    error_cb=on_error, **auth)
        except Exception as exc:  # noqa: BLE001 - every connect failure reads the same to a user
            raise ControlError(f"cannot reach NATS at {url}: {exc} (is `heddle up` running?)") from None
        client = cls(nc, asker=asker)
        client._refusals = refusals
        return client

    def _subject(self, shared: str, what: str) -> str:
        return shared if self.asker is None else wire.subject(wire.USER, user=self.asker, what=what)

    async def close(self) -> None:
        await self.nc.close()

    def _fields(self) -> dict:
        self.seq += 1
        return {"sender": self.sender, "seq": self.seq, "sent_at": time.time()}

    async def _request(self, subject: str, message, reply_type):
        refused = self._refusals[subject.lower()] = asyncio.get_running_loop().create_future()
        asking = asyncio.ensure_future(self.nc.request(subject, encode_message(message), timeout=REQUEST_TIMEOUT_S))
        try:
            await asyncio.wait({asking, refused}, return_when=asyncio.FIRST_COMPLETED)
            if refused.done():
                asking.cancel()
                raise ControlError(f"the cluster refused this login: {refused.result()}")
            msg = asking.result()
        except nats.errors.NoRespondersError:
            raise ControlError("no control plane is listening (start one with `heddle up` or "
                               "`heddle scheduler`)") from None
        except nats.errors.TimeoutError:
            raise ControlError(f"the control plane did not answer within {REQUEST_TIMEOUT_S:g} s") from None
        finally:
            self._refusals.pop(subject.lower(), None)
        try:
            return decode_reply(msg.data, reply_type)
        except wire.ProtocolError:
            reply = decode_reply(msg.data, Reply)  # a refusal comes back as a Reply
            raise ControlError(reply.error or "refused") from None

    async def _checked(self, subject: str, message) -> Reply:
        reply = await self._request(subject, message, Reply)
        if not reply.ok:
            raise ControlError(reply.error or "refused")
        return reply

    async def submit(self, job_id: str, tasks: Sequence[SubmittedTask], source: str = "") -> int:
        """Send every task of a job; returns how many were new to the control plane."""
        accepted = 0
        for start in range(0, len(tasks), SUBMIT_CHUNK):
            chunk = [
                SubmitTask(task=wire.TaskSpec.from_task(t.task), executor=t.executor,
                           after=t.after, timeout_s=t.timeout_s, payload=t.payload)
                for t in tasks[start : start + SUBMIT_CHUNK]
            ]
            request = SubmitRequest(**self._fields(), job_id=job_id, owner=self.sender,
                                    source=source, tasks=chunk)
            reply = await self._checked(self._subject(wire.SUBMIT, "submit"), request)
            accepted += int(reply.detail.get("accepted", 0))
        return accepted

    async def status(self, job_id: str | None = None, limit: int = 200) -> StatusReply:
        return await self._request(self._subject(wire.subject(wire.QUERY, what="status"), "status"),
                                   QueryRequest(**self._fields(), job_id=job_id, limit=limit), StatusReply)

    async def fleet(self, since_unix_s: float | None = None) -> FleetReply:
        """The nodes; with `since_unix_s`, the reply's fleet file has each node's core speed
        as its burn steps measured it since then (docs/fidelity.md)."""
        return await self._request(wire.subject(wire.QUERY, what="fleet"),
                                   QueryRequest(**self._fields(), since_unix_s=since_unix_s), FleetReply)

    async def cancel(self, task_id: str) -> None:
        await self._checked(self._subject(wire.CANCEL, "cancel"), CancelRequest(**self._fields(), task_id=task_id))

    async def drain(self, node_id: str, deadline_s: float | None = None) -> None:
        await self._checked(wire.DRAIN, DrainRequest(**self._fields(), node_id=node_id, deadline_s=deadline_s))
