"""The do-nothing in-memory FUSE floor on libfuse's low-level API through ctypes (no pyfuse3, no trio).

`floor_lowlevel.py` measures the low-level (inode) API through pyfuse3, whose
trio loop adds its own cost per request (two `epoll_wait`s and an
`epoll_ctl` around every read of /dev/fuse, and a scheduler pass). This is
the same filesystem and the same protocol choices (inodes, attributes in
every reply, 60 s timeouts per reply, `keep_cache`, OPENDIR answered ENOSYS
so the kernel keeps listings and sends no OPENDIR/RELEASEDIR, READDIRPLUS
only) on the binding mechanism `floor_memfs.py` uses: ctypes callbacks
called by libfuse's own single-threaded C loop (`fuse_session_loop`), through
the mount's own low-level binding (`client_py/mount/lowlevel/binding.py`, which
`wsfs mount --api lowlevel` runs on). So floor_memfs → this file is what the
low-level API itself removes; this file → floor_lowlevel.py is what pyfuse3
adds; this file → the mount on `--api lowlevel` is the mount's own work.

Measured (docs/mount.md, "A low-level binding: the floor measured"): the
same requests as pyfuse3's floor, 0.4-0.6x floor_memfs's daemon CPU on the
Django rows (untar 790-1,040 ms against 1,710-2,200), two syscalls per
request as libfuse's loop under mfusepy.

    .venv/bin/python bench/floor_lowlevel_ctypes.py MOUNTPOINT [--paths] [--counts FILE]   # fusermount3 -u to stop
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import json
import os
import stat
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # (the project's binding, run as a script)

import floor_node  # noqa: E402  (bench/ is the script's directory, so on sys.path)
from client_py.mount.lowlevel import binding  # noqa: E402
from client_py.mount.lowlevel.binding import EntryParam, c_stat, c_statvfs, lib  # noqa: E402

TIMEOUT = 60.0  # the mfusepy floor's entry/attr/negative timeouts, given per reply here
COUNTS: Counter[str] = Counter()
HANDLERS = ("init", "lookup", "forget", "getattr", "setattr", "readlink", "mkdir", "unlink", "rmdir", "symlink",
            "rename", "link", "open", "read", "write", "flush", "release", "fsync", "opendir", "releasedir",
            "statfs", "getxattr", "create", "forget_multi", "readdirplus")


class Node(floor_node.Node):
    __slots__ = ()

    def fill(self, out: c_stat) -> None:
        out.st_ino, out.st_mode, out.st_nlink, out.st_uid, out.st_gid = self.ino, self.mode, self.nlink, self.uid, self.gid
        out.st_size = len(self.target) if self.target else len(self.data)
        out.st_blocks, out.st_blksize = (out.st_size + 511) // 512, 4096
        for spec, ns in zip((out.st_atimespec, out.st_mtimespec, out.st_ctimespec), self.times):
            spec.tv_sec, spec.tv_nsec = divmod(ns, 1_000_000_000)

    def entry(self) -> EntryParam:
        out = EntryParam(ino=self.ino, attr_timeout=TIMEOUT, entry_timeout=TIMEOUT)
        self.fill(out.attr)
        return out


class Fail(Exception):
    def __init__(self, code: int):
        self.code = code


class LowLevelMemFS:
    """floor_memfs.MemFS by inode; each handler replies itself (libfuse's low-level contract)."""

    def __init__(self) -> None:
        root = Node(1, stat.S_IFDIR | 0o755, os.getuid(), os.getgid(), 1)
        self.inodes = {1: root}
        self.next_ino = 2

    def _dir(self, ino: int) -> Node:
        node = self.inodes.get(ino)
        if node is None or node.children is None:
            raise Fail(errno.ENOTDIR if node else errno.ENOENT)
        return node

    def _new(self, req, parent_ino: int, name: bytes, mode: int) -> Node:
        parent = self._dir(parent_ino)
        if name in parent.children:
            raise Fail(errno.EEXIST)
        ctx = lib.fuse_req_ctx(req).contents
        node = self.inodes[self.next_ino] = Node(self.next_ino, mode, ctx.uid, ctx.gid, parent_ino)
        self.next_ino += 1
        parent.children[name] = node
        node.name = name
        if node.children is not None:
            parent.nlink += 1
        parent.touch()
        return node

    def init(self, userdata, conn):
        binding.conn_info(conn).want &= ~binding.FUSE_CAP_READDIRPLUS_AUTO  # READDIRPLUS only, as pyfuse3

    def lookup(self, req, parent_ino, name):
        parent = self._dir(parent_ino)
        node = parent if name == b"." else self.inodes[parent.parent] if name == b".." else parent.children.get(name)
        entry = node.entry() if node else EntryParam(ino=0, entry_timeout=TIMEOUT)  # negative, cached
        lib.fuse_reply_entry(req, entry)

    def forget(self, req, ino, nlookup):
        lib.fuse_reply_none(req)  # every node stays in memory

    def forget_multi(self, req, count, forgets):
        lib.fuse_reply_none(req)

    def getattr(self, req, ino, fi):
        out = c_stat()
        self.inodes[ino].fill(out)
        lib.fuse_reply_attr(req, out, TIMEOUT)

    def setattr(self, req, ino, attr, to_set, fi):
        node, new = self.inodes[ino], attr.contents
        if to_set & 8:  # SIZE
            del node.data[new.st_size:]
            node.data.extend(bytes(new.st_size - len(node.data)))
            node.touch()
        if to_set & 1:
            node.mode = (node.mode & ~0o7777) | (new.st_mode & 0o7777)
        if to_set & 2:
            node.uid = new.st_uid
        if to_set & 4:
            node.gid = new.st_gid
        now = time.time_ns()
        for bit, now_bit, index, spec in ((16, 128, 0, new.st_atimespec), (32, 256, 1, new.st_mtimespec)):
            if to_set & now_bit:
                node.times[index] = now
            elif to_set & bit:
                node.times[index] = spec.tv_sec * 1_000_000_000 + spec.tv_nsec
        out = c_stat()
        node.fill(out)
        lib.fuse_reply_attr(req, out, TIMEOUT)

    def readlink(self, req, ino):
        target = self.inodes[ino].target
        if not target:
            raise Fail(errno.EINVAL)
        lib.fuse_reply_readlink(req, target)

    def mkdir(self, req, parent, name, mode):
        lib.fuse_reply_entry(req, self._new(req, parent, name, stat.S_IFDIR | (mode & 0o7777)).entry())

    def symlink(self, req, target, parent, name):
        node = self._new(req, parent, name, stat.S_IFLNK | 0o777)
        node.target = target
        lib.fuse_reply_entry(req, node.entry())

    def link(self, req, ino, new_parent, new_name):
        parent, node = self._dir(new_parent), self.inodes[ino]
        if new_name in parent.children:
            raise Fail(errno.EEXIST)
        parent.children[new_name] = node
        node.nlink += 1
        parent.touch()
        lib.fuse_reply_entry(req, node.entry())

    def unlink(self, req, parent_ino, name):
        parent = self._dir(parent_ino)
        node = parent.children.pop(name, None)
        if node is None:
            raise Fail(errno.ENOENT)
        node.nlink -= 1
        parent.touch()
        lib.fuse_reply_err(req, 0)

    def rmdir(self, req, parent_ino, name):
        parent = self._dir(parent_ino)
        node = parent.children.get(name)
        if node is None or node.children:
            raise Fail(errno.ENOTEMPTY if node else errno.ENOENT)
        del parent.children[name]
        parent.nlink -= 1
        parent.touch()
        lib.fuse_reply_err(req, 0)

    def rename(self, req, old_ino, old_name, new_ino, new_name, flags):
        old_parent, new_parent = self._dir(old_ino), self._dir(new_ino)
        node = old_parent.children.get(old_name)
        replaced = new_parent.children.get(new_name)
        if node is None or (replaced is not None and replaced.children):
            raise Fail(errno.ENOENT if node is None else errno.ENOTEMPTY)
        del old_parent.children[old_name]
        new_parent.children[new_name] = node
        node.parent, node.name = new_ino, new_name
        old_parent.touch()
        new_parent.touch()
        lib.fuse_reply_err(req, 0)

    def open(self, req, ino, fi):
        node = self.inodes[ino]
        if fi.contents.flags & os.O_TRUNC:
            node.data = bytearray()
            node.touch()
        fi.contents.fh, fi.contents.keep_cache = ino, 1  # = kernel_cache
        lib.fuse_reply_open(req, fi)

    def create(self, req, parent, name, mode, fi):
        node = self._new(req, parent, name, stat.S_IFREG | (mode & 0o7777))
        fi.contents.fh, fi.contents.keep_cache = node.ino, 1
        lib.fuse_reply_create(req, node.entry(), fi)

    def read(self, req, ino, size, off, fi):
        data = bytes(self.inodes[ino].data[off : off + size])
        lib.fuse_reply_buf(req, data, len(data))

    def write(self, req, ino, buf, size, off, fi):
        node = self.inodes[ino]
        if off > len(node.data):
            node.data.extend(bytes(off - len(node.data)))
        node.data[off : off + size] = ctypes.string_at(buf, size)
        node.touch()
        lib.fuse_reply_write(req, size)

    def flush(self, req, ino, fi):
        lib.fuse_reply_err(req, 0)

    release = flush
    releasedir = flush

    def fsync(self, req, ino, datasync, fi):
        lib.fuse_reply_err(req, 0)

    def opendir(self, req, ino, fi):
        raise Fail(errno.ENOSYS)  # no_opendir: no OPENDIR/RELEASEDIR again, listings kept by the kernel

    def readdirplus(self, req, ino, size, off, fi):
        node = self._dir(ino)
        entries = [(b".", node), (b"..", self.inodes[node.parent]), *node.children.items()]
        buf, used = ctypes.create_string_buffer(size), 0
        for index in range(off, len(entries)):
            name, child = entries[index]
            entry = child.entry()
            need = lib.fuse_add_direntry_plus(req, ctypes.addressof(buf) + used, size - used, name, entry, index + 1)
            if need > size - used:
                break
            used += need
        lib.fuse_reply_buf(req, buf.raw[:used], used)

    def statfs(self, req, ino):
        out = c_statvfs(f_bsize=4096, f_frsize=4096, f_blocks=1 << 24, f_bfree=1 << 24, f_bavail=1 << 24,
                        f_files=1 << 24, f_ffree=1 << 24, f_favail=1 << 24, f_namemax=255)
        lib.fuse_reply_statfs(req, out)

    def getxattr(self, req, ino, name, size):
        raise Fail(errno.ENOSYS)  # as floor_memfs: the kernel asks once


def path_of(fs: LowLevelMemFS, ino: int) -> bytes:
    """`--paths`: the absolute path of an inode from the parent links, what a daemon over a
    path-addressed store (the wsfs store) would build for every request on this API."""
    parts = []
    node = fs.inodes.get(ino)
    while node is not None and node.ino != 1:
        parts.append(node.name)
        node = fs.inodes.get(node.parent)
    return b"/" + b"/".join(reversed(parts))


def _callback(fs: LowLevelMemFS, name: str, paths: bool = False):
    method = getattr(fs, name)
    replies = name != "init"
    builds_path = paths and name not in ("init", "forget", "forget_multi")  # (the rest name an inode or a parent)

    def handler(*args):
        COUNTS[name] += 1
        if builds_path:
            path_of(fs, args[1])
        try:
            method(*args)
        except Fail as e:
            lib.fuse_reply_err(args[0], e.code)
        except (KeyError, IndexError):
            if replies:
                lib.fuse_reply_err(args[0], errno.ENOENT)
    return handler


def mount_args(mountpoint: str) -> list[bytes]:
    """The mfusepy floor's libfuse options that exist at this level (timeouts: per reply)."""
    options = "default_permissions,nosuid,nodev,fsname=wsfs-floor-llc,subtype=wsfs"
    options += ",allow_other" if os.getuid() == 0 else ""
    return [b"floor_lowlevel_ctypes", b"-o", options.encode()]


def serve(mountpoint: str, *, paths: bool = False) -> None:
    """Mount, run libfuse's single-threaded loop until unmounted, clean up (the project's binding)."""
    fs = LowLevelMemFS()
    session = binding.Session(mount_args(mountpoint), {name: _callback(fs, name, paths) for name in HANDLERS})
    try:
        session.mount(mountpoint)
        session.loop()
    finally:
        session.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mountpoint")
    parser.add_argument("--counts", help="write the requests per handler here (JSON) at unmount")
    parser.add_argument("--paths", action="store_true", help="build each request's inode's absolute path (the "
                        "cost of an inode table over a path-addressed store, as the wsfs mount would need)")
    args = parser.parse_args()
    try:
        serve(os.path.abspath(args.mountpoint), paths=args.paths)
    finally:
        if args.counts:
            Path(args.counts).write_text(json.dumps(dict(COUNTS.most_common()), indent=1))


if __name__ == "__main__":
    main()
