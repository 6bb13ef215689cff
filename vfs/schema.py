"""The SQLite schema and its migrations.

Tables:
- `nodes`: one row per inode (file, dir, symlink; FIFO, socket, char or
  block device with its `rdev`, v5) with owner and nanosecond
  times (what a FUSE mount must keep), and for a directory the count of its
  subdirectories (its link count is 2 + that; kept by triggers from schema v2, by
  the statements that stamp a parent's times from v12). A file's content is its
  chunk list (`chunks`, packed, see `vfs.chunks.pack`) plus the BLAKE3 of
  the whole content (`hash`).
- `dirents`: names. Separate from nodes so hard links are two dirents on
  one node and renaming a directory moves one row. Only the names of a
  hard-linked file are flagged `linked` and indexed by inode (v7); a
  directory's one name is also kept in its node (`dparent`, `dname`, v8).
- `chunks` (catalogue: hash, size; since v6 the pack file and position of
  bytes kept outside the store file, `vfs/chunkstore.py`; since v10 the
  bytes of a chunk of at most 1 KiB) and `chunk_data` (inline bytes, same
  rowid): content-addressed, each chunk stored once per workspace. The
  catalogue stays small and hot; the bytes are only touched to read or
  write content. Since v11 a chunk's row id is derived from its hash and
  the catalogue has no hash index; `chunk_ids` finds the chunks that are
  not at their hash's id (rows made before v11, collisions; `vfs/chunkids.py`).
- `pathlog`: the change log, one row per path ever touched, holding the
  revision of its last change and the inode now at that path (NULL for a
  tombstone). Coalescing is the primary key: five rewrites are one row.
- `versions`: retained past file versions (history, restore), each with
  the author the server named for its write and, for a rename or a hard
  link, the path it came from or went to (`origin`, v4). A file's current
  content is recorded only when superseded (v7): until then its node's
  `vrev`/`vauthor` say when and by whom it was written.
- `coedit_docs`, `coedit_log`: co-edited documents' compacted state and
  the updates stored since (v3, `vfs/coedit_log.py`).
- `meta`: schema version, chunk backend (v6), revision floor (the revision is the newest stamp
  in `pathlog`; the floor keeps it when tombstones are compacted), tombstone
  horizon.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import time
from collections.abc import Iterator

SCHEMA_VERSION = 12
ROOT_INO = 1

KIND_FILE = 1
KIND_DIR = 2
KIND_SYMLINK = 3
KIND_DELETED = 0  # only in `versions`: the path was deleted at that revision
KIND_MOVED = 4  # only in `versions`: the file left the path at that revision (renamed to `origin`)
# Special files (v5): made by mknod(2) / mkfifo(3) / bind(2) through a mount. They have
# no content; a device node's device number is the node's `rdev`.
KIND_FIFO = 5
KIND_SOCKET = 6
KIND_CHAR = 7
KIND_BLOCK = 8
SPECIAL_KINDS = (KIND_FIFO, KIND_SOCKET, KIND_CHAR, KIND_BLOCK)

KIND_NAMES = {
    KIND_FILE: "file", KIND_DIR: "dir", KIND_SYMLINK: "symlink", KIND_DELETED: "delete",
    KIND_FIFO: "fifo", KIND_SOCKET: "socket", KIND_CHAR: "char", KIND_BLOCK: "block",
}  # fmt: skip
KIND_CODES = {name: code for code, name in KIND_NAMES.items()}

# 4 KiB pages. Measured here (bench/bench_vfs.py): 16 KiB pages write large
# files ~25 % faster but make every small transaction (create, rename, rm)
# about twice as slow, because each commit writes every touched page to the
# WAL. Workspaces are mostly small files, so small pages win.
PAGE_SIZE = 4096
BUSY_TIMEOUT_MS = 30000  # how long a writer waits for another connection's write lock

_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE nodes (
    ino    INTEGER PRIMARY KEY,
    kind   INTEGER NOT NULL,
    mode   INTEGER NOT NULL,
    size   INTEGER NOT NULL DEFAULT 0,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    atime_ns INTEGER NOT NULL,
    uid    INTEGER NOT NULL DEFAULT 0,
    gid    INTEGER NOT NULL DEFAULT 0,
    nlink  INTEGER NOT NULL DEFAULT 1,
    hash   BLOB,
    chunks BLOB,
    target TEXT,
    rev    INTEGER NOT NULL
);
CREATE TABLE dirents (
    parent INTEGER NOT NULL,
    name   TEXT NOT NULL,
    ino    INTEGER NOT NULL,
    PRIMARY KEY (parent, name)
) WITHOUT ROWID;
CREATE INDEX dirents_by_ino ON dirents (ino);
CREATE TABLE chunks (
    id      INTEGER PRIMARY KEY,
    hash    BLOB NOT NULL UNIQUE,
    size    INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE chunk_data (id INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE pathlog (
    path TEXT PRIMARY KEY,
    rev  INTEGER NOT NULL,
    ino  INTEGER
) WITHOUT ROWID;
CREATE INDEX pathlog_by_rev ON pathlog (rev, path);
CREATE TABLE versions (
    path   TEXT NOT NULL,
    rev    INTEGER NOT NULL,
    kind   INTEGER NOT NULL,
    mode   INTEGER NOT NULL,
    size   INTEGER NOT NULL,
    mtime  REAL NOT NULL,
    hash   BLOB,
    chunks BLOB,
    recorded REAL NOT NULL,
    PRIMARY KEY (path, rev)
) WITHOUT ROWID;
"""

