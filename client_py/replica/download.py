"""Materialising remote file contents locally, moving only the chunks we lack.

For each distinct content in a batch the bytes come from, in order of
preference: the inlined `data` of the change entry, a partial download
left in `.wsfs/tmp` by an interrupted run (verified chunk by chunk), the
same chunk inside a file already on disk (the chunk index, verified), and
only then the server (`get`, pipelined, a bounded window in flight so a
kill loses little). Every chunk is checked against its BLAKE3 id before it
is used.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import Callable

import blake3

from client_py.replica.localfs import PART_PREFIX, LocalTree, TempFile, UnsafePath
from client_py.replica.prefetch import Prefetcher, get_groups
from client_py.replica.state import State
from client_py.session import Session
from vfs.types import Change

WINDOW = 2  # `get` requests in flight
YIELD_BYTES = 1 << 20  # chunks written between two turns of the event loop (one per chunk cost 0.3 s per 10k files)


@dataclass
class Content:
    """One distinct content, assembled in `.wsfs-part-<hash>` beside the first path that needs it."""

    hash: str
    size: int
    chunks: tuple[tuple[str, int], ...]
    fd: int = -1
    tmp: TempFile | None = None
    missing: dict[str, list[int]] = field(default_factory=dict)  # chunk hash -> offsets still to write


def _offsets(chunks: tuple[tuple[str, int], ...]) -> list[tuple[str, int, int]]:
    out, offset = [], 0
    for h, size in chunks:
        out.append((h, offset, size))
        offset += size
    return out


class Downloader:
    def __init__(self, tree: LocalTree, state: State, on_bytes: Callable[[int], None]):
        self.tree = tree
        self.state = state
        self.on_bytes = on_bytes
        self._locations: dict[str, list[tuple[str, int, int]]] | None = None
        self.prefetcher = Prefetcher(state, on_bytes)

    def lookup(self, changes: list[Change]) -> None:
        """Find local copies of every chunk of a batch in one go (used by `prepare`)."""
        hashes = list({h for c in changes for h, _ in c.chunks})
        self._locations = self.state.chunk_locations_many(hashes) if hashes else {}

    def prepare(self, change: Change) -> Content:
        """Open the partial file and fill what local sources can provide."""
        assert change.hash is not None
        content = Content(change.hash, change.size, change.chunks)
        content.tmp, content.fd = self.tree.temp_for(change.path, PART_PREFIX + change.hash[:40], keep=True)
        have = os.fstat(content.fd).st_size
        for h, offset, size in _offsets(change.chunks):
            if offset + size <= have and _verify(os.pread(content.fd, size, offset), h):
                continue  # left by an interrupted run
            data = self._from_index(h, size)
            if data is not None:
                os.pwrite(content.fd, data, offset)
            else:
                content.missing.setdefault(h, []).append(offset)
        if have > change.size:
            os.ftruncate(content.fd, change.size)
        return content

    def _from_index(self, h: str, size: int) -> bytes | None:
        locations = self._locations.get(h) if self._locations is not None else self.state.chunk_locations(h)
        for path, offset, csize in locations or ():
            if csize != size:
                continue
            try:
                with self.tree.open_read(path) as fd:
                    data = os.pread(fd, size, offset)
            except (OSError, UnsafePath):
                data = b""
            if _verify(data, h):
                return data
            self.state.forget_chunk(h, path, offset)  # the local file changed since
        return None

    async def fetch(self, session: Session, contents: list[Content]) -> None:
        """Get every missing chunk of `contents` from the server and write it in place."""
        targets: dict[str, list[tuple[Content, int]]] = {}
        sizes: dict[str, int] = {}
        for content in contents:
            for h, offsets in content.missing.items():
                targets.setdefault(h, []).extend((content, off) for off in offsets)
            for h, size in content.chunks:
                sizes.setdefault(h, size)
        for h, data in (await self.prefetcher.take()).items():
            for content, offset in targets.pop(h, ()):
                os.pwrite(content.fd, data, offset)
        wanted = list(targets)
        if not wanted:
            for content in contents:
                content.missing.clear()
            return
        requests = get_groups(wanted, sizes)
        inflight: list = []
        next_req = 0
        while next_req < len(requests) or inflight:
            while next_req < len(requests) and len(inflight) < WINDOW:
                inflight.append(await session.start_get(requests[next_req]))
                next_req += 1
            get = inflight.pop(0)
            since_yield = 0
            async for h, data in session.iter_get(get):
                for content, offset in targets.get(h, ()):
                    os.pwrite(content.fd, data, offset)
                self.on_bytes(len(data))
                since_yield += len(data)
                if since_yield >= YIELD_BYTES:  # let other tasks in now and then, not after every small chunk
                    since_yield = 0
                    await asyncio.sleep(0)
            if get.missing:
                raise FileNotFoundError(2, f"the server lacks {len(get.missing)} chunk(s) it listed", get.missing[0])
        for content in contents:
            content.missing.clear()

    def finish(self, content: Content, mode: int, mtime: float, *, fsync: bool = False) -> os.stat_result:
        """Set mode and mtime on the finished temp file (before it is renamed into place); its stat."""
        if fsync:
            os.fdatasync(content.fd)
        os.fchmod(content.fd, mode & 0o7777)
        ns = int(mtime * 1e9)
        os.utime(content.fd, ns=(ns, ns))
        st = os.fstat(content.fd)
        if st.st_size != content.size:  # `prepare` cut a longer leftover; the chunks fill the rest exactly
            os.ftruncate(content.fd, content.size)
            os.utime(content.fd, ns=(ns, ns))
            st = os.fstat(content.fd)
        return st

    def copy_for(self, content: Content, path: str, *, fsync: bool = False) -> tuple[TempFile, os.stat_result]:
        """A second temp file with the same bytes, beside `path` (one content, several paths); its stat."""
        tmp, fd = self.tree.temp_for(path)
        try:
            offset = 0
            while offset < content.size:
                n = os.copy_file_range(content.fd, fd, content.size - offset, offset, offset)
                if n == 0:
                    break
                offset += n
            st = os.fstat(content.fd)
            os.fchmod(fd, st.st_mode & 0o7777)
            os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
            if fsync:
                os.fdatasync(fd)
            return tmp, os.fstat(fd)
        finally:
            os.close(fd)

    def close(self, content: Content) -> None:
        if content.fd >= 0:
            os.close(content.fd)
            content.fd = -1


def _verify(data: bytes, h: str) -> bool:
    return bool(data) and blake3.blake3(data).hexdigest() == h
