"""One inotify watch on a directory, read from the event loop (Linux; ctypes, no thread).

The server needs to know when another process (the CLI, a script using
`vfs.Workspace`, a local mount) committed to a workspace's store. Every
commit writes the store's `-wal` file (or the `.db` itself), so one watch on
`DATA/workspaces` for modified files tells which stores changed, at no cost
while nothing is written — where a poll per workspace cost a thread hop per
workspace four times a second.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import struct
from typing import Callable

IN_MODIFY = 0x00000002
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len


class DirWatch:
    """Calls `on_names(names)` on the loop with the file names modified in `path` (read at most every `every` s)."""

    def __init__(self, path: str, on_names: Callable[[set[str]], None], every: float = 0.05):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        mask = IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE
        if libc.inotify_add_watch(fd, os.fsencode(path), mask) < 0:
            err = ctypes.get_errno()
            os.close(fd)
            raise OSError(err, f"inotify_add_watch {path} failed")
        self.fd = fd
        self._on_names = on_names
        self._every = every
        self._loop = asyncio.get_running_loop()
        self._closed = False
        self._loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        # read what is there, then stop listening for `every` seconds: a burst of writes
        # (our own commits write the -wal too) costs a few wake-ups per second, not one per write
        self._loop.remove_reader(self.fd)
        names: set[str] = set()
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            if not data:
                break
            offset = 0
            while offset + _HEADER.size <= len(data):
                _wd, _mask, _cookie, length = _HEADER.unpack_from(data, offset)
                raw = data[offset + _HEADER.size:offset + _HEADER.size + length]
                names.add(raw.rstrip(b"\0").decode(errors="replace"))
                offset += _HEADER.size + length
        if names:
            self._on_names(names)
        self._loop.call_later(self._every, self._resume)

    def _resume(self) -> None:
        if not self._closed:
            self._loop.add_reader(self.fd, self._readable)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self.fd)
        os.close(self.fd)
