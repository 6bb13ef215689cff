"""The wrapper every FUSE operation of the mount runs in (`WsfsOperations`).

It takes the mount's lock (a Workspace is not thread-safe, and helper threads
touch it too), joins the open group transaction for a mutation (group.py),
turns store errors into the errnos the caller sees, and after the lock is
released invalidates the kernel's caches for other names of a changed
hard-linked inode (notify.py).
"""

from __future__ import annotations

import errno
import functools
from collections.abc import Callable

import mfusepy

import vfs

_NONE: tuple[list[str], bool] = ([], False)


def fuse_op(
    method: Callable | None = None, *, mutates: bool = False, targeted: bool = False, keeps_pending: bool = False,
    keeps_held: bool = False,
) -> Callable:
    """Run under the mount lock; turn store errors into FUSE errnos.

    `mutates`: the operation joins the open group transaction (see group.py).
    `targeted`: it tells the metadata cache itself what it made stale
    (`MetaCache.forget`/`put`); other mutations clear the whole cache.
    `keeps_pending`: it knows about files created here and not stored yet
    (`OpenFileOps._create_pending`); before any other operation they are stored.
    `keeps_held`: it knows about directories' attribute changes held in the mount
    (held.py; a create or mkdir stores its parent's first: `holds_dir`); before any other
    operation they are stored, after the pending files made in those directories before them.
    """
    if method is None:
        return functools.partial(fuse_op, mutates=mutates, targeted=targeted, keeps_pending=keeps_pending,
                                 keeps_held=keeps_held)
    clears = mutates and not targeted

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):  # self: a WsfsOperations
        # Every request runs this at least once (~130,000 times in a Django untar): the
        # common case (nothing held or pending, a group already open) is attribute checks only.
        try:
            with self._lock:
                try:
                    if self.held and not keeps_held:
                        _store_pending(self, self.store_held)
                    if self.pending and not keeps_pending:
                        _store_pending(self, self.store_pending)
                    if mutates:
                        self.fresh = None
                        group = self.group
                        if group.tx is None:
                            group.begin()
                        if clears:
                            self.cache.clear()
                    return method(self, *args, **kwargs)
                except mfusepy.FuseOSError:
                    raise
                except vfs.PreconditionFailed as exc:
                    raise mfusepy.FuseOSError(errno.EEXIST) from exc
                except OSError as exc:
                    if isinstance(exc.errno, int) and exc.errno > 0:
                        raise mfusepy.FuseOSError(exc.errno) from exc
                    raise
                finally:
                    if mutates:
                        self.group.after_op()
                    # (nearly every operation has nothing waiting: no calls then)
                    stale, busy = self.links.take_pending(self.table.node) if self.links.waiting else _NONE
        finally:
            if stale:
                self.links.flush(stale, busy)

    return wrapper


def _store_pending(self, store: Callable[[], None]) -> None:  # self: a WsfsOperations, holding its lock
    """Store what the mount holds (pending files, held attributes) in the open group transaction."""
    self.group.begin()
    try:
        store()
    finally:
        self.group.after_op()
