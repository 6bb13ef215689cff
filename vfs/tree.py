"""Queries over the tree of names that start from an inode: its names, a subtree.

Path resolution walks names downward (`vfs.db`); these go the other way or
wide. Only the names of a hard-linked file are indexed by inode (schema v7,
flagged `linked`), and a directory's one name is kept in its node as well
(`dparent`, `dname`, v8), so an ordinary create, unlink, rename or mkdir
writes no index entry for them.

    db  ->  tree
"""

from __future__ import annotations

import sqlite3

from vfs.paths import join
from vfs.schema import KIND_DIR, ROOT_INO

_NAMES_OF = "SELECT parent, name FROM dirents WHERE ino = ? AND linked"
_DIR_NAME = "SELECT dparent, dname FROM nodes WHERE ino = ?"

_SUBTREE = """
WITH RECURSIVE sub(ino, rel, kind) AS (
    SELECT d.ino, d.name, n.kind FROM dirents d JOIN nodes n ON n.ino = d.ino WHERE d.parent = ?
    UNION ALL
    SELECT d.ino, sub.rel || '/' || d.name, n.kind
    FROM sub JOIN dirents d ON d.parent = sub.ino JOIN nodes n ON n.ino = d.ino
    WHERE sub.kind = ?
)
SELECT ino, rel, kind FROM sub
"""


def paths_of(conn: sqlite3.Connection, ino: int) -> list[str]:
    """Every path naming the file `ino`, one per hard link.

    A file that never had a second name is not indexed: its caller knows its path."""
    return [join(dir_path(conn, parent), name) for parent, name in conn.execute(_NAMES_OF, (ino,)).fetchall()]


def dir_path(conn: sqlite3.Connection, ino: int) -> str:
    """The path of a directory inode (directories have exactly one name)."""
    names = []
    while ino != ROOT_INO:
        parent, name = conn.execute(_DIR_NAME, (ino,)).fetchone()
        names.append(name)
        ino = parent
    return "/" + "/".join(reversed(names))


def subtree(conn: sqlite3.Connection, dir_ino: int) -> list[tuple[int, str, int]]:
    """(ino, relative path, kind) of everything below a directory, parents first."""
    return conn.execute(_SUBTREE, (dir_ino, KIND_DIR)).fetchall()
