"""Warm stats without SQL: node rows by path, valid while no one commits.

A warm `stat` was one statement (~10 us here, two B-tree lookups and 16
columns), against ~5 us for the reference. This cache answers a repeated
stat from memory and is validated, on every call, by the WAL-index header
in the store's `-shm` file (mapped through `vfs/shmmap.py`, which never
closes a descriptor of it: that would drop the process's SQLite locks): SQLite rewrites that header on every commit of
any connection to the file (its `iChange` counter, `mxFrame` and salts move;
https://www.sqlite.org/walformat.html, "the WAL-index header"). Reading 48
bytes from a shared mapping costs a fraction of a statement.

Why it stays exact: the header is read *before* the rows are looked up,
and a row is kept only if the header still has not moved after the lookup,
so every entry was current under the header it is filed under; any later
commit changes the header and the next call starts a fresh, empty dict.
Each header gets its own dict, swapped in with one assignment, so a caller
in another thread cannot file a row read under an old header into the
dict of a new one. The caller bypasses the cache inside a transaction (its
own uncommitted writes do not touch the header). Stores without a `-shm`
file (in memory, not in WAL mode) never cache. Entries are bounded (`LIMIT`):
a stat counts one, a directory listing (`vfs/listing.py`) a quarter per entry
(its columns take ~150 bytes an entry against ~650 for a stat), so the
memory bound is the same whatever is kept.

A value put with `carry` (a listing) is not dropped by a commit: each new
dict starts with it wrapped in `Stale`, counted against that dict's bound,
for its owner to revalidate (`vfs.listing` does, from the change log) and
put again. The values carried are replaced, never changed in place, so a
dict of an older header never sees a newer one's.

    db  ->  statcache
"""

from __future__ import annotations

import mmap
from collections.abc import Hashable

from vfs import shmmap

HEADER = 48  # one copy of the WAL-index header (struct WalIndexHdr)
LIMIT = 4096  # entries kept per header (weighed, see `put`); the dict empties when full

Token = tuple[bytes, dict, list]  # (header, the dict valid under it, [its weight so far])


class Stale:
    """A value kept with `carry` under an earlier header: valid then, to be checked now."""

    __slots__ = ("value",)

    def __init__(self, value: object):
        self.value = value


class StatCache:
    """Values by key, each dict valid under one WAL-index header."""

    __slots__ = ("_shm_path", "_map", "_state", "_carried")

    def __init__(self, db_path: str):
        memory = db_path in ("", ":memory:") or db_path.startswith("file:")
        self._shm_path = None if memory else db_path + "-shm"
        self._map: mmap.mmap | None = None
        self._state: Token = (b"", {}, [0])
        self._carried: dict[Hashable, tuple[object, int]] = {}  # key -> (value, weight); replaced, never changed

    def begin(self) -> Token | None:
        """Start a lookup: the dict valid under the header as it is now (None: no cache for this store)."""
        shm = self._map if self._map is not None else self._open()
        if shm is None:
            return None
        header = shm[:HEADER]
        state = self._state
        if state[0] != header:
            carried = self._carried
            entries = {key: Stale(value) for key, (value, _) in carried.items()}
            state = self._state = (header, entries, [sum(weight for _, weight in carried.values())])
        return state

    def header(self) -> bytes | None:
        """The WAL-index header as it is now (None: no `-shm`); `vfs.checkpointer` reads its frame count."""
        shm = self._map if self._map is not None else self._open()
        return None if shm is None else shm[:HEADER]

    def put(self, token: Token, key: Hashable, value: object, weight: int = 1, *, carry: bool = False) -> None:
        """Keep `value`, read after `begin` returned `token`, if no commit came since.

        `weight`: what it counts against `LIMIT` (a stat: 1); heavier than the
        whole limit, it is not kept. `carry`: offer it, as `Stale`, to the dicts
        of later headers too (until a dict is emptied for room)."""
        header, entries, used = token
        shm = self._map
        if shm is None or shm[:HEADER] != header:
            return
        carried = self._carried
        if weight > LIMIT:  # (one carried before, grown past the bound since, is dropped)
            if key in carried:
                self._carried = {k: v for k, v in carried.items() if k != key}
                entries.pop(key, None)
            return
        if key in carried and entries.get(key).__class__ is Stale:
            used[0] -= carried[key][1]  # this dict counted it when it began
        if used[0] + weight > LIMIT:
            entries.clear()
            used[0] = 0
            carried = {}
        if carry:
            carried = {**carried, key: (value, weight)}
        elif key in carried:
            carried = {k: v for k, v in carried.items() if k != key}
        self._carried = carried
        entries[key] = value
        used[0] += weight

    def close(self) -> None:
        self._state = (b"", {}, [0])
        self._carried = {}
        if self._map is not None:  # shared and kept by vfs.shmmap: closing it would drop SQLite's locks on -shm
            shmmap.let_go(self._map)
            self._map = None
        elif self._shm_path is not None:  # the store's last connection may just have removed a -shm
            shmmap.let_go_unlinked()  # that another cache of it let go of earlier (a reader's)
        self._shm_path = None

    def _open(self) -> mmap.mmap | None:
        if self._shm_path is None:
            return None  # in memory or not in WAL mode
        # None until the file exists and is long enough (no query ran yet): tried again next time.
        # Never opened and closed here: closing a descriptor of -shm drops the process's SQLite locks.
        self._map = shmmap.header_map(self._shm_path, HEADER)
        return self._map
