"""What a quiet workspace keeps, and what gives it back (`WorkspaceHandle.sleep`).

A workspace that stays open because someone subscribes, but sees no
operation for a while, closes every SQLite connection (about seven
descriptors and ~400 KiB of page cache and schema each time) and keeps one
shared store lock, so a local mount still cannot take it. Its files are
stamped when it closes them: an outside commit changes the stamp, its own
closing checkpoint does not, so the outside-commit watch wakes it only for
news. Memory freed by closing goes back to the system (`release_memory`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource
import threading
from pathlib import Path
from typing import Any


def files_stamp(path: Path) -> tuple[Any, ...]:
    """What the store's files (the database and its WAL) look like now: size, mtime, inode."""
    stamp: list[Any] = []
    for suffix in ("", "-wal"):
        try:
            st = os.stat(f"{path}{suffix}")
            stamp.append((st.st_size, st.st_mtime_ns, st.st_ino))
        except FileNotFoundError:
            stamp.append(None)
    return tuple(stamp)


def release_memory() -> None:
    """Give freed heap back to the system (glibc keeps it otherwise: RSS stayed at its peak after
    1,000 stores closed). A no-op where there is no `malloc_trim`."""
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


FDS_AWAKE = 7  # descriptors an awake workspace may hold (writer: db, wal, shm, lock; a reader: 3)
PRESSURE = 0.7  # share of the open-file limit past which idle times shrink (`FdGuard` refuses at 0.9)
PRESSED_IDLE = 1.0  # seconds of quiet before a store sleeps (or, unused, closes) under pressure
LOCK_SHARE = 8  # sleeping stores keep their store lock while they hold at most 1/LOCK_SHARE of the limit


def fd_limit() -> int:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def pressed(awake: int, users: int) -> bool:
    """Would `awake` workspaces, `users` connections using them and the sleeping stores' locks come
    near the open-file limit? Then quiet stores sleep (or close) after `PRESSED_IDLE` seconds, not
    the configured idle times: 10,000 workspaces opened within a minute would otherwise hold ~70,000
    descriptors until theirs passed. An estimate from counts: listing /proc/self/fd takes ~80 ms
    at 18,000 descriptors."""
    return awake * FDS_AWAKE + users + SLEEP_LOCKS.held > fd_limit() * PRESSURE


class LockBudget:
    """How many sleeping stores may keep their store lock (one descriptor each).

    Below the budget a sleeping store is still refused to a local mount. Past it (10,000 sleeping
    stores with a limit of 20,000 would need every descriptor the sockets do not), a store sleeps
    without its lock: a mount may then take it, and the server serves it read-only until it is
    unmounted, as when the mount came first (writes: 409 EBUSY).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.held = 0

    def take(self) -> bool:
        with self._lock:
            if self.held >= fd_limit() // LOCK_SHARE:
                return False
            self.held += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self.held -= 1


SLEEP_LOCKS = LockBudget()
