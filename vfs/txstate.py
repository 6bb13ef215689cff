"""The state of a running write transaction (`Tx`) and the revision it commits as.

`vfs.db` opens and commits transactions; what one knows while it runs (its
revision, allocated on first use, and the files it created) lives here, with
the `with db.tx()` block that opens, nests and ends one (`Transaction`).

    db  ->  txstate
"""

from __future__ import annotations

import sqlite3
from typing import Any

# The revision is the newest stamp in the change log. `meta.rev` is only a
# floor, raised when tombstones are compacted away, so commits do not have to
# write the meta page (one WAL frame less per transaction).
CURRENT_REV_SQL = (
    "SELECT max(coalesce((SELECT max(rev) FROM pathlog), 0), (SELECT value FROM meta WHERE key = 'rev'))"
)


class Tx:
    """State of the running write transaction."""

    __slots__ = ("_conn", "_rev", "_known", "new_files")

    def __init__(self, conn: sqlite3.Connection, known: int = 0):
        self._conn = conn
        self._rev = 0
        # Files created in this transaction, path -> ino (`Content.set_content`): a later
        # write of one in the same transaction leaves pruning its path to a later one.
        self.new_files: dict[str, int] = {}
        # The store's current revision when the caller knows it (nobody else
        # committed since our last commit): saves the query on first write.
        self._known = known

    @property
    def rev(self) -> int:
        """The revision this transaction commits as (allocated on first use)."""
        if not self._rev:
            current = self._known or int(self._conn.execute(CURRENT_REV_SQL).fetchone()[0])
            self._rev = current + 1
        return self._rev

    @property
    def wrote(self) -> bool:
        return self._rev != 0


class Transaction:
    """`Db.tx()`'s block: BEGIN (or a SAVEPOINT inside an outer one) on entry, COMMIT or roll back on exit.
    A class, not a `@contextmanager` generator (~1 us less per transaction, timeit). `db` is the `vfs.db.Db`
    (not imported: db imports this module)."""

    __slots__ = ("_db", "_tx", "_savepoint", "_rev_before")

    def __init__(self, db: Any):
        self._db = db

    def __enter__(self) -> Tx:
        db = self._db
        db.dir_times_ns = 0  # each call reports only the directory times it stamped itself
        outer = db._tx_state
        if outer is None:
            self._savepoint = ""
            self._tx = db._begin()
            return self._tx
        db._savepoints += 1
        self._tx, self._savepoint, self._rev_before = outer, f"wsfs_sp{db._savepoints}", outer._rev
        try:
            db.conn.execute(f"SAVEPOINT {self._savepoint}")
        except BaseException:
            db._savepoints -= 1
            raise
        return outer

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        db, name = self._db, self._savepoint
        if not name:
            if kind is None:
                db._commit(self._tx)
            else:
                db._roll_back()
            return
        db._savepoints -= 1
        if kind is None:
            db.conn.execute(f"RELEASE {name}")
            return
        db.conn.execute(f"ROLLBACK TO {name}")
        db.conn.execute(f"RELEASE {name}")
        self._tx._rev = self._rev_before  # a failed call does not consume the revision
        db._dircache.clear()
