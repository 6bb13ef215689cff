"""The mount's requests on libfuse's low-level API, answered by the operations layer.

Each request names inodes; the adapter turns them into the paths `WsfsOperations`
(ops.py, files.py) takes through the inode table (inodes.py), calls the same
operation the path API calls, and replies. So every semantic of the mount (group
commit, spools, pending creates, held attributes, the metadata cache) is the one the
path API has, and what libfuse's path layer did in C is done here the inode way:

- a hard-linked file is one kernel inode (the store's number) with several names;
- no OPENDIR/RELEASEDIR: OPENDIR answers ENOSYS, so the kernel keeps listings by
  protocol and never asks again (`no_opendir`);
- no getattr after each create/mkdir/setattr: the entry and attribute replies come from
  the operation's own answer (the metadata cache);
- an open file whose last name goes (unlink, rename over it) is kept in memory under a
  key no request can name (`inodes.stand_in_key`) until its last close, so `fstat` on the
  descriptor works; no stand-in name ever exists in a directory.

Timeouts are given per reply (a local store: the mount is its only writer, so every
change reaches the kernel through it and the kernel updates what it caches). A remote
mount serves the remote backend's inode numbers (its index's, kept per mount session and
across renames) the same way, keeps names and attributes as long, never an absent name,
and drops what the change stream changed elsewhere by inode (`invalidate.py`).
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import threading
from collections.abc import Callable
from stat import S_ISDIR

import mfusepy

from client_py.mount.lowlevel import binding as b
from client_py.mount.lowlevel.inodes import STAND_IN_PREFIX, InodeTable
from client_py.mount.lowlevel.invalidate import InodeInvalidator
from client_py.mount.ops import UTIME_NOW, UTIME_OMIT, WsfsOperations

log = logging.getLogger("wsfs.mount")

ENC, ERR = "utf-8", "surrogateescape"
lib = b.lib
FuseOSError = mfusepy.FuseOSError
_view = ctypes.pythonapi.PyMemoryView_FromMemory  # (char *, Py_ssize_t, flags) -> memoryview
_view.argtypes, _view.restype = [ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int], ctypes.py_object
_PYBUF_READ = 0x100
_SET_MODE, _SET_UID, _SET_GID, _SET_SIZE = b.SET_MODE, b.SET_UID, b.SET_GID, b.SET_SIZE
_SET_ATIME, _SET_MTIME, _SET_ATIME_NOW, _SET_MTIME_NOW = b.SET_ATIME, b.SET_MTIME, b.SET_ATIME_NOW, b.SET_MTIME_NOW
_SET_TIMES = _SET_ATIME | _SET_MTIME | _SET_ATIME_NOW | _SET_MTIME_NOW


class Stale(FuseOSError):
    """A request named an inode this table does not know (or no longer can name)."""

    def __init__(self) -> None:
        super().__init__(errno.ESTALE)


class LowLevelAdapter:
    """Request handlers (`handlers()`) over one `WsfsOperations` and its inode table."""

    def __init__(self, ops: WsfsOperations, *, timeout: float, keep_cache: bool, negative_timeout: float | None = None):
        self.ops = ops
        self.inodes = InodeTable()
        self.timeout = timeout
        # How long the kernel keeps an absent name (remote mode: 0, a name made elsewhere must appear).
        self.negative_timeout = timeout if negative_timeout is None else negative_timeout
        self.keep_cache = keep_cache  # (kernel_cache: pages survive open)
        self.session: b.Session | None = None  # (set by `serve`: remote mode's invalidations go through it)
        self.req = None  # the request being served (whose caller `_caller` reports)
        # One reply struct of each kind, filled per request (requests are served one at a time:
        # one thread, or `handlers(threads=True)`'s lock); libfuse copies it out before returning.
        self._stat = b.c_stat()
        self._entry_out = b.EntryParam()
        ops.stand_in_prefix = STAND_IN_PREFIX
        ops.caller = self._caller
        ops.stream_invalidator = self._stream_invalidator
        self._lock, self._fill_stat = ops._lock, ops._fill_stat

    # -- plumbing ---------------------------------------------------------------------

    def handlers(self, *, threads: bool = False) -> dict[str, Callable]:
        """name -> the function for its slot (binding.SLOTS): each replies exactly once."""
        lock = threading.RLock() if threads else None  # (the inode table is one thread's otherwise)
        out = {}
        for name in b.SLOTS:
            method = getattr(self, "ll_" + name, None)
            if method is not None:
                out[name] = self._wrap(name, method, lock)
        return out

    def _wrap(self, name: str, method: Callable, lock) -> Callable:
        if name in b.NO_REPLY:
            def plain(*args):
                try:
                    method(*args)
                except Exception:  # noqa: BLE001 - nothing to reply to; libfuse goes on
                    log.exception("%s failed", name)
            return plain
        forget = name.startswith("forget")

        def handler(req, *args):
            try:
                self.req = req
                method(req, *args)
            except Exception as exc:  # noqa: BLE001 - every request gets its reply
                code = exc.errno if isinstance(exc, OSError) and isinstance(exc.errno, int) and exc.errno > 0 else 0
                if not code:
                    log.exception("%s failed", name)
                if forget:
                    lib.fuse_reply_none(req)
                else:
                    lib.fuse_reply_err(req, code or errno.EIO)

        if lock is None:
            return handler

        def locked(*args):
            with lock:
                handler(*args)
        return locked

    def _caller(self) -> tuple[int, int, int]:
        ctx = b.caller(self.req)
        return ctx.uid, ctx.gid, ctx.pid

    def _path(self, ino: int) -> str:
        path = self.inodes.path(ino)
        if path is None:
            raise Stale()
        return path

    def _open_path(self, ino: int, fi) -> str | None:
        """The path of a request that carries a file handle: None when the inode has no name the
        table knows (remote mode: removed or replaced elsewhere, and looked up again), which the
        operations layer serves from the handle (as for an unlinked open file)."""
        path = self.inodes.path(ino)
        if path is None and not fi:
            raise Stale()
        return path

    def _stream_invalidator(self, fuse) -> InodeInvalidator:
        """Remote mode (`WsfsOperations.stream_invalidator`): the change stream's stale paths,
        dropped from the kernel by inode (`invalidate.py`)."""
        ops = self.ops
        inos = ops.ws.index.inos

        def current(path: str) -> int | None:
            node = ops.pending.get(path) if ops.pending else None
            return node.ino if node is not None else inos.get(path)
        return InodeInvalidator(self.session, self.inodes, current, negatives=self.negative_timeout > 0)

    def _child(self, parent: int, name: bytes) -> tuple[str, str]:
        decoded = name.decode(ENC, ERR)
        path = self.inodes.child_path(parent, decoded)
        if path is None:
            raise Stale()
        return decoded, path

    def _entry(self, parent: int, name: str, path: str) -> b.EntryParam:
        """The entry reply for `path` (a new lookup of its inode)."""
        entry = self._entry_out
        entry.attr_timeout = entry.entry_timeout = self.timeout
        if self._fill(path, None, entry.attr):
            raise FuseOSError(errno.ENOENT)
        entry.ino = entry.attr.st_ino
        self.inodes.looked_up(entry.ino, parent, name, S_ISDIR(entry.attr.st_mode))
        return entry

    def _attr(self, req, path: str, fh: int | None) -> None:
        out = self._stat
        if self._fill(path, fh, out):
            raise FuseOSError(errno.ENOENT)
        lib.fuse_reply_attr(req, out, self.timeout)

    def _fill(self, path: str, fh: int | None, out) -> int:
        """`WsfsOperations.fill_stat` without its `fuse_op` pass (it stores nothing, joins no
        group, and a store error is an OSError the handler turns into its errno): the lock
        only. Two of every three requests of an untar end here."""
        with self._lock:
            return self._fill_stat(path, fh, out)

    # -- the connection ---------------------------------------------------------------

    def ll_init(self, userdata, conn) -> None:
        info = b.conn_info(conn)
        self.ops.start(info, None)
        info.want &= ~b.FUSE_CAP_READDIRPLUS_AUTO
        log.info("low-level API: directory listings are kept by the kernel (OPENDIR answered ENOSYS)")

    def ll_destroy(self, userdata) -> None:
        self.ops.destroy(None)

    # -- names and attributes ---------------------------------------------------------

    def ll_lookup(self, req, parent, name) -> None:
        # (`_child` and `_fill` written out: git add + commit of a Django tree sends 41,000)
        decoded = name.decode(ENC, ERR)
        path = self.inodes.child_path(parent, decoded)
        if path is None:
            raise Stale()
        entry = self._entry_out
        entry.attr_timeout = entry.entry_timeout = self.timeout
        with self._lock:
            missing = self._fill_stat(path, None, entry.attr)
        if missing:
            entry.ino = 0  # (a negative entry, kept for entry_timeout)
            entry.entry_timeout = self.negative_timeout
        else:
            entry.ino = entry.attr.st_ino
            self.inodes.looked_up(entry.ino, parent, decoded, S_ISDIR(entry.attr.st_mode))
        lib.fuse_reply_entry(req, entry)

    def ll_forget(self, req, ino, nlookup) -> None:
        self.inodes.forget(ino, nlookup)
        lib.fuse_reply_none(req)

    def ll_forget_multi(self, req, count, forgets) -> None:
        forget = self.inodes.forget
        for index in range(count):
            one = forgets[index]
            forget(one.ino, one.nlookup)
        lib.fuse_reply_none(req)

    def ll_getattr(self, req, ino, fi) -> None:
        fh = fi.contents.fh if fi else None
        path = self.inodes.path(ino)
        if path is None and fh is None:
            # (fstat sends no handle: an open inode that lost its name elsewhere answers from a descriptor's)
            node = self.ops.table.node(ino)
            fh = next((h.fh for h in self.ops.table.handles.values() if h.node is node), None) if node else None
            if fh is None:
                raise Stale()
        out = self._stat  # (`_attr` and `_fill` written out: 47,000 in a Django git add + commit)
        with self._lock:
            missing = self._fill_stat(path, fh, out)
        if missing:
            raise FuseOSError(errno.ENOENT)
        lib.fuse_reply_attr(req, out, self.timeout)

    def ll_setattr(self, req, ino, attr, to_set, fi) -> None:
        """chmod, chown, truncate, utimens in libfuse's path-API order, then the attributes."""
        # (tar sends three a file: written for the common case, module constants)
        path, fh, new, ops = self._open_path(ino, fi), (fi.contents.fh if fi else None), attr.contents, self.ops
        times = None
        if to_set & _SET_TIMES:
            times = (_time(to_set, _SET_ATIME, _SET_ATIME_NOW, new.st_atimespec),
                     _time(to_set, _SET_MTIME, _SET_MTIME_NOW, new.st_mtimespec))
        mode = new.st_mode if to_set & _SET_MODE else None
        uid = new.st_uid if to_set & _SET_UID else -1
        gid = new.st_gid if to_set & _SET_GID else -1
        if not to_set & _SET_SIZE:  # (nearly all: tar's futimens, fchown, fchmod) one pass of the wrapper
            if ops.set_attrs_fill(path, fh, self._stat, mode, uid, gid, times):
                raise FuseOSError(errno.ENOENT)
            lib.fuse_reply_attr(req, self._stat, self.timeout)
            return
        if mode is not None:
            ops.chmod(path, mode)
        if uid != -1 or gid != -1:
            ops.chown(path, uid, gid)
        ops.truncate(path, new.st_size, fh)
        if times is not None:
            ops.utimens(path, times)
        self._attr(req, path, fh)

    def ll_readlink(self, req, ino) -> None:
        lib.fuse_reply_readlink(req, self.ops.readlink(self._path(ino)).encode(ENC, ERR))

    def ll_mknod(self, req, parent, name, mode, rdev) -> None:
        decoded, path = self._child(parent, name)
        self.ops.mknod(path, mode, rdev)
        lib.fuse_reply_entry(req, self._entry(parent, decoded, path))

    def ll_mkdir(self, req, parent, name, mode) -> None:
        decoded, path = self._child(parent, name)
        self.ops.mkdir(path, mode)
        lib.fuse_reply_entry(req, self._entry(parent, decoded, path))

    def ll_symlink(self, req, target, parent, name) -> None:
        decoded, path = self._child(parent, name)
        self.ops.symlink(path, target.decode(ENC, ERR))
        lib.fuse_reply_entry(req, self._entry(parent, decoded, path))

    def ll_link(self, req, ino, new_parent, new_name) -> None:
        decoded, path = self._child(new_parent, new_name)
        self.ops.link(path, self._path(ino))
        lib.fuse_reply_entry(req, self._entry(new_parent, decoded, path))

    def ll_unlink(self, req, parent, name) -> None:
        decoded, path = self._child(parent, name)
        with self.ops._lock:  # (the group commits nothing between a hide and what follows)
            if not self._hide_if_open(parent, decoded, path):
                self.ops.unlink(path)
            self.inodes.unlinked(parent, decoded)
        lib.fuse_reply_err(req, 0)

    def _hide_if_open(self, parent: int, name: str, path: str) -> bool:
        """The name is an open file's last: the store loses the name now and the operations
        layer keeps the file under a stand-in key until its last close (`ll_release`)."""
        ino = self.inodes.child(parent, name)
        if ino is None or self.ops.table.node(ino) is None:
            return False
        out = self._stat
        if self._fill(path, None, out) or out.st_nlink > 1 or out.st_ino != ino:
            return False
        node = self.inodes.nodes[ino]
        key = self.inodes.hide(node)
        try:
            self.ops.rename(path, key)  # (ops.py `_hide`: the name leaves the store at once)
        except BaseException:
            self.inodes.unhide(node)
            raise
        return True

    def ll_rmdir(self, req, parent, name) -> None:
        decoded, path = self._child(parent, name)
        self.ops.rmdir(path)
        self.inodes.unlinked(parent, decoded)
        lib.fuse_reply_err(req, 0)

    def ll_rename(self, req, parent, name, new_parent, new_name, flags) -> None:
        decoded, path = self._child(parent, name)
        new_decoded, new_path = self._child(new_parent, new_name)
        exchange = bool(flags & 2)  # RENAME_EXCHANGE
        with self.ops._lock:  # (hiding a replaced open file and the rename: one group)
            if not flags and self._hide_if_open(new_parent, new_decoded, new_path):
                self.inodes.unlinked(new_parent, new_decoded)
            self.ops.rename(path, new_path, flags)
            self.inodes.renamed(parent, decoded, new_parent, new_decoded, exchange=exchange)
        lib.fuse_reply_err(req, 0)

    def ll_readdir(self, req, ino, size, offset, fi) -> None:
        entries = self.ops.readdir(self._path(ino), 0)
        buf, used, st = ctypes.create_string_buffer(size), 0, self._stat
        base, add = ctypes.addressof(buf), lib.fuse_add_direntry
        for index in range(offset, len(entries)):
            name, attrs, _ = entries[index]
            st.st_ino, st.st_mode = attrs["st_ino"], attrs["st_mode"]
            need = add(req, base + used, size - used, name.encode(ENC, ERR), st, index + 1)
            if need > size - used:
                break
            used += need
        lib.fuse_reply_buf(req, buf, used)

    def ll_opendir(self, req, ino, fi) -> None:
        # ENOSYS: the kernel sends no OPENDIR/RELEASEDIR again and keeps every listing
        # (FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR), dropping one when the directory changes.
        lib.fuse_reply_err(req, errno.ENOSYS)

    def ll_fsyncdir(self, req, ino, datasync, fi) -> None:
        self.ops.fsyncdir(self._path(ino), datasync, 0)
        lib.fuse_reply_err(req, 0)

    def ll_statfs(self, req, ino) -> None:
        lib.fuse_reply_statfs(req, b.c_statvfs(**self.ops.statfs("/")))

    # -- open files -------------------------------------------------------------------

    def ll_open(self, req, ino, fi) -> None:
        info = fi.contents
        info.fh = self.ops.open(self._path(ino), info.flags)
        info.keep_cache = self.keep_cache
        lib.fuse_reply_open(req, fi)

    def ll_create(self, req, parent, name, mode, fi) -> None:
        decoded, path = self._child(parent, name)
        info = fi.contents
        info.fh = self.ops.create(path, mode, info.flags)
        info.keep_cache = self.keep_cache
        try:
            entry = self._entry(parent, decoded, path)
        except BaseException:
            self.ops.release(path, info.fh)
            raise
        lib.fuse_reply_create(req, entry, fi)

    def ll_read(self, req, ino, size, offset, fi) -> None:
        data = self.ops.read(self._open_path(ino, fi), size, offset, fi.contents.fh)
        if type(data) is not bytes:
            data = bytes(data)
        lib.fuse_reply_buf(req, data, len(data))

    def ll_write(self, req, ino, buf, size, offset, fi) -> None:
        # The kernel's buffer as a view (one C call: no ctypes array type per size), copied
        # once, into the spool.
        data = _view(buf, size, _PYBUF_READ)
        lib.fuse_reply_write(req, self.ops.write(self._open_path(ino, fi), data, offset, fi.contents.fh))

    def ll_flush(self, req, ino, fi) -> None:
        # A local store's flush of a descriptor whose inode holds no unwritten bytes does nothing
        # (`OpenFileOps.flush`: nothing to commit, no queued push to check): answered here, without
        # the operations layer's wrapper (git opens, reads, flushes and closes every file it adds).
        # (`dirty` becomes True only by a write, which this thread, or the handlers' lock, serializes.)
        handle = self.ops.table.handles.get(fi.contents.fh) if self.ops.cache.enabled else None
        if handle is None or handle.node.dirty:
            self.ops.flush(self._open_path(ino, fi), fi.contents.fh)
        lib.fuse_reply_err(req, 0)

    def ll_fsync(self, req, ino, datasync, fi) -> None:
        self.ops.fsync(self._open_path(ino, fi), datasync, fi.contents.fh)
        lib.fuse_reply_err(req, 0)

    def ll_release(self, req, ino, fi) -> None:
        path = self._open_path(ino, fi)
        self.ops.release(path, fi.contents.fh)
        node = self.inodes.nodes.get(ino)
        if node is not None and path is not None and node.stand_in == path and self.ops.table.node(ino) is None:
            self.ops.unlink(path)  # (the last close of a file with no name left: it is gone)
            self.inodes.unhide(node)
        lib.fuse_reply_err(req, 0)


