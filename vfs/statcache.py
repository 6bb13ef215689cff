"""Warm stats without SQL: node rows by path, valid while no one commits.

A warm `stat` was one statement (~10 us here, two B-tree lookups and 16
columns), against ~5 us for the reference. This cache answers a repeated
stat from memory and is validated, on every call, by the WAL-index header
in the store's `-shm` file: SQLite rewrites that header on every commit of
any connection to the file (its `iChange` counter, `mxFrame` and salts move;
https://www.sqlite.org/walformat.html, "the WAL-index header"). Reading 48
bytes from a shared mapping costs a fraction of a statement.

Why it stays exact: the header is read *before* the rows are looked up, so
a row cached under a header can only be newer than that header; any commit
after the read changes the header and empties the cache at the next call.
The caller bypasses the cache inside a transaction (its own uncommitted
writes do not touch the header). Stores without a `-shm` file (in memory,
not in WAL mode) never cache. Entries are bounded (`LIMIT`).

    db  ->  statcache
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Hashable

HEADER = 48  # one copy of the WAL-index header (struct WalIndexHdr)
LIMIT = 4096  # entries kept; the cache empties when full


class StatCache:
    """Values by key, dropped whenever the store's WAL-index header moves."""

    __slots__ = ("_shm_path", "_map", "_header", "_entries")

    def __init__(self, db_path: str):
        memory = db_path in ("", ":memory:") or db_path.startswith("file:")
        self._shm_path = None if memory else db_path + "-shm"
        self._map: mmap.mmap | None = None
        self._header = b""
        self._entries: dict[Hashable, object] = {}

    def valid(self) -> bool:
        """Start a lookup: empty the cache if anyone committed since it was filled.

        False when no header can be read (no cache for this store)."""
        shm = self._map if self._map is not None else self._open()
        if shm is None:
            return False
        header = shm[:HEADER]
        if header != self._header:
            self._entries.clear()
            self._header = header
        return True

    def get(self, key: Hashable) -> object | None:
        return self._entries.get(key)

    def put(self, key: Hashable, value: object) -> None:
        if len(self._entries) >= LIMIT:
            self._entries.clear()
        self._entries[key] = value

    def clear(self) -> None:
        self._entries.clear()

    def close(self) -> None:
        self._entries.clear()
        if self._map is not None:
            self._map.close()
            self._map = None
        self._shm_path = None

    def _open(self) -> mmap.mmap | None:
        if self._shm_path is None:
            return None
        try:
            fd = os.open(self._shm_path, os.O_RDONLY)
        except OSError:
            return None  # not created yet (no query ran) or not in WAL mode: try again later
        try:
            if os.fstat(fd).st_size < HEADER:
                return None
            self._map = mmap.mmap(fd, HEADER, mmap.MAP_SHARED, mmap.PROT_READ)
        except (OSError, ValueError):
            return None
        finally:
            os.close(fd)
        return self._map
