"""The remote mount's metadata: every path's current state, in memory.

A remote mount answers `stat`, `readdir` and `readlink` without a round
trip: `RemoteBackend` loads one `changes` snapshot into an `Index` and keeps
it live from the change stream. The index holds what the change log says
(one `Change` per path), the children of each directory, and the inode
numbers this mount hands out (the wire carries none).
"""

from __future__ import annotations

import stat as stat_mod
import time
from itertools import count

from vfs.types import Change, Cursor


class Index:
    """Path -> current state (a `Change`), children per directory, local inode numbers."""

    def __init__(self) -> None:
        self.entries: dict[str, Change] = {"/": Change(path="/", kind="dir", rev=0, mode=stat_mod.S_IFDIR | 0o755, mtime=time.time())}
        self.children: dict[str, set[str]] = {"/": set()}
        self.inos: dict[str, int] = {"/": 1}
        self._next_ino = count(2)
        self.cursor = Cursor(0, None)

    def apply(self, change: Change) -> None:
        """Take one change: a new or changed node, or a deletion (with everything under it)."""
        path = change.path
        if path == "/":
            if change.kind == "dir":
                self.entries["/"] = change
            return
        parent, _, name = path.rpartition("/")
        parent = parent or "/"
        if change.kind == "delete":
            self._remove(path)
            return
        if parent not in self.entries:  # out-of-order safety: a placeholder parent
            self.apply(Change(path=parent, kind="dir", rev=change.rev, mode=stat_mod.S_IFDIR | 0o755))
        old = self.entries.get(path)
        if old is not None and old.kind == "dir" and change.kind != "dir":
            self._remove(path)
        self.entries[path] = change
        self.children[parent].add(name)
        if change.kind == "dir":
            self.children.setdefault(path, set())
        if path not in self.inos:
            self.inos[path] = next(self._next_ino)

    def _remove(self, path: str) -> None:
        if path not in self.entries:
            return
        for name in list(self.children.get(path, ())):
            self._remove(f"{path.rstrip('/')}/{name}")
        self.children.pop(path, None)
        del self.entries[path]
        self.inos.pop(path, None)
        parent, _, name = path.rpartition("/")
        self.children.get(parent or "/", set()).discard(name)
