"""Where each video frame of an AVI file lies, from the file's own index (``idx1``).

A demuxer that meets a damaged stretch of an AVI file scans for the next chunk header and may
count on from there as if the frames it skipped never existed (FFmpeg does), so the frames after
the damage would be read under wrong numbers. The index names every frame's chunk by its offset,
so with it a frame's number never depends on how a demuxer resyncs (``VideoFileSource``).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MAX_HEADER_BYTES = 1 << 20  # an AVI header list (hdrl) is a few KB; larger is not an AVI header
MAX_INDEX_SCAN = 64 << 20  # how far from the end to look for idx1 when the chunk chain is broken


@dataclass(frozen=True)
class AviIndex:
    """The frames of an AVI file's first video stream, in order.

    Attributes:
        chunks: per frame, the file offset of its data and its size in bytes (0: a frame the
            writer dropped, which AVI records as an empty chunk).
        damaged: frames whose chunk is not where the index puts it (the file is damaged there).
        mjpeg: True for MJPG, where each frame is a JPEG image that decodes from its chunk alone.
    """

    chunks: tuple[tuple[int, int], ...]
    damaged: frozenset[int]
    mjpeg: bool

    @property
    def first_damaged(self) -> int:
        """The first frame whose chunk is damaged; the frame count when none is."""
        return min(self.damaged, default=len(self.chunks))


def read_avi_index(path: Path | str) -> AviIndex | None:
    """The index of the AVI file at ``path``; None for another format, a file that cannot be
    read, or an AVI whose index is missing, unreadable or covers only part of its frames (an
    OpenDML file over 1 GB): the demuxer alone reads those."""
    try:
        with open(path, "rb") as file:
            file.seek(0, 2)
            return _read_index(file, file.tell())
    except OSError:
        return None


def _read_index(file: BinaryIO, length: int) -> AviIndex | None:
    file.seek(0)
    head = file.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:] != b"AVI ":
        return None
    top = _top_level(file, length)
    if b"idx1" not in top:  # the chain of chunks breaks before it: look where writers put it
        top.update(_idx1_at_end(file, length))
    if not {b"hdrl", b"idx1"} <= top.keys() or not 0 < top[b"hdrl"][1] <= MAX_HEADER_BYTES:
        return None
    file.seek(top[b"hdrl"][0])
    stream = _video_stream(file.read(top[b"hdrl"][1]))
    if stream is None:
        return None
    number, frame_count, mjpeg = stream
    file.seek(top[b"idx1"][0])
    table = file.read(top[b"idx1"][1])
    entries = list(struct.iter_unpack("<4sIII", table[: len(table) // 16 * 16]))
    tags = {b"%02ddc" % number, b"%02ddb" % number}
    video = [(tag, offset, size) for tag, _, offset, size in entries if tag in tags]
    if not video or (frame_count and len(video) != frame_count):
        return None
    # idx1 offsets count from the 'movi' list type (most writers) or from the file's start; when
    # the movi list's header is damaged, its place follows from the last chunk, which ends at idx1
    _, _, offset, size = entries[-1]
    bases = [top[b"idx1"][0] - 8 - (offset + 8 + size + (size & 1)), 0]
    if b"movi" in top:
        bases.insert(0, top[b"movi"][0] - 4)
    base, damaged = 0, list(range(len(video)))
    for candidate in bases:
        found = _damaged(file, length, video, candidate)
        if len(found) < len(damaged):
            base, damaged = candidate, found
        if not damaged:
            break
    if len(damaged) == len(video):
        return None  # the index points at no frame at all: it is not this file's index
    chunks = tuple((base + offset + 8, size) for _, offset, size in video)
    return AviIndex(chunks, frozenset(damaged), mjpeg)


def _idx1_at_end(file: BinaryIO, length: int) -> dict[bytes, tuple[int, int]]:
    """{b"idx1": (data offset, size)} for an idx1 chunk that ends the file, found by searching
    back from the end; empty when there is none."""
    start = max(0, length - MAX_INDEX_SCAN)
    file.seek(start)
    tail = file.read(length - start)
    at = tail.rfind(b"idx1")
    while at >= 0:
        size = struct.unpack_from("<I", tail, at + 4)[0] if at + 8 <= len(tail) else 0
        if size and size % 16 == 0 and start + at + 8 + size == length:
            return {b"idx1": (start + at + 8, size)}
        at = tail.rfind(b"idx1", 0, at)
    return {}


def _damaged(
    file: BinaryIO, length: int, entries: list[tuple[bytes, int, int]], base: int
) -> list[int]:
    """The frames whose chunk header is not at ``base + offset`` or whose data runs past the
    end of the file."""
    bad = []
    for frame, (tag, offset, size) in enumerate(entries):
        file.seek(base + offset)
        if file.read(8) != struct.pack("<4sI", tag, size) or base + offset + 8 + size > length:
            bad.append(frame)
    return bad


def _top_level(file: BinaryIO, length: int) -> dict[bytes, tuple[int, int]]:
    """The first top-level chunk of each name, a LIST named by its list type: the offset and
    size of its data (a LIST's data follows its list type)."""
    found: dict[bytes, tuple[int, int]] = {}
    offset = 12
    while offset + 8 <= length:
        file.seek(offset)
        name, size = struct.unpack("<4sI", file.read(8))
        if name == b"LIST":
            found.setdefault(file.read(4), (offset + 12, size - 4))
        else:
            found.setdefault(name, (offset + 8, size))
        offset += 8 + size + (size & 1)
    return found


def _chunks(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(name, data offset, size) of the chunks in ``data[start:end]``."""
    while start + 8 <= min(end, len(data)):
        name, size = struct.unpack_from("<4sI", data, start)
        yield name, start + 8, size
        start += 8 + size + (size & 1)


def _video_stream(header: bytes) -> tuple[int, int, bool] | None:
    """The first video stream in an AVI header list: its number, its frame count (0: unknown)
    and whether it is MJPG."""
    number = 0
    for name, start, size in _chunks(header, 0, len(header)):
        if name != b"LIST" or header[start : start + 4] != b"strl":
            continue
        parts = {n: header[s : s + z] for n, s, z in _chunks(header, start + 4, start + size)}
        strh, strf = parts.get(b"strh", b""), parts.get(b"strf", b"")
        if len(strh) >= 36 and strh[:4] == b"vids":
            codecs = {strh[4:8].upper(), strf[16:20].upper()}
            return number, struct.unpack_from("<I", strh, 32)[0], b"MJPG" in codecs
        number += 1
    return None
