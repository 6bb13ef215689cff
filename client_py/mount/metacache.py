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

import dataclasses
import operator
from collections.abc import Callable

import vfs
from vfs.paths import NAME_MAX

MAX_ENTRIES = 200_000  # stats kept before starting over (a bound on memory, ~60 MB)


class MetaCache:
    """path -> Stat (positive answers), path -> readdir entries, and the complete
    set of names of some directories, which answers lookups of names that do not
    exist (each new file is looked up before it is created) without the store."""

    __slots__ = ("enabled", "listings", "misses", "names", "stats")

    def __init__(self) -> None:
        self.enabled = False  # set for a local store once mounted
        self.stats: dict[str, vfs.Stat] = {}
        self.listings: dict[str, list] = {}
        self.names: dict[str, set[str]] = {}
        self.misses: dict[str, int] = {}  # directory -> lookups of absent names before `names` has it

    def clear(self) -> None:
        if self.stats or self.listings or self.names or self.misses:
            self.stats.clear()
            self.listings.clear()
            self.names.clear()
            self.misses.clear()

    def put(self, path: str, st: vfs.Stat) -> None:
        """Keep `st`, the store's answer for `path` right after a change (nothing else has one)."""
        if self.enabled:
            if name_count(st) > 1:
                self.clear()  # the node's other names changed too (ctime, link count)
                return
            if len(self.stats) >= MAX_ENTRIES:
                self.stats.clear()
            self.stats[path] = st

    def put_names(self, paths: tuple[str, ...], st: vfs.Stat) -> None:
        """Keep `st` under `paths`, which are all the names its node has (after
        link(2) of a file that had one name: git's objects), so nothing is cleared."""
        if self.enabled:
            if len(self.stats) + len(paths) > MAX_ENTRIES:
                self.stats.clear()
            for path in paths:
                self.stats[path] = st

    def forget(
        self, path: str, *, added: bool | None = None, nlink: int = 1, parent_ns: int | None = None, subdirs: int = 0
    ) -> None:
        """`path` changed: forget its stat. `added` True/False: the name was created or
        removed, so its parent's times, link count and listing moved too (and the
        parent's name set gains or loses it). A node with other names (`nlink` > 1)
        changed under those as well: forget everything. `parent_ns`: the parent's new
        mtime and ctime when known (a new file's ctime, see `Namespace.insert_node`),
        so its stat is kept, updated, for the getattr the kernel sends next (`subdirs`:
        how its link count moved, a directory made or removed in it)."""
        if nlink > 1:
            self.clear()
            return
        self.stats.pop(path, None)
        if added is not None:
            parent, _, name = path.rpartition("/")
            parent = parent or "/"
            if parent_ns is None:
                self.stats.pop(parent, None)
            else:
                before = self.stats.get(parent)
                if before is not None:  # a directory's Stat is this cache's own: updated in place
                    before.mtime = before.ctime = parent_ns / 1e9  # (dataclasses.replace: ~15 us)
                    before.mtime_ns = before.ctime_ns = parent_ns
                    before.nlink += subdirs
            self.listings.pop(parent, None)
            names = self.names.get(parent)
            if names is not None:
                if added:
                    names.add(name)
                else:
                    names.discard(name)

    def new_dir(self, path: str) -> None:
        """`path` is a directory just made: nothing is in it."""
        if self.enabled and len(self.names) < MAX_ENTRIES // 10:
            self.names[path] = set()

    def stat(
        self, path: str, load: Callable[[str], vfs.Stat | None], names: Callable[[str], set[str]] | None = None
    ) -> vfs.Stat | None:
        """`path`'s Stat or None, from memory when known. `names(dir)` lists a directory:
        called at the second lookup of an absent name in it, whose names are then kept."""
        if not self.enabled:
            return load(path)
        st = self.stats.get(path)
        if st is not None:
            return st
        parent, _, name = path.rpartition("/")
        parent = parent or "/"
        known = self.names.get(parent)
        if known is not None and name not in known and (name.isascii() and 0 < len(name) <= NAME_MAX or _valid(name)):
            return None  # (an ASCII name's length is its size: no encode for each absent name git looks up)
        st = load(path)
        if st is not None:
            if len(self.stats) >= MAX_ENTRIES:
                self.stats.clear()
            self.stats[path] = st
        elif names is not None and known is None:
            missed = self.misses[parent] = self.misses.get(parent, 0) + 1
            if missed >= 2 and len(self.names) < MAX_ENTRIES // 10:
                self.names[parent] = names(parent)
        return st

    def listing(self, path: str, load: Callable[[str], list]) -> list:
        if not self.enabled:
            return load(path)
        entries = self.listings.get(path)
        if entries is None:
            if len(self.listings) >= MAX_ENTRIES // 10:
                self.listings.clear()
            entries = self.listings[path] = load(path)
            if len(self.names) < MAX_ENTRIES // 10:
                self.names[path] = {entry[0] for entry in entries[2:]}  # (after "." and "..")
        return entries


_STAT_FIELDS = operator.attrgetter(*(field.name for field in dataclasses.fields(vfs.Stat)))


def restat(st: vfs.Stat, **changes) -> vfs.Stat:
    """`dataclasses.replace(st, **changes)` in a quarter of its time (~1.5 against ~6 us
    here): a tar member changes its pending stat four times (futimens, fchown, fchmod,
    close), and a held directory three."""
    new = vfs.Stat(*_STAT_FIELDS(st))
    for name, value in changes.items():
        setattr(new, name, value)
    return new


def change_in_place(st: vfs.Stat, now: int, changes: dict) -> vfs.Stat:
    """Set `changes` on `st` itself and move its ctime to `now` (ns): for a Stat only the mount
    holds (a pending file's, a held directory's copy), where every holder must see the change and
    a copy (`restat`) for each of tar's three changes a file was most of their cost."""
    st.ctime_ns, st.ctime = now, now / 1e9
    for name, value in changes.items():
        setattr(st, name, value)
    return st


def name_count(st: vfs.Stat) -> int:
    """How many names the node has: its link count, but 1 for a directory, whose link
    count counts its subdirectories (a chmod of a directory must not clear the cache)."""
    return 1 if st.kind == "dir" else st.nlink


def _valid(name: str) -> bool:
    """Would the store accept `name` (it answers an invalid one with its own errno)?"""
    try:
        return 0 < len(name.encode("utf-8")) <= NAME_MAX
    except UnicodeEncodeError:
        return False
