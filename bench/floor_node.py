"""The in-memory inode both low-level FUSE floors keep (`floor_lowlevel.py` on pyfuse3,
`floor_lowlevel_ctypes.py` on ctypes): the same node so the two measure only their binding.
Each floor subclasses it with the reply its API wants (pyfuse3's `EntryAttributes`, libfuse's
`struct stat`)."""

from __future__ import annotations

import stat
import time


class Node:
    __slots__ = ("ino", "mode", "uid", "gid", "nlink", "data", "times", "children", "target", "parent", "name")

    def __init__(self, ino: int, mode: int, uid: int, gid: int, parent: int):
        self.ino, self.mode, self.uid, self.gid, self.parent = ino, mode, uid, gid, parent
        self.name = b""  # its last name (floor_lowlevel_ctypes.py --paths)
        self.nlink = 2 if stat.S_ISDIR(mode) else 1
        self.data = bytearray()
        now = time.time_ns()
        self.times = [now, now, now]  # atime, mtime, ctime
        self.children: dict[bytes, Node] | None = {} if stat.S_ISDIR(mode) else None
        self.target = b""

    def touch(self) -> None:
        self.times[1] = self.times[2] = time.time_ns()
