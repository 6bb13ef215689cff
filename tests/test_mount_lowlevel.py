"""What the mount on libfuse's low-level API does differently from the path API: the kernel
names inodes, so a hard-linked file is one inode, a directory keeps its inode through a
rename, an unlinked open file keeps its inode until the last close, and the inode table
(client_py/mount/lowlevel/inodes.py) follows lookups and forgets.

(Every other mount test runs on both APIs: tests/mount_api.py.)
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import vfs
from client_py.mount.lowlevel.inodes import ROOT, InodeTable, stand_in_key
from mount_api import mount_on


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
def mnt(tmp_path: Path, store: Path):
    with mount_on(tmp_path, store, "lowlevel") as mount:
        yield Path(mount.mountpoint)


def store_paths(store: Path) -> dict[str, int]:
    """Every path in the store (after the mount is gone) -> its inode number."""
    with vfs.Workspace(str(store), readonly=True) as ws:
        return {path: ws.lstat(path).ino for path in ws.find("/")}


# -- the inode table, on its own ------------------------------------------------------


def test_lookup_counts_and_forget():
    table = InodeTable()
    table.looked_up(5, ROOT, "d")
    table.looked_up(7, 5, "f")
    table.looked_up(7, 5, "f")  # (a second entry reply for the same name)
    assert table.path(7) == "/d/f" and table.nodes[7].nlookup == 2
    table.forget(7, 1)
    assert table.path(7) == "/d/f"
    table.forget(7, 1)
    assert 7 not in table.nodes and table.child(5, "f") is None
    table.forget(ROOT, 1)  # the root is never forgotten
    assert table.path(ROOT) == "/"


def test_directory_rename_is_one_update_and_hard_links_share_an_inode():
    table = InodeTable()
    table.looked_up(5, ROOT, "d", is_dir=True)
    table.looked_up(6, 5, "sub", is_dir=True)
    table.looked_up(7, 6, "f")
    assert table.path(7) == "/d/sub/f"  # (kept from now on)
    table.looked_up(7, ROOT, "g")  # a second name of inode 7
    table.renamed(ROOT, "d", ROOT, "e")
    assert table.path(6) == "/e/sub" and table.path(7) == "/e/sub/f"
    assert table.child_path(6, "new") == "/e/sub/new"
    table.unlinked(6, "f")
    assert table.path(7) == "/g"
    node = table.unlinked(ROOT, "g")
    assert node is not None and table.path(7) is None  # no name left, not open
    assert table.hide(node) == stand_in_key(7) and table.path(7) == stand_in_key(7)
    assert "\0" in stand_in_key(7)  # (no request can name it)
    table.unhide(node)  # (its last close)
    assert table.path(7) is None


def test_rename_over_and_exchange_move_names():
    table = InodeTable()
    table.looked_up(5, ROOT, "a")
    table.looked_up(6, ROOT, "b")
    table.renamed(ROOT, "a", ROOT, "b", exchange=True)
    assert (table.path(5), table.path(6)) == ("/b", "/a")
    table.renamed(ROOT, "a", ROOT, "b")  # 6 over 5: 5 has no name left
    assert table.path(6) == "/b" and table.path(5) is None and table.child(ROOT, "b") == 6


# -- through the kernel -----------------------------------------------------------------


def test_a_directory_held_open_follows_its_rename(mnt: Path, store: Path):
    """A directory descriptor names the inode: after the directory (and its parent) moved,
    names looked up through the descriptor are the new paths."""
    (mnt / "a/d").mkdir(parents=True)
    (mnt / "a/d/f").write_bytes(b"one")
    dirfd = os.open(mnt / "a/d", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.rename(mnt / "a", mnt / "b")
        os.rename(mnt / "b/d", mnt / "b/e")
        fd = os.open("f", os.O_RDONLY, dir_fd=dirfd)
        try:
            assert os.read(fd, 10) == b"one"
        finally:
            os.close(fd)
        fd = os.open("g", os.O_CREAT | os.O_WRONLY, 0o600, dir_fd=dirfd)
        os.write(fd, b"two")
        os.close(fd)
        assert sorted(os.listdir(dirfd)) == ["f", "g"]
        assert os.stat(dirfd).st_ino == os.stat(mnt / "b/e").st_ino
    finally:
        os.close(dirfd)
    assert (mnt / "b/e/g").read_bytes() == b"two"
    assert not (mnt / "a").exists()
    os.sync()
    paths = sorted(store_paths_after(mnt, store))
    assert paths == ["/b", "/b/e", "/b/e/f", "/b/e/g"]


def store_paths_after(mnt: Path, store: Path) -> dict[str, int]:
    """The store's paths once the group commits (an fsync of the mount's root)."""
    fd = os.open(mnt, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return store_paths(store)


def test_hard_links_are_one_inode(mnt: Path, store: Path):
    """A change through one name shows under the other at once (one kernel inode: no
    invalidation of other names needed), and a link count drop too."""
    a, b = mnt / "a", mnt / "b"
    a.write_bytes(b"x")
    os.link(a, b)
    assert os.stat(b).st_nlink == 2 and os.stat(a).st_ino == os.stat(b).st_ino
    os.chmod(a, 0o600)
    assert os.stat(b).st_mode & 0o777 == 0o600
    with open(b, "ab") as out:
        out.write(b"yz")
    assert os.stat(a).st_size == 3 and a.read_bytes() == b"xyz"
    os.unlink(b)
    assert os.stat(a).st_nlink == 1 and a.read_bytes() == b"xyz"
    os.link(a, mnt / "c")
    os.rename(mnt / "c", a)  # rename onto another name of the same inode: nothing happens
    assert os.stat(a).st_nlink == 2 and (mnt / "c").exists()
    assert store_paths_after(mnt, store) == {"/a": os.stat(a).st_ino, "/c": os.stat(a).st_ino}


def test_an_unlinked_open_file_keeps_its_inode_until_the_last_close(mnt: Path, store: Path):
    """fstat, read, write and ftruncate on a descriptor whose file lost its last name (by
    unlink, then a second by rename over it); no name for it ever shows in a listing or the
    store, and a new file under the old name is a new inode."""
    victim = mnt / "v"
    victim.write_bytes(b"hello")
    fd = os.open(victim, os.O_RDWR)
    try:
        ino = os.fstat(fd).st_ino
        os.unlink(victim)
        st = os.fstat(fd)
        assert (st.st_ino, st.st_nlink, st.st_size) == (ino, 0, 5)
        assert os.pread(fd, 5, 0) == b"hello"
        os.pwrite(fd, b"J", 0)
        os.ftruncate(fd, 3)
        assert os.fstat(fd).st_size == 3 and os.pread(fd, 10, 0) == b"Jel"
        assert os.listdir(mnt) == []
        victim.write_bytes(b"new")
        assert os.stat(victim).st_ino != ino and os.pread(fd, 10, 0) == b"Jel"
        assert store_paths_after(mnt, store) == {"/v": os.stat(victim).st_ino}
    finally:
        os.close(fd)
    other = mnt / "w"
    other.write_bytes(b"old")
    fd = os.open(other, os.O_RDONLY)
    try:
        os.rename(victim, other)
        assert os.fstat(fd).st_nlink == 0 and os.read(fd, 10) == b"old"
        assert other.read_bytes() == b"new" and os.listdir(mnt) == ["w"]
    finally:
        os.close(fd)
    assert list(store_paths_after(mnt, store)) == ["/w"]


def test_inode_numbers_are_the_stores(tmp_path: Path, mnt: Path, store: Path):
    """The kernel's inode numbers are the store's (a remount shows the same), a forgotten
    inode (an unlinked file, closed: the kernel forgets it) is never served again."""
    (mnt / "d").mkdir()
    for name in ("x", "y"):
        (mnt / "d" / name).write_bytes(name.encode())
    os.unlink(mnt / "d/x")
    (mnt / "d/x").write_bytes(b"again")
    seen = {f"/{p.relative_to(mnt)}": os.stat(p).st_ino for p in (mnt / "d", mnt / "d/x", mnt / "d/y")}
    assert (mnt / "d/x").read_bytes() == b"again"
    assert store_paths_after(mnt, store) == seen


def _voluntary_switches(pid: int) -> int:
    """Context switches every thread of `pid` made by waiting (one per wake-up of a sleeping thread)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/status") as status:
            total += sum(int(line.split()[1]) for line in status if line.startswith("voluntary_ctxt_switches"))
    return total


