"""Schema migrations: a store written by an older wsfs opens in this one.

The v1 store is made by taking a current store back to v1 by hand (drop
what v2 added, stamp version 1), which is what an older wsfs left on disk.
"""

from __future__ import annotations

import sqlite3

import pytest

import vfs
from vfs import schema
from vfs_old_stores import downgrade_to_v6, downgrade_to_v7, downgrade_to_v9


def _downgrade_to_v1(path: str) -> None:
    conn = sqlite3.connect(path)
    for trigger in ("subdir_added", "subdir_removed", "subdir_moved"):
        conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")  # (gone since v12)
    conn.execute("ALTER TABLE nodes DROP COLUMN subdirs")
    conn.execute("UPDATE meta SET value = 1 WHERE key = 'schema_version'")
    conn.commit()
    conn.close()


def test_v1_store_gains_directory_link_counts(tmp_path):
    path = str(tmp_path / "old.db")
    with vfs.Workspace(path) as ws:
        ws.mkdir("/a/b/c", parents=True)
        ws.mkdir("/a/d", parents=True)
        ws.write_file("/a/f.txt", b"x")
    _downgrade_to_v1(path)
    with vfs.Workspace(path) as ws:
        assert ws.lstat("/").nlink == 3  # 2 + /a
        assert ws.lstat("/a").nlink == 4  # 2 + b, d (f.txt is a file)
        assert ws.lstat("/a/b").nlink == 3
        assert ws.lstat("/a/b/c").nlink == 2
        ws.mkdir("/a/e")  # the triggers run after the migration
        assert ws.lstat("/a").nlink == 5
        assert ws.read_file("/a/f.txt") == b"x"
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == schema.SCHEMA_VERSION
    conn.close()