# A directory's link count is 2 + its subdirectories. Counting them on every
# stat scanned all of the directory's entries (a FUSE mount stats the parent
# directory before each create or unlink in it: O(n^2) for `rm *`). Triggers
# keep the count in the node, so every path that adds, drops or moves a name
# keeps it right, including ones written later.
_V2 = f"""
ALTER TABLE nodes ADD COLUMN subdirs INTEGER NOT NULL DEFAULT 0;
CREATE TRIGGER subdir_added AFTER INSERT ON dirents
WHEN (SELECT kind FROM nodes WHERE ino = NEW.ino) = {KIND_DIR}
BEGIN
    UPDATE nodes SET subdirs = subdirs + 1 WHERE ino = NEW.parent;
END;
CREATE TRIGGER subdir_removed AFTER DELETE ON dirents
WHEN (SELECT kind FROM nodes WHERE ino = OLD.ino) = {KIND_DIR}
BEGIN
    UPDATE nodes SET subdirs = subdirs - 1 WHERE ino = OLD.parent;
END;
CREATE TRIGGER subdir_moved AFTER UPDATE OF parent, ino ON dirents
WHEN OLD.parent != NEW.parent OR OLD.ino != NEW.ino
BEGIN
    UPDATE nodes SET subdirs = subdirs - 1
    WHERE ino = OLD.parent AND (SELECT kind FROM nodes WHERE ino = OLD.ino) = {KIND_DIR};
    UPDATE nodes SET subdirs = subdirs + 1
    WHERE ino = NEW.parent AND (SELECT kind FROM nodes WHERE ino = NEW.ino) = {KIND_DIR};
END;
UPDATE nodes SET subdirs = (
    SELECT count(*) FROM dirents d JOIN nodes c ON c.ino = d.ino WHERE d.parent = nodes.ino AND c.kind = {KIND_DIR}
) WHERE kind = {KIND_DIR};
"""

# Co-editing (`vfs/coedit_log.py`): a file open as a shared document is its
# compacted Yjs state (`coedit_docs`, one row per path ever co-edited, so an
# editor reconnecting with old history merges instead of duplicating) plus the
# updates acknowledged since (`coedit_log`), which a crash must not lose.
# IF NOT EXISTS: a store taken back to an older version by hand keeps them.
_V3 = """
CREATE TABLE IF NOT EXISTS coedit_docs (
    path      TEXT PRIMARY KEY,
    snapshot  BLOB NOT NULL,
    base      BLOB,
    file_hash BLOB
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS coedit_log (
    seq  INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS coedit_log_by_path ON coedit_log (path, seq);
"""

# History follows a file across renames and hard links, and names who wrote
# each version (`vfs/versions.py`): `author` is whoever the server said made
# the write (NULL for a local write); `origin` is, on a file version recorded
# by a rename or a link, the path the file had before, and on a KIND_MOVED
# row, the path it went to. Older rows keep NULL in both. The columns are in
# ADDED_COLUMNS, added only where missing (SQLite has no ADD COLUMN IF NOT
# EXISTS): a store taken back to an older version by hand keeps them. The
# index finds what left a path at a revision (an exchange, `Versions._left`).
_V4 = """
CREATE INDEX IF NOT EXISTS versions_by_origin ON versions (origin, rev) WHERE origin IS NOT NULL;
"""

# Special files (FIFOs, sockets, device nodes) are nodes of kinds 5-8 with no
# content; a device node keeps its device number in `nodes.rdev` (ADDED_COLUMNS).
_V5 = ""

# Chunk bytes outside the store file (`vfs/chunkstore.py`, `vfs/packs.py`): a
# catalogue row names the pack file and position of its bytes (`pack`, `pos`,
# ADDED_COLUMNS); NULL keeps them in `chunk_data` as before. Which backend a
# store writes with is `meta.chunk_backend` (absent: "sqlite").
_V6 = ""

