"""Recorded versions: every content change and deletion of a file, per path.

Every content change records the new version of the path (a row pointing
at its chunk list), so restoring is a pointer move and costs no bytes.
Versions are kept per path, not per inode: editors that save through a
temporary file and a rename keep their history. A rename records, at the
old path, that the file moved (KIND_MOVED, `origin` = where it went) and,
at the new path, a version whose `origin` is where it came from; a hard
link records the same at its new name, and a write to a multiply-linked
file is recorded under every name. `lineage` walks these back, so a file's
history follows it. Each row keeps the author the server set for the write
(`author`, see `Workspace.as_author`).

A file's current content is recorded only once something supersedes it
(schema v7): until then its node says when and by whom it was written
(`nodes.vrev`, `vauthor`), and `supersede` copies it into `versions` at
that revision just before an overwrite, a deletion, a rename, a link or a
metadata change (the rows of one path are adjacent in the table's key, so
this usually dirties the page the write dirties anyway). A create then
writes no versions row at all: one page less per create. A rename of a
file with one name writes only the departure marker; the arrival stays
pending in the node with the path it came from (`vorigin`, v9). Readers
see the pending version as a row (`entries`, `stored`, `_left`). Files
with several names, and the files below a renamed directory or an
exchange, are recorded at once.

This is the lower half of history: `namespace` and `content` call it from
inside their transactions; `history` (listing, restore, gc) sits above.

    namespace, content, history  ->  versions  ->  db
"""

from __future__ import annotations

import errno
import time
from typing import NamedTuple

from vfs.chunks import ChunkEntry, unpack
from vfs.db import Db, Node, Tx
from vfs.errors import fs_error
from vfs.schema import KIND_DELETED, KIND_FILE, KIND_MOVED


_COLUMNS = "path, rev, kind, mode, size, mtime, hash, chunks, recorded, author, origin"
_INSERT_CURRENT = (
    f"INSERT OR REPLACE INTO versions({_COLUMNS}) "
    "SELECT ?, ?, kind, mode, size, mtime_ns / 1e9, hash, chunks, ?, ?, ? FROM nodes WHERE ino = ? AND kind = ?"
)
_INSERT_MARK = f"INSERT OR REPLACE INTO versions({_COLUMNS}) VALUES(?, ?, ?, 0, 0, ?, NULL, NULL, ?, ?, ?)"
# The content a node still holds unrecorded, recorded at its own revision (`supersede`): with
# the mode and mtime it had then, since every change of those supersedes it first.
_SUPERSEDE = (
    f"INSERT OR REPLACE INTO versions({_COLUMNS}) "
    "SELECT ?, vrev, kind, mode, size, mtime_ns / 1e9, hash, chunks, ctime_ns / 1e9, vauthor, vorigin FROM nodes "
    "WHERE ino = ? AND vrev IS NOT NULL"
)
# `_SUPERSEDE` and the deletion marker in one statement (an unlink: one statement less). A
# version pending from the same revision is left out: the marker takes its place.
_SUPERSEDE_AND_DELETE = (
    f"INSERT OR REPLACE INTO versions({_COLUMNS}) "
    "SELECT ?2, vrev, kind, mode, size, mtime_ns / 1e9, hash, chunks, ctime_ns / 1e9, vauthor, vorigin FROM nodes "
    "WHERE ino = ?3 AND vrev IS NOT NULL AND vrev != ?1 "
    f"UNION ALL SELECT ?2, ?1, {KIND_DELETED}, 0, 0, ?4, NULL, NULL, ?4, ?5, NULL"
)
# The same with a departure's marker (a file with one name renamed: `record_departure`).
_SUPERSEDE_AND_LEAVE = (
    f"INSERT OR REPLACE INTO versions({_COLUMNS}) "
    "SELECT ?2, vrev, kind, mode, size, mtime_ns / 1e9, hash, chunks, ctime_ns / 1e9, vauthor, vorigin FROM nodes "
    "WHERE ino = ?3 AND vrev IS NOT NULL AND vrev != ?1 "
    f"UNION ALL SELECT ?2, ?1, {KIND_MOVED}, 0, 0, ?4, NULL, NULL, ?4, ?5, ?6"
)
_CLEAR_PENDING = "UPDATE nodes SET vrev = NULL WHERE ino = ? AND vrev IS NOT NULL"
# The pending version at a path: the node the change log says is there now (a node with a
# pending version has one name, see `supersede`).
_PENDING = (
    "SELECT n.vrev, n.kind, n.size, n.hash, n.mtime_ns / 1e9, n.chunks, n.vauthor, n.vorigin, n.mode "
    "FROM pathlog p JOIN nodes n ON n.ino = p.ino WHERE p.path = ? AND n.vrev IS NOT NULL"
)
# A pending arrival at revision `?` from path `?`, elsewhere than `?` (`Versions._left`): the
# paths that revision changed (a node whose pending version is that revision's was logged at it:
# anything logging its path again supersedes the version first).
_PENDING_ARRIVAL = (
    "SELECT 1 FROM pathlog p JOIN nodes n ON n.ino = p.ino "
    "WHERE p.rev = ? AND n.vrev = p.rev AND n.vorigin = ? AND p.path != ? LIMIT 1"
)
# A lineage visits at most this many (path, before-revision) stretches: a file
# renamed back and forth forever still lists in bounded time.
_MAX_STRETCHES = 1000


