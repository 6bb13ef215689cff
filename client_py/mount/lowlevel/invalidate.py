"""Remote mode on the low-level API: the kernel drops, by inode, what the change stream changed.

The path API's `notify.StreamInvalidator` asks libfuse to drop a path's node
(`fuse_invalidate_path`: its attributes and pages). Here the kernel's names are the
inode table's (`inodes.py`), so each stale path the stream reports is resolved the
way the kernel holds it (parent inode, name) and dropped exactly:

- the name's binding changed (the index now has another inode at that name, or none:
  removed or replaced elsewhere; or one appeared where the kernel may keep an absent
  name): `notify_inval_entry(parent, name)`, so the next access looks it up again;
- the inode the kernel holds there: `notify_inval_inode` (its attributes, its pages; a
  directory's pages are its kept listing).

A name whose inode is unchanged (our own change's echo, a file's new content) keeps
its entry: the kernel then asks for the attributes only, not for the name again.

So the kernel may keep absent names too (60 s, as for a local store; the path API keeps
none in remote mode): a name made elsewhere drops the absent entry. No LOOKUP reply can
overtake that: the kernel looks a name up holding its directory's lock (shared), and
`notify_inval_entry` takes that lock exclusively before it finds the entry, so it waits
for a lookup in flight and then drops what the lookup left. (A positive entry's expired
timeout is revalidated without the lock, on either API, so there the kernel may keep a
reply that raced a change for one more timeout.)
It runs in `StreamInvalidator`'s thread (never in a FUSE request: the kernel may first
need a lock held by a request the FUSE thread is serving), reading the inode table and
the index without their locks (single dict lookups).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from client_py.mount.lowlevel.inodes import ROOT, InodeTable
from client_py.mount.notify import StreamInvalidator

log = logging.getLogger("wsfs.mount")


class InodeInvalidator(StreamInvalidator):
    """`StreamInvalidator` over a low-level session: `notify_inval_entry`/`_inode` per stale path."""

    def __init__(self, session, inodes: InodeTable, current: Callable[[str], int | None], *,
                 negatives: bool) -> None:
        """`current(path)`: the inode number the mount gives `path` now (None: absent).
        `negatives`: the kernel keeps absent names (a new name must drop them)."""
        super().__init__(None)
        self._session, self._inodes, self._current, self._negatives = session, inodes, current, negatives
        self.fuse = session.se  # (None after `stop`: no call then)
        self.counts = {"entry": 0, "inode": 0}

    def invalidate(self, path: str) -> None:
        session = self._session
        if path == "/":
            session.inval_inode(ROOT, 0, 0)
            self.counts["inode"] += 1
            return
        parent = self._parent(path)
        if parent is None:
            return  # (the kernel holds no directory above it: nothing of it is cached)
        name = path.rpartition("/")[2]
        held = self._inodes.by_name.get((parent, name))
        now = self._current(path)
        if held != now and (held is not None or self._negatives):
            session.inval_entry(parent, name.encode("utf-8", "surrogateescape"))
            self.counts["entry"] += 1
        if held is not None:
            session.inval_inode(held, 0, 0)
            self.counts["inode"] += 1

    def stop(self) -> None:
        super().stop()
        log.info("change stream: %d entry and %d inode invalidations", self.counts["entry"], self.counts["inode"])

    def _parent(self, path: str) -> int | None:
        """The kernel's inode of `path`'s directory, walked from the root by name."""
        by_name, ino = self._inodes.by_name, ROOT
        for name in path[1:].split("/")[:-1]:
            ino = by_name.get((ino, name))
            if ino is None:
                return None
        return ino
