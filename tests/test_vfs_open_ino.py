"""`Workspace.open_ino`: a reader of a file found by its inode number, as a FUSE mount of a
local store opens the files it reads (no walk of the path's components)."""

from __future__ import annotations

import errno
import io
import os
import stat

import pytest

import vfs


def _payload(size: int) -> bytes:
    return os.urandom(size)  # random: every chunk distinct, several chunks past 256 KiB


@pytest.mark.parametrize("backend", ["packs", "sqlite"])
def test_reads_what_the_path_reader_reads(tmp_path, backend):
    with vfs.Workspace(str(tmp_path / "s.db"), chunk_backend=backend) as ws:
        for path, data in {"/empty": b"", "/small": b"hello", "/big": _payload(700_000)}.items():
            ws.write_file(path, data)
            ino = ws.lstat(path).ino
            with ws.open(path, "rb") as by_path, ws.open_ino(ino) as by_ino:
                assert by_ino.read() == by_path.read() == data
                for offset in (0, 3, 300_000, len(data) + 10):  # seeks as the mount's reads do
                    by_path.seek(offset)
                    by_ino.seek(offset)
                    assert by_ino.read(70_000) == by_path.read(70_000)
                by_ino.seek(0, io.SEEK_END)
                assert by_ino.tell() == len(data)


def test_a_snapshot_of_the_content_at_the_open(tmp_path):
    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        ws.write_file("/f", b"first version")
        ino = ws.lstat("/f").ino
        with ws.open_ino(ino) as reader:
            ws.write_file("/f", b"second")  # same inode, new content after the open
            assert ws.lstat("/f").ino == ino
            assert reader.read() == b"first version"
        with ws.open_ino(ino) as reader:
            assert reader.read() == b"second"


def test_the_inode_under_any_name_it_has_or_gets(tmp_path):
    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        ws.mkdir("/d")
        ws.write_file("/d/a", b"linked")
        ws.link("/d/a", "/b")
        ino = ws.lstat("/b").ino
        ws.unlink("/d/a")  # one name gone, the other left
        ws.rename("/b", "/d/c")
        with ws.open_ino(ino) as reader:
            assert reader.read() == b"linked"


def test_errors_for_a_missing_inode_a_directory_and_other_kinds(tmp_path):
    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        ws.mkdir("/d")
        ws.write_file("/f", b"x")
        ws.symlink("/f", "/l")
        ws.mknod("/p", stat.S_IFIFO | 0o644)
        gone = ws.lstat("/f").ino
        ws.write_file("/g", b"y")
        ws.unlink("/f")  # its last name: the inode is gone
        with pytest.raises(FileNotFoundError):
            ws.open_ino(gone)
        with pytest.raises(FileNotFoundError):
            ws.open_ino(10**12)
        with pytest.raises(IsADirectoryError):
            ws.open_ino(ws.lstat("/d").ino)
        with pytest.raises(IsADirectoryError):
            ws.open_ino(1)  # the root
        for path in ("/l", "/p"):  # a symlink's inode is not followed; a FIFO has no content
            with pytest.raises(OSError) as raised:
                ws.open_ino(ws.lstat(path).ino)
            assert raised.value.errno == errno.EINVAL
