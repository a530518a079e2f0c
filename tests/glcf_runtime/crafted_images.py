"""Image files with chosen headers, built byte by byte (valid chunks, CRCs and compression)."""

from __future__ import annotations

import functools
import struct
import zlib

import cv2
import numpy as np


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


@functools.lru_cache(maxsize=4)
def black_png(width: int, height: int) -> bytes:
    """A valid 8-bit grey PNG of ``width`` × ``height`` black pixels. Black rows compress about
    1000:1, so 20000×20000 (400 megapixels, 1.2 GB as a BGR image) is a 389 KB file."""
    compressor = zlib.compressobj(9)
    rows = bytes(width + 1) * max(1, (1 << 23) // (width + 1))  # filter byte 0, then the pixels
    per_block, data, left = len(rows) // (width + 1), [], height
    while left > 0:
        take = min(left, per_block)
        data.append(compressor.compress(rows[: take * (width + 1)]))
        left -= take
    data.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", b"".join(data))
            + _chunk(b"IEND", b""))


def with_declared_size(data: bytes, fmt: str, width: int, height: int) -> bytes:
    """A real encoded image (``cv2.imencode(fmt, ...)``) whose header now declares ``width`` ×
    ``height``; the pixel data is left as it was."""
    buf = bytearray(data)
    if fmt == ".png":
        buf[16:24] = struct.pack(">II", width, height)
        buf[29:33] = struct.pack(">I", zlib.crc32(bytes(buf[12:29])))  # the IHDR's CRC
    elif fmt == ".jpg":
        at = _jpeg_frame_header(buf)
        buf[at + 5 : at + 9] = struct.pack(">HH", height, width)
    elif fmt == ".bmp":
        buf[18:26] = struct.pack("<ii", width, height)
    elif fmt == ".tiff":
        _set_tiff_size(buf, width, height)
    elif fmt == ".webp":
        _set_webp_size(buf, width, height)
    else:
        raise ValueError(fmt)
    return bytes(buf)


def _jpeg_frame_header(buf: bytearray) -> int:
    pos = 2
    while buf[pos + 1] not in (0xC0, 0xC1, 0xC2):
        pos += 2 + struct.unpack_from(">H", buf, pos + 2)[0]
    return pos


def _set_tiff_size(buf: bytearray, width: int, height: int) -> None:
    order = "<" if buf[:2] == b"II" else ">"
    ifd = struct.unpack_from(order + "I", buf, 4)[0]
    for k in range(struct.unpack_from(order + "H", buf, ifd)[0]):
        at = ifd + 2 + 12 * k
        tag = struct.unpack_from(order + "H", buf, at)[0]
        if tag in (256, 257):
            value = width if tag == 256 else height
            struct.pack_into(order + "HII", buf, at + 2, 4, 1, value)  # as a LONG


def _set_webp_size(buf: bytearray, width: int, height: int) -> None:
    kind = bytes(buf[12:16])
    if kind == b"VP8L":
        bits = struct.unpack_from("<I", buf, 21)[0] & ~0xFFFFFFF
        struct.pack_into("<I", buf, 21, bits | (width - 1) | (height - 1) << 14)
    elif kind == b"VP8 ":
        struct.pack_into("<HH", buf, 26, width & 0x3FFF, height & 0x3FFF)
    else:
        raise ValueError(kind)


def encoded(fmt: str, image: np.ndarray, *params: int) -> bytes:
    ok, buf = cv2.imencode(fmt, image, list(params))
    assert ok, fmt
    return buf.tobytes()
