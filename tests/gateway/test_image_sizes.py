"""The gateway reads an image's type and size from its header bytes (no image library): PNG,
GIF, WebP (lossy VP8, lossless VP8L, extended VP8X) and JPEG (its frame header after any
number of other segments: EXIF, progressive frames); anything else, or a header cut short, is
no image."""

from __future__ import annotations

import struct

import pytest

from heddle.gateway.images import image_size
from tests.gateway.imagekit import gif, jpeg, png, webp


def vp8(width: int, height: int) -> bytes:
    frame = b"\x00\x00\x00" + b"\x9d\x01\x2a" + struct.pack("<HH", width, height)
    return b"RIFF" + struct.pack("<I", 4 + 8 + len(frame)) + b"WEBP" + b"VP8 " + struct.pack("<I", len(frame)) + frame


def vp8x(width: int, height: int) -> bytes:
    body = b"\x00\x00\x00\x00" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 4 + 8 + len(body)) + b"WEBP" + b"VP8X" + struct.pack("<I", len(body)) + body


def exif_progressive_jpeg(width: int, height: int) -> bytes:
    exif = b"\xff\xe1" + struct.pack(">H", 2 + 30) + b"Exif\x00\x00" + b"\x00" * 24
    sof2 = b"\xff\xc2" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + exif + b"\xff\xff" + sof2 + b"\xff\xd9"  # a fill byte before the frame


@pytest.mark.parametrize(("data", "expected"), [
    (png(33, 17), ("image/png", 33, 17)),
    (gif(640, 480), ("image/gif", 640, 480)),
    (webp(300, 200), ("image/webp", 300, 200)),
    (vp8(1024, 768), ("image/webp", 1024, 768)),
    (vp8x(4000, 3000), ("image/webp", 4000, 3000)),
    (jpeg(1920, 1080), ("image/jpeg", 1920, 1080)),
    (exif_progressive_jpeg(4032, 3024), ("image/jpeg", 4032, 3024)),
])
def test_each_format_gives_its_type_and_size(data, expected):
    assert image_size(data) == expected


@pytest.mark.parametrize("data", [
    b"plain text, no image", b"", b"\x89PNG\r\n\x1a\n", png(8, 8)[:20], jpeg(64, 64)[:12],
    b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"%PDF-1.7\n",
])
def test_other_bytes_or_a_header_cut_short_are_no_image(data):
    assert image_size(data) is None
