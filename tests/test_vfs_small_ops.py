"""The small operations' shortcuts (issue 14) change nothing a reader sees.

- A created node's row is built from the values inserted and the new rowid,
  not read back (`Namespace.insert_node`): every way of creating a node
  returns, and keeps in the stat cache, what a fresh connection reads.
- `bytes`, `None` and `bool` parameters bind through identity adapters
  (`vfs.schema._bind_without_adapting`): what is stored is what was bound.
"""

from __future__ import annotations

import os
import sqlite3
import stat

import vfs
from vfs.types import Change


def _fresh(path: str, name: str) -> vfs.Stat:
    with vfs.Workspace(path, readonly=True) as ws:
        return ws.lstat(name)


def test_every_create_returns_the_row_a_fresh_connection_reads(tmp_path):
    path = str(tmp_path / "s.db")
    with vfs.Workspace(path) as ws:
        steps = [
            ("/d", lambda: ws.mkdir("/d", mode=0o750)),
            ("/d/f", lambda: ws.write_file("/d/f", b"tiny")),
            ("/d/big", lambda: ws.write_file("/d/big", os.urandom(300_000), mode=0o600, mtime=1234.5)),
            ("/d/empty", lambda: ws.write_file("/d/empty", b"")),
            ("/p/q/r", lambda: ws.write_file("/p/q/r", b"made with parents", parents=True)),
            ("/m/n/o", lambda: ws.mkdir("/m/n/o", parents=True)),
        ]
        for name, create in steps:
            with ws.as_owner(1000, 2000):  # uid and gid told apart
                assert create() == _fresh(path, name), name  # the Stat returned is the row as stored
        ws.symlink("d/f", "/link")
        ws.mknod("/fifo", stat.S_IFIFO | 0o640)
        ws.mknod("/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        with ws.transaction():  # several in one transaction, then read from another connection
            ws.write_file("/t1", b"one")
            ws.mkdir("/t2")
        ws.apply_changes([Change(path="/applied", kind="dir", rev=1, mode=0o700, mtime=99.0)])
        for name in ("/d", "/d/f", "/d/big", "/link", "/fifo", "/null", "/t1", "/t2", "/applied", "/m/n/o", "/p/q"):
            assert ws.lstat(name) == _fresh(path, name), name  # the warm stat (cached) and a fresh one
        # A directory's link count and subdirectory counter stay the triggers' (the new row starts at 0)
        assert ws.stat("/d").nlink == 2 and ws.stat("/m").nlink == 3 and ws.stat("/").nlink == 2 + 5  # /d /p /m /t2 /applied


def test_reserved_inode_numbers_are_the_rows_numbers(tmp_path):
    path = str(tmp_path / "s.db")
    with vfs.Workspace(path, exclusive=True) as ws:
        ino = ws.reserve_ino()
        st = ws.write_file("/f", b"x", if_match="", ino=ino, created_ns=1_000_000_000)
        assert st.ino == ino and st == _fresh(path, "/f")
        assert ws.mkdir("/d") == _fresh(path, "/d") and _fresh(path, "/d").ino == ino + 1


def test_identity_adapters_bind_what_was_given():
    conn = sqlite3.connect(":memory:")
    vfs.Workspace(":memory:").close()  # vfs.schema is imported and its adapters registered
    assert all((kind, sqlite3.PrepareProtocol) in sqlite3.adapters for kind in (bytes, type(None), bool))
    for value in (None, b"", b"\x00\xff" * 40, True, False):
        got = conn.execute("SELECT ?, typeof(?)", (value, value)).fetchone()
        want = {None: (None, "null"), True: (1, "integer"), False: (0, "integer")}.get(value, (value, "blob"))  # type: ignore[call-overload]
        assert got == want, value


class Blob(bytes):
    pass


def test_a_bytes_subclass_is_not_caught_by_the_bytes_adapter():
    conn = sqlite3.connect(":memory:")
    vfs.Workspace(":memory:").close()
    assert conn.execute("SELECT typeof(?)", (Blob(b"ab"),)).fetchone() == ("blob",)
