"""The stored side of co-editing: each document's compacted state and its update log.

A co-edited file is, besides the file itself, one `coedit_docs` row (the
Yjs state last compacted, the state whose text the file held then, and
that file's content id) and the `coedit_log` rows of the updates stored
since. The server appends every update it acknowledges (small
transactions, no revision: nothing a watcher sees), and folds the log into
a new snapshot in the same transaction that writes the document's text to
the file. Appends go through the store's `Db` (`CoeditLog.append`) or
through a connection of their own (`DirectLog`), which a server uses from
its event loop while no other write holds the store: no thread hop per
keystroke. Log rows are numbered (`seq`, never reused), so a compaction
drops only the rows its snapshot already holds (`upto`), whichever
connection appends meanwhile. After a crash the document is the snapshot plus the log,
so nothing acknowledged is lost; the row is kept after the last editor
leaves, so an editor who reconnects with old history merges instead of
duplicating the text.

Only SQL lives here; what a Yjs state *means* is the server's business.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from vfs import storelock
from vfs.db import Db


@dataclass(frozen=True, slots=True)
class SavedDocument:
    """What the store holds for one document."""

    snapshot: bytes  # the Yjs state (an update from nothing) last compacted
    base: bytes  # the state whose text the file held at `file_hash`
    file_hash: str | None  # the file's content id then (None: there was no file)
    updates: list[bytes]  # updates stored since the snapshot, oldest first
    seq: int = 0  # the newest of their log rows (0: none)


class CoeditLog:
    """Documents and update logs in one workspace store, through its `Db`
    (a `vfs.Workspace` gives its own as `Workspace.coedit_log`)."""

    def __init__(self, db: Db):
        self._db = db

    def load(self, path: str) -> SavedDocument | None:
        conn = self._db.conn
        row = conn.execute("SELECT snapshot, base, file_hash FROM coedit_docs WHERE path = ?", (path,)).fetchone()
        rows = conn.execute("SELECT seq, data FROM coedit_log WHERE path = ? ORDER BY seq", (path,)).fetchall()
        if row is None and not rows:
            return None
        snapshot = bytes(row[0]) if row else b""
        base = bytes(row[1]) if row and row[1] is not None else snapshot
        file_hash = bytes(row[2]).hex() if row and row[2] is not None else None
        return SavedDocument(snapshot, base, file_hash, [bytes(r[1]) for r in rows], rows[-1][0] if rows else 0)

    def append(self, entries: list[tuple[str, bytes]]) -> int:
        """Store `(path, update)` entries, each path's oldest first, in one transaction (durable
        once this returns); the `seq` of the last one. One commit for every update that arrived
        while the previous one was being written: editors typing at once, in any documents,
        share commits."""
        with self._db.tx():
            return _insert(self._db.conn, entries)

    def compact(self, path: str, snapshot: bytes, base: bytes | None, file_hash: str | None,
                upto: int | None = None) -> None:
        """Replace the document's snapshot and drop its log rows up to `upto` (None: all), the
        newest row the snapshot is known to hold: rows appended after it was taken stay (call
        inside the transaction that wrote the file, or one of its own). `base` None: the
        snapshot's text is the file."""
        with self._db.tx():
            self._db.conn.execute(
                "INSERT INTO coedit_docs(path, snapshot, base, file_hash) VALUES(?, ?, ?, ?) "
                "ON CONFLICT(path) DO UPDATE SET snapshot = excluded.snapshot, base = excluded.base, "
                "file_hash = excluded.file_hash",
                (path, snapshot, base, bytes.fromhex(file_hash) if file_hash else None),
            )
            if upto is None:
                self._db.conn.execute("DELETE FROM coedit_log WHERE path = ?", (path,))
            else:
                self._db.conn.execute("DELETE FROM coedit_log WHERE path = ? AND seq <= ?", (path, upto))

    def logged(self) -> list[str]:
        """Paths whose updates are not yet folded into their file (the server stopped first)."""
        return [r[0] for r in self._db.conn.execute("SELECT DISTINCT path FROM coedit_log ORDER BY path")]


class DirectLog:
    """Appends to a store's update log through a connection of its own, never waiting.

    For a server's event loop: an append is one short local transaction (tens of
    microseconds), cheaper than handing it to the writer thread and back. It never
    waits for a lock: while another writer holds the store, `try_append` says so and
    the caller sends the entries the usual way. It takes the shared store lock like
    any writable open (`vfs.storelock`), so it never writes under a local mount.
    """

    def __init__(self, store_path: str):
        self._lock_fd = storelock.acquire(store_path, exclusive=False)
        try:
            self._conn = sqlite3.connect(store_path, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA busy_timeout=0")
            self._conn.execute("PRAGMA synchronous=NORMAL")  # as every connection (vfs.schema.configure)
            # No checkpoints from here: this connection runs on a server's event loop, where copying
            # ~1,000 WAL pages would stall every workspace; the store's writer (which writes the
            # document to its file within a second) checkpoints as usual.
            self._conn.execute("PRAGMA wal_autocheckpoint=0")
            if self._conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                raise sqlite3.OperationalError("not a WAL store: appends would block readers")
        except BaseException:
            self.close()
            raise

    def try_append(self, entries: list[tuple[str, bytes]]) -> int | None:
        """`CoeditLog.append`, or None at once (nothing stored) while another writer holds the store."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            if (e.sqlite_errorcode & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                return None
            raise
        try:
            seq = _insert(self._conn, entries)
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        return seq

    def close(self) -> None:
        conn = getattr(self, "_conn", None)
        if conn is not None:
            conn.close()
            self._conn = None  # type: ignore[assignment]
        if self._lock_fd is not None:
            storelock.release(self._lock_fd)
            self._lock_fd = None  # type: ignore[assignment]


def _insert(conn: sqlite3.Connection, entries: list[tuple[str, bytes]]) -> int:
    conn.executemany("INSERT INTO coedit_log(path, data) VALUES(?, ?)", entries)
    return int(conn.execute("SELECT last_insert_rowid()").fetchone()[0])
