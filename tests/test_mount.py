"""The FUSE mount of a local store, driven by real programs and real syscalls.

Each test mounts a fresh SQLite store with `python -m client_py.mount` (the
same daemon `wsfs mount` runs) and always unmounts in teardown.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import blake3
import mfusepy
import pytest

import vfs
from client_py.mount.runner import MountProcess, is_mounted, unmount
from mount_api import mount_api  # noqa: F401  (every test here on each API)



@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
def mnt(tmp_path: Path, store: Path):
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    with MountProcess([str(store)], str(mountpoint), log_file=str(tmp_path / "mount.log")):
        yield mountpoint


def sync(mnt: Path) -> None:
    """fsync the mount's root: commits the mount's open group transaction at once.

    (close() commits within 0.1 s; a test reading the store file from another
    connection right away asks for it explicitly, as a program needing durability would.)"""
    fd = os.open(mnt, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def store_rev(store: Path) -> int:
    with vfs.Workspace(str(store), readonly=True) as ws:
        return ws.rev


def run(*command: str, cwd: Path | None = None, env: dict | None = None) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


# -- syscalls -------------------------------------------------------------------


def test_files_dirs_and_errnos(mnt: Path, store: Path):
    (mnt / "a.txt").write_bytes(b"hello")
    assert (mnt / "a.txt").read_bytes() == b"hello"
    (mnt / "d" / "e").mkdir(parents=True)
    (mnt / "d" / "e" / "f").write_text("x")
    assert sorted(os.listdir(mnt)) == ["a.txt", "d"]

    def errno_of(call, *args) -> int:
        with pytest.raises(OSError) as info:
            call(*args)
        return info.value.errno

    assert errno_of(os.rmdir, mnt / "d") == errno.ENOTEMPTY
    assert errno_of(os.unlink, mnt / "nope") == errno.ENOENT
    assert errno_of(os.mkdir, mnt / "a.txt") == errno.EEXIST
    assert errno_of(os.listdir, mnt / "a.txt") == errno.ENOTDIR
    assert errno_of(os.rename, mnt / "d", mnt / "d" / "e" / "inside") == errno.EINVAL
    assert errno_of(os.rename, mnt / "a.txt", mnt / "d") == errno.EISDIR
    assert errno_of(os.open, mnt / "a.txt", os.O_CREAT | os.O_EXCL | os.O_WRONLY) == errno.EEXIST

    os.rename(mnt / "d" / "e" / "f", mnt / "moved")
    assert (mnt / "moved").read_text() == "x"
    shutil.rmtree(mnt / "d")
    assert not (mnt / "d").exists()
    sync(mnt)
    with vfs.Workspace(str(store), readonly=True) as ws:
        assert ws.read_file("/moved") == b"x"
        assert ws.listdir("/") == ["a.txt", "moved"]


def test_links_modes_times_owners(mnt: Path):
    target = mnt / "t.txt"
    target.write_bytes(b"data")
    os.link(target, mnt / "hard")
    os.symlink("t.txt", mnt / "soft")
    assert os.stat(mnt / "hard").st_ino == os.stat(target).st_ino
    assert os.stat(target).st_nlink == 2
    assert os.readlink(mnt / "soft") == "t.txt"
    assert (mnt / "soft").read_bytes() == b"data"
    assert stat.S_ISLNK(os.lstat(mnt / "soft").st_mode)

    os.chmod(target, 0o640)
    assert stat.S_IMODE(os.stat(mnt / "hard").st_mode) == 0o640

    os.utime(target, ns=(1_600_000_000_123_456_789, 1_700_000_000_987_654_321))
    st = os.stat(target)
    assert (st.st_atime_ns, st.st_mtime_ns) == (1_600_000_000_123_456_789, 1_700_000_000_987_654_321)
    run("touch", "-m", "-d", "@1500000000", str(target))  # UTIME_OMIT for atime
    st = os.stat(target)
    assert (st.st_atime_ns, st.st_mtime_ns) == (1_600_000_000_123_456_789, 1_500_000_000_000_000_000)

    os.chown(target, 1234, 5678)
    assert (os.stat(target).st_uid, os.stat(target).st_gid) == (1234, 5678)
    os.chown(target, -1, 42)
    assert (os.stat(target).st_uid, os.stat(target).st_gid) == (1234, 42)
    assert (os.stat(mnt / "hard").st_uid, os.stat(mnt / "hard").st_mtime_ns) == (1234, 1_500_000_000_000_000_000)
    with open(mnt / "hard", "ab") as other_name:
        other_name.write(b"+more")
    assert target.read_bytes() == b"data+more"
    os.unlink(mnt / "hard")
    assert os.stat(target).st_nlink == 1
    assert os.statvfs(mnt).f_namemax == 255


def test_rename_noreplace_and_exchange(mnt: Path):
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    (mnt / "a").write_text("a")
    (mnt / "b").write_text("b")

    def renameat2(old: str, new: str, flags: int) -> int:
        rc = libc.renameat2(-100, os.fsencode(mnt / old), -100, os.fsencode(mnt / new), flags)
        return 0 if rc == 0 else ctypes.get_errno()

    assert renameat2("a", "b", 1) == errno.EEXIST  # RENAME_NOREPLACE
    assert renameat2("a", "c", 1) == 0
    assert (mnt / "c").read_text() == "a"
    assert renameat2("c", "b", 2) == 0  # RENAME_EXCHANGE swaps the two names
    assert (mnt / "b").read_text() == "a" and (mnt / "c").read_text() == "b"
    assert renameat2("c", "nope", 2) == errno.ENOENT


def test_long_paths(mnt: Path, store: Path):
    name = "n" * 200
    depth = 20  # 20 * 201 + file name: about 4 KB below the mount
    fd = os.open(mnt, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = child
        leaf = os.open("leaf", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd)
        os.write(leaf, b"deep")
        os.close(leaf)
    finally:
        os.close(fd)
    path = "/" + "/".join([name] * depth) + "/leaf"
    assert len(path.encode()) > 4000
    sync(mnt)
    with vfs.Workspace(str(store), readonly=True) as ws:
        assert ws.read_file(path) == b"deep"


def test_fifo_and_device_nodes_survive_a_remount(tmp_path: Path, store: Path):
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    with MountProcess([str(store)], str(mountpoint)):
        os.mkfifo(mountpoint / "pipe", 0o600)
        os.mknod(mountpoint / "tty", stat.S_IFCHR | 0o620, os.makedev(4, 1))
        # The FIFO is a pipe in this kernel: a writer and a reader meet through it.
        writer = subprocess.Popen(["sh", "-c", f"echo through > {mountpoint / 'pipe'}"])
        assert (mountpoint / "pipe").read_text() == "through\n"
        assert writer.wait(timeout=30) == 0
    with MountProcess([str(store)], str(mountpoint)):
        pipe, tty = os.lstat(mountpoint / "pipe"), os.lstat(mountpoint / "tty")
        assert stat.S_ISFIFO(pipe.st_mode) and stat.S_IMODE(pipe.st_mode) == 0o600
        assert stat.S_ISCHR(tty.st_mode) and tty.st_rdev == os.makedev(4, 1)
        assert sorted(os.listdir(mountpoint)) == ["pipe", "tty"]


def _attributes(directory: Path) -> dict:
    """What `ls -la` would show of `directory` and its entries (atime left out)."""
    names = [".", *sorted(os.listdir(directory))]
    out = {}
    for name in names:
        st = os.lstat(directory / name)
        out[name] = (st.st_ino, st.st_mode, st.st_nlink, st.st_uid, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    return out


def test_cached_metadata_is_what_the_store_holds(tmp_path: Path, store: Path):
    """The mount answers stats, listings and lookups of absent names from memory and
    forgets only what each change made stale: after creates, renames, links,
    unlinks, special files and attribute changes in a directory whose names it
    keeps, it must show exactly what a fresh mount reads from the store."""
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    d = mountpoint / "d"
    with MountProcess([str(store)], str(mountpoint)):
        d.mkdir()
        assert os.listdir(d) == []
        for name in ("miss1", "miss2", "miss3"):  # lookups of absent names: the daemon keeps d's names
            assert not (d / name).exists()
        (d / "a").write_bytes(b"1")
        (d / "b").write_bytes(b"22")
        os.rename(d / "a", d / "c")
        os.link(d / "c", d / "h")
        os.unlink(d / "h")  # c is back to one link
        os.link(d / "b", d / "b2")  # b keeps two
        os.symlink("c", d / "s")
        os.mkdir(d / "sub")
        (d / "sub" / "x").write_bytes(b"x" * 3000)
        os.mkfifo(d / "f")
        os.chmod(d / "c", 0o600)
        os.utime(d / "b", ns=(1_000_000_000, 2_000_000_000))
        os.truncate(d / "c", 7)
        with open(d / "w", "wb", buffering=0) as f:  # through a descriptor: the kernel keeps the ctime reported while buffered
            f.write(b"abcdef")
            os.ftruncate(f.fileno(), 4)
            os.fstat(f.fileno())
        with open(d / "t", "wb", buffering=0) as f:  # as `tar -x` as root: attributes set on the descriptor
            f.write(b"tar")
            os.utime(f.fileno(), ns=(3_000_000_000, 4_000_000_000))
            os.fchown(f.fileno(), 1234, 4321)
            os.fchmod(f.fileno(), 0o640)
            os.fstat(f.fileno())
        with open(d / "u", "wb", buffering=0) as f:  # a write after futimens moves mtime again
            os.utime(f.fileno(), ns=(3_000_000_000, 4_000_000_000))
            f.write(b"later")
        for name in ("a", "h", "miss1", "never"):
            assert not (d / name).exists()
        seen = _attributes(d)
        assert sorted(seen) == [".", "b", "b2", "c", "f", "s", "sub", "t", "u", "w"]
        assert seen["b"][2] == seen["b2"][2] == 2 and seen["c"][2] == 1 and seen["c"][4] == 7
        assert seen["t"][1] == stat.S_IFREG | 0o640 and seen["t"][3:6] == (1234, 3, 4_000_000_000)
        assert seen["t"][6] > 4_000_000_000 and seen["u"][4] == 5 and seen["u"][5] > 4_000_000_000
        seen_sub = _attributes(d / "sub")
    with MountProcess([str(store)], str(mountpoint)):
        assert _attributes(d) == seen
        assert _attributes(d / "sub") == seen_sub


def test_listings_kept_by_the_kernel_follow_every_change(tmp_path: Path, mnt: Path):
    """Directory listings are kept by the kernel between reads (`dircache.py`); every
    change made through the mount must show in the next listing all the same."""
    d, e = mnt / "d", mnt / "e"
    d.mkdir()
    e.mkdir()
    expected = set()

    def check() -> None:
        for _ in range(2):  # the second read is served from the kernel's copy
            assert set(os.listdir(d)) == expected

    check()
    changes = [
        (lambda: (d / "a").write_bytes(b"1"), {"a"}, set()),
        (lambda: os.rename(d / "a", d / "b"), {"b"}, {"a"}),
        (lambda: os.link(d / "b", d / "c"), {"c"}, set()),
        (lambda: os.unlink(d / "b"), set(), {"b"}),
        (lambda: os.symlink("c", d / "s"), {"s"}, set()),
        (lambda: os.mkdir(d / "sub"), {"sub"}, set()),
        (lambda: os.rmdir(d / "sub"), set(), {"sub"}),
        (lambda: os.mkfifo(d / "f"), {"f"}, set()),
        (lambda: (e / "x").write_bytes(b"x"), set(), set()),
        (lambda: os.rename(e / "x", d / "x"), {"x"}, set()),
        (lambda: os.rename(d / "c", e / "c"), set(), {"c"}),
    ]
    for change, added, removed in changes:
        change()
        expected = (expected | added) - removed
        check()
    assert set(os.listdir(e)) == {"c"}
    log = (tmp_path / "mount.log").read_text()
    if mfusepy._libfuse.fuse_version() in (314, 315):  # the versions dircache.py knows (others: not kept)
        assert "directory listings are kept by the kernel" in log


def _entries(directory: Path) -> dict:
    """name -> (inode, type) as a listing gives them (d_ino, d_type: no stat)."""
    out = {}
    with os.scandir(directory) as listing:
        for entry in listing:
            kind = ("dir" if entry.is_dir(follow_symlinks=False) else "symlink" if entry.is_symlink()
                    else "file" if entry.is_file(follow_symlinks=False) else "other")
            out[entry.name] = (entry.inode(), kind)
    return out


def test_listings_give_each_entrys_inode_and_type(tmp_path: Path, store: Path):
    """A directory made through the mount is listed from the names and stats the mount keeps
    (`ListingOps._cached_entries`), not the store: each entry's inode number and type are
    what lstat and a fresh mount's listing from the store give."""
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    d = mountpoint / "d"
    with MountProcess([str(store)], str(mountpoint)):
        d.mkdir()
        (d / "f").write_bytes(b"file")
        (d / "sub").mkdir()
        (d / "sub" / "g").write_bytes(b"below")
        os.symlink("f", d / "s")
        os.mkfifo(d / "p")
        os.chmod(d / "f", 0o600)
        listed = _entries(d)
        kinds = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink", stat.S_IFIFO: "other"}
        assert listed == {name: (os.lstat(d / name).st_ino, kinds[stat.S_IFMT(os.lstat(d / name).st_mode)])
                          for name in ("f", "sub", "s", "p")}
        assert [kind for _, kind in sorted(listed.values())].count("dir") == 1
        below = _entries(d / "sub")
    with MountProcess([str(store)], str(mountpoint)):
        assert _entries(d) == listed and _entries(d / "sub") == below


