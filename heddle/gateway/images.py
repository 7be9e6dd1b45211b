"""Image inputs on both protocols: OpenAI's ``image_url`` content parts (``data:`` URLs) and
Ollama's ``images`` (base64 strings, on a chat message or a generate request), checked, sized
and counted here; the bytes reach the agent that runs the task by `ImageDesk` (never through
the event log: the task's payload carries references only).

Checks, each a 400 naming the field (``messages.0.content.1``, ``messages.0.images.0``,
``images.0``): the base64 decodes; the bytes are a PNG, JPEG, WebP or GIF image (sniffed from
their magic bytes, whatever the data URL says) whose header gives its size; an ``http(s)`` URL is
refused (the gateway does not fetch the network on a caller's behalf: send the image as a data
URL); an image is refused for a model that does not take images (the catalog's ``vision``).
Bounds, each a 413 naming the field: `MAX_IMAGE_BYTES` per image, `MAX_IMAGES_BYTES` per request
(decoded), at most `MAX_IMAGES` images.

Counting: an image costs the prompt its model's figure (`ModelSpec.image_prompt_tokens`, from
the catalog) or, at a Claude offer, Anthropic's rule (`claude_image_tokens`), from the width
and height its header gives (`image_size`: no image library).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import math
import re
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import nats.errors

from heddle.gateway.errors import GatewayError
from heddle.live import protocol as wire
from heddle.live.backends.images import IMAGES_KEY
from heddle.models import catalog

if TYPE_CHECKING:
    from heddle.gateway.tasks import ModelRef

__all__ = ["IMAGES_KEY", "MAX_IMAGES", "MAX_IMAGES_BYTES", "MAX_IMAGE_BYTES", "Image", "ImageDesk",
           "ImageSet", "attach", "check_images", "claude_image_tokens", "image_size", "image_tokens"]

log = logging.getLogger("heddle.gateway")

MAX_IMAGE_BYTES = 10 * 1024 * 1024
"""Most bytes one image may take (decoded): a phone photo is 2-5 MB as JPEG."""
MAX_IMAGES_BYTES = 20 * 1024 * 1024
"""Most bytes a request's images may take together (decoded); the gateway holds them while its
task runs."""
MAX_IMAGES = 20
"""Most images in one request."""
BODY_BYTES = math.ceil(MAX_IMAGES_BYTES * 4 / 3) + 64 * 1024
"""What the images may add to a request's body (base64 and its quoting)."""
CLAUDE_PIXELS_PER_TOKEN = 750
CLAUDE_MAX_EDGE_PX = 1568
CLAUDE_MAX_IMAGE_TOKENS = 1600
"""Anthropic's vision docs: an image costs about width x height / 750 tokens; one whose long
edge is over 1568 px is scaled down first, and one over ~1,600 tokens too."""
PLACEMENT_WAIT_S = 10.0
"""How long an agent's request for a task's image waits for the task's placement on it to
reach the gateway (the assignment may overtake the submit's answer and TaskPlaced)."""
_DATA_URL = re.compile(r"data:(?P<type>[^;,]*)(?P<params>(;[^;,]*)*),(?P<data>.*)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Image:
    data: bytes
    media_type: str
    sha256: str
    width: int
    height: int

    def ref(self) -> dict[str, Any]:
        """What the task's payload carries of it (`IMAGES_KEY`): no bytes."""
        return {"sha256": self.sha256, "media_type": self.media_type, "bytes": len(self.data),
                "width": self.width, "height": self.height}


def _bad(where: str, message: str, status: int = 400) -> GatewayError:
    return GatewayError.at(where, message, "invalid_image" if status == 400 else "request_too_large", status)


def image_size(data: bytes) -> tuple[str, int, int] | None:
    """(media type, width, height) from a PNG, JPEG, WebP or GIF image's header bytes; None
    when the bytes are none of them or their header gives no size."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR" and len(data) >= 24:
        return ("image/png", *struct.unpack(">II", data[16:24]))
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return ("image/gif", *struct.unpack("<HH", data[6:10]))
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data)
    if data[:3] == b"\xff\xd8\xff":
        return _jpeg(data)
    return None


def _webp(data: bytes) -> tuple[str, int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":  # lossy: key frame
        width, height = struct.unpack("<HH", data[26:30])
        return "image/webp", width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:  # lossless
        bits = int.from_bytes(data[21:25], "little")
        return "image/webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:  # extended: the canvas
        return ("image/webp", int.from_bytes(data[24:27], "little") + 1,
                int.from_bytes(data[27:30], "little") + 1)
    return None


_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
"""JPEG start-of-frame markers (the frame header holds the size); C4, C8, CC are not frames."""


def _jpeg(data: bytes) -> tuple[str, int, int] | None:
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # no length
            i += 2
            continue
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return "image/jpeg", width, height
        i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
    return None


class ImageSet:
    """A request's images, in the order they come (the same bytes twice: one image), within
    the bounds; ``first``: the field of the first, which a refusal names."""

    def __init__(self) -> None:
        self.images: list[Image] = []
        self.total = 0
        self.first = ""  # the field of the first image
        self.last = ""  # the field of the last one added

    def __bool__(self) -> bool:
        return bool(self.images)

    def add_base64(self, text: Any, where: str) -> int:
        """An Ollama image (a base64 string) -> its index."""
        if not isinstance(text, str) or not text:
            raise _bad(where, "expected an image as a non-empty base64 string")
        if len(text) * 3 // 4 > MAX_IMAGE_BYTES + 3:
            raise _bad(where, f"the image takes over {MAX_IMAGE_BYTES} bytes; at most {MAX_IMAGE_BYTES} per image", 413)
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            try:  # line breaks and spaces, as some encoders write them
                data = base64.b64decode(re.sub(r"\s+", "", text), validate=True)
            except (binascii.Error, ValueError):
                raise _bad(where, "the image is not valid base64") from None
        return self._add(data, where)

    def add_url(self, url: Any, where: str) -> int:
        """An OpenAI ``image_url``'s URL -> its index: a base64 ``data:`` URL of an image."""
        if not isinstance(url, str) or not url:
            raise _bad(where, "expected image_url.url, a data: URL (data:image/png;base64,...)")
        if re.match(r"https?://", url, re.IGNORECASE):
            raise _bad(where, "the gateway does not fetch image URLs on a caller's behalf; send "
                       "the image itself as a base64 data URL (data:image/png;base64,...)")
        match = _DATA_URL.fullmatch(url)
        if match is None:
            raise _bad(where, f"expected a data: URL (data:image/png;base64,...), got {url[:40]!r}")
        declared = match["type"].strip().lower()
        if declared and not declared.startswith("image/"):
            raise _bad(where, f"the data URL is {declared!r}, not an image")
        if ";base64" not in match["params"].lower():
            raise _bad(where, "the data URL is not base64 (data:image/png;base64,...)")
        return self.add_base64(match["data"], where)

    def _add(self, data: bytes, where: str) -> int:
        sniffed = image_size(data)
        if sniffed is None:
            raise _bad(where, f"the bytes are not a PNG, JPEG, WebP or GIF image whose header gives "
                       f"its size (they start {data[:8]!r})")
        if len(data) > MAX_IMAGE_BYTES:
            raise _bad(where, f"the image takes {len(data)} bytes; at most {MAX_IMAGE_BYTES} per image", 413)
        digest = hashlib.sha256(data).hexdigest()
        self.last = where
        for i, seen in enumerate(self.images):
            if seen.sha256 == digest:
                return i
        if len(self.images) >= MAX_IMAGES:
            raise _bad(where, f"more than {MAX_IMAGES} images in one request", 413)
        if self.total + len(data) > MAX_IMAGES_BYTES:
            raise _bad(where, f"the request's images take over {MAX_IMAGES_BYTES} bytes (the most "
                       "one request's may take together)", 413)
        self.total += len(data)
        self.first = self.first or where
        self.images.append(Image(data, *sniffed[:1], digest, *sniffed[1:]))
        return len(self.images) - 1


def check_images(ref: ModelRef, images: ImageSet | None) -> None:
    """Images for a model that does not take them: 400 naming the first image's field."""
    if not images or ref.quant is None:  # a cloud offer: Claude sees images
        return
    spec = catalog.model(ref.model)
    if not spec.vision:
        seeing = ", ".join(sorted(m.id for m in catalog.models().values() if m.vision))
        raise GatewayError(400, f"{images.first}: model {ref.name} does not take images (the "
                           f"catalog's vision models: {seeing}; and the Claude offers)",
                           "images_not_supported", param=images.first)


def claude_image_tokens(width: int, height: int) -> int:
    """An image's input tokens at Claude (`CLAUDE_PIXELS_PER_TOKEN`, after its scaling)."""
    scale = min(1.0, CLAUDE_MAX_EDGE_PX / max(width, height, 1))
    return min(max(math.ceil(width * scale * height * scale / CLAUDE_PIXELS_PER_TOKEN), 1),
               CLAUDE_MAX_IMAGE_TOKENS)


def image_tokens(ref: ModelRef, images: list[Image]) -> int:
    """The prompt tokens a request's images cost its model."""
    if not images:
        return 0
    if ref.quant is None:
        return sum(claude_image_tokens(i.width, i.height) for i in images)
    spec = catalog.model(ref.model)
    return sum(spec.image_prompt_tokens(i.width, i.height) for i in images)


# -- the bytes, to the agent that runs the task ------------------------------------------------
@dataclass(slots=True)
class _Held:
    images: dict[str, bytes]  # sha256 -> bytes
    placements: set[tuple[str, int]]  # the run's own set: (node, attempt) the control plane chose
    waiters: list[asyncio.Future] = field(default_factory=list)


class ImageDesk:
    """The gateway's side of `wire.IMAGES`: a running task's images, held while its request
    lasts, handed in `wire.IMAGE_CHUNK_BYTES` pieces to the node (and attempt) the control plane
    placed the task on, and to no one else: the cluster's authorization lets an agent ask only
    under its own node id, and the gateway answers only for a placement it saw."""

    def __init__(self, nc: Any) -> None:
        self.nc = nc
        self.held: dict[str, _Held] = {}
        self.refused = 0
        self.placement_wait_s = PLACEMENT_WAIT_S
        self._answering: set[asyncio.Task] = set()

    def hold(self, task_id: str, images: list[Image], placements: set[tuple[str, int]]) -> None:
        self.held[task_id] = _Held({i.sha256: i.data for i in images}, placements)

    def placed(self, task_id: str) -> None:
        """The task's placements changed: wake requests waiting for theirs."""
        held = self.held.get(task_id)
        if held is not None:
            for waiter in held.waiters:
                if not waiter.done():
                    waiter.set_result(None)
            held.waiters.clear()

    def release(self, task_id: str) -> None:
        self.placed(task_id)
        self.held.pop(task_id, None)

    async def on_request(self, msg: Any) -> None:
        """One request, answered in a task of its own: one waiting for its placement must not
        hold up the subscription's other requests (a subscription's callbacks run one at a time)."""
        if msg.reply:
            answer = asyncio.get_running_loop().create_task(self._answer(msg))
            self._answering.add(answer)
            answer.add_done_callback(self._answering.discard)

    async def _answer(self, msg: Any) -> None:
        _, _, _, node, task = msg.subject.split(".", 4)
        try:
            asked = wire.decode_one(msg.data, wire.ImageRequest)
            if (asked.node_id, asked.task_id) != (node, task):
                raise ValueError(f"node_id, task_id: {asked.node_id}/{asked.task_id} asked on another's subject")
            data = await self._piece(asked)
        except (wire.ProtocolError, ValueError, LookupError) as exc:
            self.refused += 1
            log.warning("refused an image request on %s (%d so far): %s", msg.subject, self.refused, exc)
            data, headers = b"", {wire.IMAGE_REFUSED_HEADER: str(exc)[:300]}
        else:
            headers = None
        try:
            await self.nc.publish(msg.reply, data, headers=headers)
        except nats.errors.Error as exc:  # the connection closing: the agent's request times out
            log.warning("could not answer an image request on %s: %s", msg.subject, exc)

    async def _piece(self, asked: Any) -> bytes:
        held = self.held.get(asked.task_id)
        placement = (asked.node_id, asked.attempt)
        loop = asyncio.get_running_loop()
        until = loop.time() + self.placement_wait_s
        while held is not None and placement not in held.placements and loop.time() < until:
            waiter = loop.create_future()
            held.waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, until - loop.time())
            except TimeoutError:
                break
            held = self.held.get(asked.task_id)
        if held is None:
            raise LookupError(f"task {asked.task_id}: no images held here (it ended, or another "
                              "gateway took it)")
        if placement not in held.placements:
            raise LookupError(f"task {asked.task_id}: attempt {asked.attempt} was not placed on node "
                              f"{asked.node_id}")
        data = held.images.get(asked.sha256)
        if data is None:
            raise LookupError(f"task {asked.task_id} has no image {asked.sha256}")
        return data[asked.offset:asked.offset + wire.IMAGE_CHUNK_BYTES]


# -- a request's messages -> the payload's ------------------------------------------------------
def attach(docs: list[dict[str, Any]], messages: list[Any], images: ImageSet,
           found: Any, skipped: tuple[str, ...] = ("system", "developer")) -> None:
    """Each message's images (``found(i, message, images)``: their indices, added to
    ``images``) onto its doc (``docs``: the messages in the payload's shape, those of a role in
    ``skipped`` left out) as `IMAGES_KEY`. Images go in user messages only: elsewhere a 400
    naming the field."""
    kept = iter(docs)
    for i, m in enumerate(messages):
        indices = found(i, m, images)
        doc = None if m.role in skipped else next(kept)
        if not indices:
            continue
        if m.role != "user":
            raise _bad(images.last, f"images go in user messages, not {m.role!r} ones")
        assert doc is not None
        doc[IMAGES_KEY] = indices
