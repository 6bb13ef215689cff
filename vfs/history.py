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
from vfs.schema import KIND_DELETED, KIND_MOVED, KIND_NAMES
from vfs.types import GcStats, Stat, Version
from vfs.versions import Versions


# `versions` kinds as `Version.kind` names them: the node kinds plus "move".
_KIND_NAMES = {**KIND_NAMES, KIND_MOVED: "move"}


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
        """Retained versions of the file at `path`, newest first (deletions and moves included).

        The file is followed back across renames and hard links: each
        version names the path the file had then, and who wrote it.
        """
        real = self._versions.history_path(path)
        return [
            Version(
                row.path, row.rev, _KIND_NAMES[row.kind], row.size,  # type: ignore[arg-type]
                row.digest.hex() if row.digest else None, row.mtime, row.author, row.origin,
            )
            for row in self._versions.lineage(real)
        ]

    def authors(self, versions: list[tuple[str, int]]) -> dict[tuple[str, int], str]:
        """Who wrote each (path, revision) among `versions`, where a kept version says so.

        The change log holds no authors; a server that restarted finds them here
        (versions pruned, or written without an author, are simply absent).
        """
        found: dict[tuple[str, int], str] = {}
        for key in dict.fromkeys(versions):
            row = self._versions.stored(*key)  # (a current version may still be pending in its node)
            if row is not None and row[5]:
                found[key] = row[5]
        return found

    def restore(self, path: str, *, rev: int) -> Stat:
        """Make the version of `path` recorded at revision `rev` current again (a new revision).

        `rev` must be one `history(path)` lists as a file version (one the
        file had under an earlier name too: it comes back at `path`): any
        other revision (one that changed other paths, a future one, a
        deletion or a move) is refused with ENOENT rather than guessed at.
        The content and the mode come back as they were recorded at `rev`;
        a chmod made since is undone with the content it belonged to.
        """
        with self._db.tx() as tx:
            real = self._versions.history_path(path)
            recorded = next((row for row in self._versions.lineage(real) if row.rev == rev), None)
            if recorded is None:
                raise fs_error(errno.ENOENT, path, f"no version of {path} was recorded at revision {rev} "
                                                   "(history lists the revisions to restore)")
            if recorded.kind == KIND_DELETED:
                raise fs_error(errno.ENOENT, path, f"{path} was deleted at revision {rev}: nothing to restore")
            if recorded.kind == KIND_MOVED:
                raise fs_error(errno.ENOENT, path, f"{recorded.path} was renamed to {recorded.origin} at revision "
                                                   f"{rev}: nothing to restore there")
            _, mode, size, digest, chunks = self._versions.row(path, rev, exact=True)
            found = self._content.writable_target(path, parents=True)
            node = self._content.set_content(tx, found, unpack(chunks), size, digest, mode=mode, mtime_ns=None)
            return stat_of(node)

    # -- garbage collection ---------------------------------------------------------

    def gc(self, *, grace: float = 0.0) -> GcStats:
        """Prune old versions, delete chunks nothing references, compact pack files.

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
            self._db.chunks.delete([i for i, _ in doomed])
            kept = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        # Bytes in pack files outlive their rows until their pack is compacted
        # (with those a killed writer left behind, which no row ever named).
        self._db.chunks.compact(self._db.transaction)
        return GcStats(len(doomed), sum(size for _, size in doomed), kept, pruned)
