"""The replica's memory: `local_dir/.wsfs/state.db` (SQLite).

It holds what the replica needs to resume and to tell its own changes
from everybody else's:
- the watermark: the cursor of the last remote batch fully applied;
- for every synced path, the server revision and content it was synced at
  (the *base* sent with a push, so the server can detect conflicts), and
  the local stat it was left with (so a rescan can skip unchanged files
  without reading them);
- where each chunk can be found on local disk (path, offset), so a restart
  or a small edit only downloads chunks the replica does not already have.

Rows for a batch are written in one transaction together with the
watermark, so a kill at any point leaves a state that matches a prefix of
the stream.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import contextmanager
from typing import Iterable, Iterator, NamedTuple

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries(
    path TEXT PRIMARY KEY,
    parent TEXT NOT NULL,
    kind TEXT NOT NULL,          -- file | dir | symlink
    rev INTEGER NOT NULL,        -- server revision this path was synced at (push base)
    hash TEXT,                   -- content id of a file
    target TEXT,                 -- symlink target
    mode INTEGER NOT NULL,       -- permission bits on the server
    size INTEGER NOT NULL,       -- local stat as the replica left the file
    mtime_ns INTEGER NOT NULL,
    ino INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_parent ON entries(parent);
-- Where chunks lie on local disk. Rows go in in the order files are installed; the lookup by
-- hash goes through `key`, the hash's first 8 bytes as a signed integer: random keys, but
-- small ones. (Keyed by the 64-character hash itself, every batch of a first sync touched
-- leaf pages all over a big index: 30 MiB of WAL for 10,000 files, now 12 with less CPU.)
CREATE TABLE IF NOT EXISTS chunk_index(
    key INTEGER NOT NULL,
    hash TEXT NOT NULL,
    path TEXT NOT NULL,
    offset INTEGER NOT NULL,
    size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS chunk_index_key ON chunk_index(key);
CREATE INDEX IF NOT EXISTS chunk_index_path ON chunk_index(path);
CREATE TABLE IF NOT EXISTS seen(path TEXT PRIMARY KEY) WITHOUT ROWID;  -- listed by the snapshot in progress
"""


class Entry(NamedTuple):
    """One synced path (a tuple: a rescan builds one per path it looks at, a frozen dataclass cost 3x)."""

    path: str
    kind: str
    rev: int
    hash: str | None
    target: str | None
    mode: int
    size: int
    mtime_ns: int
    ino: int

    def matches(self, st: os.stat_result) -> bool:
        """Is the local object still exactly as the replica left it (no read needed)?"""
        if self.kind == "dir":
            return True  # a directory's own state is its mode; its mtime moves with its children
        return st.st_size == self.size and st.st_mtime_ns == self.mtime_ns and st.st_ino == self.ino


def chunk_key(h: str) -> int:
    """The index key of a chunk hash: its first 8 bytes as a signed 64-bit integer."""
    return int(h[:16], 16) - (1 << 63)


def parent_of(path: str) -> str:
    head = path.rsplit("/", 1)[0]
    return head or "/"


