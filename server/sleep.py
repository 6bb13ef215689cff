"""What a quiet workspace keeps, and what gives it back (`WorkspaceHandle.sleep`).

A workspace that stays open because someone subscribes, but sees no
operation for a while, closes every SQLite connection (about seven
descriptors and ~400 KiB of page cache and schema each time) and keeps one
shared store lock, so a local mount still cannot take it. Its files are
stamped when it closes them: an outside commit changes the stamp, its own
closing checkpoint does not, so the outside-commit watch wakes it only for
news. Memory freed by closing goes back to the system (`gcpolicy.reclaim`).
"""

from __future__ import annotations

import asyncio
import os
import resource
import logging
import threading
import time
from pathlib import Path
from typing import Any

from server import gcpolicy


log = logging.getLogger("wsfs.server")
SLEEPS_AT_ONCE = 2  # stores the sweep puts to sleep concurrently (each a writer hop and a checkpoint)


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


class Activity:
    """What the sweep looks at, kept as it changes rather than found by a walk over every store.

    `handles`: the open stores that may need the sweep (awake, or with no user left to hold them
    open); a store joins on any operation, reader opening or change of users, and leaves once it
    sleeps with subscribers holding it open. `users`: the sum of every store's users. At 10,000
    sleeping subscribed workspaces the sweep and the pressure count then cost nothing (they walked
    all 10,000 handles every few seconds)."""

    def __init__(self) -> None:
        self.handles: set[Any] = set()
        self.users = 0


async def sweep(stores: Any, pressed: bool = False) -> None:
    """Close `stores` (a `server.store_set.Stores`) nobody used for `idle_close` seconds, and put to sleep
    (`WorkspaceHandle.sleep`) those that stay open (subscribed) but saw no operation for
    `idle_readers` seconds: a quiet subscribed workspace then holds at most one descriptor and no
    SQLite connection. `pressed`: both after `PRESSED_IDLE` seconds. At most `SLEEPS_AT_ONCE` sleeps
    run at a time, so active workspaces' writes keep pool threads. Only the stores in `Activity`
    are looked at. Memory freed by closing goes back to the system."""
    activity: Activity = stores.activity
    idle_close = PRESSED_IDLE if pressed else stores.options.idle_close
    idle_sleep = PRESSED_IDLE if pressed else stores.options.idle_readers
    now = time.monotonic()
    closed = 0
    gate = asyncio.Semaphore(SLEEPS_AT_ONCE * (2 if pressed else 1))
    sleeping: list[asyncio.Future[int]] = []

    async def put_to_sleep(handle: Any) -> int:
        async with gate:
            if handle.busy or handle.closed or time.monotonic() - handle.last_used <= idle_sleep:
                return 0
            return await handle.sleep()

    looked = list(activity.handles)  # a sleeping subscribed store is not among them: O(active)
    for handle in looked:
        if stores.open_handle(handle.name) is not handle:
            activity.handles.discard(handle)
        elif handle.users == 0 and handle.busy == 0 and now - handle.last_used > idle_close:
            closed += await stores.close_if_unused(handle)
        elif handle.busy == 0 and not handle.asleep and now - handle.last_used > idle_sleep:
            sleeping.append(asyncio.ensure_future(put_to_sleep(handle)))
    for n in await asyncio.gather(*sleeping, return_exceptions=True):
        if isinstance(n, int):
            closed += n
        else:
            log.warning("a store did not go to sleep: %s", n)
    for handle in looked:  # asleep and held open by its subscribers: nothing to do until it is used
        if handle.asleep and handle.users > 0 and handle.busy == 0:
            activity.handles.discard(handle)
    if closed:
        gcpolicy.reclaim()  # their cycles collected, then the heap trimmed
