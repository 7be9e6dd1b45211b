"""A task's images, fetched before its backend runs (protocol 1.11).

The task's payload names its images by reference (``images``: ``sha256``, ``media_type``,
``bytes``); the gateway that took the request holds the bytes while it lasts and hands them, a
piece at a time (`ImageRequest` on ``heddle.v1.images.<node>.<task>``), to the node the task
was placed on. Each image is checked against its digest; the payload's messages then carry the
images themselves (``[{"media_type", "data"}]``, base64) for the backend
(heddle.live.backends.images). The bytes stay in this attempt's memory: never in a report or
the event log.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import Callable
from typing import Any

import nats.errors

from heddle.live import protocol as p
from heddle.live.agent.executors import ExecutionError
from heddle.live.backends.images import IMAGES_KEY

__all__ = ["FETCH_TIMEOUT_S", "has_image_refs", "with_images"]

FETCH_TIMEOUT_S = 10.0
"""How long one piece of an image is waited for (the gateway may first wait for the placement)."""


def has_image_refs(assignment: p.Assignment) -> bool:
    """A chat whose payload names images (the gateway's: heddle.gateway.images)."""
    payload = assignment.payload
    return isinstance(payload, dict) and bool(payload.get(IMAGES_KEY)) and isinstance(payload.get("messages"), list)


def _refs(payload: dict[str, Any]) -> list[dict[str, Any]]:
    refs = payload[IMAGES_KEY]
    good = isinstance(refs, list) and all(
        isinstance(r, dict) and isinstance(r.get("sha256"), str) and isinstance(r.get("media_type"), str)
        and isinstance(r.get("bytes"), int) and r["bytes"] > 0 for r in refs)
    if not good:
        raise ExecutionError("llm: payload images must be a list of {sha256, media_type, bytes}")
    return refs


async def _piece(nc: Any, ask: Callable[[int], p.ImageRequest], offset: int, subject: str) -> bytes:
    try:
        msg = await nc.request(subject, p.encode(ask(offset)), timeout=FETCH_TIMEOUT_S)
    except nats.errors.NoRespondersError:
        raise ExecutionError("images: no gateway holds this task's images (it restarted, or "
                             "the request ended)") from None
    except nats.errors.TimeoutError:
        raise ExecutionError(f"images: the gateway did not answer within {FETCH_TIMEOUT_S:g} s") from None
    refused = (msg.headers or {}).get(p.IMAGE_REFUSED_HEADER)
    if refused is not None or not msg.data:
        raise ExecutionError(f"images: the gateway refused: {refused or 'no bytes at ' + str(offset)}")
    return msg.data


async def _fetch(nc: Any, ask: Callable[[int], p.ImageRequest], size: int, subject: str) -> bytes:
    """The image's pieces, asked for all at once (one round trip, not one per piece: a 5 MB
    image is 11 pieces)."""
    offsets = range(0, size, p.IMAGE_CHUNK_BYTES)
    return b"".join(await asyncio.gather(*(_piece(nc, ask, offset, subject) for offset in offsets)))


async def with_images(nc: Any, sender: str, next_seq: Callable[[], int],
                      assignment: p.Assignment) -> p.Assignment:
    """``assignment`` with its images fetched into its messages; ExecutionError says what failed."""
    payload = assignment.payload
    refs = _refs(payload)
    task = assignment.task
    subject = p.subject(p.IMAGES, node=assignment.node_id, task=task.id)
    fetched = []
    for ref in refs:
        def ask(offset: int, digest: str = ref["sha256"]) -> p.ImageRequest:
            return p.ImageRequest(sender=sender, seq=next_seq(), sent_at=time.time(),
                                  node_id=assignment.node_id, task_id=task.id,
                                  attempt=assignment.attempt, sha256=digest, offset=offset)
        data = await _fetch(nc, ask, ref["bytes"], subject)
        if len(data) != ref["bytes"] or hashlib.sha256(data).hexdigest() != ref["sha256"]:
            raise ExecutionError(f"images: image {ref['sha256'][:12]} came with other bytes than "
                                 "its digest says")
        fetched.append({"media_type": ref["media_type"], "data": base64.b64encode(data).decode()})
    messages = []
    for m in payload.get("messages") or ():
        indices = m.get(IMAGES_KEY) if isinstance(m, dict) else None
        if indices:
            if not (isinstance(indices, list) and all(isinstance(i, int) and 0 <= i < len(fetched)
                                                      for i in indices)):
                raise ExecutionError("llm: a message's images must be indices into the payload's images")
            m = {**m, IMAGES_KEY: [fetched[i] for i in indices]}
        messages.append(m)
    rest = {k: v for k, v in payload.items() if k != IMAGES_KEY}
    return assignment.model_copy(update={"payload": {**rest, "messages": messages}})
