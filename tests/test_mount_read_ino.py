"""A local mount reads an open file's content by its inode (`Workspace.open_ino`), not by a
name: the descriptor reads what it opened whatever became of the name it was opened by."""

from __future__ import annotations

import os
from pathlib import Path

import vfs
from mount_api import mount_api, mount_on  # noqa: F401  (each test on both of libfuse's APIs)


def test_a_descriptor_reads_its_file_after_its_name_goes_to_another_link(tmp_path: Path, mount_api: str):
    """The file has a second name the mount was never asked about: unlinking the name it was
    opened by leaves the low-level inode table no name for it (libfuse's path API hides the
    name instead), and the first READ comes after. By path there was nothing to open by."""
    data = os.urandom(300_000)  # several chunks; never read through the mount before the unlink
    store = tmp_path / "store.db"
    with vfs.Workspace(str(store)) as ws:
        ws.mkdir("/d")
        ws.write_file("/d/a", data)
        ws.link("/d/a", "/other")
    with mount_on(tmp_path, store, mount_api) as mount:
        mnt = Path(mount.mountpoint)
        fd = os.open(mnt / "d" / "a", os.O_RDONLY)
        try:
            os.unlink(mnt / "d" / "a")
            assert os.pread(fd, 1000, 0) == data[:1000]
            assert os.pread(fd, len(data), 200_000) == data[200_000:]
        finally:
            os.close(fd)
        assert (mnt / "other").read_bytes() == data
        assert os.listdir(mnt / "d") == []


def test_a_renamed_open_file_keeps_reading_its_content_and_its_changes(tmp_path: Path, mount_api: str):
    """Renamed while open and rewritten through another descriptor under its new name: the
    first descriptor's next read has the new content (the reader reopens after a commit here)."""
    store = tmp_path / "store.db"
    with mount_on(tmp_path, store, mount_api) as mount:
        mnt = Path(mount.mountpoint)
        (mnt / "f").write_bytes(b"before")
        fd = os.open(mnt / "f", os.O_RDONLY)
        try:
            assert os.pread(fd, 100, 0) == b"before"
            os.rename(mnt / "f", mnt / "g")
            (mnt / "f").write_bytes(b"another file")  # a new inode under the old name
            with open(mnt / "g", "r+b") as out:
                out.write(b"AFTER!")
            assert os.pread(fd, 100, 0) == b"AFTER!"
        finally:
            os.close(fd)
