"""A created file in a local mount: shown at once with a reserved inode number, stored
with its content at close in one store call (`OpenFileOps._create_pending`)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

import vfs
from mount_fixtures import mount_store, stat_fields
from mount_api import mount_api  # noqa: F401  (every test here on each API)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


def test_open_created_file_is_seen_everywhere_and_stored_with_its_number(tmp_path: Path, store: Path):
    with mount_store(tmp_path, store) as m:
        root = Path(m.mountpoint)
        (root / "d").mkdir()
        fd = os.open(root / "d/new", os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o640)
        try:
            os.write(fd, b"hello")
            before = os.stat(root / "d/new")
            assert before.st_size == 5 and before.st_mode & 0o777 == 0o640
            assert os.fstat(fd).st_ino == before.st_ino
            with pytest.raises(FileExistsError):
                os.open(root / "d/new", os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
            assert os.listdir(root / "d") == ["new"]  # (a listing stores it first)
            os.write(fd, b" world")
        finally:
            os.close(fd)
        open(root / "d/empty", "w").close()  # created and closed with nothing written
        seen = {name: stat_fields(os.stat(root / "d" / name)) for name in ("new", "empty")}
        parent = stat_fields(os.stat(root / "d"))
    with vfs.Workspace(str(store), readonly=True) as ws:
        assert ws.read_file("/d/new") == b"hello world" and ws.read_file("/d/empty") == b""
        assert ws.lstat("/d/new").ino == before.st_ino
    with mount_store(tmp_path, store) as m:  # what the kernel was told is what the store kept
        root = Path(m.mountpoint)
        assert {name: stat_fields(os.stat(root / "d" / name)) for name in ("new", "empty")} == seen
        assert stat_fields(os.stat(root / "d")) == parent


def test_files_closed_out_of_order_keep_their_numbers_and_the_parent_its_times(tmp_path: Path, store: Path):
    with mount_store(tmp_path, store) as m:
        root = Path(m.mountpoint)
        fds = [os.open(root / f"f{i}", os.O_CREAT | os.O_WRONLY, 0o644) for i in range(3)]
        for i, fd in enumerate(fds):
            os.write(fd, b"x" * (i + 1))
        inos = [os.fstat(fd).st_ino for fd in fds]
        assert len(set(inos)) == 3
        parent = stat_fields(os.stat(root))
        for fd in reversed(fds):
            os.close(fd)
        assert stat_fields(os.stat(root)) == parent
        seen = {f"f{i}": stat_fields(os.stat(root / f"f{i}")) for i in range(3)}
        os.mkdir(root / "after")  # a node made after the reservations takes a fresh number
        assert os.stat(root / "after").st_ino not in inos
        parent = stat_fields(os.stat(root))
    with mount_store(tmp_path, store) as m:
        root = Path(m.mountpoint)
        assert {f"f{i}": stat_fields(os.stat(root / f"f{i}")) for i in range(3)} == seen
        assert stat_fields(os.stat(root)) == parent
        assert [os.stat(root / f"f{i}").st_ino for i in range(3)] == inos


def test_renamed_or_unlinked_before_close(tmp_path: Path, store: Path):
    with mount_store(tmp_path, store) as m:
        root = Path(m.mountpoint)
        fd = os.open(root / "tmp", os.O_CREAT | os.O_WRONLY, 0o644)
        os.write(fd, b"a")
        os.rename(root / "tmp", root / "final")
        os.write(fd, b"b")
        os.close(fd)
        assert (root / "final").read_bytes() == b"ab" and not (root / "tmp").exists()
        fd = os.open(root / "gone", os.O_CREAT | os.O_RDWR, 0o644)
        os.write(fd, b"zz")
        os.unlink(root / "gone")
        assert os.fstat(fd).st_nlink == 0
        os.close(fd)
        assert sorted(os.listdir(root)) == ["final"]
        with pytest.raises(OSError) as caught:
            os.stat(root / "gone")
        assert caught.value.errno == errno.ENOENT
    with vfs.Workspace(str(store), readonly=True) as ws:
        assert ws.listdir("/") == ["final"] and ws.read_file("/final") == b"ab"


def test_touch_keeps_its_times_through_the_close(tmp_path: Path, store: Path):
    """`touch` creates, sets times on the open file, and closes: the times it set are
    the ones stored (they stay with the pending file until its close)."""
    import subprocess

    with mount_store(tmp_path, store) as m:
        root = Path(m.mountpoint)
        subprocess.run(["touch", str(root / "now")], check=True)
        subprocess.run(["touch", "-d", "2001-02-03 04:05:06.7", str(root / "dated")], check=True)
        subprocess.run(["touch", "-m", "-d", "1999-01-01", str(root / "mtime_only")], check=True)
        fd = os.open(root / "futimens", os.O_CREAT | os.O_WRONLY, 0o600)
        os.utime(fd, ns=(111_000_000_123, 222_000_000_456))
        os.close(fd)
        names = ["now", "dated", "mtime_only", "futimens"]
        seen = {name: (stat_fields(os.stat(root / name)), os.stat(root / name).st_atime_ns) for name in names}
        assert seen["futimens"][0][5] == 222_000_000_456 and seen["futimens"][1] == 111_000_000_123
        assert seen["dated"][0][5] == seen["dated"][1]
        parent = stat_fields(os.stat(root))
    with mount_store(tmp_path, store) as m:
        root = Path(m.mountpoint)
        assert {name: (stat_fields(os.stat(root / name)), os.stat(root / name).st_atime_ns) for name in names} == seen
        assert stat_fields(os.stat(root)) == parent
