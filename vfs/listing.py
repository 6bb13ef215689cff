"""A directory's entries read as one row of columns, not one row per entry.

Reading a 10,000-entry directory row by row cost ~1.5 us per entry here,
almost none of it SQLite's: the join itself is ~0.2 us an entry (a
`count()` over it), the rest is the `sqlite3` module handing each row to
Python (a step with the GIL released and retaken, a tuple, an object per
value). So the listing comes back as one row: each column aggregated in the
same pass over the same rows (names joined by '/', which no name holds;
kinds as one digit each; numbers as JSON arrays), split and decoded in bulk
here, and only the `DirEntry` objects are
built one by one. One statement, so one snapshot, as before.

A kept listing (`Listing`: the columns and the revision they were read at)
outlives the commits that follow it: the next readdir asks the change log
(`pathlog`, which every mutation of any connection stamps in its own
transaction) which names below the directory changed since that revision,
and re-reads those entries alone, in one statement (one snapshot): the
revision, the tombstone horizon and the changed entries together. A name
is changed when its path or any path below it was logged after the
revision (a subdirectory's mtime moves with its entries). Whatever cannot
be patched that way is read whole: the directory itself logged since, the
horizon past the revision (a deletion's row may be gone), more than
`_SCAN` log rows since (anywhere) or more than `_PATCH` changed names.

The aggregate sees the rows in the order the inner query yields them
(`dirents`' key order, which is the name order asked for); SQLite does not
promise that order for an aggregate, so the names are checked and the
entries sorted when it ever differs (names compare in Python as their
UTF-8 bytes compare in SQLite's BINARY collation).

    namespace  ->  listing
"""

from __future__ import annotations

import json
import sqlite3
from bisect import bisect_left

from vfs.schema import KIND_NAMES, KIND_SYMLINK
from vfs.txstate import CURRENT_REV_SQL
from vfs.types import DirEntry

# Kinds as one character each: every node kind is a single digit (vfs.schema).
_KIND_BY_DIGIT = {str(code): name for code, name in KIND_NAMES.items()}
if any(len(digit) != 1 for digit in _KIND_BY_DIGIT):
    raise ImportError("a node kind code is not one digit: vfs.listing reads kinds one character each")

# The columns of each entry, the symlink's size being its target's length in bytes.
_COLUMNS = (
    f"d.name AS name, n.kind AS kind, CASE WHEN n.kind = {KIND_SYMLINK} THEN coalesce(length(CAST(n.target AS BLOB)), 0) "
    "ELSE n.size END AS size, n.mtime_ns AS mtime_ns, n.ino AS ino FROM dirents d JOIN nodes n ON n.ino = d.ino "
    "WHERE d.parent = ?"
)
# Names are joined by '/', which no name holds. (A separator given as `char(0)` costs a call per row.)
# Numbers as JSON arrays: `json.loads` makes the ints in C (~30 % faster than int() of split text).
_AGGREGATE = (
    "SELECT group_concat(name, '/'), group_concat(kind, ''), json_group_array(size), json_group_array(mtime_ns), "
    "json_group_array(ino), count(*)"
)
_LISTING = f"{_AGGREGATE} FROM (SELECT {_COLUMNS})"  # flattened: one pass over `dirents`' key range
_LISTING_PAGE = f"{_AGGREGATE} FROM (SELECT {_COLUMNS} ORDER BY d.name LIMIT ? OFFSET ?)"
_NAMES = "SELECT group_concat(name, '/'), count(*) FROM dirents WHERE parent = ?"
_LISTING_AT = f"{_AGGREGATE}, ({CURRENT_REV_SQL}) FROM (SELECT {_COLUMNS})"  # with the revision it shows

_SCAN = 512  # log rows since the kept revision (anywhere) past which a listing is read whole
_PATCH = 64  # changed names past which it is read whole (each one patched costs a copy of the columns' tails)
# Changed names below a directory since a revision, each with its entry now (NULL columns: gone),
# after one header row: the revision, the horizon, the log rows since (up to _SCAN: the scan of
# the (rev, path) index from the revision is bounded, whatever changed elsewhere), the
# directory's own stamp. The name is the first component of the path below the directory.
_SINCE = f"""
WITH logged(path) AS MATERIALIZED (SELECT path FROM pathlog WHERE rev > :rev LIMIT {_SCAN}),
changed(name) AS (
    SELECT DISTINCT CASE WHEN instr(substr(path, :start), '/') THEN substr(path, :start, instr(substr(path, :start), '/') - 1)
           ELSE substr(path, :start) END
    FROM logged WHERE path > :low AND path < :high
    LIMIT {_PATCH + 1}
)
SELECT ({CURRENT_REV_SQL}), coalesce((SELECT value FROM meta WHERE key = 'tombstone_horizon'), 0),
       (SELECT count(*) FROM logged), (SELECT rev FROM pathlog WHERE path = :dir),
       c.name, n.kind, CASE WHEN n.kind = {KIND_SYMLINK} THEN coalesce(length(CAST(n.target AS BLOB)), 0)
       ELSE n.size END, n.mtime_ns, n.ino
FROM (SELECT 1) LEFT JOIN changed c LEFT JOIN dirents d ON d.parent = :ino AND d.name = c.name
LEFT JOIN nodes n ON n.ino = d.ino
"""


Columns = tuple[list[str], list[str], list[int], list[float], list[int]]  # names, kinds, sizes, mtimes, inos


