"""Version history and garbage collection.

Every content change records the new version of the path (a row pointing
at its chunk list), so restoring is a pointer move and costs no bytes.
Versions are kept per path, not per inode: editors that save through a
temporary file and a rename keep their history.
"""

from __future__ import annotations

import errno
import time

from vfs.chunks import ChunkEntry, unpack
from vfs.content import ContentOps
from vfs.core import _Tx
from vfs.errors import fs_error
from vfs.paths import normalize
from vfs.schema import KIND_DELETED, KIND_FILE, KIND_NAMES
from vfs.types import GcStats, Stat, Version


class HistoryOps(ContentOps):
    def history(self, path: str) -> list[Version]:
        """Retained versions of the file at `path`, newest first (deletions included)."""
        real = self._history_path(path)
        rows = self._conn.execute(
            "SELECT rev, kind, size, hash, mtime FROM versions WHERE path = ? ORDER BY rev DESC", (real,)
        )
        return [
            Version(real, rev, KIND_NAMES[kind], size, digest.hex() if digest else None, mtime)  # type: ignore[arg-type]
            for rev, kind, size, digest, mtime in rows
        ]

    def restore(self, path: str, *, rev: int) -> Stat:
        """Make the version of `path` as of revision `rev` current again (a new revision)."""
        with self._tx() as tx:
            row = self._version_row(path, rev)
            found = self._writable_target(path, parents=True)
            _, mode, size, digest, chunks = row
            ino = self._set_content(tx, found, unpack(chunks), size, digest, mode=mode, mtime_ns=None)
            return self._stat(self._node(ino))

    def _history_path(self, path: str) -> str:
        """Versions are keyed by real path: follow symlinks when the path still resolves."""
        try:
            return self._resolve(path, follow=True).real
        except OSError:
            return normalize(path)

    def _version_row(self, path: str, rev: int) -> tuple:
        real = self._history_path(path)
        row = self._conn.execute(
            "SELECT kind, mode, size, hash, chunks FROM versions WHERE path = ? AND rev <= ? ORDER BY rev DESC LIMIT 1",
            (real, rev),
        ).fetchone()
        if row is None or row[0] == KIND_DELETED:
            raise fs_error(errno.ENOENT, path, f"no version of {path} at revision {rev}")
        return row

    def _version_chunks(self, path: str, rev: int) -> list[ChunkEntry]:
        return unpack(self._version_row(path, rev)[4])

    def _record_current_version(self, tx: _Tx, path: str, ino: int, *, prune: bool = True) -> None:
        """Keep the node's content as the version of `path` at this revision.

        `prune=False` (a file just created) leaves trimming old versions to
        the path's next write or `gc()`: a new file rarely has any.
        """
        now = time.time()
        self._conn.execute(
            "INSERT OR REPLACE INTO versions(path, rev, kind, mode, size, mtime, hash, chunks, recorded) "
            "SELECT ?, ?, kind, mode, size, mtime_ns / 1e9, hash, chunks, ? FROM nodes WHERE ino = ? AND kind = ?",
            (path, tx.rev, now, ino, KIND_FILE),
        )
        if prune:
            self._prune(path, now)

    def _record_deletion(self, tx: _Tx, paths: list[str]) -> None:
        now = time.time()
        self._conn.executemany(
            "INSERT OR REPLACE INTO versions(path, rev, kind, mode, size, mtime, hash, chunks, recorded) "
            "VALUES(?, ?, ?, 0, 0, ?, NULL, NULL, ?)",
            [(path, tx.rev, KIND_DELETED, now, now) for path in paths],
        )

    def _prune(self, path: str, now: float) -> int:
        """Drop versions beyond the newest `history_keep` that are also older than `history_days`."""
        cutoff = now - self.history_days * 86400
        cur = self._conn.execute(
            "DELETE FROM versions WHERE path = ? AND recorded < ? AND rev NOT IN "
            "(SELECT rev FROM versions WHERE path = ? ORDER BY rev DESC LIMIT ?)",
            (path, cutoff, path, self.history_keep),
        )
        return cur.rowcount

    # -- garbage collection ---------------------------------------------------------

    def gc(self, *, grace: float = 0.0) -> GcStats:
        """Prune old versions, then delete chunks nothing references.

        `grace` spares chunks stored in the last `grace` seconds: a server
        passes a few minutes so chunks uploaded for a push that has not been
        applied yet survive. With `tombstone_revs` set, deletions older than
        that many revisions are compacted too (see `compact_tombstones`).
        """
        if self.tombstone_revs is not None and self.rev > self.tombstone_revs:
            self.compact_tombstones(self.rev - self.tombstone_revs)
        with self._tx():
            pruned = sum(
                self._prune(path, time.time())
                for (path,) in self._conn.execute(
                    "SELECT path FROM versions GROUP BY path HAVING count(*) > ?", (self.history_keep,)
                ).fetchall()
            )
            referenced: set[int] = set()
            for table in ("nodes", "versions"):
                for (blob,) in self._conn.execute(f"SELECT chunks FROM {table} WHERE chunks IS NOT NULL"):
                    referenced.update(entry.id for entry in unpack(blob))
            doomed = [
                (chunk_id, size)
                for chunk_id, size in self._conn.execute(
                    "SELECT id, size FROM chunks WHERE created <= ?", (time.time() - grace,)
                )
                if chunk_id not in referenced
            ]
            self._conn.executemany("DELETE FROM chunks WHERE id = ?", [(i,) for i, _ in doomed])
            self._conn.executemany("DELETE FROM chunk_data WHERE id = ?", [(i,) for i, _ in doomed])
            kept = self._conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        return GcStats(len(doomed), sum(size for _, size in doomed), kept, pruned)
