"""Special files in the store: FIFOs, sockets and device nodes (schema v5), and
the limit on whole paths a mount lifts.

A mount makes them with mknod(2)/mkfifo(3)/bind(2); the store keeps them as
nodes with their type, mode, owner and device number, shows them in stat,
readdir and the change log, and carries them through a push (`apply_changes`).
"""

from __future__ import annotations

import errno
import os
import sqlite3
import stat

import pytest

import vfs
from vfs import schema
from vfs.types import Change
from vfs.wire import change_from_wire, change_to_wire, stat_from_wire, stat_to_wire


def test_mknod_makes_each_kind_with_its_type_mode_and_device(tmp_path):
    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        ws.mknod("/fifo", stat.S_IFIFO | 0o640)
        ws.mknod("/sock", stat.S_IFSOCK | 0o600)
        ws.mknod("/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        ws.mknod("/disk", stat.S_IFBLK | 0o660, os.makedev(8, 1))
        fifo, sock, null, disk = (ws.lstat(p) for p in ("/fifo", "/sock", "/null", "/disk"))
        assert (fifo.kind, stat.S_ISFIFO(fifo.mode), stat.S_IMODE(fifo.mode), fifo.rdev) == ("fifo", True, 0o640, 0)
        assert (sock.kind, stat.S_ISSOCK(sock.mode)) == ("socket", True)
        assert (null.kind, stat.S_ISCHR(null.mode), null.rdev) == ("char", True, os.makedev(1, 3))
        assert (disk.kind, stat.S_ISBLK(disk.mode), disk.rdev) == ("block", True, os.makedev(8, 1))
        assert {e.name: e.kind for e in ws.readdir("/")} == {
            "fifo": "fifo", "sock": "socket", "null": "char", "disk": "block",
        }  # fmt: skip
        kinds = {c.path: (c.kind, c.rdev) for c in ws.changes()}
        assert kinds["/null"] == ("char", os.makedev(1, 3))
        assert kinds["/fifo"] == ("fifo", 0)


def test_mknod_errors_are_the_kernels(tmp_path):
    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        ws.mknod("/p", stat.S_IFIFO | 0o644)
        with pytest.raises(FileExistsError):
            ws.mknod("/p", stat.S_IFIFO | 0o644)
        with pytest.raises(FileNotFoundError):
            ws.mknod("/missing/p", stat.S_IFIFO | 0o644)
        with pytest.raises(OSError) as regular:
            ws.mknod("/f", stat.S_IFREG | 0o644)
        assert regular.value.errno == errno.EINVAL
        with pytest.raises(OSError) as written:
            ws.write_file("/p", b"bytes")  # a special file has no content
        assert written.value.errno == errno.EINVAL
        ws.rename("/p", "/q")
        ws.link("/q", "/r")
        assert ws.lstat("/r").nlink == 2 and ws.lstat("/r").kind == "fifo"
        ws.unlink("/q")
        ws.unlink("/r")
        assert ws.listdir("/") == []


def test_special_files_survive_reopening_and_travel_in_a_push(tmp_path):
    path = str(tmp_path / "a.db")
    with vfs.Workspace(path) as ws:
        ws.mkdir("/dev")
        ws.mknod("/dev/tty0", stat.S_IFCHR | 0o620, os.makedev(4, 0))
    with vfs.Workspace(path) as ws:
        entries = [c for c in ws.changes() if c.path != "/"]
    wired = [change_from_wire(change_to_wire(c)) for c in entries]
    assert wired == entries
    with vfs.Workspace(str(tmp_path / "b.db")) as other:
        result = other.apply_changes(wired)
        assert "/dev/tty0" in result.applied
        st = other.lstat("/dev/tty0")
        assert (st.kind, st.rdev, stat.S_IMODE(st.mode)) == ("char", os.makedev(4, 0), 0o620)
        assert stat_from_wire(stat_to_wire(st)).rdev == os.makedev(4, 0)
        # The same entry again changes nothing; a new mode replaces the node.
        assert other.apply_changes(wired).unchanged == ["/dev", "/dev/tty0"]
        moved = Change(path="/dev/tty0", kind="char", rev=0, mode=0o600, rdev=os.makedev(4, 1))
        other.apply_changes([moved])
        assert other.lstat("/dev/tty0").rdev == os.makedev(4, 1)


def test_v4_store_gains_rdev(tmp_path):
    path = str(tmp_path / "old.db")
    with vfs.Workspace(path) as ws:
        ws.write_file("/f", b"x")
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE nodes DROP COLUMN rdev")
    conn.execute("UPDATE meta SET value = 4 WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with vfs.Workspace(path) as ws:
        assert ws.lstat("/f").rdev == 0 and ws.read_file("/f") == b"x"
        ws.mknod("/c", stat.S_IFCHR | 0o600, os.makedev(1, 5))
        assert ws.lstat("/c").rdev == os.makedev(1, 5)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == schema.SCHEMA_VERSION
    conn.close()


def test_whole_path_limit_is_lifted_only_when_asked(tmp_path):
    """A mount opens its store with path_max=None: the kernel limits what the caller
    passes (relative to its directory), so a deep tree may pass 4096 bytes from /."""
    deep = "/" + "/".join(["d" * 200] * 25)  # 5,025 bytes
    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        with pytest.raises(OSError) as refused:
            ws.mkdir(deep, parents=True)
        assert refused.value.errno == errno.ENAMETOOLONG
    with vfs.Workspace(str(tmp_path / "m.db"), path_max=None) as ws:
        parent = ""
        for name in deep.split("/")[1:]:
            parent += "/" + name
            ws.mkdir(parent)
        ws.write_file(deep + "/f", b"deep")
        assert ws.read_file(deep + "/f") == b"deep"
        with pytest.raises(OSError) as long_name:
            ws.mkdir("/" + "n" * 256)
        assert long_name.value.errno == errno.ENAMETOOLONG


def test_every_call_of_a_store_without_the_whole_path_limit_takes_deep_paths(tmp_path):
    """Not only resolution: the calls that normalise a path themselves (mkdir and write_file with
    parents, history, rm) use the store's limit too (they used the default 4,096 bytes)."""
    deep = "/" + "/".join(["d" * 200] * 25)  # 5,025 bytes
    with vfs.Workspace(str(tmp_path / "m.db"), path_max=None) as ws:
        ws.mkdir(deep, parents=True)
        ws.write_file(deep + "/x/f", b"deep", parents=True)
        assert ws.read_file(deep + "/x/f") == b"deep"
        assert len(ws.history(deep + "/x/f")) == 1
        ws.rm("/" + "d" * 200, recursive=True)
        assert ws.listdir("/") == []
