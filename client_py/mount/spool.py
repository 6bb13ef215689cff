"""`Spool`: the write buffer of one open file.

A FUSE write arrives as many positional pieces (128 KiB to 1 MiB each). They
land here, not in the store, so a program writing a file piece by piece makes
one store revision when it closes the file, not one per piece. Readers of the
same inode read from here, so they see buffered bytes at once. Small files
stay in memory; past `limit` bytes the buffer moves to an anonymous temp file
so memory stays bounded whatever the file size.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator

import blake3

SPILL_AT = 32 << 20
_STEP = 1 << 20


class Spool:
    """A random-access byte buffer with pwrite/pread/truncate semantics."""

    def __init__(self, limit: int = SPILL_AT):
        self._limit = limit
        self._mem: bytearray | None = bytearray()
        self._fd: int | None = None
        self._size = 0

    @classmethod
    def from_pieces(cls, pieces: Iterable[bytes], limit: int = SPILL_AT) -> Spool:
        spool = cls(limit)
        for piece in pieces:
            spool.pwrite(spool.size, piece)
        return spool

    @property
    def size(self) -> int:
        return self._size

    def pwrite(self, offset: int, data: bytes) -> int:
        end = offset + len(data)
        if self._mem is not None and end > self._limit:
            self._spill()
        if self._mem is not None:
            if offset > len(self._mem):
                self._mem.extend(bytes(offset - len(self._mem)))
            self._mem[offset:end] = data
        else:
            os.pwrite(self._fd, data, offset)
        self._size = max(self._size, end)
        return len(data)

    def pread(self, offset: int, size: int) -> bytes:
        size = max(0, min(size, self._size - offset))
        if size == 0:
            return b""
        if self._mem is not None:
            return bytes(self._mem[offset : offset + size])
        return os.pread(self._fd, size, offset)

    def truncate(self, size: int) -> None:
        if self._mem is not None and size > self._limit:
            self._spill()
        if self._mem is not None:
            if size < len(self._mem):
                del self._mem[size:]
            else:
                self._mem.extend(bytes(size - len(self._mem)))
        else:
            os.ftruncate(self._fd, size)
        self._size = size

    def pieces(self) -> Iterator[bytes]:
        """The content in 1 MiB pieces (what the store's chunker streams)."""
        for offset in range(0, self._size, _STEP):
            yield self.pread(offset, _STEP)

    def small_content(self, limit: int) -> bytes | None:
        """The whole content when it is in memory and under `limit` bytes (the
        store writes a small buffer faster than it streams a reader)."""
        if self._mem is None or self._size >= limit:
            return None
        return bytes(self._mem)

    def digest(self) -> bytes:
        """The content's BLAKE3 digest, hashed where it lies (in memory: no copy)."""
        if self._mem is not None:
            return blake3.blake3(self._mem).digest()
        hasher = blake3.blake3()
        for piece in self.pieces():
            hasher.update(piece)
        return hasher.digest()

    def reader(self) -> SpoolReader:
        """A fresh read-only file object over the content (what `write_file` streams)."""
        return SpoolReader(self)

    def close(self) -> None:
        self._mem = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _spill(self) -> None:
        handle = tempfile.TemporaryFile()
        self._fd = os.dup(handle.fileno())
        handle.close()
        os.pwrite(self._fd, self._mem, 0)
        self._mem = None


class SpoolReader:
    """`read(n)` over a spool from the start; `.spool` lets a consumer replay it."""

    def __init__(self, spool: Spool):
        self.spool = spool
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self.spool.size - self._pos
        data = self.spool.pread(self._pos, size)
        self._pos += len(data)
        return data
