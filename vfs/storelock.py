"""Which processes may write one store file at the same time.

Any number of writers may share a store: SQLite serialises their
transactions, and each one notices the others' commits (PRAGMA
data_version). A local FUSE mount is the exception: the kernel caches the
names, attributes and pages it has seen, and nothing would tell it that
another process changed the store. So the mount opens its store
*exclusively*, and every other writable open takes a *shared* lock: whichever
comes second gets `StoreBusy` at once, with a message saying what to do,
instead of a mount that silently shows stale files.

The lock is `flock(2)` on a sidecar file `STORE.db-lock`, never on the
database file itself: closing any descriptor of a database file drops the
POSIX locks SQLite holds on it. flock locks die with their process, so a
killed mount or server never leaves a stale lock behind. Read-only opens
take no lock (an observer cannot make anyone's view stale).
"""

from __future__ import annotations

import fcntl
import os

from vfs.errors import StoreBusy


def lock_path(store_path: str) -> str:
    return f"{store_path}-lock"


def acquire(store_path: str, *, exclusive: bool) -> int:
    """Take the lock; return its descriptor (give it to `release`). Never waits."""
    fd = os.open(lock_path(store_path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        if exclusive:
            raise StoreBusy(
                store_path,
                "another process has this store open for writing (a `wsfs serve`?); a local mount must be "
                "its only writer. Mount the workspace through that server instead: "
                "wsfs mount URL WORKSPACE MOUNTPOINT",
            ) from None
        raise StoreBusy(
            store_path,
            "this store is mounted (`wsfs mount`), and a mount must be its only writer; write through the "
            "mount, open the store read-only, or unmount it first",
        ) from None
    return fd


def release(fd: int) -> None:
    os.close(fd)  # closing the descriptor drops the flock
