"""The change stream: what changed after a cursor, coalesced to current state.

`pathlog` has one row per path, stamped with the revision of its last
change and the inode now there (NULL: a tombstone). Reading the stream is
an index range scan on `(rev, path)` from the cursor, joined to the
current node, so its cost grows with the number of changes returned, not
with the size of the tree, and a path rewritten five times is one entry.
The rows themselves are written by every mutation through `Db.log`.

    history, workspace  ->  changelog  ->  db
"""

from __future__ import annotations

from collections.abc import Iterable

from vfs.chunks import wire_list
from vfs.db import CURRENT_REV_SQL, Db
from vfs.errors import CursorTooOld
from vfs.paths import normalize, prefix_bounds
from vfs.schema import KIND_FILE, KIND_NAMES
from vfs.types import Change, ChangePage, Cursor
from vfs.wire.globs import IgnoreMatcher

# The tombstone horizon and the current revision in one statement (two cost ~4 us each here).
_HORIZON_AND_REV = f"SELECT (SELECT value FROM meta WHERE key = 'tombstone_horizon'), ({CURRENT_REV_SQL})"

_COLUMNS = "p.path, p.rev, n.kind, n.mode, n.mtime_ns / 1e9, n.size, n.hash, n.chunks, n.target, n.ino, n.rdev"

# One commit's rows, with the current revision and the tombstone horizon as of the same snapshot
# (uncorrelated scalar subqueries: SQLite evaluates each once per statement).
_COMMIT_ROWS = (
    f"SELECT {_COLUMNS}, ({CURRENT_REV_SQL}), coalesce((SELECT value FROM meta WHERE key = 'tombstone_horizon'), 0) "
    "FROM pathlog p LEFT JOIN nodes n ON n.ino = p.ino WHERE p.rev = ? ORDER BY p.path LIMIT ?"
)


def _to_change(path: str, rev: int, kind, mode, mtime, size, digest, chunks, target, ino=None, rdev=0) -> Change:
    if kind is None:
        return Change(path=path, kind="delete", rev=rev)
    return Change(
        path=path,
        kind=KIND_NAMES[kind],  # type: ignore[arg-type]
        rev=rev,
        mode=mode,
        mtime=mtime,
        size=len(target.encode("utf-8")) if target is not None else (size or 0),
        hash=digest.hex() if digest is not None else None,
        chunks=wire_list(chunks),
        target=target,
        rdev=rdev or 0,
    )


