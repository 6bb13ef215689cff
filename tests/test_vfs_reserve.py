"""Reserved inode numbers (`Workspace.reserve_ino`): a FUSE mount shows a created
file at once and stores it with its content at close, in one store call."""

from __future__ import annotations

import pytest

import vfs


def test_reserved_number_is_the_new_files_and_never_given_to_another_node(tmp_path):
    with vfs.Workspace(str(tmp_path / "s.db"), exclusive=True) as ws:
        ws.mkdir("/d")
        first, second = ws.reserve_ino(), ws.reserve_ino()
        assert second == first + 1 and first > ws.lstat("/d").ino
        ws.mkdir("/e")  # created while `first` and `second` are reserved and not yet stored
        ws.symlink("/d", "/l")
        taken = {ws.lstat("/e").ino, ws.lstat("/l").ino}
        assert not taken & {first, second}
        st = ws.write_file("/d/late", b"two", if_match="", ino=second)
        assert st.ino == second and ws.lstat("/d/late").ino == second and ws.read_file("/d/late") == b"two"
        st = ws.write_file("/d/early", b"one", if_match="", ino=first)
        assert st.ino == first
    with vfs.Workspace(str(tmp_path / "s.db"), exclusive=True) as ws:  # reopened: seeded from the highest number
        assert ws.reserve_ino() > max(first, second, *taken)


def test_only_the_exclusive_writer_may_reserve(tmp_path):
    with vfs.Workspace(str(tmp_path / "s.db")) as ws, pytest.raises(ValueError):
        ws.reserve_ino()
    with vfs.Workspace() as ws:  # a private in-memory store has no other writer
        assert ws.reserve_ino() >= 1


def test_created_time_stamps_atime_ctime_and_never_moves_the_parent_back():
    with vfs.Workspace() as ws:
        ws.mkdir("/d")
        ino = ws.reserve_ino()
        created = ws.lstat("/d").mtime_ns + 1000
        ws.write_file("/d/other", b"")  # the parent changes after `created`
        later = ws.lstat("/d")
        assert later.mtime_ns > created
        st = ws.write_file("/d/f", b"x", if_match="", ino=ino, created_ns=created, mtime_ns=created + 5,
                           ctime_ns=created + 5)
        assert (st.atime_ns, st.mtime_ns, st.ctime_ns) == (created, created + 5, created + 5)
        parent = ws.lstat("/d")
        assert (parent.mtime_ns, parent.ctime_ns) == (later.mtime_ns, later.ctime_ns)  # never back
        ino2 = ws.reserve_ino()
        after = parent.mtime_ns + 10
        ws.write_file("/d/g", b"", if_match="", ino=ino2, created_ns=after)
        assert ws.lstat("/d").mtime_ns == after == ws.lstat("/d").ctime_ns == ws.lstat("/d/g").ctime_ns


def test_a_taken_name_refuses_the_reserved_create():
    with vfs.Workspace() as ws:
        ws.write_file("/f", b"old")
        with pytest.raises(vfs.PreconditionFailed):
            ws.write_file("/f", b"new", if_match="", ino=ws.reserve_ino())
        assert ws.read_file("/f") == b"old"


def test_metadata_changes_and_mkdir_return_the_new_stat():
    """chmod, chown, set_times/utime and mkdir answer with what `lstat` gives right after."""
    with vfs.Workspace() as ws:
        ws.write_file("/f", b"abc")
        ws.symlink("/f", "/l")
        assert ws.chmod("/f", 0o600) == ws.lstat("/f")
        assert ws.chown("/f", 1234, -1) == ws.lstat("/f") and ws.lstat("/f").uid == 1234
        assert ws.chown("/l", 7, 8, follow_symlinks=False) == ws.lstat("/l")
        assert ws.chmod("/l", 0o640) == ws.lstat("/f")  # (chmod follows a symlink: the target's stat)
        assert ws.set_times("/f", atime_ns=5, mtime_ns=None) == ws.lstat("/f")
        assert ws.utime("/f", ns=(7, 9)) == ws.lstat("/f") and ws.lstat("/f").mtime_ns == 9
        made = ws.mkdir("/d", mode=0o700)
        assert made == ws.lstat("/d") and made.kind == "dir" and made.mode & 0o7777 == 0o700
        assert ws.mkdir("/a/b/c", parents=True) == ws.lstat("/a/b/c")
        assert ws.mkdir("/a/b/c", parents=True, exist_ok=True) is None


def test_link_and_unlink_stamp_the_inode_with_the_parents_times():
    """One clock reading for the inode's ctime and the directory's times: a mount updates
    the other name's cached stat from `dir_times_ns` without a lookup."""
    with vfs.Workspace() as ws:
        ws.mkdir("/d")
        ws.write_file("/d/a", b"x")
        st = ws.link("/d/a", "/e")
        assert st == ws.lstat("/e") == ws.lstat("/d/a") and st.nlink == 2
        assert st.ctime_ns == ws.dir_times_ns == ws.lstat("/").mtime_ns == ws.lstat("/").ctime_ns
        ws.unlink("/e")
        left = ws.lstat("/d/a")
        assert left.nlink == 1 and left.ctime_ns == ws.dir_times_ns == ws.lstat("/").ctime_ns
        ws.link("/d/a", "/d/b")
        ws.write_file("/d/c", b"y")
        ws.rename("/d/c", "/d/b")  # replaces one name of a two-name file
        assert ws.lstat("/d/a").nlink == 1 and ws.lstat("/d/a").ctime_ns == ws.dir_times_ns == ws.lstat("/d").mtime_ns
        assert ws.lstat("/d/b").ctime_ns == ws.dir_times_ns