def test_fstat_of_an_open_unlinked_file(mnt: Path):
    path = mnt / "gone.txt"
    path.write_bytes(b"Hello, World!")
    fd = os.open(path, os.O_RDWR)
    try:
        os.unlink(path)
        st = os.fstat(fd)
        assert (st.st_nlink, st.st_size) == (0, 13)
        os.ftruncate(fd, 5)
        assert os.fstat(fd).st_size == 5
        assert os.pread(fd, 20, 0) == b"Hello"
    finally:
        os.close(fd)


def test_attributes_are_fresh_after_ftruncate_and_rename_over_a_linked_target(mnt: Path):
    """The kernel caches attributes for seconds: what changed must not be served stale."""
    f = mnt / "f"
    f.write_bytes(b"x" * 10)
    before = os.stat(f).st_ctime_ns
    fd = os.open(f, os.O_RDWR)
    os.ftruncate(fd, 123)
    os.close(fd)
    after = os.stat(f)
    assert after.st_size == 123 and after.st_ctime_ns > before
    (mnt / "src").write_bytes(b"new")
    (mnt / "dst").write_bytes(b"old")
    os.link(mnt / "dst", mnt / "dstlnk")
    linked = os.lstat(mnt / "dstlnk")  # now in the kernel's attribute cache
    assert linked.st_nlink == 2
    os.rename(mnt / "src", mnt / "dst")
    left = os.lstat(mnt / "dstlnk")
    assert left.st_nlink == 1 and left.st_ctime_ns > linked.st_ctime_ns
    assert (mnt / "dstlnk").read_bytes() == b"old" and (mnt / "dst").read_bytes() == b"new"


