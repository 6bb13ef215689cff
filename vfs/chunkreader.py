"""Reading a chunk list as one stream of bytes, wherever the chunks live.

A file's content is a list of chunks; reading it from an offset means
finding the chunk that holds the offset and slicing from there. The store
reads its own chunks by local row id (`ChunkStore.read`); a FUSE mount in
remote mode reads them by hash from a cache that fetches on a miss. Both
use this module with their own `fetch`, so the arithmetic exists once and
this module does no I/O of its own.

A chunk list here is a sequence of `(key, size)` pairs in file order, where
`key` is whatever `fetch` takes (a hex hash as in `Change.chunks`, or a row id).

    content, fileobj, (the mount)  ->  chunkreader
"""

from __future__ import annotations

import errno
import io
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from itertools import accumulate
from typing import Generic, TypeVar

from vfs.errors import fs_error

K = TypeVar("K")

READ_BUFFER = 256 * 1024  # what `open_chunks` buffers: a few chunks, so small reads do not fetch per call


def chunk_starts(chunks: Sequence[tuple[object, int]]) -> list[int]:
    """Start offset of each chunk, plus the total size as a last element."""
    return [0, *accumulate(size for _, size in chunks)]


def iter_range(
    chunks: Sequence[tuple[K, int]], fetch: Callable[[K], bytes], offset: int = 0, size: int | None = None
) -> Iterator[bytes]:
    """The bytes from `offset` (at most `size` of them), one piece per chunk touched."""
    starts = chunk_starts(chunks)
    end = starts[-1] if size is None else min(starts[-1], offset + size)
    index = max(bisect_right(starts, offset) - 1, 0)
    position = offset
    while position < end and index < len(chunks):
        data = fetch(chunks[index][0])
        lo = position - starts[index]
        hi = min(len(data), end - starts[index])
        yield data if lo == 0 and hi == len(data) else data[lo:hi]
        position = starts[index] + hi
        index += 1


class ChunkReader(io.RawIOBase, Generic[K]):
    """Seekable raw reader over a fixed chunk list; keeps the last chunk it fetched.

    Raw reads are short (at most to the end of the current chunk): wrap it
    in `io.BufferedReader` (see `open_chunks`) for `read(n)` to return n bytes.
    """

    def __init__(self, chunks: Sequence[tuple[K, int]], fetch: Callable[[K], bytes], name: str = ""):
        self._chunks = chunks
        self._fetch = fetch
        self._starts = chunk_starts(chunks)
        self._pos = 0
        self._cached: tuple[int, bytes] | None = None
        self.name = name

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._starts[-1]}[whence]
        if base + offset < 0:
            raise fs_error(errno.EINVAL, self.name)
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer) -> int:  # type: ignore[override]
        if self._pos >= self._starts[-1]:
            return 0
        index = bisect_right(self._starts, self._pos) - 1
        data = self._chunk(index)
        lo = self._pos - self._starts[index]
        n = min(len(buffer), len(data) - lo)
        buffer[:n] = data[lo : lo + n]
        self._pos += n
        return n

    def close(self) -> None:
        self._cached = None
        super().close()

    def _chunk(self, index: int) -> bytes:
        if self._cached is None or self._cached[0] != index:
            self._cached = (index, self._fetch(self._chunks[index][0]))
        return self._cached[1]


def open_chunks(
    chunks: Sequence[tuple[K, int]], fetch: Callable[[K], bytes], name: str = "", *, buffer_size: int = READ_BUFFER
) -> io.BufferedReader:
    """A buffered, seekable binary file over a chunk list (what `Workspace.open(path, "rb")` returns)."""
    return io.BufferedReader(ChunkReader(chunks, fetch, name), buffer_size=buffer_size)
