"""Stores as an older wsfs left them on disk, made from a current one by hand (migration tests).

Each `downgrade_to_vN` takes a current (v12) store back to vN: the one before it first, then
what migration N+1 changed, undone. The schema objects an older wsfs created are made from
`vfs/schema.py`'s own migration scripts (its `MIGRATIONS` are never edited), so their text is
what that wsfs wrote; chunk lists are read and written with `vfs.chunks`' own packing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from vfs import chunks, schema


def _created_by(version: int, prefix: str) -> Iterator[str]:
    """The statements of migration `version` that start with `prefix` (as that wsfs ran them)."""
    pending = ""
    for line in schema.MIGRATIONS[version].splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            if pending.strip().startswith(prefix):
                yield pending.strip()
            pending = ""


def downgrade_to_v11(conn: sqlite3.Connection) -> None:
    """Take a v12 store back to v11: the three `dirents` triggers keep `nodes.subdirs` again (v2's)."""
    for statement in _created_by(2, "CREATE TRIGGER"):
        conn.execute(statement)
    conn.execute("UPDATE meta SET value = 11 WHERE key = 'schema_version'")


def downgrade_to_v10(conn: sqlite3.Connection) -> None:
    """Take a v12 store back to v10: `chunks.hash UNIQUE` and sequential chunk ids, no `chunk_ids`.

    Before v11 a new chunk took the next row id; now it sits at its hash's id. Every chunk is
    renumbered 1, 2, ... in the order it was made (by `created`; one write's packed chunks by their
    place in the pack, as a v10 wsfs numbered them), and every reference follows: the packed lists
    in `nodes` and `versions`, the `chunk_data` rows (a pack file holds bytes only: positions stay).
    `chunks` is made again as v1 created it, with the columns v6 and v10 added, so its definition
    (and the hash index) is the one an old store has.
    """
    downgrade_to_v11(conn)
    order = conn.execute("SELECT id FROM chunks ORDER BY created, pack, pos, id").fetchall()
    new_id = {old: new for new, (old,) in enumerate(order, 1)}
    conn.execute("CREATE TEMP TABLE renumbered (old INTEGER PRIMARY KEY, new INTEGER NOT NULL)")
    conn.executemany("INSERT INTO temp.renumbered(old, new) VALUES(?, ?)", new_id.items())
    conn.execute("ALTER TABLE chunks RENAME TO chunks_v12")
    for statement in _created_by(1, "CREATE TABLE chunks "):
        conn.execute(statement)
    for version in range(1, 11):
        for table, column, sql_type in schema.ADDED_COLUMNS.get(version, ()):
            if table == "chunks":
                conn.execute(f"ALTER TABLE chunks ADD COLUMN {column} {sql_type}")
    conn.execute("INSERT INTO chunks(id, hash, size, created, pack, pos, data) SELECT r.new, c.hash, c.size, "
                 "c.created, c.pack, c.pos, c.data FROM chunks_v12 c JOIN temp.renumbered r ON r.old = c.id")
    conn.execute("DROP TABLE chunks_v12")
    conn.execute("DROP TABLE chunk_ids")
    # Negative first: a new id may be an old id another row still holds
    conn.execute("UPDATE chunk_data SET id = -(SELECT new FROM temp.renumbered WHERE old = chunk_data.id)")
    conn.execute("UPDATE chunk_data SET id = -id")
    conn.execute("DROP TABLE temp.renumbered")
    _renumber_lists(conn, "nodes", ("ino",), new_id)
    _renumber_lists(conn, "versions", ("path", "rev"), new_id)
    conn.execute("UPDATE meta SET value = 10 WHERE key = 'schema_version'")


def _renumber_lists(conn: sqlite3.Connection, table: str, key: tuple[str, ...], new_id: dict[int, int]) -> None:
    """Rewrite each packed chunk list in `table` with its chunks' new ids (a missing one: KeyError)."""
    where = " AND ".join(f"{column} = ?" for column in key)
    rows = conn.execute(f"SELECT {', '.join(key)}, chunks FROM {table} WHERE chunks IS NOT NULL").fetchall()
    conn.executemany(
        f"UPDATE {table} SET chunks = ? WHERE {where}",
        [(chunks.pack(e._replace(id=new_id[e.id]) for e in chunks.unpack(row[-1])), *row[:-1]) for row in rows],
    )


def downgrade_to_v9(conn: sqlite3.Connection) -> None:
    """Take a v12 store back to v9: every inline chunk's bytes in `chunk_data`, none in its catalogue row."""
    downgrade_to_v10(conn)
    conn.execute("INSERT INTO chunk_data(id, data) SELECT id, data FROM chunks WHERE data IS NOT NULL")
    conn.execute("ALTER TABLE chunks DROP COLUMN data")
    conn.execute("UPDATE meta SET value = 9 WHERE key = 'schema_version'")


def downgrade_to_v8(conn: sqlite3.Connection) -> None:
    """Take a v12 store back to v8: a renamed file's arrival recorded in `versions`, not pending."""
    downgrade_to_v9(conn)
    conn.execute(
        "INSERT OR REPLACE INTO versions(path, rev, kind, mode, size, mtime, hash, chunks, recorded, author, origin) "
        "SELECT p.path, n.vrev, n.kind, n.mode, n.size, n.mtime_ns / 1e9, n.hash, n.chunks, n.ctime_ns / 1e9, "
        "n.vauthor, n.vorigin FROM pathlog p JOIN nodes n ON n.ino = p.ino "
        "WHERE n.vrev IS NOT NULL AND n.vorigin IS NOT NULL"
    )
    conn.execute("UPDATE nodes SET vrev = NULL WHERE vorigin IS NOT NULL")
    conn.execute("ALTER TABLE nodes DROP COLUMN vorigin")
    conn.execute("UPDATE meta SET value = 8 WHERE key = 'schema_version'")


def downgrade_to_v7(conn: sqlite3.Connection) -> None:
    """Take a v12 store back to v7: a directory's name is found through `dirents_linked` only."""
    downgrade_to_v8(conn)
    conn.execute("UPDATE dirents SET linked = 1 WHERE ino IN (SELECT ino FROM nodes WHERE kind = 2)")
    conn.execute("ALTER TABLE nodes DROP COLUMN dparent")
    conn.execute("ALTER TABLE nodes DROP COLUMN dname")
    conn.execute("UPDATE meta SET value = 7 WHERE key = 'schema_version'")


def downgrade_to_v6(conn: sqlite3.Connection) -> None:
    """Take a v12 store back to v6: current versions recorded in `versions`, every name indexed by inode."""
    downgrade_to_v7(conn)
    conn.execute(
        "INSERT OR REPLACE INTO versions(path, rev, kind, mode, size, mtime, hash, chunks, recorded, author, origin) "
        "SELECT p.path, n.vrev, n.kind, n.mode, n.size, n.mtime_ns / 1e9, n.hash, n.chunks, n.ctime_ns / 1e9, "
        "n.vauthor, NULL FROM pathlog p JOIN nodes n ON n.ino = p.ino WHERE n.vrev IS NOT NULL"
    )
    conn.execute("DROP INDEX dirents_linked")
    conn.execute("DROP INDEX versions_arrivals")
    conn.execute("ALTER TABLE dirents DROP COLUMN linked")
    conn.execute("ALTER TABLE nodes DROP COLUMN vrev")
    conn.execute("ALTER TABLE nodes DROP COLUMN vauthor")
    conn.execute("CREATE INDEX dirents_by_ino ON dirents (ino)")
    conn.execute("CREATE INDEX versions_by_origin ON versions (origin, rev) WHERE origin IS NOT NULL")
    conn.execute("UPDATE meta SET value = 6 WHERE key = 'schema_version'")


def schema_version(path: object) -> int:
    """The schema version a store file records (read with a plain connection, no migration)."""
    conn = sqlite3.connect(str(path))
    try:
        return int(conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
    finally:
        conn.close()