# -- buffered writes ----------------------------------------------------------------


def test_small_writes_make_one_revision_and_readers_see_them_at_once(mnt: Path, store: Path):
    before = store_rev(store)
    piece = b"0123456789abcdef" * 256  # 4 KiB
    with open(mnt / "big.bin", "wb", buffering=0) as writer:
        for _ in range(256):
            writer.write(piece)
        # Not closed yet: another descriptor already sees every buffered byte.
        with open(mnt / "big.bin", "rb") as reader:
            assert reader.read() == piece * 256
        assert os.stat(mnt / "big.bin").st_size == len(piece) * 256
    sync(mnt)
    # the create and the 1 MiB written in 256 pieces: at most two revisions (one if in the same group)
    assert store_rev(store) - before in (1, 2)
    with vfs.Workspace(str(store), readonly=True) as ws:
        assert ws.read_file("/big.bin") == piece * 256


def test_fsync_commits_and_truncate(mnt: Path, store: Path):
    fd = os.open(mnt / "f", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        os.write(fd, b"x" * 100_000)
        os.fsync(fd)
        with vfs.Workspace(str(store), readonly=True) as ws:
            assert ws.stat("/f").size == 100_000
        os.ftruncate(fd, 10)
        os.pwrite(fd, b"END", 20)  # past EOF: zero-filled gap
        assert os.pread(fd, 100, 0) == b"x" * 10 + bytes(10) + b"END"
    finally:
        os.close(fd)
    sync(mnt)
    with vfs.Workspace(str(store), readonly=True) as ws:
        assert ws.read_file("/f") == b"x" * 10 + bytes(10) + b"END"
    os.truncate(mnt / "f", 3)
    assert (mnt / "f").read_bytes() == b"xxx"
    with open(mnt / "f", "ab") as appender:
        appender.write(b"++")
    assert (mnt / "f").read_bytes() == b"xxx++"


def test_big_file_spills_to_disk_and_round_trips(mnt: Path, store: Path):
    piece = os.urandom(1 << 20)
    digest = blake3.blake3()
    with open(mnt / "big", "wb") as f:
        for number in range(40):  # 40 MiB: past the 32 MiB in-memory spool
            chunk = piece[number:] + piece[:number]
            f.write(chunk)
            digest.update(chunk)
    sync(mnt)
    with vfs.Workspace(str(store), readonly=True) as ws:
        assert ws.stat("/big").hash == digest.hexdigest()
    check = blake3.blake3()
    with open(mnt / "big", "rb") as f:
        while data := f.read(1 << 20):
            check.update(data)
    assert check.hexdigest() == digest.hexdigest()


def test_unlinked_open_file_stays_readable_until_closed(mnt: Path):
    (mnt / "doomed").write_bytes(b"still here")
    with open(mnt / "doomed", "r+b", buffering=0) as f:
        os.unlink(mnt / "doomed")
        assert not (mnt / "doomed").exists()
        assert os.listdir(mnt) == []  # no stand-in name (hard_remove)
        assert f.read() == b"still here"
        f.write(b"!")
        os.ftruncate(f.fileno(), 5)
        assert os.pread(f.fileno(), 100, 0) == b"still"
    assert os.listdir(mnt) == []


def test_concurrent_readers_and_a_writer(mnt: Path):
    """Readers never see a mix of two versions of a file replaced by rename."""
    versions = [bytes([65 + v]) * (200_000 + v) for v in range(12)]
    (mnt / "live").write_bytes(versions[0])
    errors: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        seen = 0
        while not stop.is_set() and seen < 500:
            data = (mnt / "live").read_bytes()
            if data not in versions:
                errors.append(f"torn read: {len(data)} bytes starting {data[:1]!r}")
            seen += 1

    def writer() -> None:
        for number, content in enumerate(versions[1:], 1):
            tmp = mnt / f".live.{number}"
            tmp.write_bytes(content)
            os.rename(tmp, mnt / "live")
        stop.set()

    threads = [threading.Thread(target=reader) for _ in range(3)] + [threading.Thread(target=writer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert (mnt / "live").read_bytes() == versions[-1]
    assert sorted(os.listdir(mnt)) == ["live"]


def test_rename_over_an_open_file_is_atomic(mnt: Path, store: Path):
    (mnt / "target").write_bytes(b"old")
    with open(mnt / "target", "rb") as reader:
        (mnt / "new").write_bytes(b"new")
        os.rename(mnt / "new", mnt / "target")
        assert (mnt / "target").read_bytes() == b"new"
        assert reader.read() == b"old"  # the open descriptor keeps what it opened
    sync(mnt)
    with vfs.Workspace(str(store), readonly=True) as ws:
        assert not [c.path for c in ws.changes() if ".fuse_hidden" in c.path]  # never a stand-in name


def test_a_descriptor_reads_what_it_opened_when_its_name_goes(tmp_path: Path, store: Path):
    """A local mount opens its store reader at the first READ, not at open: a file whose
    name is replaced or removed before that must still read what was opened. The files
    are written before mounting, so the kernel has none of their pages and every read
    reaches the daemon."""
    with vfs.Workspace(str(store)) as ws:
        for name in ("replaced", "removed", "kept"):
            ws.write_file(f"/{name}", f"old {name}".encode())
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    with MountProcess([str(store)], str(mountpoint), log_file=str(tmp_path / "mount.log")):
        readers = {name: open(mountpoint / name, "rb") for name in ("replaced", "removed", "kept")}  # noqa: SIM115
        try:
            (mountpoint / "new").write_bytes(b"new content")
            os.rename(mountpoint / "new", mountpoint / "replaced")
            os.unlink(mountpoint / "removed")
            assert readers["replaced"].read() == b"old replaced"
            assert readers["removed"].read() == b"old removed"
            assert readers["kept"].read() == b"old kept"
            assert (mountpoint / "replaced").read_bytes() == b"new content"
        finally:
            for reader in readers.values():
                reader.close()
        assert sorted(os.listdir(mountpoint)) == ["kept", "replaced"]


# -- real programs ----------------------------------------------------------------


def test_git_init_add_commit_status(mnt: Path):
    repo = mnt / "repo"
    repo.mkdir()
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    run("git", "init", "-q", cwd=repo, env=env)
    for number in range(100):
        sub = repo / f"dir{number % 10}"
        sub.mkdir(exist_ok=True)
        (sub / f"file{number}.txt").write_text(f"line {number}\n" * (number + 1))
    run("git", "add", ".", cwd=repo, env=env)
    run("git", "commit", "-q", "-m", "one hundred files", cwd=repo, env=env)
    assert run("git", "status", "--porcelain", cwd=repo, env=env) == ""
    assert run("git", "ls-files", cwd=repo, env=env).count("\n") == 100
    (repo / "dir3" / "file3.txt").write_text("changed\n")
    assert run("git", "status", "--porcelain", cwd=repo, env=env).strip() == "M dir3/file3.txt"
    run("git", "fsck", "--strict", cwd=repo, env=env)


def _make_tree(root: Path) -> None:
    """A tree with the shapes tar and cp care about: nesting, modes, links, binary, empty."""
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "empty-dir").mkdir()
    for number in range(40):
        (root / "src" / "pkg" / f"m{number}.py").write_text(f"x = {number}\n" * number)
    (root / "bin.dat").write_bytes(os.urandom(700_000))
    (root / "empty").write_bytes(b"")
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(root / "run.sh", 0o755)
    os.symlink("src/pkg/m1.py", root / "link")
    os.link(root / "run.sh", root / "run-hardlink.sh")
    os.utime(root / "bin.dat", (1_000_000_000, 1_000_000_000))


def test_tar_extract_matches_disk(mnt: Path, tmp_path: Path):
    source = tmp_path / "source"
    source.mkdir()
    _make_tree(source)
    archive = tmp_path / "tree.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname="tree")
    on_disk = tmp_path / "on-disk"
    on_disk.mkdir()
    run("tar", "-xzf", str(archive), "-C", str(on_disk))
    run("tar", "-xzf", str(archive), "-C", str(mnt))
    run("diff", "-r", "--no-dereference", str(on_disk / "tree"), str(mnt / "tree"))
    mounted = mnt / "tree"
    assert os.stat(mounted / "run.sh").st_ino == os.stat(mounted / "run-hardlink.sh").st_ino
    assert stat.S_IMODE(os.stat(mounted / "run.sh").st_mode) == 0o755
    assert os.stat(mounted / "bin.dat").st_mtime == 1_000_000_000


def test_cp_a_round_trip(mnt: Path, tmp_path: Path):
    source = tmp_path / "source"
    source.mkdir()
    _make_tree(source)
    run("cp", "-a", str(source), str(mnt / "copy"))
    back = tmp_path / "back"
    run("cp", "-a", str(mnt / "copy"), str(back))
    run("diff", "-r", "--no-dereference", str(source), str(back))
    for name in ("bin.dat", "run.sh", "src/pkg/m5.py"):
        original, returned = os.stat(source / name), os.stat(back / name)
        assert stat.S_IMODE(original.st_mode) == stat.S_IMODE(returned.st_mode)
        assert original.st_mtime_ns == returned.st_mtime_ns
    assert os.readlink(back / "link") == "src/pkg/m1.py"


def _tiny_wheel(directory: Path) -> Path:
    """Build a minimal pure-Python wheel by hand (no network, no build backend)."""
    wheel = directory / "tinypkg-1.0-py3-none-any.whl"
    files = {
        "tinypkg/__init__.py": "VALUE = 42\n",
        "tinypkg-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n",
        "tinypkg-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{name},,\n" for name in files) + "tinypkg-1.0.dist-info/RECORD,,\n"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
        archive.writestr("tinypkg-1.0.dist-info/RECORD", record)
    return wheel


def test_venv_and_pip_install_local_wheel(mnt: Path, tmp_path: Path):
    wheel = _tiny_wheel(tmp_path)
    venv = mnt / "venv"
    run(sys.executable, "-m", "venv", str(venv))
    run(str(venv / "bin" / "python"), "-m", "pip", "install", "--no-index", "--no-cache-dir", "-q", str(wheel))
    out = run(str(venv / "bin" / "python"), "-c", "import tinypkg, sys; print(tinypkg.VALUE, sys.prefix)")
    assert out.split() == ["42", str(venv)]


# -- crash and recovery ---------------------------------------------------------------


def test_killed_daemon_leaves_a_consistent_store(tmp_path: Path, store: Path):
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    mount = MountProcess([str(store)], str(mountpoint), log_file=str(tmp_path / "mount.log"))
    with mount:
        for number in range(50):
            (mountpoint / f"done{number}").write_bytes(bytes([number]) * 10_000)
        directory = os.open(mountpoint, os.O_RDONLY)
        os.fsync(directory)  # what a program that needs durability does; close() alone commits within 0.1 s
        os.close(directory)
        pending = open(mountpoint / "pending", "wb")
        pending.write(b"p" * 50_000)
        pending.flush()
        os.kill(mount.pid, 9)
        mount.process.wait(30)
        with pytest.raises(OSError) as info:
            os.listdir(mountpoint)
        assert info.value.errno == errno.ENOTCONN
        with pytest.raises(OSError):
            pending.close()
        assert is_mounted(str(mountpoint))
        unmount(str(mountpoint))
        assert not is_mounted(str(mountpoint))

    with sqlite3.connect(store) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with vfs.Workspace(str(store)) as ws:
        for number in range(50):
            assert ws.read_file(f"/done{number}") == bytes([number]) * 10_000
        # never half-written: the buffered file is absent (its create was in the last group),
        # empty (created) or whole
        assert not ws.exists("/pending") or ws.read_file("/pending") in (b"", b"p" * 50_000)
    with MountProcess([str(store)], str(mountpoint)):
        assert (mountpoint / "done7").read_bytes() == bytes([7]) * 10_000


def test_umount_command_flushes_and_exits(tmp_path: Path, store: Path):
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    mount = MountProcess([str(store)], str(mountpoint))
    with mount:
        (mountpoint / "x").write_text("kept")
        run(sys.executable, "-m", "client_py.mount", "umount", str(mountpoint))
        assert mount.process.wait(30) == 0
        assert not is_mounted(str(mountpoint))
    with vfs.Workspace(str(store), readonly=True) as ws:
        assert ws.read_file("/x") == b"kept"


def test_wsfs_command_mounts_in_background_and_unmounts(tmp_path: Path, store: Path):
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    log = tmp_path / "daemon.log"
    out = run(sys.executable, "-m", "wsfs", "mount", str(store), str(mountpoint), "--background", "--log", str(log))
    try:
        assert "mounted at" in out and is_mounted(str(mountpoint))
        (mountpoint / "hello.txt").write_text("hi")
        assert "mounted" in log.read_text()
    finally:
        run(sys.executable, "-m", "wsfs", "umount", str(mountpoint))
    deadline = time.monotonic() + 30
    while is_mounted(str(mountpoint)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not is_mounted(str(mountpoint))
    with vfs.Workspace(str(store), readonly=True) as ws:
        assert ws.read_file("/hello.txt") == b"hi"


def test_commit_options_reach_the_daemon_and_are_checked(tmp_path: Path, store: Path):
    """`--commit-idle` and `--commit-max-age` (local mode) set how long a burst of changes waits for
    its commit: with both long, a closed file is still not in the store well past the default's
    0.1 s, and fsync commits it at once. Bad values and remote mode are refused, clearly."""
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    wsfs = [sys.executable, "-m", "wsfs", "mount"]
    bad = subprocess.run(wsfs + [str(store), str(mountpoint), "--commit-idle", "0"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--commit-idle" in bad.stderr and "positive" in bad.stderr
    remote = subprocess.run(wsfs + ["http://127.0.0.1:9", "demo", str(mountpoint), "--commit-max-age", "5"],
                            capture_output=True, text=True, timeout=60)
    assert remote.returncode == 2 and "local store" in remote.stderr
    assert not is_mounted(str(mountpoint))
    run(*wsfs, str(store), str(mountpoint), "--background", "--commit-idle", "60", "--commit-max-age", "60")
    try:
        (mountpoint / "late").write_bytes(b"waits")
        time.sleep(0.5)
        with vfs.Workspace(str(store), readonly=True) as reader:
            assert not reader.exists("/late")
            sync(mountpoint)
            assert reader.read_file("/late") == b"waits"
    finally:
        run(sys.executable, "-m", "wsfs", "umount", str(mountpoint))


def test_a_mounted_store_has_no_other_writer(mnt: Path, store: Path):
    """The kernel caches what the mount showed it, so nobody may write the store behind its back."""
    (mnt / "f").write_text("via mount")
    with pytest.raises(vfs.StoreBusy) as info:
        vfs.Workspace(str(store))
    assert "mounted" in info.value.strerror
    sync(mnt)
    with vfs.Workspace(str(store), readonly=True) as reader:  # observers are fine
        assert reader.read_file("/f") == b"via mount"


@pytest.mark.parametrize("background", [False, True])
def test_mounting_a_store_someone_writes_fails_clearly(tmp_path: Path, store: Path, background: bool):
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    with vfs.Workspace(str(store)) as writer:  # as `wsfs serve` holds its stores
        writer.write_file("/f", b"server's")
        command = [sys.executable, "-m", "wsfs", "mount", str(store), str(mountpoint)]
        done = subprocess.run(command + (["--background"] if background else []),
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 1
        assert "only writer" in done.stderr and "wsfs mount URL WORKSPACE MOUNTPOINT" in done.stderr
        assert "Traceback" not in done.stderr
        assert not is_mounted(str(mountpoint))
        assert writer.read_file("/f") == b"server's"
