"""Read-only mappings of a store's `-shm` file that never drop SQLite's locks.

SQLite's locks on the WAL index are POSIX `fcntl` locks on the `-shm` file,
and POSIX locks belong to the process and the inode: closing ANY descriptor
of that file in the process drops all of them, whichever descriptor took
them (fcntl(2), "the lock is released when ... any file descriptor referring
to the file is closed"). Python's `mmap` also keeps a `dup` of the
descriptor it maps and closes it with the mapping. So a reader of the
WAL-index header (`vfs/statcache.py`) that opened, mapped and closed the
`-shm` file silently dropped the process's DMS lock (byte 128, the "this
shared memory is in use" mark): the next process to open the store (our
Litestream daemon) saw no one using it, reset the shared memory as its first
user (truncating the file to 3 bytes), and both processes then read a WAL
index torn under them, SQLITE_PROTOCOL ("locking protocol") on both sides.

So each `-shm` inode this process reads gets one descriptor and one mapping,
opened once and kept for as long as the file has a name: never closed while
a connection of this process may hold locks on it. Once the file is unlinked
(the store deleted or replaced, or SQLite removed it with its last
connection) no process can open it by name again, so none can mistake itself
for its first user, and the descriptor is closed: by `release_unlinked`
(`remove_store`), and, for inodes no stat cache uses any more, whenever a
cache lets go or a new inode is kept. Only those unused inodes are looked
at then, so a node with thousands of open stores does not pay for all of
them on each open and close (issue 18).
"""

from __future__ import annotations

import mmap
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class _Kept:
    """One `-shm` inode's descriptor, its mapping once the file was long enough, and any duplicate
    descriptor a race between two threads opened (kept too: closing it would drop the locks)."""

    fd: int
    map: mmap.mmap | None = None
    extra: list[int] = field(default_factory=list)
    users: int = 0  # mappings handed out and not yet given back (`let_go`)


_lock = threading.Lock()
_kept: dict[tuple[int, int], _Kept] = {}  # (st_dev, st_ino) of a -shm file -> what this process keeps of it
_by_map: dict[int, tuple[int, int]] = {}  # id() of a handed-out mapping -> its key (a close finds it at once)
_unused: set[tuple[int, int]] = set()  # keys of `_kept` whose users are 0: the only ones checked for unlinking


def header_map(shm_path: str, length: int) -> mmap.mmap | None:
    """A shared, read-only mapping of the first `length` bytes of `shm_path`; None while the file
    is missing or shorter. The mapping belongs to this module: never close it; hand it back with
    `let_go` when done (its descriptor may then be closed once the file has no name)."""
    try:
        st = os.stat(shm_path)
    except OSError:
        return None  # not created yet, or not in WAL mode
    with _lock:
        key = (st.st_dev, st.st_ino)
        kept = _kept.get(key)
        if kept is None:
            found = _keep(shm_path)
            if found is None:
                return None
            key, kept = found
        if kept.map is None:
            try:
                if os.fstat(kept.fd).st_size < length:
                    return None
                kept.map = mmap.mmap(kept.fd, length, mmap.MAP_SHARED, mmap.PROT_READ)
                _by_map[id(kept.map)] = key
            except (OSError, ValueError):
                return None
        if len(kept.map) < length:
            return None
        kept.users += 1
        _unused.discard(key)
        return kept.map


def let_go(mapping: mmap.mmap) -> None:
    """Hand back a mapping `header_map` returned (the stat cache's store closed)."""
    with _lock:
        key = _by_map.get(id(mapping))
        kept = _kept.get(key) if key is not None else None
        if kept is not None and kept.map is mapping:
            kept.users = max(kept.users - 1, 0)
            if kept.users == 0:
                _unused.add(key)
        _release_unlinked(list(_unused))


def _keep(shm_path: str) -> tuple[tuple[int, int], _Kept] | None:
    """Open `shm_path` and keep its descriptor (under `_lock`); its key and what is kept."""
    try:
        fd = os.open(shm_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    st = os.fstat(fd)
    key = (st.st_dev, st.st_ino)
    kept = _kept.get(key)
    if kept is not None:  # replaced and back between our stat and open: keep this one too
        kept.extra.append(fd)
        return key, kept
    _release_unlinked(list(_unused))
    kept = _kept[key] = _Kept(fd)
    _unused.add(key)
    return key, kept


def let_go_unlinked() -> None:
    """Close what is kept of unused `-shm` files that have no name any more (a store just closed)."""
    with _lock:
        _release_unlinked(list(_unused))


def release_unlinked() -> int:
    """Close what is kept of `-shm` files that no longer have a name; returns how many."""
    with _lock:
        return _release_unlinked(list(_kept))


def _release_unlinked(keys: Iterable[tuple[int, int]]) -> int:
    """Close what is kept of those of `keys` whose file has no name any more (under `_lock`)."""
    gone = [key for key in keys if os.fstat(_kept[key].fd).st_nlink == 0]
    for key in gone:
        kept = _kept.pop(key)
        _unused.discard(key)
        if kept.map is not None:
            _by_map.pop(id(kept.map), None)
            kept.map.close()
        for fd in (kept.fd, *kept.extra):
            os.close(fd)
    return len(gone)


def kept_inodes() -> set[tuple[int, int]]:
    """The (st_dev, st_ino) of every `-shm` file this process keeps open (for tests)."""
    with _lock:
        return set(_kept)
