"""Where a chunk's catalogue row is: at the id its hash names, or (rarely) where `chunk_ids` says.

Until schema v10 a chunk's row id was the next free one and `chunks.hash`
was UNIQUE: every new chunk wrote two B-trees, the table's tail and a page
of the hash index (1.35 WAL frames of a ~7.4-frame create, issue 14). From
v11 a chunk's row id is derived from its hash (`natural_id`: the first 8
bytes, big-endian, shifted to 63 bits so it packs as the chunk lists'
unsigned field), so finding a chunk by hash is a lookup by row id and a new
chunk writes the table only. The full hash stays in the row.

Two hashes may share a natural id (a 63-bit prefix: never by chance in a
store's lifetime, but nothing here relies on that). The second is put in
the first free id after it and the pair is recorded in `chunk_ids`
(hash -> id); so are every row of a store made before v11 (their ids were
sequential, and the chunk lists in `nodes`/`versions` name rows by id, so
the migration keeps them where they were instead of rewriting every list
and every `chunk_data` row). The invariant: each hash has one row, found
either at its natural id (that row's hash is it) or through `chunk_ids`.
A new row goes to its natural id only when `chunk_ids` does not name the
hash (`GUARDED`: a chunk displaced once stays displaced even after the row
that displaced it is collected); `DELETE` removes both. In a store written
from v11 on `chunk_ids` is empty, and a writer that knows it (asked once,
again only after another connection committed: `SqliteChunks.begin_write`)
inserts without the guard (`UNGUARDED`).

    chunkstore  ->  chunkids
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

ID_SPACE = 1 << 63  # ids are 0 .. 2**63 - 1: SQLite's rowids, and the chunk lists' u64 field

_EXTRA = {"": "", "data": ", data", "pack": ", pack, pos"}  # columns a new row fills beside id, hash, size, created


def natural_id(digest: bytes) -> int:
    """The row id a chunk's hash names: its first 63 bits."""
    return int.from_bytes(digest[:8], "big") >> 1


def _values(extra: str) -> int:
    return 4 + len(_EXTRA[extra].split(",")) - 1


# An insert at the natural id, unless the id is taken (by this chunk: dedup; by another: a
# collision) or `chunk_ids` names the hash (a displaced chunk: it stays where it is). One statement:
# `rowcount` 1 is a new row at its natural id, 0 means look further (`find`, then `place`).
GUARDED = {
    extra: (f"INSERT INTO chunks(id, hash, size, created{cols}) SELECT "
            + ", ".join(f"?{n}" for n in range(1, _values(extra) + 1))
            + " WHERE NOT EXISTS (SELECT 1 FROM chunk_ids WHERE hash = ?2) ON CONFLICT(id) DO NOTHING")
    for extra, cols in _EXTRA.items()
}
_PLAIN = {
    extra: f"INSERT INTO chunks(id, hash, size, created{cols}) VALUES({', '.join('?' * _values(extra))})"
    for extra, cols in _EXTRA.items()
}
# The same where `chunk_ids` is known to be empty (`SqliteChunks.begin_write`), and for rows whose
# absence the caller checked (`ids_for` in the same transaction): only the id may be taken.
UNGUARDED = {extra: sql + " ON CONFLICT(id) DO NOTHING" for extra, sql in _PLAIN.items()}
# One chunk where `chunk_ids` is known to be empty, telling dedup from a collision in the same
# statement (no lookup after it): `rowcount` 1 is a new row; 0 is this hash's row at its id
# (dedup: the WHERE is false, nothing is written); another hash at the id makes the DO UPDATE set
# `hash` NULL, which its NOT NULL refuses (sqlite3.IntegrityError, the statement alone undone).
UNGUARDED_ONE = {
    extra: sql + " ON CONFLICT(id) DO UPDATE SET hash = NULL WHERE hash IS NOT excluded.hash"
    for extra, sql in _PLAIN.items()
}
_FIND = "SELECT id FROM chunks WHERE id = ? AND hash = ? UNION ALL SELECT id FROM chunk_ids WHERE hash = ?"


def find(conn: sqlite3.Connection, digest: bytes) -> int | None:
    """The row id of the chunk with this hash, or None."""
    row = conn.execute(_FIND, (natural_id(digest), digest, digest)).fetchone()
    return None if row is None else row[0]


def place(conn: sqlite3.Connection, execute: Callable, extra: str, row: tuple) -> int:
    """Insert a chunk whose natural id holds another hash (`row`: natural id, hash, size, created,
    extras): at the first free id after it, recorded in `chunk_ids`. Its id."""
    chunk_id = row[0]
    while True:  # ids are random 63-bit numbers: a run of taken ones is short
        chunk_id = (chunk_id + 1) % ID_SPACE
        if conn.execute("SELECT 1 FROM chunks WHERE id = ?", (chunk_id,)).fetchone() is None:
            break
    execute(_PLAIN[extra], (chunk_id, *row[1:]))
    execute("INSERT INTO chunk_ids(hash, id) VALUES(?, ?)", (row[1], chunk_id))
    return chunk_id


def any_displaced(conn: sqlite3.Connection) -> bool:
    """Does `chunk_ids` name any chunk? (A store written from v11 on: only after a collision.)"""
    return bool(conn.execute("SELECT EXISTS (SELECT 1 FROM chunk_ids)").fetchone()[0])


def by_hash_sql(columns: str, count: int) -> str:
    """A statement finding up to `count` chunks by hash (parameters: `by_hash_params`), selecting
    `columns` of `chunks c`, the first of which must be `c.hash`. Rows whose hash was not asked
    (another chunk at an asked natural id) come back too: filter by hash (`wanted`)."""
    marks = ",".join("?" * count)
    return (f"SELECT {columns} FROM chunks c WHERE c.id IN ({marks}) UNION ALL "
            f"SELECT {columns} FROM chunk_ids o JOIN chunks c ON c.id = o.id WHERE o.hash IN ({marks})")


def by_hash_params(digests: list[bytes], before: tuple = ()) -> list:
    return [*before, *map(natural_id, digests), *before, *digests]


DELETE = (
    "DELETE FROM chunk_ids WHERE hash = (SELECT hash FROM chunks WHERE id = ?1) AND id = ?1",
    "DELETE FROM chunks WHERE id = ?",
    "DELETE FROM chunk_data WHERE id = ?",
)
