"""A do-nothing, in-memory FUSE filesystem: the floor for any Python FUSE daemon.

`bench_mount.py` runs it as a third target beside the wsfs mount and the
disk. It uses the same binding (mfusepy over libfuse 3), the same libfuse
options (`client_py.mount.runner.fuse_options`) and the same single thread
as `wsfs mount`, but keeps everything in dicts: no store, no SQLite, no
durability. What it costs is what the kernel round trips, libfuse and
Python's ctypes callbacks cost on this machine; wsfs cannot be faster.

    .venv/bin/python bench/floor_memfs.py MOUNTPOINT     # foreground; fusermount3 -u to stop

(The low-level API beside it: floor_lowlevel.py on pyfuse3 uses 1.3-2.6x
this floor's CPU, floor_lowlevel_ctypes.py on ctypes 0.4-0.6x; see
docs/mount.md, "A low-level binding: the floor measured".)
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import sys
import time
from pathlib import Path

import mfusepy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from client_py.mount.dircache import keep_listings  # noqa: E402
from client_py.mount.notify import current_fuse  # noqa: E402
from client_py.mount.runner import fuse_options  # noqa: E402


class Node:
    __slots__ = ("ino", "mode", "uid", "gid", "nlink", "data", "times", "children", "target")

    def __init__(self, ino: int, mode: int, uid: int, gid: int):
        self.ino, self.mode, self.uid, self.gid = ino, mode, uid, gid
        self.nlink = 2 if stat.S_ISDIR(mode) else 1
        self.data = bytearray()
        now = time.time_ns()
        self.times = [now, now, now]  # atime, mtime, ctime
        self.children: dict[str, Node] | None = {} if stat.S_ISDIR(mode) else None
        self.target = ""

    def touch(self) -> None:
        self.times[1] = self.times[2] = time.time_ns()


def _fail(code: int):
    raise mfusepy.FuseOSError(code)


class MemFS(mfusepy.Operations):
    use_ns = True

    def __init__(self, mountpoint: str) -> None:
        self.root = Node(1, stat.S_IFDIR | 0o755, os.getuid(), os.getgid())
        self.inodes = {1: self.root}
        self.next_ino = 2
        self.mountpoint = mountpoint
        self.kept_listings = None

    def init_with_config(self, conn, config) -> None:
        # Directory listings kept by the kernel, as the wsfs mount keeps them (dircache.py).
        self.kept_listings = keep_listings(current_fuse(), self.mountpoint)

    # -- helpers ------------------------------------------------------------

    def _get(self, path: str) -> Node:
        node = self.root
        for part in path.strip("/").split("/") if path != "/" else ():
            if node.children is None:
                _fail(errno.ENOTDIR)
            node = node.children.get(part) or _fail(errno.ENOENT)
        return node

    def _parent(self, path: str) -> tuple[Node, str]:
        head, _, name = path.rpartition("/")
        parent = self._get(head or "/")
        if parent.children is None:
            _fail(errno.ENOTDIR)
        return parent, name

    def _new(self, path: str, mode: int) -> Node:
        parent, name = self._parent(path)
        if name in parent.children:
            _fail(errno.EEXIST)
        uid, gid, _ = mfusepy.fuse_get_context()
        node = self.inodes[self.next_ino] = Node(self.next_ino, mode, uid, gid)
        self.next_ino += 1
        parent.children[name] = node
        if node.children is not None:
            parent.nlink += 1
        parent.touch()
        return node

    # -- operations -----------------------------------------------------------

    def getattr(self, path, fh=None):
        node = self.inodes[fh] if path is None else self._get(path)
        size = len(node.target) if node.target else len(node.data)
        return {
            "st_ino": node.ino, "st_mode": node.mode, "st_nlink": node.nlink, "st_uid": node.uid,
            "st_gid": node.gid, "st_size": size, "st_atime": node.times[0], "st_mtime": node.times[1],
            "st_ctime": node.times[2], "st_blocks": (size + 511) // 512, "st_blksize": 4096,
        }

    def statfs(self, path):
        return {"f_bsize": 4096, "f_frsize": 4096, "f_blocks": 1 << 24, "f_bfree": 1 << 24, "f_bavail": 1 << 24,
                "f_files": 1 << 24, "f_ffree": 1 << 24, "f_favail": 1 << 24, "f_namemax": 255}

    def create(self, path, mode, fi=None):
        return self._new(path, stat.S_IFREG | (mode & 0o7777)).ino

    def open(self, path, flags):
        node = self._get(path)
        if flags & os.O_TRUNC:
            node.data = bytearray()
            node.touch()
        return node.ino

    def read(self, path, size, offset, fh):
        return bytes(self.inodes[fh].data[offset : offset + size])

    def write(self, path, data, offset, fh):
        node = self.inodes[fh]
        if offset > len(node.data):
            node.data.extend(bytes(offset - len(node.data)))
        node.data[offset : offset + len(data)] = data
        node.touch()
        return len(data)

    def truncate(self, path, length, fh=None):
        node = self.inodes[fh] if path is None else self._get(path)
        del node.data[length:]
        node.data.extend(bytes(length - len(node.data)))
        node.touch()
        return 0

    def flush(self, path, fh):
        return 0

    def release(self, path, fh):
        return 0

    def fsync(self, path, datasync, fh):
        return 0

    def mkdir(self, path, mode):
        self._new(path, stat.S_IFDIR | (mode & 0o7777))
        return 0

    def symlink(self, target, source):  # mfusepy: `target` is the new link, `source` its content
        self._new(target, stat.S_IFLNK | 0o777).target = source
        return 0

    def readlink(self, path):
        return self._get(path).target or _fail(errno.EINVAL)

    def link(self, target, source):  # mfusepy: `target` is the new name
        node = self._get(source)
        parent, name = self._parent(target)
        if name in parent.children:
            _fail(errno.EEXIST)
        parent.children[name] = node
        node.nlink += 1
        parent.touch()
        return 0

    def unlink(self, path):
        parent, name = self._parent(path)
        node = parent.children.pop(name, None) or _fail(errno.ENOENT)
        node.nlink -= 1
        parent.touch()
        return 0

    def rmdir(self, path):
        parent, name = self._parent(path)
        node = parent.children.get(name) or _fail(errno.ENOENT)
        if node.children:
            _fail(errno.ENOTEMPTY)
        del parent.children[name]
        parent.nlink -= 1
        parent.touch()
        return 0

    def rename(self, old, new, flags=0):
        old_parent, old_name = self._parent(old)
        new_parent, new_name = self._parent(new)
        node = old_parent.children.get(old_name) or _fail(errno.ENOENT)
        replaced = new_parent.children.get(new_name)
        if replaced is not None and replaced.children:
            _fail(errno.ENOTEMPTY)
        del old_parent.children[old_name]
        new_parent.children[new_name] = node
        old_parent.touch()
        new_parent.touch()
        return 0

    def chmod(self, path, mode):
        node = self._get(path)
        node.mode = (node.mode & ~0o7777) | (mode & 0o7777)
        return 0

    def chown(self, path, uid, gid):
        node = self._get(path)
        node.uid = uid if uid != -1 else node.uid
        node.gid = gid if gid != -1 else node.gid
        return 0

    def utimens(self, path, times=None):
        now = time.time_ns()
        self._get(path).times[:2] = times if times is not None else (now, now)
        return 0

    def readdir(self, path, fh):
        node = self._get(path)
        entries = [(".", {"st_ino": node.ino, "st_mode": node.mode}, 0), ("..", {"st_ino": 1, "st_mode": node.mode}, 0)]
        entries += [(name, {"st_ino": c.ino, "st_mode": c.mode}, 0) for name, c in node.children.items()]
        return entries


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    mfusepy.FUSE(MemFS(sys.argv[1]), sys.argv[1], foreground=True, nothreads=True, **fuse_options(local=True))


if __name__ == "__main__":
    main()