# Fewer pages per small commit (issue 14; every page a commit touches is a WAL
# frame, two pwrites). `dirents_by_ino` put an index entry in every create,
# unlink, rename and mkdir, for the few callers that find names by inode: the
# names of a hard-linked file and a directory's own name. Those rows are now
# flagged (`dirents.linked`, ADDED_COLUMNS) and only they are indexed. A file's
# current version lives in its node until something supersedes it (`nodes.vrev`,
# `vauthor`: the revision and author of content not yet in `versions`,
# `vfs/versions.py`), so a create writes no versions row. The origin index
# keeps only arrivals (the rows `Versions._left` looks for), not departures.
_V7 = f"""
UPDATE dirents SET linked = 1 WHERE ino IN (SELECT ino FROM nodes WHERE kind = {KIND_DIR} OR nlink > 1);
DROP INDEX IF EXISTS dirents_by_ino;
CREATE INDEX IF NOT EXISTS dirents_linked ON dirents (ino) WHERE linked;
DROP INDEX IF EXISTS versions_by_origin;
CREATE INDEX IF NOT EXISTS versions_arrivals ON versions (origin, rev) WHERE origin IS NOT NULL AND kind = {KIND_FILE};
"""

# A directory's own name moves into its node (`nodes.dparent`, `dname`, ADDED_COLUMNS): a mkdir
# then writes no `dirents_linked` entry (one page less); the index keeps hard-linked files' names.
_V8 = f"""
UPDATE nodes SET
    dparent = (SELECT d.parent FROM dirents d WHERE d.ino = nodes.ino AND d.linked),
    dname = (SELECT d.name FROM dirents d WHERE d.ino = nodes.ino AND d.linked)
WHERE kind = {KIND_DIR} AND ino != {ROOT_INO};
UPDATE dirents SET linked = 0 WHERE linked AND ino IN (SELECT ino FROM nodes WHERE kind = {KIND_DIR});
"""

# A renamed file's arrival stays pending in its node like any current version, with the path it
# came from (`nodes.vorigin`, ADDED_COLUMNS): a rename writes the departure marker only.
_V9 = ""

# A tiny chunk (at most `vfs.chunkstore.TINY_CHUNK` bytes) keeps its bytes in its catalogue row
# (`chunks.data`, ADDED_COLUMNS) instead of a `chunk_data` row: a tiny file's create writes one
# page less. Rows written before keep theirs in `chunk_data`; readers look in both.
_V10 = ""

# A chunk's row id is derived from its hash (`vfs.chunkids`): the catalogue loses its hash index
# (`chunks.hash UNIQUE`, one more B-tree page written per new chunk, issue 14). SQLite cannot drop
# a UNIQUE constraint, so `chunks` is rebuilt, with the same rows and ids: the chunk lists in
# `nodes` and `versions` and the `chunk_data` rows name chunks by id, and renumbering would rewrite
# all of them (every byte of a store that keeps its chunks inside). The rows made before keep
# sequential ids, not their hashes', so `chunk_ids` maps their hashes to them; it also takes the
# rare chunk whose hash's id another chunk holds. One transaction, as every migration.
_V11 = """
CREATE TABLE chunks_v11 (
    id      INTEGER PRIMARY KEY,
    hash    BLOB NOT NULL,
    size    INTEGER NOT NULL,
    created REAL NOT NULL,
    pack    INTEGER,
    pos     INTEGER,
    data    BLOB
);
INSERT INTO chunks_v11(id, hash, size, created, pack, pos, data) SELECT id, hash, size, created, pack, pos, data FROM chunks;
CREATE TABLE IF NOT EXISTS chunk_ids (hash BLOB PRIMARY KEY, id INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR REPLACE INTO chunk_ids(hash, id) SELECT hash, id FROM chunks;
DROP TABLE chunks;
ALTER TABLE chunks_v11 RENAME TO chunks;
"""

# A directory's subdirectory count is kept by the statements that add, drop or move a directory's
# name (`Db.touch_dir`'s `subdirs`, folded into the UPDATE that stamps the parent's times), not by
# triggers on `dirents`: each trigger looked up the named node's kind on every name written, a
# file's included (callgrind, 200 ops: rename 400.2k -> 377.2k instructions, unlink 260.0k ->
# 250.8k, create 292.5k -> 287.6k with the triggers dropped).
_V12 = """
DROP TRIGGER IF EXISTS subdir_added;
DROP TRIGGER IF EXISTS subdir_removed;
DROP TRIGGER IF EXISTS subdir_moved;
"""

