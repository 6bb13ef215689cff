"""Several new files in one call (`Workspace.write_new_files`).

A local FUSE mount stores the small files closed since its group transaction
began this way: one row insert per table for all of them and one stamp per
parent directory, instead of a savepoint, statements and Python per file (an
untar closes hundreds between two group commits). Each file ends exactly as
its own `write_file(..., if_match="", ino=, created_ns=)` would leave it.

    workspace  ->  newfiles  ->  content (storing the bytes), versions, db
"""

from __future__ import annotations

import errno

from vfs.chunks import pack
from vfs.content import Content
from vfs.db import Db, Node
from vfs.errors import fs_error
from vfs.paths import join, normalize
from vfs.schema import KIND_FILE
from vfs.types import Stat
from vfs.versions import Versions

_INSERT_FILE = (  # a created file's row, its number given (`Workspace.reserve_ino`)
    "INSERT INTO nodes(kind, mode, size, hash, chunks, mtime_ns, ctime_ns, atime_ns, uid, gid, nlink, rev, rdev, "
    f"vrev, vauthor, ino) VALUES({KIND_FILE}, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, 0, ?, ?, ?)"
)
_NEW_NAME = "INSERT INTO dirents(parent, name, ino, linked) VALUES(?, ?, ?, 0)"


class NewFiles:
    """`write_new_files` of one store."""

    __slots__ = ("_db", "_content", "_versions")

    def __init__(self, db: Db, content: Content, versions: Versions):
        self._db = db
        self._content = content
        self._versions = versions

    def write_new_files(self, files: list[dict]) -> list[Stat]:
        """Create several files in one call, each as `write_file(path, data, if_match="",
        ino=, created_ns=, atime_ns=, mtime_ns=, ctime_ns=, mode=)` under `as_owner(uid,
        gid)` would (keys of each dict: those, `uid` and `gid`; optional `hash`: the raw
        BLAKE3 digest of `data`, taken by the caller from these very bytes, trusted). All or
        nothing: any error (a name taken: `PreconditionFailed`) leaves none of them. Their
        `Stat`s, in order."""
        with self._db.tx() as tx:
            vrev, vauthor = self._versions.pending(tx)
            rows, names, logs, parents, dirs = [], [], [], {}, {}
            for f in files:
                parent_path, _, name = normalize(f["path"], self._db.path_max).rpartition("/")
                where = dirs.get(parent_path) or dirs.setdefault(parent_path, self._directory(parent_path or "/"))
                entries, size, digest = self._content.store_content(f["data"], f.get("hash"))
                rows.append((f["mode"] & 0o7777, size, digest, pack(entries), f["mtime_ns"], f["ctime_ns"],
                             f["atime_ns"], f["uid"], f["gid"], tx.rev, vrev, vauthor, f["ino"]))
                names.append((where[0], name, f["ino"]))
                logs.append((join(where[1], name), f["ino"]))
                parents[where[0]] = max(parents.get(where[0], 0), f["created_ns"])
                tx.new_files[logs[-1][0]] = f["ino"]  # (its path's pruning waits for a later transaction)
            self._names_free(names, files)
            conn = self._db.conn
            conn.executemany(_INSERT_FILE, rows)
            conn.executemany(_NEW_NAME, names)
            self._db.touch_dirs_since(list(parents.items()))
            self._db.log_many(tx, logs)
            # Each answer is the row just written (no trigger changes a file's row), not read back
            # (a SELECT of the batch and a Node per row: ~2.5 % of a mount's git add).
            stat = self._db.stat
            return [stat(Node(ino, KIND_FILE, mode, size, mtime_ns, ctime_ns, 1, digest, chunks, None, rev, atime_ns,
                              uid, gid, 0, 0, vrev))
                    for mode, size, digest, chunks, mtime_ns, ctime_ns, atime_ns, uid, gid, rev, vrev, _, ino in rows]

    def _directory(self, path: str) -> tuple[int, str]:
        """(inode, real path) of the directory at `path`, symlinks followed: from the connection's
        directory cache, right inside the write transaction (`Db.resolve` trusts it there too), so
        a batch's parents cost no lookup each (a mount's git add: ~60 object directories a batch)."""
        return self._db._resolve_dir(path, path)

    def _names_free(self, names: list[tuple[int, str, int]], files: list[dict]) -> None:
        """PreconditionFailed (as `if_match=""` gives it) if a name is taken; ValueError if one is given twice."""
        by_parent: dict[int, dict[str, str]] = {}  # one pass: a mount's batch spans ~100 directories
        for (parent, name, _), f in zip(names, files):
            asked = by_parent.setdefault(parent, {})
            if name in asked:
                raise ValueError("write_new_files: a name given twice")
            asked[name] = f["path"]
        for parent, asked in by_parent.items():
            row = self._db.conn.execute(f"SELECT name FROM dirents WHERE parent = ? AND name IN "
                                        f"({','.join('?' * len(asked))}) LIMIT 1", (parent, *asked)).fetchone()
            if row is not None:
                self._content.check_precondition(asked[row[0]], self._db.resolve(asked[row[0]], follow=False), "")
                raise fs_error(errno.EEXIST, asked[row[0]])  # (a directory or a symlink: no content id)
