"""The pixel size an image file declares in its header, read before anything is decoded.

A PNG of a few hundred KB can declare 20000×20000 pixels, and OpenCV's decoder allocates the
whole image (gigabytes) before it reads a single row. Reading the header first costs
microseconds. PNG, JPEG, BMP, TIFF and WebP are read (the suffixes glcf reads); for anything
else ``declared_size`` gives None and the decoded image's size is checked instead.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

Buffer = bytes | memoryview  # the file's bytes (a memoryview of the array read from disk)

# JPEG start-of-frame markers (SOF0-SOF15 less DHT C4, JPG C8 and DAC CC): the frame's size
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_MAX_TIFF_TAGS = 4096  # an IFD that claims more entries is damaged; stop looking


def declared_size(data: Buffer) -> tuple[int, int] | None:
    """``(width, height)`` that an image file's header declares.

    Returns:
        None for a format not read here, or a header too damaged to read (the decoder then
        reports the file).
    """
    head = bytes(data[:12])
    for matches, reader in _READERS:
        if matches(head):
            try:
                return reader(data)
            except (struct.error, ValueError):
                return None
    return None


def _png(data: Buffer) -> tuple[int, int] | None:
    if bytes(data[12:16]) != b"IHDR":
        return None
    width, height = struct.unpack_from(">II", data, 16)
    return width, height


def _jpeg(data: Buffer) -> tuple[int, int] | None:
    """The first start-of-frame segment's size, walking the segments from the start."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None  # not a marker where one must be: damaged
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
        elif marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
        elif marker in _SOF:
            height, width = struct.unpack_from(">HH", data, pos + 5)
            return width, height
        elif marker == 0xDA:  # scan data before any frame header
            return None
        else:
            pos += 2 + struct.unpack_from(">H", data, pos + 2)[0]
    return None


def _bmp(data: Buffer) -> tuple[int, int]:
    if struct.unpack_from("<I", data, 14)[0] == 12:  # BITMAPCOREHEADER: 16-bit sizes
        width, height = struct.unpack_from("<HH", data, 18)
    else:  # BITMAPINFOHEADER and later: a negative height means top-down rows
        width, height = struct.unpack_from("<ii", data, 18)
    return abs(width), abs(height)


def _tiff(data: Buffer) -> tuple[int, int] | None:
    """ImageWidth (256) and ImageLength (257) of the first IFD; classic TIFF and BigTIFF."""
    order = "<" if bytes(data[:2]) == b"II" else ">"
    version = struct.unpack_from(order + "H", data, 2)[0]
    if version not in (42, 43):
        return None
    big = version == 43  # BigTIFF: 8-byte counts and offsets
    count_type, entry, value_at = ("Q", 20, 12) if big else ("H", 12, 8)
    ifd = struct.unpack_from(order + ("Q" if big else "I"), data, 8 if big else 4)[0]
    count = struct.unpack_from(order + count_type, data, ifd)[0]
    first = ifd + struct.calcsize(count_type)
    found = {}
    for at in range(first, first + min(count, _MAX_TIFF_TAGS) * entry, entry):
        tag, kind = struct.unpack_from(order + "HH", data, at)
        if tag in (256, 257):  # SHORT (3) or LONG (4), left-justified in the value field
            found[tag] = struct.unpack_from(order + ("H" if kind == 3 else "I"), data,
                                            at + value_at)[0]
    if 256 in found and 257 in found:
        return found[256], found[257]
    return None


def _webp(data: Buffer) -> tuple[int, int] | None:
    chunk = bytes(data[12:16])
    if chunk == b"VP8 ":  # lossy: a key frame's 14-bit sizes after its start code
        width, height = struct.unpack_from("<HH", data, 26)
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":  # lossless: 14-bit sizes minus one, after the signature byte
        bits = struct.unpack_from("<I", data, 21)[0]
        return (bits & 0x3FFF) + 1, (bits >> 14 & 0x3FFF) + 1
    if chunk == b"VP8X":  # extended: the canvas's 24-bit sizes minus one
        return (int.from_bytes(bytes(data[24:27]), "little") + 1,
                int.from_bytes(bytes(data[27:30]), "little") + 1)
    return None


_READERS: tuple[tuple[Callable[[bytes], bool], Callable[[Buffer], tuple[int, int] | None]], ...] = (
    (lambda h: h[:8] == b"\x89PNG\r\n\x1a\n", _png),
    (lambda h: h[:2] == b"\xff\xd8", _jpeg),
    (lambda h: h[:2] == b"BM", _bmp),
    (lambda h: h[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"), _tiff),
    (lambda h: h[:4] == b"RIFF" and h[8:12] == b"WEBP", _webp),
)