def _time(to_set: int, bit: int, now_bit: int, spec) -> int:
    """A setattr time as the operations layer's utimens takes it (UTIME_NOW / UTIME_OMIT markers)."""
    if to_set & now_bit:
        return UTIME_NOW
    if to_set & bit:
        return spec.tv_sec * 1_000_000_000 + spec.tv_nsec  # (`b.timespec_ns`, written out: tar's futimens)
    return UTIME_OMIT


def mount_options(*, debug: bool = False) -> list[bytes]:
    """libfuse's arguments: the path API's mount options that exist at this level (timeouts,
    use_ino and kernel_cache are per reply here)."""
    options = "default_permissions,nosuid,nodev,fsname=wsfs,subtype=wsfs"
    options += ",allow_other" if os.getuid() == 0 else ""
    return [b"wsfs", b"-o", options.encode(), *([b"-d"] if debug else [])]


def serve(ops: WsfsOperations, mountpoint: str, *, timeout: float, keep_cache: bool, threads: bool = False,
          debug: bool = False, negative_timeout: float | None = None) -> None:
    """Mount `ops` at `mountpoint` on the low-level API and serve until unmounted or signalled."""
    adapter = LowLevelAdapter(ops, timeout=timeout, keep_cache=keep_cache, negative_timeout=negative_timeout)
    session = adapter.session = b.Session(mount_options(debug=debug), adapter.handlers(threads=threads))
    try:
        session.mount(mountpoint)
        session.loop(threads=threads)
    finally:
        session.close()
