"""Recorded versions: every content change and deletion of a file, per path.

Every content change records the new version of the path (a row pointing
at its chunk list), so restoring is a pointer move and costs no bytes.
Versions are kept per path, not per inode: editors that save through a
temporary file and a rename keep their history.

This is the lower half of history: `namespace` and `content` call it from
inside their transactions; `history` (listing, restore, gc) sits above.

    namespace, content, history  ->  versions  ->  db
"""

from __future__ import annotations

import errno
import time

from vfs.chunks import ChunkEntry, unpack
from vfs.db import Db, Tx
from vfs.errors import fs_error
from vfs.paths import normalize
from vfs.schema import KIND_DELETED, KIND_FILE


class Versions:
    """The `versions` table of one store and its retention policy."""

    __slots__ = ("_db", "keep", "days")

    def __init__(self, db: Db, *, keep: int = 20, days: float = 7.0):
        self._db = db
        self.keep = keep  # at least this many versions per path survive pruning ...
        self.days = days  # ... and every version younger than this

    def record_current(self, tx: Tx, path: str, ino: int, *, prune: bool = True) -> None:
        """Keep the node's content as the version of `path` at this revision.

        `prune=False` (a file just created) leaves trimming old versions to
        the path's next write or `gc()`: a new file rarely has any.
        """
        now = time.time()
        self._db.conn.execute(
            "INSERT OR REPLACE INTO versions(path, rev, kind, mode, size, mtime, hash, chunks, recorded) "
            "SELECT ?, ?, kind, mode, size, mtime_ns / 1e9, hash, chunks, ? FROM nodes WHERE ino = ? AND kind = ?",
            (path, tx.rev, now, ino, KIND_FILE),
        )
        if prune:
            self.prune(path, now)

    def record_deletion(self, tx: Tx, paths: list[str]) -> None:
        """Mark each file path as deleted at this revision."""
        now = time.time()
        self._db.conn.executemany(
            "INSERT OR REPLACE INTO versions(path, rev, kind, mode, size, mtime, hash, chunks, recorded) "
            "VALUES(?, ?, ?, 0, 0, ?, NULL, NULL, ?)",
            [(path, tx.rev, KIND_DELETED, now, now) for path in paths],
        )

    def prune(self, path: str, now: float) -> int:
        """Drop versions beyond the newest `keep` that are also older than `days`."""
        cutoff = now - self.days * 86400
        cur = self._db.conn.execute(
            "DELETE FROM versions WHERE path = ? AND recorded < ? AND rev NOT IN "
            "(SELECT rev FROM versions WHERE path = ? ORDER BY rev DESC LIMIT ?)",
            (path, cutoff, path, self.keep),
        )
        return cur.rowcount

    def prune_all(self) -> int:
        """`prune` every path holding more than `keep` versions; how many went."""
        return sum(
            self.prune(path, time.time())
            for (path,) in self._db.conn.execute(
                "SELECT path FROM versions GROUP BY path HAVING count(*) > ?", (self.keep,)
            ).fetchall()
        )

    def history_path(self, path: str) -> str:
        """Versions are keyed by real path: follow symlinks when the path still resolves.

        Callers read the path's versions next, so content ids that positional
        writes left to derive are derived here first (see `derive_ids`)."""
        try:
            real = self._db.resolve(path, follow=True).real
        except OSError:
            real = normalize(path)
        self.derive_ids(real)
        return real

    def derive_ids(self, real: str) -> None:
        """Fill in the content id of every version of `real` recorded by a positional write.

        `record_current` copies the node's content id, which a positional
        write leaves NULL (see `Content._commit_edit`); the id is the exact
        BLAKE3 of the version's own chunk list, kept when the store can write.
        """
        stale = self._db.conn.execute(
            "SELECT rev, chunks FROM versions WHERE path = ? AND kind = ? AND hash IS NULL", (real, KIND_FILE)
        ).fetchall()
        for rev, chunks in stale:
            self._db.keep_derived(
                "UPDATE versions SET hash = ? WHERE path = ? AND rev = ? AND hash IS NULL",
                (self._db.derive_hash(chunks), real, rev),
            )

    def listing(self, real: str) -> list[tuple[int, int, int, bytes | None, float]]:
        """(rev, kind, size, content id, mtime) of every version of `real`, newest first.

        Content ids are exact even where `derive_ids` could not keep them
        (a read-only store): a NULL id of a file version is derived here.
        """
        rows = self._db.conn.execute(
            "SELECT rev, kind, size, hash, mtime, chunks FROM versions WHERE path = ? ORDER BY rev DESC", (real,)
        ).fetchall()
        return [
            (rev, kind, size, self._db.derive_hash(chunks) if digest is None and kind == KIND_FILE else digest, mtime)
            for rev, kind, size, digest, mtime, chunks in rows
        ]

    def row(self, path: str, rev: int) -> tuple:
        """(kind, mode, size, hash, chunks) of the version of `path` current at `rev`; ENOENT if none."""
        real = self.history_path(path)
        row = self._db.conn.execute(
            "SELECT kind, mode, size, hash, chunks FROM versions WHERE path = ? AND rev <= ? ORDER BY rev DESC LIMIT 1",
            (real, rev),
        ).fetchone()
        if row is None or row[0] == KIND_DELETED:
            raise fs_error(errno.ENOENT, path, f"no version of {path} at revision {rev}")
        kind, mode, size, digest, chunks = row
        if digest is None:  # not kept (a read-only store): derive it for this caller
            digest = self._db.derive_hash(chunks)
        return kind, mode, size, digest, chunks

    def chunks(self, path: str, rev: int) -> list[ChunkEntry]:
        """The chunk list of `path` as of revision `rev`."""
        return unpack(self.row(path, rev)[4])
