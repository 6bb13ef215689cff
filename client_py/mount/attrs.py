"""Owners, atime and exact nanosecond mtimes in remote mode.

A local store keeps uid/gid and nanosecond times itself. The wire protocol
carries neither (change entries have mode and float mtime), so a remote
mount keeps them here, per inode, for as long as it runs: chown, utimens and
stat agree with each other inside one mount session, and a new session
starts from the defaults (owner = the user who mounted; atime = mtime).
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(slots=True)
class Extra:
    uid: int
    gid: int
    atime_ns: int | None = None
    mtime_ns: int | None = None  # exact value set by utimens ...
    mtime_float: float | None = None  # ... valid while the store still holds this float
    ctime_ns: int = 0  # last metadata change made here (chmod, chown, link, rename...): the wire has no ctime


class AttrOverlay:
    def __init__(self, uid: int, gid: int):
        self.default_uid = uid
        self.default_gid = gid
        self._extra: dict[int, Extra] = {}

    def get(self, ino: int) -> Extra | None:
        return self._extra.get(ino)

    def ensure(self, ino: int) -> Extra:
        extra = self._extra.get(ino)
        if extra is None:
            extra = self._extra[ino] = Extra(self.default_uid, self.default_gid)
        return extra

    def owners(self, ino: int) -> tuple[int, int]:
        extra = self._extra.get(ino)
        return (extra.uid, extra.gid) if extra else (self.default_uid, self.default_gid)

    def created(self, ino: int, uid: int, gid: int) -> None:
        """A new inode: its owner is whoever created it (inode numbers can be reused)."""
        self._extra[ino] = Extra(uid, gid)

    def chown(self, ino: int, uid: int, gid: int) -> None:
        extra = self.ensure(ino)
        if uid != -1:
            extra.uid = uid
        if gid != -1:
            extra.gid = gid
        extra.ctime_ns = time.time_ns()

    def times(self, ino: int, mtime: float) -> tuple[int, int]:
        """(atime_ns, mtime_ns) for an inode whose store mtime is `mtime`."""
        extra = self._extra.get(ino)
        mtime_ns = int(round(mtime * 1e9))
        if extra is None:
            return mtime_ns, mtime_ns
        if extra.mtime_ns is not None and extra.mtime_float == mtime:
            mtime_ns = extra.mtime_ns
        return (extra.atime_ns if extra.atime_ns is not None else mtime_ns), mtime_ns

    def set_times(self, ino: int, atime_ns: int | None, mtime_ns: int | None, mtime_float: float | None) -> None:
        extra = self.ensure(ino)
        if atime_ns is not None:
            extra.atime_ns = atime_ns
        if mtime_ns is not None:
            extra.mtime_ns, extra.mtime_float = mtime_ns, mtime_float
        extra.ctime_ns = time.time_ns()

    def changed(self, ino: int) -> None:
        """A metadata change made through this mount: ctime moves to now."""
        self.ensure(ino).ctime_ns = time.time_ns()

    def ctime_ns(self, ino: int, mtime_ns: int) -> int:
        """ctime: the store's mtime, or a later metadata change made here."""
        extra = self._extra.get(ino)
        return mtime_ns if extra is None else max(mtime_ns, extra.ctime_ns)

    def forget(self, ino: int) -> None:
        self._extra.pop(ino, None)
