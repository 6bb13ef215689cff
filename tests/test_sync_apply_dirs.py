"""`Sync.apply_changes` keeps the directories a batch resolved (`vfs.sync`, `_dirs`): entries
land where their paths say even when the same batch removes and makes again a directory above
them, or puts a file where a directory was, and a later batch never sees the earlier one's."""

from __future__ import annotations

from pathlib import Path

import vfs


def file_entry(ws: vfs.Workspace, path: str, data: bytes) -> vfs.Change:
    digest = ws.put_object(data)
    return vfs.Change(path, "file", 0, 0o100644, 7.0, len(data), digest, ((digest, len(data)),))


def test_a_directory_removed_and_made_again_in_one_batch(tmp_path: Path) -> None:
    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        ws.write_file("/d/x/deep.txt", b"old", parents=True)
        batch = [vfs.Change("/d/x/deep.txt", "delete", 0), vfs.Change("/d", "delete", 0),
                 vfs.Change("/d", "dir", 0, 0o40755, 5.0), file_entry(ws, "/d/y.txt", b"new"),
                 file_entry(ws, "/d/x/z.txt", b"zz")]
        result = ws.apply_changes(batch)
        assert not result.conflicts
        assert sorted(ws.listdir("/d")) == ["x", "y.txt"] and ws.listdir("/d/x") == ["z.txt"]
        assert ws.read_file("/d/y.txt") == b"new" and ws.read_file("/d/x/z.txt") == b"zz"
        every = sorted(f"{top.rstrip('/')}/{n}" for top, dirs, files in ws.walk("/") for n in dirs + files)
        assert every == ["/d", "/d/x", "/d/x/z.txt", "/d/y.txt"]


def test_a_directory_replaced_by_a_file_forgets_what_was_below(tmp_path: Path) -> None:
    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        ws.write_file("/a/b/c/old.txt", b"o", parents=True)
        # The delete (deepest first) resolves /a/b and /a/b/c; the file entry at /a/b then removes
        # that subtree, so the entry below it must not land in the removed /a/b/c: it finds the new
        # file in its way (no base: the sender replaced it) and /a/b becomes a directory again.
        batch = [vfs.Change("/a/b/c/old.txt", "delete", 0), file_entry(ws, "/a/b", b"a file"),
                 file_entry(ws, "/a/b/c/new.txt", b"n")]
        result = ws.apply_changes(batch)
        assert not result.conflicts and "/a/b/c/new.txt" in result.applied
        assert ws.read_file("/a/b/c/new.txt") == b"n"
        assert ws.listdir("/a/b") == ["c"] and ws.listdir("/a/b/c") == ["new.txt"]
        # A later batch resolves afresh.
        later = ws.apply_changes([file_entry(ws, "/a/b/c/later.txt", b"l"), vfs.Change("/a/b/c/new.txt", "delete", 0)])
        assert sorted(later.applied) == ["/a/b/c/later.txt", "/a/b/c/new.txt"]
        assert ws.listdir("/a/b/c") == ["later.txt"]


def test_many_entries_in_shared_directories(tmp_path: Path) -> None:
    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        ws.write_file("/p/q/r/keep.txt", b"k", parents=True)
        batch = [file_entry(ws, f"/p/q/r/s{i % 3}/f{i}.txt", str(i).encode()) for i in range(30)]
        batch += [vfs.Change(f"/p/q/r/s{i}", "dir", 0, 0o40700, 1.0) for i in range(3)]
        result = ws.apply_changes(batch)
        assert len(result.applied) == 33 and not result.conflicts
        for i in range(30):
            assert ws.read_file(f"/p/q/r/s{i % 3}/f{i}.txt") == str(i).encode()
        assert sorted(ws.listdir("/p/q/r")) == ["keep.txt", "s0", "s1", "s2"]
