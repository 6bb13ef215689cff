"""The stored side of co-editing: each document's compacted state and its update log.

A co-edited file is, besides the file itself, one `coedit_docs` row (the
Yjs state last compacted, the state whose text the file held then, and
that file's content id) and the `coedit_log` rows of the updates stored
since. The server appends every update it acknowledges (one small
transaction each, no revision: nothing a watcher sees), and folds the log
into a new snapshot in the same transaction that writes the document's
text to the file. After a crash the document is the snapshot plus the log,
so nothing acknowledged is lost; the row is kept after the last editor
leaves, so an editor who reconnects with old history merges instead of
duplicating the text.

Only SQL lives here; what a Yjs state *means* is the server's business.
"""

from __future__ import annotations

from dataclasses import dataclass

from vfs.db import Db


@dataclass(frozen=True, slots=True)
class SavedDocument:
    """What the store holds for one document."""

    snapshot: bytes  # the Yjs state (an update from nothing) last compacted
    base: bytes  # the state whose text the file held at `file_hash`
    file_hash: str | None  # the file's content id then (None: there was no file)
    updates: list[bytes]  # updates stored since the snapshot, oldest first


class CoeditLog:
    """Documents and update logs in one workspace store, through its `Db`
    (a `vfs.Workspace` gives its own as `Workspace.coedit_log`)."""

    def __init__(self, db: Db):
        self._db = db

    def load(self, path: str) -> SavedDocument | None:
        conn = self._db.conn
        row = conn.execute("SELECT snapshot, base, file_hash FROM coedit_docs WHERE path = ?", (path,)).fetchone()
        updates = [bytes(r[0]) for r in conn.execute(
            "SELECT data FROM coedit_log WHERE path = ? ORDER BY seq", (path,))]
        if row is None and not updates:
            return None
        snapshot = bytes(row[0]) if row else b""
        base = bytes(row[1]) if row and row[1] is not None else snapshot
        file_hash = bytes(row[2]).hex() if row and row[2] is not None else None
        return SavedDocument(snapshot, base, file_hash, updates)

    def append(self, entries: list[tuple[str, bytes]]) -> None:
        """Store `(path, update)` entries, each path's oldest first, in one transaction (durable
        once this returns). One commit for every update that arrived while the previous one
        was being written: editors typing at once, in any documents, share commits."""
        with self._db.tx():
            self._db.conn.executemany("INSERT INTO coedit_log(path, data) VALUES(?, ?)", entries)

    def compact(self, path: str, snapshot: bytes, base: bytes | None, file_hash: str | None) -> None:
        """Replace the document's snapshot and drop its log (call inside the transaction that
        wrote the file, or one of its own). `base` None: the snapshot's text is the file."""
        with self._db.tx():
            self._db.conn.execute(
                "INSERT INTO coedit_docs(path, snapshot, base, file_hash) VALUES(?, ?, ?, ?) "
                "ON CONFLICT(path) DO UPDATE SET snapshot = excluded.snapshot, base = excluded.base, "
                "file_hash = excluded.file_hash",
                (path, snapshot, base, bytes.fromhex(file_hash) if file_hash else None),
            )
            self._db.conn.execute("DELETE FROM coedit_log WHERE path = ?", (path,))

    def logged(self) -> list[str]:
        """Paths whose updates are not yet folded into their file (the server stopped first)."""
        return [r[0] for r in self._db.conn.execute("SELECT DISTINCT path FROM coedit_log ORDER BY path")]