def test_an_idle_mount_does_not_wake_up(tmp_path: Path, store: Path):
    """Between bursts the group-commit thread sleeps until a group opens: it used to wake every
    10 ms to look for one (~100 wake-ups a second, ~0.25 s of CPU a minute on an idle mount)."""
    import time

    with mount_on(tmp_path, store, "lowlevel") as mount:
        (Path(mount.mountpoint) / "f").write_bytes(b"x")  # a group opened and committed
        time.sleep(0.5)  # (the burst's commit after its 10 ms pause)
        before = _voluntary_switches(mount.pid)
        time.sleep(1.0)
        woke = _voluntary_switches(mount.pid) - before
        (Path(mount.mountpoint) / "g").write_bytes(b"y")  # and a later burst still commits
    assert woke < 20, woke
    assert set(store_paths(store)) >= {"/f", "/g"}


def test_a_remote_mount_defaults_to_the_low_level_api(live_server, tmp_path: Path, monkeypatch):
    """`wsfs mount URL WORKSPACE MNT` with no --api and no $WSFS_MOUNT_API serves the low-level API
    (it was the path API, and --api lowlevel with a URL exited 2), and the kernel sees the remote
    index's inode numbers as its inodes: hard links made here are one inode."""
    from client_py.mount.runner import MountProcess

    monkeypatch.delenv("WSFS_MOUNT_API", raising=False)
    mountpoint, log = tmp_path / "mnt", tmp_path / "mount.log"
    mountpoint.mkdir()
    extra = ["--token", live_server.admin, "--cache", str(tmp_path / "cache")]
    with MountProcess([live_server.url, "demo"], str(mountpoint), log_file=str(log), extra=extra):
        (mountpoint / "a").write_bytes(b"x")
        os.link(mountpoint / "a", mountpoint / "b")
        os.chmod(mountpoint / "a", 0o600)
        assert os.stat(mountpoint / "b").st_mode & 0o777 == 0o600  # (one kernel inode: no invalidation needed)
        assert os.stat(mountpoint / "a").st_ino == os.stat(mountpoint / "b").st_ino
    assert "low-level API" in log.read_text()
