"""Stats and directory listings of a local store, kept between FUSE requests.

The kernel asks for a directory's attributes after every listing (reading a
directory invalidates its atime) and libfuse's path-based API resolves
every request's path afresh, so `git status` in a 10k-file tree costs
thousands of store lookups that all give the same answers. A local store
has one writer, this mount, so the answers stay right until the mount
itself changes something. Each change forgets exactly what it made stale
(`forget`): the changed path, and for an entry added or removed its
parent's stat and listing; a change to a node with other names (hard
links), a rename or an rmdir clears everything (`ops.fuse_op`). What a
change returns (a create's or a commit's `Stat`) is kept (`put`), so the
getattr that follows never reaches the store. Remote mode answers from its
in-memory index already and does not use this.
"""

from __future__ import annotations

from collections.abc import Callable

import vfs

MAX_ENTRIES = 200_000  # stats kept before starting over (a bound on memory, ~60 MB)


class MetaCache:
    """path -> Stat (positive answers only) and path -> readdir entries."""

    __slots__ = ("enabled", "stats", "listings")

    def __init__(self) -> None:
        self.enabled = False  # set for a local store once mounted
        self.stats: dict[str, vfs.Stat] = {}
        self.listings: dict[str, list] = {}

    def clear(self) -> None:
        if self.stats or self.listings:
            self.stats.clear()
            self.listings.clear()

    def put(self, path: str, st: vfs.Stat) -> None:
        """Keep `st`, the store's answer for `path` right after a change (nothing else has one)."""
        if self.enabled:
            if st.nlink > 1:
                self.clear()  # the node's other names changed too (ctime, link count)
                return
            if len(self.stats) >= MAX_ENTRIES:
                self.stats.clear()
            self.stats[path] = st

    def forget(self, path: str, *, entries: bool = False, nlink: int = 1) -> None:
        """`path` changed: forget its stat; `entries`: a name was added or removed there,
        so its parent's times, link count and listing moved too. A node with other
        names (`nlink` > 1) changed under those as well: forget everything."""
        if nlink > 1:
            self.clear()
            return
        self.stats.pop(path, None)
        if entries:
            parent = path.rpartition("/")[0] or "/"
            self.stats.pop(parent, None)
            self.listings.pop(parent, None)

    def stat(self, path: str, load: Callable[[str], vfs.Stat | None]) -> vfs.Stat | None:
        if not self.enabled:
            return load(path)
        st = self.stats.get(path)
        if st is None:
            st = load(path)
            if st is not None:
                if len(self.stats) >= MAX_ENTRIES:
                    self.stats.clear()
                self.stats[path] = st
        return st

    def listing(self, path: str, load: Callable[[str], list]) -> list:
        if not self.enabled:
            return load(path)
        entries = self.listings.get(path)
        if entries is None:
            if len(self.listings) >= MAX_ENTRIES // 10:
                self.listings.clear()
            entries = self.listings[path] = load(path)
        return entries
