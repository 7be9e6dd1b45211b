"""Image bytes for the image tests, written by hand (Pillow is not a dependency): a real PNG
(zlib), and the header bytes of a JPEG, a WebP and a GIF, which is all the gateway reads of
them (their type and size) and all a stand-in server needs (it answers with their digest)."""

from __future__ import annotations

import base64
import struct
import zlib


def png(width: int, height: int, pad: int = 0) -> bytes:
    """A valid RGB PNG of ``width`` x ``height`` (black), ``pad`` bytes of an ancillary chunk
    making it larger."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x00" * (3 * width) for _ in range(height))
    extra = chunk(b"tEXt", b"pad\x00" + bytes(range(256)) * (pad // 256) + b"x" * (pad % 256)) if pad else b""
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + extra + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def jpeg(width: int, height: int) -> bytes:
    """A JPEG's start: SOI, an APP0 (JFIF) segment, then a baseline frame header (SOF0)."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return b"\xff\xd8" + app0 + sof0 + b"\xff\xd9"


def webp(width: int, height: int) -> bytes:
    """A lossless WebP's header (VP8L: 14-bit width - 1 and height - 1)."""
    bits = (width - 1) | ((height - 1) << 14)
    body = b"VP8L" + struct.pack("<I", 5) + b"\x2f" + struct.pack("<I", bits) + b"\x00"
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def gif(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\x00\x00\x00;"


def data_url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"
