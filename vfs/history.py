"""Version history as users see it, and garbage collection.

`versions` records every content change and deletion as it happens; this
module lists a path's versions, makes an old one current again (a pointer
move sharing its chunks: no bytes are copied) and collects what no file
and no retained version references any more.

    workspace  ->  history  ->  content, versions, changelog, db
"""

from __future__ import annotations

import errno
import time

from vfs.chunks import unpack
from vfs.changelog import ChangeLog
from vfs.content import Content
from vfs.db import Db, stat_of
from vfs.errors import fs_error
from vfs.schema import KIND_DELETED, KIND_NAMES
from vfs.types import GcStats, Stat, Version
from vfs.versions import Versions


class History:
    """Listing, restore and gc over one store's versions."""

    __slots__ = ("_db", "_content", "_versions", "_changelog", "tombstone_revs")

    def __init__(
        self, db: Db, content: Content, versions: Versions, changelog: ChangeLog, *, tombstone_revs: int | None = None
    ):
        self._db = db
        self._content = content
        self._versions = versions
        self._changelog = changelog
        # Tombstone retention: gc() forgets deletions older than this many
        # revisions (None keeps them all); readers further behind get CursorTooOld.
        self.tombstone_revs = tombstone_revs

    def history(self, path: str) -> list[Version]:
        """Retained versions of the file at `path`, newest first (deletions included)."""
        real = self._versions.history_path(path)
        rows = self._db.conn.execute(
            "SELECT rev, kind, size, hash, mtime FROM versions WHERE path = ? ORDER BY rev DESC", (real,)
        )
        return [
            Version(real, rev, KIND_NAMES[kind], size, digest.hex() if digest else None, mtime)  # type: ignore[arg-type]
            for rev, kind, size, digest, mtime in rows
        ]

    def restore(self, path: str, *, rev: int) -> Stat:
        """Make the version of `path` recorded at revision `rev` current again (a new revision).

        `rev` must be one `history(path)` lists as a file version: any other
        revision (one that changed other paths, a future one, a deletion) is
        refused with ENOENT rather than guessed at. The content and the mode
        come back as they were recorded at `rev`; a chmod made since is undone
        with the content it belonged to.
        """
        with self._db.tx() as tx:
            real = self._versions.history_path(path)
            recorded = self._db.conn.execute(
                "SELECT kind FROM versions WHERE path = ? AND rev = ?", (real, rev)
            ).fetchone()
            if recorded is None:
                raise fs_error(errno.ENOENT, path, f"no version of {path} was recorded at revision {rev} "
                                                   "(history lists the revisions to restore)")
            if recorded[0] == KIND_DELETED:
                raise fs_error(errno.ENOENT, path, f"{path} was deleted at revision {rev}: nothing to restore")
            _, mode, size, digest, chunks = self._versions.row(path, rev)
            found = self._content.writable_target(path, parents=True)
            ino = self._content.set_content(tx, found, unpack(chunks), size, digest, mode=mode, mtime_ns=None)
            return stat_of(self._db.node(ino))

    # -- garbage collection ---------------------------------------------------------

    def gc(self, *, grace: float = 0.0) -> GcStats:
        """Prune old versions, then delete chunks nothing references.

        `grace` spares chunks stored in the last `grace` seconds: a server
        passes a few minutes so chunks uploaded for a push that has not been
        applied yet survive. With `tombstone_revs` set, deletions older than
        that many revisions are compacted too (see `compact_tombstones`).
        """
        if self.tombstone_revs is not None and self._db.rev > self.tombstone_revs:
            self._changelog.compact_tombstones(self._db.rev - self.tombstone_revs)
        conn = self._db.conn
        with self._db.tx():
            pruned = self._versions.prune_all()
            referenced: set[int] = set()
            for table in ("nodes", "versions"):
                for (blob,) in conn.execute(f"SELECT chunks FROM {table} WHERE chunks IS NOT NULL"):
                    referenced.update(entry.id for entry in unpack(blob))
            old_enough = conn.execute("SELECT id, size FROM chunks WHERE created <= ?", (time.time() - grace,))
            doomed = [(chunk_id, size) for chunk_id, size in old_enough if chunk_id not in referenced]
            conn.executemany("DELETE FROM chunks WHERE id = ?", [(i,) for i, _ in doomed])
            conn.executemany("DELETE FROM chunk_data WHERE id = ?", [(i,) for i, _ in doomed])
            kept = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        return GcStats(len(doomed), sum(size for _, size in doomed), kept, pruned)
