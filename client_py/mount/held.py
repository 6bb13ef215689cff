"""A directory's attribute changes held in the mount and stored as one change.

`tar -x` sets each directory's owner, mode and times at its end (three requests:
chown, chmod, utimens, one after the other on the same directory; the Django sdist
has 3,233 of them). Each used to be a store call of its own (a lookup, the UPDATE,
a change-log row, a savepoint). A local mount now answers them from the metadata
cache and keeps the changes here, for as many directories as tar leaves before the
group transaction commits (`WsfsOperations.held`, by path); each directory's reach
the store as one `Workspace.set_attrs` before any request that does not know about
them (`fuseop.fuse_op`, unless `keeps_held`), before a create or mkdir in it, and
before the group commits, always after the files still pending in it (made before
the changes: storing one stamps the directory's times). Every value the kernel was
told (mode, owner, times, ctime) is the one stored.
"""

from __future__ import annotations

import stat as stat_mod
from dataclasses import dataclass, field

import vfs
from client_py.mount.metacache import change_in_place, restat


@dataclass
class HeldAttrs:
    """The changes held for one directory, and its `Stat` with them applied."""

    path: str
    stat: vfs.Stat
    changes: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # One copy: the given Stat may be the store's (shared with its stat cache); this one is
        # the mount's own, changed in place by each `apply` (`tar -x`: three a directory).
        self.stat = restat(self.stat)

    def apply(self, now: int, *, mode: int | None = None, uid: int = -1, gid: int = -1,
              atime_ns: int | None = None, mtime_ns: int | None = None) -> vfs.Stat:
        """One more change (made at `now`, its ctime); the new `Stat`."""
        changes, new = self.changes, {}
        if mode is not None:
            changes["mode"] = mode & 0o7777
            new.update(mode=stat_mod.S_IFDIR | (mode & 0o7777))
        if uid >= 0:
            changes["uid"] = new["uid"] = uid
        if gid >= 0:
            changes["gid"] = new["gid"] = gid
        if atime_ns is not None:
            changes["atime_ns"] = new["atime_ns"] = atime_ns
            new["atime"] = atime_ns / 1e9
        if mtime_ns is not None:
            changes["mtime_ns"] = new["mtime_ns"] = mtime_ns
            new["mtime"] = mtime_ns / 1e9
        changes["ctime_ns"] = now
        return change_in_place(self.stat, now, new)


def holdable(st: vfs.Stat | None, atime_ns: int | None = None, mtime_ns: int | None = None) -> bool:
    """May a change of `st`'s attributes be held: a directory, times the store can keep."""
    if st is None or st.kind != "dir":
        return False
    return (atime_ns is None or _I64_MIN <= atime_ns <= _I64_MAX) and (
        mtime_ns is None or _I64_MIN <= mtime_ns <= _I64_MAX)  # (no generator: three calls a directory)


_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