class ChangeLog:
    """Reading the change log of one store, and compacting its tombstones."""

    __slots__ = ("_db",)

    def __init__(self, db: Db):
        self._db = db

    def changes(
        self,
        after: Cursor | str | int | None = None,
        *,
        prefix: str = "/",
        ignore: Iterable[str] = (),
        limit: int | None = None,
    ) -> list[Change]:
        return self.changes_page(after, prefix=prefix, ignore=ignore, limit=limit).entries

    def changes_page(
        self,
        after: Cursor | str | int | None = None,
        *,
        prefix: str = "/",
        ignore: Iterable[str] = (),
        limit: int | None = None,
    ) -> ChangePage:
        """One page of changes after `after`, ordered by (rev, path).

        The page's `cursor` is where to resume; when the page is the last
        one it is `(current rev, None)`, so a reader that was filtered out
        of everything still moves forward.
        """
        after = Cursor.parse(after)
        prefix = normalize(prefix)
        ignored = IgnoreMatcher(ignore)
        conn = self._db.conn
        own_snapshot = not conn.in_transaction
        if own_snapshot:
            conn.execute("BEGIN")  # one snapshot for the rows and the revision
        try:
            horizon, now = conn.execute(_HORIZON_AND_REV).fetchone()  # one statement, in the snapshot
            horizon = self._check_horizon(after, int(horizon))
            rows = conn.execute(*self._changes_query(after, prefix, limit)).fetchall()
            now = int(now)
            rows, derived = self._derive_ids(rows)
        finally:
            if own_snapshot:
                conn.execute("COMMIT")
        for row in derived:  # out of the read snapshot: now they can be kept
            self._keep(row)
        changes = (_to_change(*row) for row in rows)
        entries = [c for c in changes if not ignored.ignores(c.path, c.kind)]
        more = limit is not None and len(rows) == limit
        cursor = Cursor(rows[-1][1], rows[-1][0]) if more else max(after, Cursor(now, None))
        if rows and Cursor(rows[0][1], rows[0][0]) < Cursor(horizon, None):
            # A listing from the start, with entries below the horizon: the page's cursor carries the
            # horizon as its floor (for its entries' cursors too; ignored once above the horizon).
            cursor = Cursor(cursor.rev, cursor.path, horizon)
        return ChangePage(entries, cursor, more)

    def commit_changes(self, rev: int, *, limit: int) -> list[Change] | None:
        """The entries of commit `rev` exactly as `changes_page(rev - 1)` gives them, while `rev`
        is still the store's newest revision; None when it is not any more (another writer
        committed since, or tombstones at `rev` were compacted), when the commit logged no path,
        or when it logged more than `limit`.

        One statement: the rows, the current revision and the tombstone horizon read in one
        snapshot, where `changes_page` takes four (BEGIN, the horizon and revision, the rows,
        COMMIT). A server reads each commit's changes this way right after making it, for its
        live subscribers (`server/feed.py` `read_delta`)."""
        rows = self._db.conn.execute(_COMMIT_ROWS, (rev, limit + 1)).fetchall()
        if not rows or len(rows) > limit:
            return None
        now, horizon = rows[0][-2:]
        if int(now) != rev or int(horizon) >= rev:
            return None
        rows, derived = self._derive_ids([row[:-2] for row in rows])
        for row in derived:
            self._keep(row)
        return [_to_change(*row) for row in rows]

    def _derive_ids(self, rows: list) -> tuple[list, list]:
        """Rows with the content id a positional write left to derive filled in
        (from the row's own chunk list, so the entry and its id always agree),
        and the rows that needed it."""
        if all(row[6] is not None or row[2] != KIND_FILE for row in rows):
            return rows, []
        derived = [self._derived(row) for row in rows if row[6] is None and row[2] == KIND_FILE]
        by_path = {row[0]: row for row in derived}
        return [by_path.get(row[0], row) for row in rows], derived

    def _derived(self, row: tuple) -> tuple:
        if row[6] is not None or row[2] != KIND_FILE:
            return row
        return (*row[:6], self._db.derive_hash(row[7]), *row[7:])

    def _keep(self, row: tuple) -> None:
        self._db.keep_derived(
            "UPDATE nodes SET hash = ? WHERE ino = ? AND hash IS NULL AND chunks IS ?", (row[6], row[9], row[7])
        )

    @staticmethod
    def _check_horizon(after: Cursor, horizon: int) -> int:
        """The tombstone `horizon`, if `after` may still read from here; else CursorTooOld.

        A cursor below the horizon may have missed deletions that are gone from
        the log, unless it carries a `floor` (a listing that started at the very
        beginning) and no deletion was compacted since that floor was read.
        """
        if after.rev > 0 and after < Cursor(horizon, None) and (after.floor is None or horizon > after.floor):
            raise CursorTooOld(after, horizon)
        return horizon

    @staticmethod
    def _changes_query(after: Cursor, prefix: str, limit: int | None) -> tuple[str, list]:
        sql = [f"SELECT {_COLUMNS} FROM pathlog p LEFT JOIN nodes n ON n.ino = p.ino WHERE "]
        params: list = []
        if after.path is None:
            sql.append("p.rev > ?")
            params.append(after.rev)
        else:
            sql.append("(p.rev, p.path) > (?, ?)")
            params += [after.rev, after.path]
        bounds = prefix_bounds(prefix)
        if bounds:
            sql.append(" AND (p.path = ? OR (p.path >= ? AND p.path < ?))")
            params += [prefix, *bounds]
        sql.append(" ORDER BY p.rev, p.path")
        if limit is not None:
            sql.append(" LIMIT ?")
            params.append(max(int(limit), 1))
        return "".join(sql), params

    def entry(self, path: str) -> Change | None:
        """The current state of one path as a change entry (None if never seen)."""
        path = normalize(path)
        row = self._db.conn.execute(
            f"SELECT {_COLUMNS} FROM pathlog p LEFT JOIN nodes n ON n.ino = p.ino WHERE p.path = ?", (path,)
        ).fetchone()
        if row is not None:
            if row[6] is None and row[2] == KIND_FILE:
                row = self._derived(row)
                self._keep(row)
            return _to_change(*row)
        if path == "/":
            root = self._db.node(1)
            return _to_change("/", 0, root.kind, root.mode, root.mtime_ns / 1e9, 0, None, None, None)
        return None

    def compact_tombstones(self, through_rev: int) -> int:
        """Forget deletions at or before `through_rev`; older cursors get CursorTooOld.

        Returns how many tombstones were removed.
        """
        conn = self._db.conn
        with self._db.tx():
            # Keep the current revision even if its own rows are tombstones about to go.
            conn.execute("UPDATE meta SET value = ? WHERE key = 'rev'", (self._db.rev,))
            cur = conn.execute("DELETE FROM pathlog WHERE ino IS NULL AND rev <= ?", (through_rev,))
            conn.execute(
                "UPDATE meta SET value = max(value, ?) WHERE key = 'tombstone_horizon'", (through_rev,)
            )
            return cur.rowcount