def test_store_from_a_newer_wsfs_is_refused(tmp_path):
    path = str(tmp_path / "new.db")
    vfs.Workspace(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (schema.SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(RuntimeError, match="newer than this wsfs"):
        vfs.Workspace(path)


def test_directory_link_count_follows_moves_and_swaps(tmp_path):
    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        ws.mkdir("/p/x", parents=True)
        ws.mkdir("/q", parents=True)
        ws.write_file("/q/file", b"1")
        ws.rename("/p/x", "/q/x")  # a directory changes parent
        assert (ws.lstat("/p").nlink, ws.lstat("/q").nlink) == (2, 3)
        ws.rename("/q/x", "/p/file2")  # moves back under a new name
        ws.rename("/q/file", "/p/file2/y")  # a file never counts
        assert (ws.lstat("/p").nlink, ws.lstat("/q").nlink, ws.lstat("/p/file2").nlink) == (3, 2, 2)
        ws.write_file("/q/f", b"")
        ws.rename("/p/file2", "/q/f", exchange=True)  # dir and file swap places
        assert (ws.lstat("/p").nlink, ws.lstat("/q").nlink) == (2, 3)
        ws.rm("/q", recursive=True)
        assert ws.lstat("/").nlink == 3


def test_a_v6_store_keeps_its_names_and_history(tmp_path):
    """v7 indexes by inode only the names found that way and keeps a current version in its
    node: a v6 store (every name indexed, every version in `versions`) gains the flags."""
    path = str(tmp_path / "old.db")
    with vfs.Workspace(path) as ws:
        ws.mkdir("/d/e", parents=True)
        ws.write_file("/d/e/f", b"one")
        ws.write_file("/d/e/f", b"two")
        ws.link("/d/e/f", "/d/g")
        ws.write_file("/plain", b"p")
    conn = sqlite3.connect(path)
    downgrade_to_v6(conn)
    conn.commit()
    conn.close()
    with vfs.Workspace(path) as ws:
        ws.rename("/d/e", "/d/e2")  # a directory's name, found by inode below
        ws.write_file("/d/g", b"three")  # a hard-linked file: the version goes under both names
        assert [v.path for v in ws.history("/d/e2/f") if v.kind == "file"][:1] == ["/d/e2/f"]
        assert ws.read_file("/d/e2/f") == b"three"
        assert [ws.read_file("/d/g", rev=v.rev) for v in ws.history("/d/g") if v.kind == "file"][0] == b"three"
        assert ws.history("/d/g")[0].rev == ws.history("/d/e2/f")[0].rev
        assert b"one" in {ws.read_file("/d/e2/f", rev=v.rev) for v in ws.history("/d/e2/f") if v.kind == "file"}
        assert [v.kind for v in ws.history("/plain")] == ["file"]
        ws.write_file("/new", b"n")
        assert [v.kind for v in ws.history("/new")] == ["file"]
    conn = sqlite3.connect(path)
    indexes = {row[1] for row in conn.execute("PRAGMA index_list(dirents)")}
    assert "dirents_linked" in indexes and "dirents_by_ino" not in indexes
    assert conn.execute("SELECT count(*) FROM versions WHERE path = '/new'").fetchone()[0] == 0  # pending in its node
    linked = {name for (name,) in conn.execute("SELECT name FROM dirents WHERE linked")}
    assert linked == {"f", "g"}, linked  # a directory's name is in its node (v8)
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == schema.SCHEMA_VERSION
    conn.close()


def test_a_v7_store_moves_directory_names_into_their_nodes(tmp_path):
    """v8 keeps a directory's own name in its node: a hard-linked file below a directory
    renamed after the upgrade still lists every name, and no directory's name stays indexed."""
    path = str(tmp_path / "old.db")
    with vfs.Workspace(path) as ws:
        ws.mkdir("/p/q/r", parents=True)
        ws.write_file("/p/q/r/f", b"one")
        ws.link("/p/q/r/f", "/p/g")
    conn = sqlite3.connect(path)
    downgrade_to_v7(conn)
    conn.commit()
    conn.close()
    with vfs.Workspace(path) as ws:
        ws.rename("/p/q", "/p/q2")
        ws.rename("/p/q2/r", "/s")
        ws.write_file("/p/g", b"two")  # recorded under both names: their paths come from the nodes
        assert ws.history("/s/f")[0].path == "/s/f" and ws.history("/s/f")[0].rev == ws.history("/p/g")[0].rev
        ws.rename("/p", "/s", exchange=True)  # two directories trade names
        three = ws.write_file("/s/g", b"three").rev
        assert [(v.path, v.rev) for v in ws.history("/p/f")][0] == ("/p/f", three)
        assert ws.read_file("/p/f", rev=three) == b"three"
    conn = sqlite3.connect(path)
    assert {name for (name,) in conn.execute("SELECT name FROM dirents WHERE linked")} == {"f", "g"}
    inos = dict(conn.execute("SELECT dname, ino FROM nodes WHERE kind = 2 AND ino != 1"))
    parents = dict(conn.execute("SELECT dname, dparent FROM nodes WHERE kind = 2 AND ino != 1"))
    assert set(inos) == {"p", "q2", "s"} and parents == {"p": 1, "s": 1, "q2": inos["s"]}, parents
    conn.close()


def test_a_v9_store_keeps_tiny_chunks_bytes_where_they_were(tmp_path):
    """v10 keeps a tiny chunk's bytes in its catalogue row (no `chunk_data` row): a v9 store's
    tiny chunks stay in `chunk_data` and read as before, beside new ones, by every reader."""
    path = str(tmp_path / "old.db")
    with vfs.Workspace(path) as ws:
        ws.write_file("/old", b"old bytes")
        ws.write_file("/shared", b"x" * 1024)
        ws.write_file("/big", bytes(range(256)) * 400)  # 100 KiB: chunk_data, v9 and v10 alike
    conn = sqlite3.connect(path)
    downgrade_to_v9(conn)
    conn.commit()
    assert conn.execute("SELECT count(*) FROM chunk_data").fetchone()[0] == 3
    conn.close()
    with vfs.Workspace(path) as ws:
        ws.write_file("/new", b"new bytes")
        ws.write_file("/again", b"x" * 1024)  # deduplicated against the v9 row
        ws.write_file("/edge", b"y" * 1025)  # one byte over: chunk_data
        for name, data in (("/old", b"old bytes"), ("/new", b"new bytes"), ("/again", b"x" * 1024),
                           ("/edge", b"y" * 1025), ("/big", bytes(range(256)) * 400)):
            assert ws.read_file(name) == data and ws.read_range(name, 1, 3) == data[1:4]
            assert ws.stat(name).hash == ws.entry(name).hash
            (digest, _), = ws.entry(name).chunks if len(data) < 16384 else ws.entry(name).chunks[:1]
            with ws.open(name) as f:
                assert f.read() == data
            if len(data) < 16384:
                assert dict(ws.read_objects([digest])) == {digest: data}
        ws.write_range("/new", 0, b"N")  # an edit in place re-reads the tiny chunk
        assert ws.read_file("/new") == b"New bytes"
        ws.unlink("/old")
        ws.gc()
        assert ws.read_file("/again") == b"x" * 1024 and ws.read_file("/new") == b"New bytes"
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == schema.SCHEMA_VERSION
    inline = dict(conn.execute("SELECT size, data IS NOT NULL FROM chunks"))
    assert inline[9] == 1 and inline[1025] == 0 and inline[1024] == 0, inline  # new tiny: in the row
    in_data = {size for (size,) in conn.execute("SELECT c.size FROM chunks c JOIN chunk_data d ON d.id = c.id")}
    assert 1025 in in_data and 1024 in in_data, in_data
    conn.close()


def test_a_tiny_file_writes_no_chunk_data_row(tmp_path):
    """A create of a file of at most 1 KiB writes its bytes into the chunk's catalogue row (v10):
    one page less per commit than a `chunk_data` row."""
    path = str(tmp_path / "s.db")
    with vfs.Workspace(path) as ws:
        ws.write_file("/t", b"tiny")
        ws.write_file("/k", b"k" * 1024)
        assert ws.read_file("/t") == b"tiny" and ws.read_file("/k") == b"k" * 1024
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM chunk_data").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM chunks WHERE data IS NOT NULL").fetchone()[0] == 2
    conn.close()