class State:
    def __init__(self, path: str):
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(SCHEMA)
        # Rows written inside a transaction wait here and go in with one executemany
        # (a batch writes hundreds); every read, delete and the COMMIT flush them first,
        # so no reader ever sees the table without them.
        self._puts: list[tuple] = []
        self._chunk_rows: list[tuple[int, str, str, int, int]] = []
        self._migrate_chunks()

    def close(self) -> None:
        self.conn.close()

    def _migrate_chunks(self) -> None:
        """A state written before `chunk_index` keeps its chunk locations: moved over once."""
        if self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'chunks'").fetchone():
            with self.transaction():
                rows = self.conn.execute("SELECT hash, path, offset, size FROM chunks")
                self.conn.executemany("INSERT INTO chunk_index(key, hash, path, offset, size) VALUES(?, ?, ?, ?, ?)",
                                      ((chunk_key(h), h, path, offset, size) for h, path, offset, size in rows))
                self.conn.execute("DROP TABLE chunks")

    def _flush(self) -> None:
        if self._puts:
            self.conn.executemany(
                "INSERT OR REPLACE INTO entries(path, parent, kind, rev, hash, target, mode, size, mtime_ns, ino)"
                " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", self._puts)
            self._puts.clear()
        if self._chunk_rows:
            self.conn.executemany("INSERT INTO chunk_index(key, hash, path, offset, size) VALUES(?, ?, ?, ?, ?)",
                                  self._chunk_rows)
            self._chunk_rows.clear()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """`with state.transaction():` one atomic group of updates, rolled back on any error.

        A batch's rows and its watermark go in one of these, so a kill leaves
        the state of a prefix of the stream, never half a batch.
        """
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._flush()
            self.conn.execute("COMMIT")
        except BaseException:
            self._puts.clear()
            self._chunk_rows.clear()
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def reset(self) -> None:
        """Forget everything (the state was made for another server or workspace)."""
        self._flush()
        with self.transaction():
            for table in ("entries", "chunk_index", "meta", "seen"):
                self.conn.execute(f"DELETE FROM {table}")

    # -- snapshot sweep -------------------------------------------------------------
    # A resync from a snapshot lists every live path once; the paths we hold
    # that it did not list were deleted on the server while we could not see
    # the tombstones. The listed paths are kept in `seen`, committed with each
    # batch and its watermark, and meta "snapshot" says a listing is under way:
    # a snapshot cut short (kill, disconnect) resumes from its watermark and
    # still sweeps at the end, instead of resuming as an ordinary catch-up that
    # would keep the deleted paths forever.

    def start_seen(self) -> None:
        """A snapshot listing begins: forget any earlier one, and the watermark it replaces."""
        with self.transaction():
            self.conn.execute("DELETE FROM seen")
            self.set_meta("snapshot", "listing")
            self.set_meta("watermark", None)

    def listing_snapshot(self) -> bool:
        """Was a snapshot listing under way when this state was last written?"""
        return self.get_meta("snapshot") == "listing"

    def end_seen(self) -> None:
        """The listing is over (swept, or not a snapshot after all); inside a transaction."""
        self.conn.execute("DELETE FROM seen")
        self.set_meta("snapshot", None)

    def mark_seen(self, paths: Iterable[str]) -> None:
        self.conn.executemany("INSERT OR IGNORE INTO seen(path) VALUES(?)", ((p,) for p in paths))

    def unseen_paths(self) -> list[str]:
        """Paths held but not listed since `start_seen`, deepest first (children before parents)."""
        self._flush()
        rows = self.conn.execute("SELECT path FROM entries WHERE path NOT IN (SELECT path FROM seen) ORDER BY path DESC")
        return [path for (path,) in rows]

    # -- meta -----------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str | None) -> None:
        if value is None:
            self.conn.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self.conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", (key, value))

    # -- entries --------------------------------------------------------------------

    def get(self, path: str) -> Entry | None:
        self._flush()
        row = self.conn.execute(
            "SELECT path, kind, rev, hash, target, mode, size, mtime_ns, ino FROM entries WHERE path = ?", (path,)
        ).fetchone()
        return Entry(*row) if row else None

    def get_many(self, paths: list[str]) -> dict[str, Entry]:
        """Rows of many paths in a few queries (a batch reads them all up front)."""
        self._flush()
        out: dict[str, Entry] = {}
        for i in range(0, len(paths), 500):
            part = paths[i : i + 500]
            marks = ",".join("?" * len(part))
            for row in self.conn.execute(
                "SELECT path, kind, rev, hash, target, mode, size, mtime_ns, ino FROM entries"
                f" WHERE path IN ({marks})", part
            ):
                out[row[0]] = Entry(*row)
        return out

    def put(self, e: Entry) -> None:
        """Write a row (buffered inside a transaction, at once outside one)."""
        self._puts.append((e.path, parent_of(e.path), e.kind, e.rev, e.hash, e.target, e.mode, e.size,
                           e.mtime_ns, e.ino))
        if not self.conn.in_transaction:
            self._flush()

    def put_fields(self, path: str, kind: str, rev: int, hash: str | None, target: str | None, mode: int,
                   size: int, mtime_ns: int, ino: int) -> None:
        """`put` without building an `Entry` first (the pull writes one row per file it installs)."""
        self._puts.append((path, parent_of(path), kind, rev, hash, target, mode, size, mtime_ns, ino))
        if not self.conn.in_transaction:
            self._flush()

    def delete(self, path: str) -> None:
        self._flush()
        self.conn.execute("DELETE FROM entries WHERE path = ?", (path,))
        self.conn.execute("DELETE FROM chunk_index WHERE path = ?", (path,))

    def children(self, parent: str) -> dict[str, Entry]:
        self._flush()
        rows = self.conn.execute(
            "SELECT path, kind, rev, hash, target, mode, size, mtime_ns, ino FROM entries WHERE parent = ?", (parent,)
        )
        return {r[0].rsplit("/", 1)[1]: Entry(*r) for r in rows}

    def subtree(self, path: str) -> list[str]:
        """Paths strictly below `path` ('0' follows '/' in byte order)."""
        self._flush()
        low, high = (path + "/", path + "0") if path != "/" else ("/", "0")
        return [r[0] for r in self.conn.execute("SELECT path FROM entries WHERE path > ? AND path < ?", (low, high))]

    def count(self) -> int:
        self._flush()
        return self.conn.execute("SELECT count(*) FROM entries").fetchone()[0]

    # -- chunk index ----------------------------------------------------------------

    def index_chunks(self, path: str, chunks: Iterable[tuple[str, int]], *, fresh: bool = False) -> None:
        """Record where each chunk of `path` lies (`fresh`: the path had no rows, skip the delete)."""
        if not fresh:
            self._flush()
            self.conn.execute("DELETE FROM chunk_index WHERE path = ?", (path,))
        offset, rows = 0, self._chunk_rows
        for h, size in chunks:
            rows.append((int(h[:16], 16) - (1 << 63), h, path, offset, size))  # chunk_key, inlined: one per chunk
            offset += size
        if not self.conn.in_transaction:
            self._flush()

    def chunk_locations_many(self, hashes: list[str]) -> dict[str, list[tuple[str, int, int]]]:
        """Local copies of many chunks in a few queries (a batch looks them all up at once)."""
        self._flush()
        out: dict[str, list[tuple[str, int, int]]] = {}
        wanted = set(hashes)
        for i in range(0, len(hashes), 500):
            part = [chunk_key(h) for h in hashes[i : i + 500]]
            marks = ",".join("?" * len(part))
            for h, path, offset, size in self.conn.execute(
                f"SELECT hash, path, offset, size FROM chunk_index WHERE key IN ({marks})", part
            ):
                if h in wanted:  # another hash may share the key
                    out.setdefault(h, []).append((path, offset, size))
        return out

    def chunk_locations(self, h: str) -> list[tuple[str, int, int]]:
        self._flush()
        return list(self.conn.execute("SELECT path, offset, size FROM chunk_index WHERE key = ? AND hash = ? LIMIT 4",
                                      (chunk_key(h), h)))

    def forget_chunk(self, h: str, path: str, offset: int) -> None:
        self._flush()
        self.conn.execute("DELETE FROM chunk_index WHERE key = ? AND hash = ? AND path = ? AND offset = ?",
                          (chunk_key(h), h, path, offset))
