"""Content: content-defined chunking, chunk lists, the chunk store.

Content-defined chunks (FastCDC) mean an insertion near the start of a file
changes one or two chunks, not every fixed-size block after it, so both
storage and sync only move what changed. Chunk ids are BLAKE3 hashes.

A file's chunk list is packed into one BLOB of 44-byte records
(hash 32 B, size u32, local chunk row id u64): one row per file instead of
one row per chunk, and reads go straight to the bytes by row id. Where
those bytes live is `vfs.chunkstore`'s business.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable, Iterator
from itertools import accumulate, starmap
from typing import BinaryIO, NamedTuple

import blake3
from pyfastcdc import FastCDC

MIN_CHUNK = 16 * 1024
AVG_CHUNK = 64 * 1024
MAX_CHUNK = 256 * 1024

# pyfastcdc's `avg_size` excludes the minimum (its effective average is
# avg_size + min_size), so ask for 48 KiB to get ~64 KiB chunks.
_CHUNKER = FastCDC(AVG_CHUNK - MIN_CHUNK, min_size=MIN_CHUNK, max_size=MAX_CHUNK)

_RECORD = struct.Struct("<32sIQ")
RECORD_SIZE = _RECORD.size
EMPTY_HASH = blake3.blake3(b"").digest()


class ChunkEntry(NamedTuple):
    """One chunk of a file. A named tuple, not a frozen dataclass: made for every chunk of every
    list read or written, and a frozen dataclass's `__init__` (three `object.__setattr__` calls)
    took ~1.2 us against ~0.3 us."""

    hash: bytes  # raw 32-byte BLAKE3
    size: int
    id: int  # row id in this store's chunk tables


def pack(entries: Iterable[ChunkEntry]) -> bytes:
    return b"".join(starmap(_RECORD.pack, entries))  # (an entry is (hash, size, id): no generator frame)


def unpack(blob: bytes | None) -> list[ChunkEntry]:
    if not blob:
        return []
    return list(map(ChunkEntry._make, _RECORD.iter_unpack(blob)))


def wire_list(blob: bytes | None) -> tuple[tuple[str, int], ...]:
    """`((hex hash, size), ...)` straight from a packed list (the change-stream form)."""
    if not blob:
        return ()
    return tuple((h.hex(), s) for h, s, _ in _RECORD.iter_unpack(blob))


def offsets(entries: list[ChunkEntry]) -> list[int]:
    """Start offset of each chunk (plus the total size as a last element)."""
    return [0, *accumulate(e.size for e in entries)]


def cut(data: bytes | bytearray | memoryview) -> Iterator[memoryview]:
    """Cut an in-memory buffer into content-defined chunks."""
    view = memoryview(data)
    for chunk in _CHUNKER.cut_buf(view):
        yield view[chunk.offset : chunk.offset + chunk.length]


def cut_stream(reader: BinaryIO) -> Iterator[memoryview]:
    """Cut a stream; each yielded view is valid only until the next one."""
    for chunk in _CHUNKER.cut_stream(reader):
        yield chunk.data


class IterableReader(io.RawIOBase):
    """A read-only stream over an iterable of bytes (so it can be chunked lazily)."""

    def __init__(self, pieces: Iterable[bytes]):
        self._pieces = iter(pieces)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        while not self._pending:
            piece = next(self._pieces, None)
            if piece is None:
                return 0
            if isinstance(piece, str):
                piece = piece.encode("utf-8")
            self._pending = memoryview(piece).cast("B")
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def as_reader(data: object) -> BinaryIO | None:
    """A binary reader for streamed input, or None when `data` is a plain buffer."""
    if isinstance(data, (bytes, bytearray, memoryview, str)):
        return None
    if hasattr(data, "readinto") or hasattr(data, "read"):
        return data  # type: ignore[return-value]
    if isinstance(data, Iterable):
        return io.BufferedReader(IterableReader(data), buffer_size=1 << 20)
    raise TypeError(f"cannot write {type(data).__name__}: expected bytes, str, an iterable of bytes or a file object")


def content_hash(pieces: Iterable[bytes | memoryview]) -> bytes:
    hasher = blake3.blake3()
    for piece in pieces:
        hasher.update(piece)
    return hasher.digest()
