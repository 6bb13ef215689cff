"""Stores as an older wsfs left them on disk, made from a current one by hand (migration tests)."""

from __future__ import annotations

import sqlite3


def downgrade_to_v9(conn: sqlite3.Connection) -> None:
    """Take a v10 store back to v9: every inline chunk's bytes in `chunk_data`, none in its catalogue row."""
    conn.execute("INSERT INTO chunk_data(id, data) SELECT id, data FROM chunks WHERE data IS NOT NULL")
    conn.execute("ALTER TABLE chunks DROP COLUMN data")
    conn.execute("UPDATE meta SET value = 9 WHERE key = 'schema_version'")


def downgrade_to_v8(conn: sqlite3.Connection) -> None:
    """Take a v10 store back to v8: a renamed file's arrival recorded in `versions`, not pending."""
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
    """Take a v10 store back to v7: a directory's name is found through `dirents_linked` only."""
    downgrade_to_v8(conn)
    conn.execute("UPDATE dirents SET linked = 1 WHERE ino IN (SELECT ino FROM nodes WHERE kind = 2)")
    conn.execute("ALTER TABLE nodes DROP COLUMN dparent")
    conn.execute("ALTER TABLE nodes DROP COLUMN dname")
    conn.execute("UPDATE meta SET value = 7 WHERE key = 'schema_version'")


def downgrade_to_v6(conn: sqlite3.Connection) -> None:
    """Take a v10 store back to v6: current versions recorded in `versions`, every name indexed by inode."""
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