def entries(conn: sqlite3.Connection, dir_ino: int, limit: int | None, offset: int) -> list[DirEntry]:
    """The entries of directory `dir_ino` in name order, `limit` of them from `offset`."""
    return build(columns(conn, dir_ino, limit, offset))


def columns(conn: sqlite3.Connection, dir_ino: int, limit: int | None = None, offset: int = 0) -> Columns:
    """The listing as columns (what `build` makes entries of, and what a cache keeps: ~150 bytes an entry)."""
    if limit is None and not offset:
        row = conn.execute(_LISTING, (dir_ino,)).fetchone()
    else:
        row = conn.execute(_LISTING_PAGE, (dir_ino, -1 if limit is None else limit, offset)).fetchone()
    return _decoded(dir_ino, row)


def _decoded(dir_ino: int, row: tuple) -> Columns:
    """The columns of one aggregated row (`_AGGREGATE`), in name order."""
    joined, kinds, sizes, mtimes, inos, count = row
    if not count:
        return [], [], [], [], []
    kind_of = _KIND_BY_DIGIT
    cols = (
        joined.split("/"),
        [kind_of[digit] for digit in kinds],
        json.loads(sizes),
        [ns / 1e9 for ns in json.loads(mtimes)],
        json.loads(inos),
    )
    if any(len(col) != count for col in cols):
        raise RuntimeError(f"directory {dir_ino}: listing of {count} entries split into {[len(c) for c in cols]}")
    if _in_order(cols[0]):
        return cols
    order = sorted(range(count), key=lambda i: cols[0][i].encode())
    return tuple([col[i] for i in order] for col in cols)  # type: ignore[return-value]


class Listing:
    """A whole listing as kept (`vfs.statcache`): its columns, and where and when they were read."""

    __slots__ = ("cols", "rev", "ino", "real")

    def __init__(self, cols: Columns, rev: int, ino: int, real: str):
        self.cols, self.rev, self.ino, self.real = cols, rev, ino, real

    @property
    def weight(self) -> int:
        return weight(self.cols)


def current(conn: sqlite3.Connection, dir_ino: int, real: str, kept: Listing | None) -> Listing:
    """The whole listing of directory `dir_ino` (at path `real`) now: `kept` patched from the change
    log when it is of the same directory and few names changed since, else read whole."""
    if kept is not None and kept.ino == dir_ino and kept.real == real:
        patched = _patched(conn, kept)
        if patched is not None:
            return patched
    row = conn.execute(_LISTING_AT, (dir_ino,)).fetchone()
    return Listing(_decoded(dir_ino, row[:-1]), int(row[-1]), dir_ino, real)


def _patched(conn: sqlite3.Connection, kept: Listing) -> Listing | None:
    """`kept` brought up to date from the change log (None: read it whole)."""
    low, high = (kept.real + "/", kept.real + "0") if kept.real != "/" else ("/", "0")
    rows = conn.execute(
        _SINCE, {"rev": kept.rev, "start": len(low) + 1, "low": low, "high": high, "dir": kept.real, "ino": kept.ino}
    ).fetchall()
    rev, horizon, since, dir_rev = rows[0][:4]
    rev, horizon = int(rev), int(horizon)  # (as `Db.rev` reads them: `meta` values are untyped)
    if horizon > kept.rev or since >= _SCAN or (dir_rev is not None and dir_rev > kept.rev) or len(rows) > _PATCH:
        return None
    if rows[0][4] is None:  # nothing below the directory changed
        return Listing(kept.cols, rev, kept.ino, kept.real)
    names, kinds, sizes, mtimes, inos = cols = tuple(list(col) for col in kept.cols)
    kind_of = KIND_NAMES
    for *_, name, kind, size, mtime_ns, ino in rows:
        at = bisect_left(names, name)
        there = at < len(names) and names[at] == name
        if kind is None:
            if there:
                for col in cols:
                    del col[at]
        elif there:
            kinds[at], sizes[at], mtimes[at], inos[at] = kind_of[kind], size, mtime_ns / 1e9, ino
        else:
            for col, value in zip(cols, (name, kind_of[kind], size, mtime_ns / 1e9, ino)):
                col.insert(at, value)
    return Listing(cols, rev, kept.ino, kept.real)  # type: ignore[arg-type]


def build(cols: Columns, limit: int | None = None, offset: int = 0) -> list[DirEntry]:
    """The `DirEntry` objects of a listing's columns (new ones each call: callers may change them)."""
    if limit is not None or offset:
        end = None if limit is None else offset + limit
        cols = tuple(col[offset:end] for col in cols)  # type: ignore[assignment]
    return list(map(DirEntry, *cols))


def weight(cols: Columns) -> int:
    """What a listing counts against the stat cache's bound (`vfs.statcache`: a stat counts 1)."""
    return 1 + len(cols[0]) // 4


def names(conn: sqlite3.Connection, dir_ino: int) -> list[str]:
    """The names in directory `dir_ino`, in name order."""
    joined, count = conn.execute(_NAMES, (dir_ino,)).fetchone()
    if not count:
        return []
    out = joined.split("/")
    if len(out) != count:
        raise RuntimeError(f"directory {dir_ino}: {count} names split into {len(out)}")
    return out if _in_order(out) else sorted(out, key=str.encode)


def _in_order(names: list[str]) -> bool:
    """Names in ascending order (a sorted list is one run for `sorted`: n - 1 comparisons in C)."""
    return sorted(names) == names