# Each migration takes the schema from version N-1 to N. Append, never edit.
MIGRATIONS: dict[int, str] = {
    1: _V1, 2: _V2, 3: _V3, 4: _V4, 5: _V5, 6: _V6, 7: _V7, 8: _V8, 9: _V9, 10: _V10, 11: _V11, 12: _V12,
}
# Columns migration N adds: (table, column, type).
ADDED_COLUMNS: dict[int, tuple[tuple[str, str, str], ...]] = {
    4: (("versions", "author", "TEXT"), ("versions", "origin", "TEXT")),
    5: (("nodes", "rdev", "INTEGER NOT NULL DEFAULT 0"),),
    6: (("chunks", "pack", "INTEGER"), ("chunks", "pos", "INTEGER")),
    7: (("dirents", "linked", "INTEGER NOT NULL DEFAULT 0"), ("nodes", "vrev", "INTEGER"), ("nodes", "vauthor", "TEXT")),
    8: (("nodes", "dparent", "INTEGER"), ("nodes", "dname", "TEXT")),
    9: (("nodes", "vorigin", "TEXT"),),
    10: (("chunks", "data", "BLOB"),),
}


def _bind_without_adapting() -> None:
    """Bind `bytes`, `None` and `bool` parameters without the sqlite3 module's adaptation lookup.

    CPython's sqlite3 (3.11) binds int, float, str and bytearray as they are,
    but for any other parameter it consults the adapter registry and, on a
    miss, asks the protocol for `__adapt__` and the value for `__conform__`:
    two failed attribute lookups, each raising and clearing an AttributeError
    (~1,900 instructions a parameter, callgrind). A create binds about ten
    such values (content ids, chunk lists, NULL columns, flags). An adapter
    registered for the exact type is found first; these return the value
    itself (`bool` as the int SQLite stores for it anyway), so nothing bound
    changes, only the lookup. Registered once per process, and only where no
    one registered an adapter for the type already.
    """
    identity = {bytes: bytes, type(None): {}.get, bool: int}  # C callables: bytes(b) is b, {}.get(None) is None
    for kind, adapter in identity.items():
        if (kind, sqlite3.PrepareProtocol) not in sqlite3.adapters:
            sqlite3.register_adapter(kind, adapter)


_bind_without_adapting()


def configure(conn: sqlite3.Connection, *, readonly: bool) -> None:
    """Per-connection settings. WAL lets readers run beside the one writer."""
    if not readonly:
        conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA cache_size=-32000")
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute("PRAGMA mmap_size=268435456")  # reads of chunk bytes skip a copy


def migrate(conn: sqlite3.Connection) -> int:
    """Create or upgrade the schema to SCHEMA_VERSION, in one transaction; returns the version found (0: new)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = _schema_version(conn)
        if current > SCHEMA_VERSION:
            raise RuntimeError(
                f"store schema version {current} is newer than this wsfs ({SCHEMA_VERSION}); upgrade wsfs"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for table, column, sql_type in ADDED_COLUMNS.get(version, ()):  # before the scripts that use them
                if column not in {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}")
            for statement in _statements(MIGRATIONS[version]):
                conn.execute(statement)
            if version == 1:
                _seed(conn)
            conn.execute(
                "INSERT INTO meta(key, value) VALUES('schema_version', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (version,),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return current


def _statements(script: str) -> Iterator[str]:
    """Split a script into statements (a trigger body holds semicolons of its own)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending.strip()
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement in a migration: {pending.strip()[:80]!r}")


def upgrade_for_reading(conn: sqlite3.Connection, path: str) -> None:
    """Bring an older store up to SCHEMA_VERSION before a read-only connection (`conn`) uses it.

    Readers run this version's statements (a lookup by hash needs v11's `chunk_ids`), and a
    read-only connection cannot migrate; a server opens its readers before its writer, so the
    first read after an upgrade of wsfs would fail. A store this process may write is migrated
    through a short-lived writable connection (one transaction, as any first writable open does);
    one it may not write gets an error that says what to do.
    """
    current = _schema_version(conn)
    if current == 0 or current >= SCHEMA_VERSION:
        return  # new (nothing to read yet) or current; newer is refused by the writer's check
    if not os.access(path, os.W_OK) or not os.access(os.path.dirname(os.path.abspath(path)), os.W_OK):
        raise OSError(errno.EROFS, f"store schema version {current} is older than this wsfs ({SCHEMA_VERSION}) "
                      "and the store is read-only here: open it once for writing to upgrade it", path)
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        configure(writer, readonly=False)
        migrate(writer)
    finally:
        writer.close()


def _schema_version(conn: sqlite3.Connection) -> int:
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
    if not exists:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    return int(row[0]) if row else 0


def _seed(conn: sqlite3.Connection) -> None:
    now = time.time_ns()
    conn.execute(
        "INSERT INTO nodes(ino, kind, mode, size, mtime_ns, ctime_ns, atime_ns, uid, gid, nlink, rev) "
        "VALUES(?, ?, ?, 0, ?, ?, ?, ?, ?, 2, 0)",
        (ROOT_INO, KIND_DIR, 0o755, now, now, now, os.getuid(), os.getgid()),
    )
    conn.executemany(
        "INSERT INTO meta(key, value) VALUES(?, ?)",
        [("rev", 0), ("tombstone_horizon", 0)],
    )
