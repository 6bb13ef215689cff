"""History follows a file across renames (of it or of a directory above it) and hard links, with authors.

Ground truth is the store itself: every listed version reads back (by its revision, at the file's current
path) as the bytes written then, and restore brings it back at the current path.
"""

from __future__ import annotations

import sqlite3

import pytest

import vfs
from vfs import schema
from vfs_old_stores import downgrade_to_v6, downgrade_to_v8


@pytest.fixture
def ws(tmp_path):
    with vfs.Workspace(str(tmp_path / "s.db")) as w:
        yield w


def revs_and_paths(ws: vfs.Workspace, path: str) -> list[tuple[str, str]]:
    return [(v.kind, v.path) for v in ws.history(path)]


def test_directory_rename_keeps_the_history_under_the_new_path_and_marks_the_move_at_the_old(ws):
    ws.mkdir("/h")
    ws.write_file("/h/f.txt", b"one")
    one = ws.stat("/h/f.txt").rev
    ws.write_file("/h/f.txt", b"two")
    ws.rename("/h", "/h2")
    moved = ws.rev
    ws.write_file("/h2/f.txt", b"three")
    assert revs_and_paths(ws, "/h2/f.txt") == [
        ("file", "/h2/f.txt"), ("file", "/h2/f.txt"), ("file", "/h/f.txt"), ("file", "/h/f.txt"),
    ]
    arrival = ws.history("/h2/f.txt")[1]
    assert (arrival.rev, arrival.origin) == (moved, "/h/f.txt")
    old = ws.history("/h/f.txt")
    assert (old[0].kind, old[0].rev, old[0].origin) == ("move", moved, "/h2/f.txt")
    assert [v.kind for v in old[1:]] == ["file", "file"]
    # every listed version reads back at the current path, and restores there
    for v in ws.history("/h2/f.txt"):
        assert vfs_hash(ws.read_file("/h2/f.txt", rev=v.rev)) == v.hash
    ws.restore("/h2/f.txt", rev=one)
    assert ws.read_file("/h2/f.txt") == b"one"
    assert not ws.exists("/h/f.txt")
    with pytest.raises(FileNotFoundError, match="renamed"):
        ws.restore("/h/f.txt", rev=moved)  # the move itself holds no content


def test_chained_renames_and_a_rename_back(ws):
    ws.write_file("/a", b"a1")
    ws.rename("/a", "/b")
    ws.write_file("/b", b"b1")
    ws.rename("/b", "/c")
    ws.rename("/c", "/a")  # back where it started: the path's older life is this file's too
    contents = [ws.read_file("/a", rev=v.rev) for v in ws.history("/a") if v.kind == "file"]
    assert contents == [b"b1", b"b1", b"b1", b"a1", b"a1"]
    assert [v.path for v in ws.history("/a")] == ["/a", "/c", "/b", "/b", "/a"]


def test_a_new_file_at_a_renamed_directorys_path_does_not_inherit_an_unrelated_history(ws):
    ws.write_file("/d/x", b"old x", parents=True)
    ws.unlink("/d/x")  # deleted before the rename: not the file that will live at /e/x
    ws.write_file("/d/y", b"y")
    ws.rename("/d", "/e")
    ws.write_file("/e/x", b"new x")
    assert revs_and_paths(ws, "/e/x") == [("file", "/e/x")]
    assert [v.path for v in ws.history("/e/y")] == ["/e/y", "/d/y"]


def test_hard_links_share_history_both_ways(ws):
    ws.write_file("/a", b"v1")
    ws.link("/a", "/b")
    ws.write_file("/a", b"v2")  # written through one name ...
    ws.write_file("/b", b"v3")  # ... and the other
    for name in ("/a", "/b"):
        contents = [ws.read_file(name, rev=v.rev) for v in ws.history(name) if v.kind == "file"]
        assert contents[:2] == [b"v3", b"v2"] and contents[-1] == b"v1", name
    assert ws.history("/b")[-1].path == "/a"  # before the link, the file was only /a


def test_save_through_a_temporary_file_keeps_both_histories(ws):
    ws.write_file("/doc", b"first")
    ws.write_file("/doc.tmp", b"second")
    ws.rename("/doc.tmp", "/doc")
    contents = [ws.read_file("/doc", rev=v.rev) for v in ws.history("/doc") if v.kind == "file"]
    assert contents == [b"second", b"second", b"first"]


def test_exchange_swaps_histories(ws):
    ws.write_file("/x", b"x")
    ws.write_file("/y", b"y")
    ws.rename("/x", "/y", exchange=True)
    assert ws.read_file("/y") == b"x"
    assert [v.path for v in ws.history("/y")][:2] == ["/y", "/x"]
    assert ws.history("/y")[0].origin == "/x" and ws.history("/x")[0].origin == "/y"


def test_authors_are_stored_with_each_version(tmp_path):
    path = str(tmp_path / "s.db")
    with vfs.Workspace(path) as ws:
        with ws.as_author("ann"):
            ws.write_file("/f", b"by ann")
        with ws.as_author("bob"):
            ws.rename("/f", "/g")
            ws.write_file("/g", b"by bob")
        ws.write_file("/g", b"local")
    with vfs.Workspace(path, readonly=True) as ro:  # stored, not remembered
        assert [(v.path, v.author) for v in ro.history("/g")] == [
            ("/g", None), ("/g", "bob"), ("/g", "bob"), ("/f", "ann"),
        ]


