"""The small operations' shortcuts (issue 14) change nothing a reader sees.

- A created node's row is built from the values inserted and the new rowid,
  not read back (`Namespace.insert_node`): every way of creating a node
  returns, and keeps in the stat cache, what a fresh connection reads.
- An overwrite, chmod, chown, utime, set_attrs and link build the row they
  wrote from the row read in the same transaction (no RETURNING), and a new
  chunk's id is the cursor's `lastrowid` (no RETURNING id): what they return
  is what a fresh connection reads, and the chunk ids are the catalogue's.
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


def test_every_change_returns_the_row_a_fresh_connection_reads(tmp_path):
    path = str(tmp_path / "s.db")
    with vfs.Workspace(path) as ws:
        ws.write_file("/f", b"first")
        ws.mkdir("/d")
        later = ws.lstat("/f").ctime_ns + 10**12  # a ctime ahead of the clock stays (never moves back)
        steps = [
            ("/f", lambda: ws.write_file("/f", b"second, longer", mode=0o600, mtime_ns=5_000_000_123)),
            ("/f", lambda: ws.write_file("/f", b"third", ctime_ns=later)),
            ("/f", lambda: ws.write_file("/f", b"fourth", ctime_ns=1)),  # earlier than its ctime: kept
            ("/f", lambda: ws.write_file("/f", b"fourth")),  # identical bytes, a chunk already catalogued
            ("/f", lambda: ws.chmod("/f", 0o4751)),
            ("/f", lambda: ws.chown("/f", 1234, -1)),
            ("/f", lambda: ws.chown("/f", -1, 4321)),
            ("/f", lambda: ws.set_times("/f", atime_ns=77, mtime_ns=None)),
            ("/f", lambda: ws.utime("/f", 12.5)),
            ("/d", lambda: ws.set_attrs("/d", mode=0o700, uid=5, gid=-1, atime_ns=1, mtime_ns=2, ctime_ns=later + 1)),
            ("/d", lambda: ws.set_attrs("/d", uid=-1, gid=6)),
            ("/g", lambda: ws.link("/f", "/g")),
            ("/h", lambda: ws.link("/g", "/h", at_ns=3)),  # a link stored late: the ctime does not move back
            ("/h", lambda: ws.write_file("/h", b"through a second name")),
            ("/h", lambda: ws.chmod("/h", 0o640)),
        ]
        for name, change in steps:
            assert change() == _fresh(path, name), name
            assert ws.lstat(name) == _fresh(path, name), name
        assert _fresh(path, "/f").nlink == 3


def test_a_new_chunks_id_is_its_catalogue_row(tmp_path):
    path = str(tmp_path / "s.db")
    with vfs.Workspace(path) as ws:
        ws.write_file("/a", b"a" * 100)  # tiny: bytes in the catalogue row
        ws.write_file("/b", b"a" * 100)  # the same chunk: deduplicated, the existing id
        ws.write_file("/c", os.urandom(1500))  # small, not tiny: bytes in chunk_data
        ws.write_file("/d", os.urandom(300_000))  # several chunks
        for name in ("/a", "/b", "/c", "/d"):
            assert ws.read_file(name) == _read_fresh(path, name), name
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT id, hash FROM chunks").fetchall()
    assert len({digest for _, digest in rows}) == len(rows)
    with vfs.Workspace(path) as ws:
        entries = ws._content.file_chunks("/d", None) + ws._content.file_chunks("/a", None)
    assert {(e.id, e.hash) for e in entries} <= set(rows)


def _read_fresh(path: str, name: str) -> bytes:
    with vfs.Workspace(path, readonly=True) as ws:
        return ws.read_file(name)


def test_a_workspaces_forwarded_methods_are_its_own_and_kept(tmp_path):
    """`vfs.workspace.forward` keeps the bound method in the workspace's dict at its first lookup."""
    from vfs.workspace import forward

    one, two = vfs.Workspace(str(tmp_path / "1.db")), vfs.Workspace(str(tmp_path / "2.db"))
    try:
        assert "write_file" not in vars(one)
        write = one.write_file
        assert vars(one)["write_file"] is write and one.write_file is write  # kept: no descriptor call
        two.write_file("/f", b"two")
        one.write_file("/f", b"one")
        assert one.read_file("/f") == b"one" and two.read_file("/f") == b"two"
        assert vfs.Workspace.write_file.__name__ == "write_file"  # on the class: the function itself
    finally:
        one.close()
        two.close()
    shared = forward("_names", vfs.Workspace.mkdir)
    try:
        type("Twice", (), {"a": shared, "b": shared})
    except (TypeError, RuntimeError) as e:  # (3.11 wraps an error in __set_name__ in a RuntimeError)
        assert "one forward per name" in str(e) or "one forward per name" in str(e.__cause__)
    else:
        raise AssertionError("a forward under two names was accepted")


def _renames(ws) -> list[tuple]:
    """A file renamed: with a version pending from an earlier revision, from the same one, after an
    overwrite, under an author, twice, onto another file; the versions rows it leaves (no times)."""
    ws.write_file("/a", b"a1")
    ws.rename("/a", "/b")
    with ws.transaction():
        ws.write_file("/c", b"c1")
        ws.rename("/c", "/d")
    ws.write_file("/e", b"e1")
    ws.write_file("/e", b"e2")
    with ws.as_author("someone"):
        ws.rename("/e", "/f")
        ws.rename("/f", "/g")
    ws.write_file("/h", b"h1")
    ws.rename("/h", "/b")  # onto /b
    return ws._db.conn.execute(
        "SELECT path, rev, kind, mode, size, hash, chunks, author, origin FROM versions ORDER BY path, rev"
    ).fetchall()


def test_a_renames_departure_in_one_statement_writes_what_two_did(tmp_path, monkeypatch):
    """`Versions.record_departure` (one statement) against `supersede` then `record_move_pending`."""
    from vfs.versions import Versions

    with vfs.Workspace(str(tmp_path / "one.db")) as ws:
        one = _renames(ws)

    def two_statements(self, tx, old, new, node):
        self.supersede(tx, old, node)
        return self.record_move_pending(tx, old, new)

    monkeypatch.setattr(Versions, "record_departure", two_statements)
    with vfs.Workspace(str(tmp_path / "two.db")) as ws:
        assert _renames(ws) == one
    kinds = {(path, kind) for path, _, kind, *_ in one}
    assert ("/a", 1) in kinds and ("/e", 1) in kinds  # the pending versions were recorded at the old paths
    assert not any(path == "/c" and kind == 1 for path, _, kind, *_ in one)  # same revision: the marker only