class VersionRow(NamedTuple):
    """One row of `versions`, its content id exact (derived when not kept)."""

    path: str
    rev: int
    kind: int
    size: int
    digest: bytes | None
    mtime: float
    author: str | None
    origin: str | None


class Versions:
    """The `versions` table of one store and its retention policy."""

    __slots__ = ("_db", "keep", "days", "author")

    def __init__(self, db: Db, *, keep: int = 20, days: float = 7.0):
        self._db = db
        self.keep = keep  # at least this many versions per path survive pruning ...
        self.days = days  # ... and every version younger than this
        self.author: str | None = None  # who makes the writes now (set per write by a server)

    def pending(self, tx: Tx) -> tuple[int, str | None]:
        """(vrev, vauthor) for a file whose new content stays unrecorded in its node (see `supersede`)."""
        return tx.rev, self.author

    def record_move_pending(self, tx: Tx, old: str, new: str) -> tuple[int, str | None, str]:
        """A file with one name left `old` for `new`: the departure is recorded now, the arrival
        stays pending in the node; (vrev, vauthor, vorigin) for the node's row."""
        now = time.time()
        self._db.dml(_INSERT_MARK, (old, tx.rev, KIND_MOVED, now, now, self.author, new))
        return tx.rev, self.author, old

    def record_departure(self, tx: Tx, old: str, new: str, node: Node) -> tuple[int, str | None, str]:
        """`supersede` then `record_move_pending` for the file `node` (one name) leaving `old` for
        `new`, as one statement (a rename: one statement less). A version pending from this very
        revision is left out: the marker, written at the same revision, takes its place as it did
        when the two were written one after the other."""
        if node.vrev is None:
            return self.record_move_pending(tx, old, new)
        self._db.dml(_SUPERSEDE_AND_LEAVE, (tx.rev, old, node.ino, time.time(), self.author, new))
        return tx.rev, self.author, old

    def supersede(self, tx: Tx, path: str, node: Node, *, rewriting: bool = False) -> None:
        """Record the pending version of the file `node` at `path` at its own revision, before it changes.

        The caller clears `nodes.vrev` in the write it makes next (or drops the node).
        `rewriting`: it writes new content and a new pending revision; a version pending
        from this very transaction is then dropped, as a row recorded at the same revision
        was replaced before."""
        if node.vrev is not None and not (rewriting and node.vrev == tx.rev):
            self._db.dml(_SUPERSEDE, (path, node.ino))

    def supersede_many(self, rows: list[tuple[str, int]], *, clear: bool = True) -> None:
        """`supersede` each (path, ino) of a subtree (their rows unread: SQL skips those with
        nothing pending); `clear`: also clear their pending marks (the nodes stay)."""
        self._db.conn.executemany(_SUPERSEDE, rows)
        if clear:
            self._db.conn.executemany(_CLEAR_PENDING, [(ino,) for _, ino in rows])

    def record_current(self, tx: Tx, path: str, ino: int, *, prune: bool = True, nlink: int | None = None) -> None:
        """Keep the node's content as the version of `path` at this revision, now.

        For a file with several names (hard links): the version goes under
        each of them, so the history of every name shows every write. A
        file with one name keeps its new content pending in its node instead
        (`Content.set_content`, `supersede`).
        `nlink`: the node's link count when the caller knows it (saves a read).
        """
        now = time.time()
        if nlink is None:
            linked = self._db.conn.execute("SELECT nlink FROM nodes WHERE ino = ?", (ino,)).fetchone()
            nlink = 0 if linked is None else linked[0]
        paths = self._db.paths_of(ino) if nlink > 1 else [path]
        self._db.conn.executemany(
            _INSERT_CURRENT, [(p, tx.rev, now, self.author, None, ino, KIND_FILE) for p in paths]
        )
        if prune:
            for p in paths:
                # A file created in this transaction (a mount's create, then its content at
                # close, in one group commit) leaves pruning to a later one, as its create did.
                if p not in tx.new_files:
                    self.prune(p, now)

    def record_removal(self, tx: Tx, path: str, node: Node) -> None:
        """The file `node` left `path` for good at this revision: `supersede` and `record_deletion`
        in one statement (before the node goes)."""
        if node.vrev is None:
            self.record_deletion(tx, [path])
            return
        self._db.dml(_SUPERSEDE_AND_DELETE, (tx.rev, path, node.ino, time.time(), self.author))

    def record_deletion(self, tx: Tx, paths: list[str]) -> None:
        """Mark each file path as deleted at this revision (`supersede` its pending version first)."""
        now = time.time()
        self._db.conn.executemany(
            _INSERT_MARK, [(path, tx.rev, KIND_DELETED, now, now, self.author, None) for path in paths]
        )

    def record_moves(self, tx: Tx, moves: list[tuple[str, str, int]], *, superseded: bool = False) -> None:
        """Each file (old path, new path, ino) left its old path for its new one in this revision.

        Pending versions are recorded at the old paths first (unless the caller
        did, `superseded`, clearing the mark in its own write). All departures
        are written before all arrivals, so when two names are exchanged each
        path ends up holding the file that arrived there. Arrivals are recorded
        at once (`lineage` follows their `origin`). Pruning is left to each
        path's next write or `gc()`, as for a new file: renaming a large
        directory then costs two row writes per file.
        """
        now = time.time()
        if not superseded:
            self.supersede_many([(old, ino) for old, _, ino in moves])
        self._db.conn.executemany(
            _INSERT_MARK, [(old, tx.rev, KIND_MOVED, now, now, self.author, new) for old, new, _ in moves]
        )
        self._db.conn.executemany(
            _INSERT_CURRENT, [(new, tx.rev, now, self.author, old, ino, KIND_FILE) for old, new, ino in moves]
        )

    def record_link(self, tx: Tx, existing: str, new: str, ino: int) -> None:
        """`new` became another name of the file at `existing`: its history starts there
        (the caller `supersede`d what was pending at `existing`)."""
        self._db.dml(_INSERT_CURRENT, (new, tx.rev, time.time(), self.author, existing, ino, KIND_FILE))

    def prune(self, path: str, now: float, *, pending: bool | None = None) -> int:
        """Drop versions beyond the newest `keep` that are also older than `days`.

        The current content counts among the `keep` when it is pending in its
        node (`pending` None: look it up)."""
        if pending is None:
            pending = self._db.conn.execute(_PENDING, (path,)).fetchone() is not None
        cutoff = now - self.days * 86400
        cur = self._db.dml(
            "DELETE FROM versions WHERE path = ? AND recorded < ? AND rev NOT IN "
            "(SELECT rev FROM versions WHERE path = ? ORDER BY rev DESC LIMIT ?)",
            (path, cutoff, path, max(0, self.keep - pending)),
        )
        return cur.rowcount

    def prune_all(self) -> int:
        """`prune` every path holding more than `keep` versions; how many went."""
        return sum(
            self.prune(path, time.time())
            for (path,) in self._db.conn.execute(
                "SELECT path FROM versions GROUP BY path HAVING count(*) >= ?", (max(self.keep, 1),)
            ).fetchall()
        )

    def history_path(self, path: str) -> str:
        """Versions are keyed by real path: follow symlinks when the path still resolves.

        Callers read the path's versions next, so content ids that positional
        writes left to derive are derived here first (see `derive_ids`)."""
        try:
            real = self._db.resolve(path, follow=True).real
        except OSError:
            real = self._db.normalize(path)
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

    def entries(self, real: str) -> list[VersionRow]:
        """Every version recorded at `real` (this path only), newest first.

        Content ids are exact even where `derive_ids` could not keep them
        (a read-only store): a NULL id of a file version is derived here.
        """
        rows = self._db.conn.execute(
            "SELECT rev, kind, size, hash, mtime, chunks, author, origin FROM versions WHERE path = ? "
            "ORDER BY rev DESC",
            (real,),
        ).fetchall()
        pending = self._db.conn.execute(_PENDING, (real,)).fetchone()
        if pending is not None:  # the newest: whatever came to the path since superseded it
            # (a row of the same revision, a name deleted and taken again in one transaction,
            # is what the pending version replaces when recorded)
            rows = [(*pending[:8],)] + [row for row in rows if row[0] != pending[0]]
        return [
            VersionRow(
                real, rev, kind, size,
                self._db.derive_hash(chunks) if digest is None and kind == KIND_FILE else digest,
                mtime, author, origin,
            )
            for rev, kind, size, digest, mtime, chunks, author, origin in rows
        ]

    def listing(self, real: str) -> list[tuple[int, int, int, bytes | None, float]]:
        """(rev, kind, size, content id, mtime) of every version recorded at `real`, newest first (see `entries`)."""
        return [(e.rev, e.kind, e.size, e.digest, e.mtime) for e in self.entries(real)]

    def lineage(self, real: str) -> list[VersionRow]:
        """Every version of the file now named `real`, newest first, followed back across renames and links.

        Walking `real`'s rows from the newest, a version that arrived from
        another path (`origin`) continues the walk at that path, below that
        revision. The walk goes on down a path only while a file was there:
        past an arrival only if a file was there just before it (a save
        through a temporary file and a rename replaces the file it keeps the
        history of), and on a path it came to from elsewhere, only down to
        that path's last deletion or move (before that, it held some other
        file). `real` itself lists its older deletions and earlier files, as
        a path's history always did.
        """
        found: dict[tuple[str, int], VersionRow] = {}
        read: dict[str, list[VersionRow]] = {}  # each path's rows, read once however often the file came back
        todo: list[tuple[str, int | None]] = [(real, None)]
        seen: set[tuple[str, int | None]] = set()
        while todo and len(seen) < _MAX_STRETCHES:
            stretch = todo.pop()
            if stretch in seen:
                continue
            seen.add(stretch)
            path, before = stretch
            if path not in read:
                read[path] = self.entries(path)
            rows = [r for r in read[path] if before is None or r.rev < before]
            for i, row in enumerate(rows):
                if before is not None and row.kind != KIND_FILE:
                    break
                found.setdefault((row.path, row.rev), row)
                if row.kind == KIND_FILE and row.origin is not None:
                    todo.append((row.origin, row.rev))
                    if i + 1 == len(rows) or rows[i + 1].kind != KIND_FILE or self._left(path, row.rev):
                        break
        return sorted(found.values(), key=lambda r: (r.rev, r.kind == KIND_FILE, r.path == real), reverse=True)

    def _left(self, path: str, rev: int) -> bool:
        """Whether the file at `path` went elsewhere at `rev` (an exchange: another file arrived as it left),
        its arrival recorded or still pending in its node (`record_move_pending`)."""
        conn = self._db.conn
        return conn.execute(
            # (`kind` literal: the arrivals index, schema v7, holds file rows only)
            f"SELECT 1 FROM versions WHERE origin = ? AND rev = ? AND kind = {KIND_FILE} AND path != ? LIMIT 1",
            (path, rev, path),
        ).fetchone() is not None or conn.execute(_PENDING_ARRIVAL, (rev, path, path)).fetchone() is not None

    def version_at(self, path: str, rev: int) -> VersionRow | None:
        """The version of `path` as of revision `rev`, if any.

        A file version `history(path)` lists at `rev` exactly (under any
        earlier name) comes first; else the newest recorded at `path` itself
        by then; else, if the path was not used yet, the newest its file had
        under an earlier name.
        """
        real = self.history_path(path)
        rows = self.lineage(real)
        listed = next((r for r in rows if r.rev == rev and r.kind == KIND_FILE), None)
        own = next((r for r in self.entries(real) if r.rev <= rev), None)
        return listed or own or next((r for r in rows if r.rev <= rev), None)

    def row(self, path: str, rev: int, *, exact: bool = False) -> tuple:
        """(kind, mode, size, hash, chunks) of the file at `path` as of `rev`; ENOENT if none.

        The file's history is followed across renames, so a version it had
        under an earlier name is found at its current one. `exact` asks for
        the version recorded at `rev` itself.
        """
        found = self.version_at(path, rev)
        if found is None or (exact and found.rev != rev) or found.kind != KIND_FILE:
            raise fs_error(errno.ENOENT, path, f"no version of {path} at revision {rev}")
        kind, mode, size, digest, chunks, _ = self.stored(found.path, found.rev)
        if digest is None:  # not kept (a read-only store): derive it for this caller
            digest = self._db.derive_hash(chunks)
        return kind, mode, size, digest, chunks

    def stored(self, path: str, rev: int) -> tuple | None:
        """(kind, mode, size, hash, chunks, author) of the version of `path` recorded at `rev`,
        or pending in the node now there (`supersede`); None if neither."""
        pending = self._db.conn.execute(_PENDING, (path,)).fetchone()
        if pending is not None and pending[0] == rev:  # (it replaces a row of its revision: `entries`)
            _, kind, size, digest, _, chunks, author, _, mode = pending
            return kind, mode, size, digest, chunks, author
        return self._db.conn.execute(
            "SELECT kind, mode, size, hash, chunks, author FROM versions WHERE path = ? AND rev = ?", (path, rev)
        ).fetchone()

    def chunks(self, path: str, rev: int) -> list[ChunkEntry]:
        """The chunk list of `path` as of revision `rev`."""
        return unpack(self.row(path, rev)[4])