def test_a_v3_store_keeps_its_history_and_gains_authors(tmp_path):
    path = str(tmp_path / "old.db")
    with vfs.Workspace(path) as ws:
        ws.write_file("/f", b"old")
    conn = sqlite3.connect(path)  # what a wsfs of schema v3 left on disk
    downgrade_to_v6(conn)
    conn.execute("DROP INDEX versions_by_origin")
    conn.execute("ALTER TABLE versions DROP COLUMN author")
    conn.execute("ALTER TABLE versions DROP COLUMN origin")
    conn.execute("UPDATE meta SET value = 3 WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with vfs.Workspace(path) as ws:
        with ws.as_author("ann"):
            ws.rename("/f", "/g")
        assert [(v.path, v.author) for v in ws.history("/g")] == [("/g", "ann"), ("/f", None)]
        assert ws.read_file("/g", rev=ws.history("/g")[1].rev) == b"old"
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == schema.SCHEMA_VERSION
    conn.close()


def test_renames_back_and_forth_list_in_bounded_time(ws):
    ws.write_file("/p", b"0")
    for i in range(60):
        ws.rename("/p" if i % 2 == 0 else "/q", "/q" if i % 2 == 0 else "/p")
    listed = ws.history("/p")
    assert listed[-1].path == "/p" and ws.read_file("/p", rev=listed[-1].rev) == b"0"
    assert len(listed) == 61  # 60 arrivals and the first write, no duplicates


def vfs_hash(data: bytes) -> str:
    import blake3

    return blake3.blake3(data).hexdigest()


def test_a_current_version_kept_in_its_node_lists_and_restores_as_recorded(tmp_path):
    """A file's current content is recorded only when superseded (schema v7): until then
    history, authors, read_file(rev=) and restore find it in the node; once superseded
    (a chmod, a write, a rename, a directory removed) it is recorded as it was written."""
    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        with ws.as_author("ann"):
            first = ws.write_file("/f", b"one", mode=0o640).rev
        assert [(v.rev, v.author) for v in ws.history("/f")] == [(first, "ann")]
        assert ws.authors([("/f", first)]) == {("/f", first): "ann"}
        assert ws.read_file("/f", rev=first) == b"one"
        ws.chmod("/f", 0o600)  # the version at `first` keeps the mode it was written with
        with ws.as_author("bob"):
            second = ws.write_file("/f", b"two").rev
        ws.restore("/f", rev=first)
        assert (ws.read_file("/f"), ws.stat("/f").mode & 0o777) == (b"one", 0o640)
        assert ws.authors([("/f", first), ("/f", second)]) == {("/f", first): "ann", ("/f", second): "bob"}
        ws.mkdir("/d")
        third = ws.write_file("/d/g", b"three").rev
        ws.rename("/d", "/e")
        ws.rm("/e", recursive=True)
        assert [(v.path, v.kind) for v in ws.history("/e/g")] == [("/e/g", "delete"), ("/e/g", "file"), ("/d/g", "file")]
        assert ws.read_file("/d/g", rev=third) == b"three"
    with vfs.Workspace(str(tmp_path / "s.db"), readonly=True) as ro:
        assert [v.rev for v in ro.history("/d/g") if v.kind == "file"] == [third]


def test_a_renamed_files_arrival_pending_in_its_node_lists_as_recorded(tmp_path):
    """A rename writes only the departure (schema v9): the arrival stays pending in the node
    with the path it came from. History lists the same before and after it is recorded, a
    save through a backup name and a temporary file in one transaction still ends the
    history where the old file left, and a v8 store's recorded arrivals read the same."""
    path = str(tmp_path / "s.db")
    with vfs.Workspace(path) as ws:
        ws.write_file("/f", b"1")
        ws.write_file("/f", b"2")
        ws.write_file("/t", b"new")
        with ws.transaction():  # an editor's save: keep a backup, put the new file in place
            ws.rename("/f", "/f~")
            ws.rename("/t", "/f")
        saved = [(v.path, v.kind, v.origin) for v in ws.history("/f")]
        assert saved == [("/f", "file", "/t"), ("/t", "file", None)]
        backup = [(v.path, v.kind) for v in ws.history("/f~")]
        assert backup == [("/f~", "file"), ("/f", "file"), ("/f", "file")]
        ws.rename("/f~", "/g")
        before = [(v.path, v.rev, v.kind, v.origin) for v in ws.history("/g")]
        ws.chmod("/g", 0o600)  # records the pending arrival
        assert [(v.path, v.rev, v.kind, v.origin) for v in ws.history("/g")] == before
        ws.rename("/g", "/h")
    conn = sqlite3.connect(path)
    downgrade_to_v8(conn)
    conn.commit()
    conn.close()
    with vfs.Workspace(path) as ws:
        assert [(v.path, v.kind, v.origin) for v in ws.history("/h")][:2] == [("/h", "file", "/g"), ("/g", "file", "/f~")]
        assert [(v.path, v.kind, v.origin) for v in ws.history("/f")] == saved
