"""POSIX conformance of the mount, differentially: every scenario runs on the
local disk (ext4) and in a wsfs mount, and the outcomes (values, errnos,
stat fields) must be equal. Permission checks run as `nobody`.

Our own suite over pjdfstest's categories (chmod, chown, link, mkdir, mkfifo,
mknod, open, rename, rmdir, symlink, truncate, unlink, utimensat,
permissions); pjdfstest itself is run by hand (docs/mount.md has its results).
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from client_py.mount.runner import MountProcess
from mount_api import mount_api  # noqa: F401  (every test here on each API)

NOBODY = 65534
_libc = ctypes.CDLL(None, use_errno=True)


@pytest.fixture(scope="module")
def roots(mount_api):
    """(disk dir, mount dir), both reachable by `nobody` (pytest's tmp dirs are 0700)."""
    base = Path(tempfile.mkdtemp(prefix="wsfs-posix-"))
    os.chmod(base, 0o755)
    disk, mnt = base / "disk", base / "mnt"
    disk.mkdir()
    mnt.mkdir()
    try:
        with MountProcess([str(base / "store.db")], str(mnt), log_file=str(base / "mount.log")):
            yield disk, mnt
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def both(roots, request):
    """A fresh, empty scenario directory on each side."""
    dirs = []
    for root in roots:
        d = root / request.node.name.replace("[", "_").replace("]", "")
        d.mkdir(mode=0o755)
        os.chmod(d, 0o755)
        dirs.append(d)
    return dirs


def outcome(call: Callable[[], object]) -> tuple:
    try:
        value = call()
    except OSError as exc:
        return ("err", errno.errorcode.get(exc.errno, exc.errno))
    return ("ok", value)


def st(path: Path, follow: bool = True) -> tuple:
    s = os.stat(path, follow_symlinks=follow)
    kind = stat.S_IFMT(s.st_mode)
    size = s.st_size if not stat.S_ISDIR(s.st_mode) else None  # directory sizes are fs-specific
    return (kind, stat.S_IMODE(s.st_mode), size, s.st_nlink, s.st_uid, s.st_gid)


def renameat2(old: Path, new: Path, flags: int) -> int:
    if _libc.renameat2(-100, os.fsencode(old), -100, os.fsencode(new), flags) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return 0


def scenario_names(d: Path) -> list:
    out = []
    out.append(outcome(lambda: os.mkdir(d / "a")))
    out.append(outcome(lambda: os.mkdir(d / "a")))
    out.append(outcome(lambda: os.mkdir(d / "missing" / "x")))
    out.append(outcome(lambda: os.mkdir(d / ("n" * 256))))
    out.append(outcome(lambda: os.rmdir(d / "nope")))
    (d / "f").write_bytes(b"12345")
    out.append(outcome(lambda: os.rmdir(d / "f")))
    out.append(outcome(lambda: os.mkdir(d / "f" / "x")))
    (d / "a" / "inner").write_text("i")
    out.append(outcome(lambda: os.rmdir(d / "a")))
    out.append(outcome(lambda: os.unlink(d / "a")))
    out.append(outcome(lambda: os.unlink(d / "nope")))
    out.append(outcome(lambda: os.open(d / "f", os.O_CREAT | os.O_EXCL | os.O_WRONLY)))
    out.append(outcome(lambda: os.open(d / "a", os.O_WRONLY)))
    out.append(outcome(lambda: os.open(d / "f" / "x", os.O_RDONLY)))
    out.append(outcome(lambda: os.open(d / "nope", os.O_RDONLY)))
    out.append(outcome(lambda: sorted(os.listdir(d))))
    return out


def scenario_rename(d: Path) -> list:
    out = []
    (d / "f").write_text("file")
    (d / "g").write_text("other")
    (d / "dir" / "sub").mkdir(parents=True)
    (d / "empty").mkdir()
    (d / "full").mkdir()
    (d / "full" / "x").write_text("x")
    out.append(outcome(lambda: os.rename(d / "f", d / "dir")))
    out.append(outcome(lambda: os.rename(d / "dir", d / "f")))
    out.append(outcome(lambda: os.rename(d / "empty", d / "full")))
    out.append(outcome(lambda: os.rename(d / "dir", d / "dir" / "sub" / "in")))
    out.append(outcome(lambda: os.rename(d / "nope", d / "x")))
    out.append(outcome(lambda: os.rename(d / "dir", d / "empty")))
    out.append(outcome(lambda: sorted(os.listdir(d))))
    out.append(outcome(lambda: os.rename(d / "f", d / "g")))
    out.append(outcome(lambda: (d / "g").read_text()))
    out.append(outcome(lambda: os.rename(d / "g", d / "g")))
    os.link(d / "g", d / "g2")
    out.append(outcome(lambda: os.rename(d / "g", d / "g2")))  # same inode: nothing happens
    out.append(outcome(lambda: sorted(os.listdir(d))))
    out.append(outcome(lambda: renameat2(d / "g", d / "g2", 1)))  # RENAME_NOREPLACE
    out.append(outcome(lambda: renameat2(d / "g", d / "h", 1)))
    out.append(outcome(lambda: sorted(os.listdir(d))))
    out.append(outcome(lambda: renameat2(d / "h", d / "dir", 2)))  # RENAME_EXCHANGE: a file and a dir swap
    out.append(outcome(lambda: (st(d / "h")[0], st(d / "dir")[0])))
    out.append(outcome(lambda: renameat2(d / "h", d / "missing", 2)))
    return out


def scenario_links(d: Path) -> list:
    out = []
    (d / "f").write_bytes(b"abc")
    os.mkdir(d / "dir")
    out.append(outcome(lambda: os.link(d / "f", d / "h")))
    out.append(outcome(lambda: (st(d / "f"), st(d / "h"))))
    out.append(outcome(lambda: os.stat(d / "f").st_ino == os.stat(d / "h").st_ino))
    out.append(outcome(lambda: os.link(d / "f", d / "h")))
    out.append(outcome(lambda: os.link(d / "dir", d / "dirlink")))
    out.append(outcome(lambda: os.link(d / "nope", d / "x")))
    out.append(outcome(lambda: os.symlink("f", d / "s")))
    out.append(outcome(lambda: os.symlink("f", d / "s")))
    out.append(outcome(lambda: os.readlink(d / "s")))
    out.append(outcome(lambda: os.readlink(d / "f")))
    out.append(outcome(lambda: (d / "s").read_bytes()))
    out.append(outcome(lambda: st(d / "s", follow=False)[0]))
    os.symlink("loop2", d / "loop1")
    os.symlink("loop1", d / "loop2")
    out.append(outcome(lambda: os.open(d / "loop1", os.O_RDONLY)))
    os.symlink("missing-target", d / "dangling")
    out.append(outcome(lambda: os.stat(d / "dangling")))
    out.append(outcome(lambda: os.link(d / "s", d / "s-hard", follow_symlinks=False)))  # links the symlink itself
    out.append(outcome(lambda: (st(d / "s-hard", follow=False)[0], os.readlink(d / "s-hard"))))
    out.append(outcome(lambda: os.unlink(d / "h")))
    out.append(outcome(lambda: st(d / "f")))
    out.append(outcome(lambda: st(d / "dir")[3]))  # nlink of a dir: 2 + subdirs
    os.mkdir(d / "dir" / "a")
    os.mkdir(d / "dir" / "b")
    out.append(outcome(lambda: st(d / "dir")[3]))
    return out


def scenario_content(d: Path) -> list:
    out = []
    fd = os.open(d / "f", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        out.append(outcome(lambda: os.write(fd, b"hello")))
        out.append(outcome(lambda: os.pwrite(fd, b"X", 10)))
        out.append(outcome(lambda: os.pread(fd, 100, 0)))
        out.append(outcome(lambda: os.pread(fd, 10, 50)))
        out.append(outcome(lambda: os.ftruncate(fd, 3)))
        out.append(outcome(lambda: os.fstat(fd).st_size))
        out.append(outcome(lambda: os.ftruncate(fd, 8)))
        out.append(outcome(lambda: os.pread(fd, 100, 0)))
    finally:
        os.close(fd)
    fd = os.open(d / "f", os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, b"++")
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, b"--")
    finally:
        os.close(fd)
    out.append(outcome(lambda: (d / "f").read_bytes()))
    out.append(outcome(lambda: os.truncate(d / "f", 2)))
    out.append(outcome(lambda: (d / "f").read_bytes()))
    os.mkdir(d / "dir")
    out.append(outcome(lambda: os.truncate(d / "dir", 0)))
    out.append(outcome(lambda: os.truncate(d / "f", -1)))
    fd = os.open(d / "f", os.O_WRONLY | os.O_TRUNC)
    os.close(fd)
    out.append(outcome(lambda: st(d / "f")))
    return out


def scenario_metadata(d: Path) -> list:
    out = []
    (d / "f").write_text("x")
    os.mkdir(d / "dir")
    out.append(outcome(lambda: os.chmod(d / "f", 0o4751)))
    out.append(outcome(lambda: st(d / "f")))
    out.append(outcome(lambda: os.chmod(d / "dir", 0o1777)))
    out.append(outcome(lambda: st(d / "dir")))
    out.append(outcome(lambda: os.chmod(d / "nope", 0o644)))
    out.append(outcome(lambda: os.chown(d / "f", 1000, 2000)))
    out.append(outcome(lambda: st(d / "f")))
    out.append(outcome(lambda: os.chown(d / "f", -1, 3000)))
    out.append(outcome(lambda: st(d / "f")[4:]))
    times = (1_234_567_890_123_456_789, 1_300_000_000_000_000_001)
    out.append(outcome(lambda: os.utime(d / "f", ns=times)))
    out.append(outcome(lambda: (os.stat(d / "f").st_atime_ns, os.stat(d / "f").st_mtime_ns)))
    os.symlink("f", d / "s")
    out.append(outcome(lambda: os.utime(d / "s", ns=(5_000_000_000, 6_000_000_000), follow_symlinks=False)))
    out.append(outcome(lambda: os.lstat(d / "s").st_mtime_ns))
    out.append(outcome(lambda: os.stat(d / "f").st_mtime_ns))
    subprocess.run(["touch", "-a", "-d", "@1400000000", str(d / "f")], check=True)  # mtime: UTIME_OMIT
    out.append(outcome(lambda: (os.stat(d / "f").st_atime_ns, os.stat(d / "f").st_mtime_ns)))
    return out


def scenario_special_files(d: Path) -> list:
    """FIFOs, sockets and device nodes: made, stat'ed, listed, linked, renamed, removed."""
    out = []
    os.mkfifo(d / "fifo", 0o640)
    os.mknod(d / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    os.mknod(d / "disk", stat.S_IFBLK | 0o660, os.makedev(8, 17))
    sock = socket.socket(socket.AF_UNIX)
    try:
        out.append(outcome(lambda: sock.bind(str(d / "sock"))))
    finally:
        sock.close()
    for name in ("fifo", "null", "disk", "sock"):
        out.append(outcome(lambda: (*st(d / name), os.lstat(d / name).st_rdev)))
    out.append(sorted((e.name, e.is_file(), e.is_dir(), stat.S_IFMT(e.stat(follow_symlinks=False).st_mode))
                      for e in os.scandir(d)))
    out.append(outcome(lambda: os.mkfifo(d / "fifo")))
    out.append(outcome(lambda: os.mknod(d / "nope" / "x", stat.S_IFIFO | 0o644)))
    out.append(outcome(lambda: os.link(d / "fifo", d / "fifo2")))
    out.append(outcome(lambda: os.lstat(d / "fifo").st_nlink))
    out.append(outcome(lambda: os.rename(d / "null", d / "null2")))
    out.append(outcome(lambda: os.lstat(d / "null2").st_rdev))
    out.append(outcome(lambda: os.chmod(d / "fifo", 0o600)))
    out.append(outcome(lambda: st(d / "fifo2")))
    for name in ("fifo", "fifo2", "null2", "disk", "sock"):
        out.append(outcome(lambda: os.unlink(d / name)))
    out.append(sorted(os.listdir(d)))
    return out


def scenario_relative_long_paths(d: Path) -> list:
    """Paths up to 4095 bytes work relative to the caller's directory, however deep that
    directory is below the mount's root; 4096 bytes and 256-byte names are ENAMETOOLONG."""
    out = []
    name = "n" * 254
    parts = [name] * 15 + ["m" * (4095 - 15 * 255)]  # exactly 4095 bytes, relative
    fd = os.open(d, os.O_RDONLY)
    try:
        for depth in range(1, 16):
            out.append(outcome(lambda: os.mkdir("/".join(parts[:depth]), dir_fd=fd)))
        rel = "/".join(parts)
        assert len(rel.encode()) == 4095
        out.append(outcome(lambda: os.close(os.open(rel, os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd))))
        out.append(outcome(lambda: os.stat(rel, dir_fd=fd).st_size))
        out.append(outcome(lambda: os.rename(rel, rel[:-1] + "x", src_dir_fd=fd, dst_dir_fd=fd)))
        out.append(outcome(lambda: os.stat(rel + "x", dir_fd=fd)))
        out.append(outcome(lambda: os.mkdir("z" * 256, dir_fd=fd)))
        out.append(outcome(lambda: os.unlink(rel[:-1] + "x", dir_fd=fd)))
    finally:
        os.close(fd)
    return out


@pytest.mark.parametrize(
    "scenario", [scenario_names, scenario_rename, scenario_links, scenario_content, scenario_metadata,
                 scenario_special_files, scenario_relative_long_paths],
    ids=lambda f: f.__name__,
)
def test_same_outcomes_as_disk(both, scenario):
    disk, mounted = both
    assert scenario(mounted) == scenario(disk)


# -- permissions: checks apply to non-root callers ----------------------------------

PERMISSION_STEPS = [
    ("read 0600 root file", ["cat", "secret"]),
    ("read 0644 root file", ["cat", "public"]),
    ("write 0644 root file", ["sh", "-c", "echo x >> public"]),
    ("create in root 0755 dir", ["touch", "rootdir/new"]),
    ("create in 0777 dir", ["touch", "open/new"]),
    ("chmod a root file", ["chmod", "777", "public"]),
    ("write own file", ["sh", "-c", "echo mine > mine"]),
    ("chmod own file", ["chmod", "600", "mine"]),
    ("delete other's file in sticky dir", ["rm", "-f", "sticky/roots"]),
    ("delete own file in sticky dir", ["rm", "-f", "sticky/nobodys"]),
    ("enter 0700 dir", ["ls", "private"]),
    ("exec 0755 script", ["./run.sh"]),
    ("exec 0644 script", ["./norun.sh"]),
]


def _prepare_permissions(d: Path) -> None:
    (d / "secret").write_text("s")
    os.chmod(d / "secret", 0o600)
    (d / "public").write_text("p")
    os.chmod(d / "public", 0o644)
    (d / "rootdir").mkdir(mode=0o755)
    (d / "open").mkdir()
    os.chmod(d / "open", 0o777)
    (d / "mine").write_text("")
    os.chown(d / "mine", NOBODY, NOBODY)
    (d / "sticky").mkdir()
    os.chmod(d / "sticky", 0o1777)
    (d / "sticky" / "roots").write_text("r")
    (d / "sticky" / "nobodys").write_text("n")
    os.chown(d / "sticky" / "nobodys", NOBODY, NOBODY)
    (d / "private").mkdir()
    os.chmod(d / "private", 0o700)
    for name, mode in (("run.sh", 0o755), ("norun.sh", 0o644)):
        (d / name).write_text("#!/bin/sh\necho ran\n")
        os.chmod(d / name, mode)


def _as_nobody(d: Path) -> list:
    results = []
    for label, command in PERMISSION_STEPS:
        try:
            done = subprocess.run(
                command, cwd=d, user=NOBODY, group=NOBODY, extra_groups=[], capture_output=True, text=True, timeout=60
            )
        except PermissionError:  # exec(2) itself refused
            results.append((label, False, True))
            continue
        results.append((label, done.returncode == 0, "denied" in done.stderr or "not permitted" in done.stderr))
    return results


def test_permission_checks_for_non_root_callers(both):
    disk, mounted = both
    for d in both:
        _prepare_permissions(d)
    on_disk = _as_nobody(disk)
    assert on_disk[0] == ("read 0600 root file", False, True)  # the scenario itself is meaningful
    assert _as_nobody(mounted) == on_disk
    assert (mounted / "mine").read_text() == "mine\n"
    assert st(mounted / "mine")[4:] == (NOBODY, NOBODY)
