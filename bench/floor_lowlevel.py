"""The do-nothing in-memory FUSE floor on libfuse's low-level (inode) API, through pyfuse3.

`floor_memfs.py` is the floor for a daemon on mfusepy's path-based API; this
is the same filesystem (files kept in memory, nothing stored) on pyfuse3
(Cython over `fuse_lowlevel`, trio), with the same kernel options where the
low-level API has them: 60 s entry, attribute and negative timeouts (given
per reply here: there are no `-o attr_timeout` options at this level), the
page cache kept across opens (`keep_cache`, what `kernel_cache` does for the
path API), default_permissions, allow_other as root, nosuid, nodev, and
directory listings kept by the kernel. `bench_mount.py --lowlevel` runs it
beside `floor_memfs.py` and the disk, to measure what an inode-based binding
would remove from each request (issue 15):

- no path: every request names an inode, the daemon resolves nothing;
- no internal GETATTR: libfuse's path API calls the daemon's getattr after
  every create, mkdir, mknod, symlink, link and setattr to fill the reply;
  here the handler returns the attributes itself;
- no OPENDIR / RELEASEDIR round trips (`no_opendir`): OPENDIR is answered
  ENOSYS once and the kernel never sends either again, keeping listings in
  its cache by default (`FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR`). pyfuse3 then
  hands `readdir` the kernel's file handle, which is 0 without an OPENDIR;
  `_readdir_gets_inode` makes it the directory's inode number (a ctypes
  wrapper in the session's `readdirplus` slot). `--opendir` answers OPENDIR
  instead, with the listing-cache flags set (as `floor_memfs.py` does).

`--counts FILE` writes how many requests of each kind reached the handlers
(JSON, at unmount). Needs `pip install pyfuse3 trio` (a C build: apt
packages libfuse3-dev and pkg-config).

Measured (docs/mount.md, "A low-level binding: the floor measured"): the
kernel sends the same requests as to floor_memfs.py except OPENDIR and
RELEASEDIR, but this daemon uses 1.3-2.6x floor_memfs's CPU for them: pyfuse3
runs every request through trio (an `epoll_ctl` and two `epoll_wait`s
around each read of /dev/fuse, a task switch, a coroutine). The same
protocol through ctypes, `floor_lowlevel_ctypes.py`, uses 0.4-0.6x.

    .venv/bin/python bench/floor_lowlevel.py MOUNTPOINT [--opendir] [--tasks 1] [--counts FILE]   # fusermount3 -u to stop
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import json
import os
import stat
import subprocess
import time
from collections import Counter
from pathlib import Path

import pyfuse3
import trio
from mfusepy import fuse_file_info  # libfuse 3's struct, for the readdirplus wrapper

import floor_node  # (bench/ is the script's directory, so on sys.path)

TIMEOUT = 60.0  # = client_py.mount.runner.LOCAL_CACHE_SECONDS, the mfusepy floor's entry/attr/negative timeouts
COUNTS: Counter[str] = Counter()


class Node(floor_node.Node):
    __slots__ = ()

    def attrs(self) -> pyfuse3.EntryAttributes:
        out = pyfuse3.EntryAttributes()
        out.st_ino, out.st_mode, out.st_nlink = self.ino, self.mode, self.nlink
        out.st_uid, out.st_gid = self.uid, self.gid
        out.st_size = len(self.target) if self.target else len(self.data)
        out.st_blocks, out.st_blksize = (out.st_size + 511) // 512, 4096
        out.st_atime_ns, out.st_mtime_ns, out.st_ctime_ns = self.times
        out.entry_timeout = out.attr_timeout = TIMEOUT
        return out


def _fail(code: int):
    raise pyfuse3.FUSEError(code)


def _counted(name: str, function):
    async def handler(*args):
        COUNTS[name] += 1
        return await function(*args)
    return handler


class LowLevelMemFS(pyfuse3.Operations):
    """Every handler does what floor_memfs.MemFS does, by inode."""

    def __init__(self, *, opendir: bool) -> None:
        super().__init__()
        root = Node(pyfuse3.ROOT_INODE, stat.S_IFDIR | 0o755, os.getuid(), os.getgid(), pyfuse3.ROOT_INODE)
        self.inodes = {root.ino: root}
        self.next_ino = root.ino + 1
        self.answer_opendir = opendir
        for name in ("lookup", "forget", "getattr", "setattr", "readlink", "mkdir", "unlink", "rmdir", "symlink",
                     "rename", "link", "open", "read", "write", "flush", "release", "fsync", "opendir", "readdir",
                     "releasedir", "statfs", "create", "getxattr"):
            setattr(self, name, _counted(name, getattr(self, name)))

    def _dir(self, ino: int) -> Node:
        node = self.inodes.get(ino) or _fail(errno.ENOENT)
        return node if node.children is not None else _fail(errno.ENOTDIR)

    def _new(self, parent_ino: int, name: bytes, mode: int, ctx) -> Node:
        parent = self._dir(parent_ino)
        if name in parent.children:
            _fail(errno.EEXIST)
        node = self.inodes[self.next_ino] = Node(self.next_ino, mode, ctx.uid, ctx.gid, parent_ino)
        self.next_ino += 1
        parent.children[name] = node
        if node.children is not None:
            parent.nlink += 1
        parent.touch()
        return node

    async def lookup(self, parent_ino, name, ctx=None):
        parent = self._dir(parent_ino)
        if name == b".":
            return parent.attrs()
        node = self.inodes[parent.parent] if name == b".." else parent.children.get(name)
        if node is None:  # a negative entry, cached by the kernel for TIMEOUT (= negative_timeout)
            out = pyfuse3.EntryAttributes()
            out.st_ino, out.entry_timeout = 0, TIMEOUT
            return out
        return node.attrs()

    async def forget(self, inode_list):
        pass  # like floor_memfs, every node stays in memory

    async def getattr(self, inode, ctx=None):
        return self.inodes[inode].attrs()

    async def setattr(self, inode, attr, fields, fh, ctx):
        node = self.inodes[inode]
        if fields.update_size:
            del node.data[attr.st_size:]
            node.data.extend(bytes(attr.st_size - len(node.data)))
            node.touch()
        if fields.update_mode:
            node.mode = (node.mode & ~0o7777) | (attr.st_mode & 0o7777)
        if fields.update_uid:
            node.uid = attr.st_uid
        if fields.update_gid:
            node.gid = attr.st_gid
        if fields.update_atime:
            node.times[0] = attr.st_atime_ns
        if fields.update_mtime:
            node.times[1] = attr.st_mtime_ns
        return node.attrs()

    async def readlink(self, inode, ctx):
        return self.inodes[inode].target or _fail(errno.EINVAL)

    async def mkdir(self, parent_inode, name, mode, ctx):
        return self._new(parent_inode, name, stat.S_IFDIR | (mode & 0o7777), ctx).attrs()

    async def symlink(self, parent_inode, name, target, ctx):
        node = self._new(parent_inode, name, stat.S_IFLNK | 0o777, ctx)
        node.target = target
        return node.attrs()

    async def link(self, inode, new_parent_inode, new_name, ctx):
        parent, node = self._dir(new_parent_inode), self.inodes[inode]
        if new_name in parent.children:
            _fail(errno.EEXIST)
        parent.children[new_name] = node
        node.nlink += 1
        parent.touch()
        return node.attrs()

    async def unlink(self, parent_inode, name, ctx):
        parent = self._dir(parent_inode)
        node = parent.children.pop(name, None) or _fail(errno.ENOENT)
        node.nlink -= 1
        parent.touch()

    async def rmdir(self, parent_inode, name, ctx):
        parent = self._dir(parent_inode)
        node = parent.children.get(name) or _fail(errno.ENOENT)
        if node.children:
            _fail(errno.ENOTEMPTY)
        del parent.children[name]
        parent.nlink -= 1
        parent.touch()

    async def rename(self, parent_inode_old, name_old, parent_inode_new, name_new, flags, ctx):
        old_parent, new_parent = self._dir(parent_inode_old), self._dir(parent_inode_new)
        node = old_parent.children.get(name_old) or _fail(errno.ENOENT)
        replaced = new_parent.children.get(name_new)
        if replaced is not None and replaced.children:
            _fail(errno.ENOTEMPTY)
        del old_parent.children[name_old]
        new_parent.children[name_new] = node
        node.parent = parent_inode_new
        old_parent.touch()
        new_parent.touch()

    async def open(self, inode, flags, ctx):
        node = self.inodes[inode]
        if flags & os.O_TRUNC:
            node.data = bytearray()
            node.touch()
        return pyfuse3.FileInfo(fh=inode, keep_cache=True)  # = kernel_cache

    async def create(self, parent_inode, name, mode, flags, ctx):
        node = self._new(parent_inode, name, stat.S_IFREG | (mode & 0o7777), ctx)
        return pyfuse3.FileInfo(fh=node.ino, keep_cache=True), node.attrs()

    async def read(self, fh, off, size):
        return bytes(self.inodes[fh].data[off : off + size])

    async def write(self, fh, off, buf):
        node = self.inodes[fh]
        if off > len(node.data):
            node.data.extend(bytes(off - len(node.data)))
        node.data[off : off + len(buf)] = buf
        node.touch()
        return len(buf)

    async def flush(self, fh):
        pass

    async def release(self, fh):
        pass

    async def fsync(self, fh, datasync):
        pass

    async def opendir(self, inode, ctx):
        if not self.answer_opendir:
            _fail(errno.ENOSYS)  # no_opendir: the kernel sends no OPENDIR/RELEASEDIR again, keeps listings
        self._dir(inode)
        return inode

    async def readdir(self, fh, start_id, token):
        node = self._dir(fh)  # fh: the directory's inode (its OPENDIR's answer, or `_readdir_gets_inode`)
        entries = [(b".", node), (b"..", self.inodes[node.parent]), *node.children.items()]  # as floor_memfs
        for index in range(start_id, len(entries)):
            name, child = entries[index]
            if not pyfuse3.readdir_reply(token, name, child.attrs(), index + 1):
                return

    async def releasedir(self, fh):
        pass

    async def statfs(self, ctx):
        out = pyfuse3.StatvfsData()
        out.f_bsize = out.f_frsize = 4096
        out.f_blocks = out.f_bfree = out.f_bavail = out.f_files = out.f_ffree = out.f_favail = 1 << 24
        out.f_namemax = 255
        return out

    async def getxattr(self, inode, name, ctx):
        _fail(errno.ENOSYS)  # as floor_memfs (mfusepy registers no getxattr): the kernel asks once


# -- the session's low-level op table (pyfuse3 keeps it, and the session, in C statics) --------

_SESSION_OPS_OFFSET = 40  # offsetof(struct fuse_session, op), libfuse 3.14/3.15 (as client_py/mount/dircache.py)
_READDIRPLUS = (ctypes.c_void_p, ctypes.c_uint64, ctypes.c_size_t, ctypes.c_int64, ctypes.POINTER(fuse_file_info))
_OPENDIR = (ctypes.c_void_p, ctypes.c_uint64, ctypes.POINTER(fuse_file_info))


def _symbols(library: str) -> dict[str, tuple[int, int]]:
    """(offset, size) of each local symbol of a shared object (binutils' nm: Cython statics are local)."""
    out = {}
    for line in subprocess.run(["nm", "-S", library], capture_output=True, text=True, check=True).stdout.splitlines():
        fields = line.split()
        if len(fields) == 4:
            out[fields[3]] = (int(fields[0], 16), int(fields[1], 16))
    return out


def _load_base(library: str) -> int:
    real = os.path.realpath(library)
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[5] == real and int(fields[2], 16) == 0:
            return int(fields[0].split("-")[0], 16)
    raise RuntimeError(f"{library} is not mapped")


def _session_slot(handler: str) -> ctypes.c_void_p:
    """The slot of the running session's op table that holds pyfuse3's `handler` (after pyfuse3.init)."""
    library = pyfuse3.__file__
    symbols, base = _symbols(library), _load_base(library)
    session = ctypes.c_void_p.from_address(base + symbols["__pyx_v_7pyfuse3_session"][0]).value
    ops_address, ops_size = symbols["__pyx_v_7pyfuse3_fuse_ops"]
    wanted = base + symbols[f"__pyx_f_7pyfuse3_{handler}"][0]
    pointer = ctypes.sizeof(ctypes.c_void_p)
    for index in range(ops_size // pointer):
        if ctypes.c_void_p.from_address(base + ops_address + index * pointer).value == wanted:
            slot = ctypes.c_void_p.from_address(session + _SESSION_OPS_OFFSET + index * pointer)
            if slot.value != wanted:
                raise RuntimeError("libfuse session layout not as expected")
            return slot
    raise RuntimeError(f"{handler} not in pyfuse3's op table")


def _wrap_slot(handler: str, argtypes: tuple, before) -> ctypes._CFuncPtr:
    """Put a wrapper in `handler`'s slot that calls `before(*args)`, then pyfuse3's handler.
    pyfuse3 calls `fuse_session_process_buf` holding the GIL and its handlers expect it:
    the original is called as a PYFUNCTYPE, which keeps the GIL. Returns the wrapper (keep it alive)."""
    slot = _session_slot(handler)
    original = ctypes.PYFUNCTYPE(None, *argtypes)(slot.value)

    def wrapper(*args):
        before(*args)
        original(*args)

    callback = ctypes.CFUNCTYPE(None, *argtypes)(wrapper)
    slot.value = ctypes.cast(callback, ctypes.c_void_p).value
    return callback


def _readdir_gets_inode() -> ctypes._CFuncPtr:
    """Without OPENDIR the kernel sends READDIRPLUS with file handle 0 and pyfuse3 passes
    `readdir` only the handle: make it the directory's inode number."""
    def before(req, ino, size, off, info):
        info.contents.fh = ino
    return _wrap_slot("fuse_readdirplus", _READDIRPLUS, before)


def _opendir_keeps_listings() -> ctypes._CFuncPtr:
    """`--opendir`: the reply asks the kernel to keep the listing (pyfuse3's FileInfo cannot)."""
    def before(req, ino, info):
        info.contents.cache_readdir = 1
        info.contents.keep_cache = 1
    return _wrap_slot("fuse_opendir", _OPENDIR, before)


def mount_options() -> set[str]:
    """The mfusepy floor's libfuse options that exist at this level (timeouts: per reply)."""
    options = {"default_permissions", "nosuid", "nodev", "fsname=wsfs-floor-ll", "subtype=wsfs"}
    if os.getuid() == 0:
        options.add("allow_other")
    return options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mountpoint")
    parser.add_argument("--opendir", action="store_true", help="answer OPENDIR (listing-cache flags set)")
    parser.add_argument("--tasks", type=int, default=1, help="pyfuse3's most worker tasks (its default 99 "
                        "starts and ends a trio task around busy requests: 3,000 creates 0.87-1.02 s of CPU against "
                        "0.75-0.78 s with 1, as the mfusepy floor's single libfuse thread)")
    parser.add_argument("--counts", help="write the requests per handler here (JSON) at unmount")
    args = parser.parse_args()
    pyfuse3.init(LowLevelMemFS(opendir=args.opendir), args.mountpoint, mount_options())
    keep = _opendir_keeps_listings() if args.opendir else _readdir_gets_inode()
    try:
        trio.run(pyfuse3.main, 1, args.tasks)
    finally:
        pyfuse3.close(unmount=False)
        del keep
        if args.counts:
            Path(args.counts).write_text(json.dumps(dict(COUNTS.most_common()), indent=1))


if __name__ == "__main__":
    main()
