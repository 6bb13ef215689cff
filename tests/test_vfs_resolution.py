"""Path resolution stays right when another connection changes the tree.

Each `Db` caches directory resolutions. Outside a transaction the cache is
validated by the `data_version` the final lookup returns with its row (one
statement instead of a `PRAGMA` per call, issue 14), and an error from a
cached directory stands only if no other connection committed. These tests
hold a reader's answers to those of a fresh connection after a second
writer renames, replaces and deletes directories under it.
"""

from __future__ import annotations

import errno

import pytest

import vfs


@pytest.fixture()
def two(tmp_path):
    path = str(tmp_path / "store.db")
    with vfs.Workspace(path) as reader, vfs.Workspace(path) as writer:
        yield reader, writer, path


def fresh_view(path: str, name: str) -> tuple[str, object]:
    """What a connection with no cache says about `name`: ("ok", bytes) or ("err", errno)."""
    with vfs.Workspace(path, readonly=True) as ws:
        return view(ws, name)


def view(ws: vfs.Workspace, name: str) -> tuple[str, object]:
    try:
        return ("ok", (ws.stat(name).ino, ws.read_file(name)))
    except OSError as exc:
        return ("err", exc.errno)


def test_a_renamed_and_replaced_directory_is_seen_at_once(two):
    reader, writer, path = two
    writer.write_file("/a/b/f", b"old", parents=True)
    assert reader.read_file("/a/b/f") == b"old"  # caches /a and /a/b
    writer.rename("/a", "/moved")
    writer.write_file("/a/b/f", b"new", parents=True)
    assert view(reader, "/a/b/f") == fresh_view(path, "/a/b/f") == ("ok", (reader.stat("/a/b/f").ino, b"new"))
    assert reader.read_file("/moved/b/f") == b"old"


def test_a_deleted_directory_gives_enoent_and_a_recreated_one_is_found(two):
    reader, writer, path = two
    writer.write_file("/d/e/f", b"1", parents=True)
    assert reader.stat("/d/e/f").size == 1
    writer.rm("/d", recursive=True)
    assert view(reader, "/d/e/f") == ("err", errno.ENOENT) == fresh_view(path, "/d/e/f")
    writer.write_file("/d/e/f", b"22", parents=True)
    assert view(reader, "/d/e/f") == fresh_view(path, "/d/e/f")
    assert reader.stat("/d/e/f").size == 2


def test_a_stale_cached_directory_does_not_make_a_false_enotdir(two):
    reader, writer, path = two
    writer.write_file("/x/y/f", b"f", parents=True)
    writer.write_file("/other/f", b"g", parents=True)
    assert reader.stat("/x/y/f").size == 1  # caches /x and /x/y
    writer.rm("/x", recursive=True)
    writer.mkdir("/x")
    writer.write_file("/x/y", b"now a file")  # /x/y/f is ENOTDIR now
    assert view(reader, "/x/y/f") == fresh_view(path, "/x/y/f") == ("err", errno.ENOTDIR)
    writer.rm("/x/y")
    writer.write_file("/x/y/f", b"back", parents=True)
    assert view(reader, "/x/y/f") == fresh_view(path, "/x/y/f")


def test_a_stale_cached_ancestor_does_not_make_a_false_enoent(two):
    reader, writer, path = two
    writer.write_file("/x/f", b"f", parents=True)
    assert reader.stat("/x/f").size == 1  # caches /x only
    writer.rename("/x", "/gone")  # the old /x lives on, so its inode number is not reused
    writer.write_file("/x/z/f", b"deeper", parents=True)  # /x/z was never cached
    assert view(reader, "/x/z/f") == fresh_view(path, "/x/z/f")
    assert reader.read_file("/x/z/f") == b"deeper"


def test_a_directory_swapped_for_a_symlink_is_followed(two):
    reader, writer, path = two
    writer.write_file("/s/f", b"plain", parents=True)
    writer.write_file("/t/f", b"through the link", parents=True)
    assert reader.read_file("/s/f") == b"plain"
    writer.rm("/s", recursive=True)
    writer.symlink("/t", "/s")
    assert view(reader, "/s/f") == fresh_view(path, "/s/f")
    assert reader.read_file("/s/f") == b"through the link"


def test_many_interleaved_changes_agree_with_a_fresh_connection(two):
    reader, writer, path = two
    names = ["/p/q/f", "/p/f", "/q/f", "/p/q/r/f"]
    for step in range(40):
        target = names[step % len(names)]
        if step % 3 == 0:
            writer.rm("/" + target.split("/")[1], recursive=True, force=True)
        else:
            writer.write_file(target, b"%d" % step, parents=True)
        for name in names:
            assert view(reader, name) == fresh_view(path, name), (step, name)
