"""The state of a running write transaction (`Tx`) and the revision it commits as.

`vfs.db` opens, nests and commits transactions; what one knows while it runs
(its revision, allocated on first use, and the files it created) lives here.

    db  ->  txstate
"""

from __future__ import annotations

import sqlite3

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
