"""FUSE operations over a `vfs.surface.MountBackend`: a local store or the remote backend.

Every operation runs under one lock: a Workspace is not thread-safe, and
helper threads (group commit, remote change stream) touch it too. Store
errors are `OSError`s with the errno Linux would give; they reach the caller
as `FuseOSError(errno)`.

Content writes go to the inode's `Spool` (see `handles.py`) and are
committed with one `write_file` on flush, fsync or release (`files.py`, the
open-file operations). Mutations join the open group transaction
(`group.py`), committed when the burst pauses and at once on fsync; the
wrapper that runs every operation is `fuseop.fuse_op`.
"""

from __future__ import annotations

import errno
import logging
import os
import stat as stat_mod
import struct
import threading
import time
from collections.abc import Callable

import mfusepy

import vfs
from client_py.mount import dircache
from client_py.mount.files import OpenFileOps
from client_py.mount.fuseop import fuse_op
from client_py.mount.group import GroupCommit
from client_py.mount.handles import OpenNode, OpenTable
from client_py.mount.held import HeldAttrs, holdable
from client_py.mount.listing import ListingOps
from client_py.mount.metacache import MetaCache, name_count, restat
from client_py.mount.notify import LinkNames, StreamInvalidator, current_fuse
from vfs.surface import MountBackend

log = logging.getLogger("wsfs.mount")

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
BLKSIZE = 128 * 1024
MAX_IO = 1 << 20
FUSE_CAP_AUTO_INVAL_DATA = 1 << 12  # libfuse3 fuse_common.h


def _stat_packer() -> Callable | None:
    """`struct.Struct.pack_into` for libfuse's `struct stat` (mfusepy's `c_stat`) when its layout is
    Linux x86-64's (st_dev .. the three timespecs, in order), else None: fill field by field."""
    layout = [(name, getattr(mfusepy.c_stat, name).offset) for name, *_ in mfusepy.c_stat._fields_][:14]
    expected = [("st_dev", 0), ("st_ino", 8), ("st_nlink", 16), ("st_mode", 24), ("st_uid", 28), ("st_gid", 32),
                ("__pad0", 36), ("st_rdev", 40), ("st_size", 48), ("st_blksize", 56), ("st_blocks", 64),
                ("st_atimespec", 72), ("st_mtimespec", 88), ("st_ctimespec", 104)]
    if layout != expected or struct.calcsize("=QQQIIIiQqqqqqqqqq") != 120:
        return None
    return struct.Struct("=QQQIIIiQqqqqqqqqq").pack_into


_PACK_STAT = _stat_packer()


class WsfsOperations(ListingOps, OpenFileOps, mfusepy.Operations):
    """The FUSE surface of one workspace store."""

    use_ns = True
    cache_dirs = False  # the kernel may cache directory listings (a local store: this mount is its only writer)
    follows_stream = False  # remote mode: the kernel's caches are dropped as the change stream reports changes
    mountpoint = ""  # where libfuse mounted us (set by the runner; dircache checks the session against it)
    # The name libfuse's path API gives an open file it must unlink (see `_hide`); the low-level
    # adapter (lowlevel/adapter.py) hides files itself, under keys no request can name.
    stand_in_prefix = ".fuse_hidden"
    # Remote mode: what drops the kernel's copy of what the change stream changed, made at INIT
    # (`fuse`: the path API's `struct fuse *`); the low-level adapter gives its own (by inode).
    stream_invalidator: Callable[[int | None], StreamInvalidator] = StreamInvalidator

    def __init__(self, open_workspace: Callable[[], MountBackend], *, statfs_dir: str = "/",
                 commit: dict[str, float] | None = None):
        self._open_workspace = open_workspace
        self._statfs_dir = statfs_dir
        # The backend is typed by its protocol. Two optional members stay duck-typed,
        # looked up with hasattr/getattr, because a protocol cannot say "may be absent":
        # `transaction()` (a local store only: group commit, see group.py) and
        # `commit_file()` (the remote backend only: a push against a base, see _commit).
        self.ws: MountBackend | None = None
        self._lock = threading.RLock()
        self.table = OpenTable()
        self.links = LinkNames()
        self.group = GroupCommit(self._lock, **(commit or {}))  # (`idle`, `max_age`: wsfs mount --commit-*)
        self._dir_inos: dict[str, int] | None = None  # see _dir_ino
        self.cache = MetaCache()  # stats and listings between requests (a local store only)
        # (path, Stat) a create just produced, for the getattr libfuse sends next
        # (remote mode; a local store keeps it in `cache`). Any mutation clears it.
        self.fresh: tuple[str, vfs.Stat] | None = None
        # Open files whose last name was removed: libfuse's `.fuse_hiddenXXXX` stand-in
        # name -> inode. The store removes the name at once; the stand-in lives only
        # here, so fstat on the descriptor works and no stand-in reaches the store.
        self.hidden: dict[str, int] = {}
        # Files created here and not in the store yet (a local store: `_create_pending`): path -> node.
        self.pending: dict[str, OpenNode] = {}
        self.reserves = False  # create with a reserved inode number (a local store: `Workspace.reserve_ino`)
        self.defers_close = False  # a local store: small created files stay pending after close (files.py)
        self.holds = False  # a local store: a directory's chmod/chown/utimens are held (held.py)
        self.batches = os.environ.get("WSFS_MOUNT_BATCH", "1") != "0"  # closed files stored together (files.py)
        # Directories' held attribute changes, by path (held.py): stored at the group commit or before
        # a request that does not know about them, after the pending files made in them before.
        self.held: dict[str, HeldAttrs] = {}
        self._kept_listings = None  # the low-level opendir wrapper (dircache.py), kept alive while mounted
        # (uid, gid, pid) of the process making the current request: libfuse's path API keeps it
        # in its context; the low-level adapter replaces this with the request's own.
        self.caller: Callable[[], tuple[int, int, int]] = mfusepy.fuse_get_context

    # -- lifecycle -----------------------------------------------------------

    def init_with_config(self, conn, config) -> None:
        self.start(conn, current_fuse())

    def start(self, conn, fuse: int | None) -> None:
        """Open the store and set the connection up (libfuse's INIT). `fuse`: the path API's
        `struct fuse *` (for its path invalidations), None on the low-level API."""
        # 1 MiB writes and readahead: 8x fewer round trips than libfuse's 128 KiB.
        if conn is not None:
            conn.max_write = MAX_IO
            conn.max_readahead = MAX_IO
        self.links.fuse = fuse
        if self.cache_dirs and self._kept_listings is None:
            self._kept_listings = dircache.keep_listings(self.links.fuse, self.mountpoint)
        with self._lock:
            if self.ws is None:
                self.ws = self._open_workspace()
                self.group.start(self.ws)
                if hasattr(self.ws, "transaction"):  # a local store: only this mount changes it
                    self._dir_inos = {}
                    self.cache.enabled = True
                    if conn is not None:
                        # The kernel sees every change as it happens, so it need not drop a
                        # file's page cache whenever its mtime moves (writes move it).
                        conn.want &= ~FUSE_CAP_AUTO_INVAL_DATA
                if self.follows_stream and hasattr(self.ws, "on_change"):
                    self.ws.on_change = self.stream_invalidator(self.links.fuse)
                # A create makes no store call: the file is stored with its content at close.
                self.reserves = hasattr(self.ws, "reserve_ino") and os.environ.get("WSFS_MOUNT_RESERVE", "1") != "0"
                # ... and a small one stays pending past its close, until the group commits.
                self.defers_close = (self.reserves and self.cache.enabled
                                     and os.environ.get("WSFS_MOUNT_DEFER", "1") != "0")
                self.holds = self.cache.enabled and os.environ.get("WSFS_MOUNT_HOLD", "1") != "0"
                self.group.before_commit = self._before_group_commit
            log.info("mounted %s at revision %d", self.ws.path, self.ws.rev)

    def destroy(self, path: str) -> None:
        self.group.stop()
        with self._lock:
            if self.ws is None:
                return
            if isinstance(getattr(self.ws, "on_change", None), StreamInvalidator):
                self.ws.on_change.stop()  # (remote mode: the change stream stops calling libfuse)
            self.group.begin()
            self.store_held()
            self.store_pending()
            for node in self.table.dirty_nodes():
                self._commit_by_ino(node)
            self.group.commit()
            log.info("unmounted at revision %d", self.ws.rev)
            self.ws.close()
            self.ws = None

    # -- attributes ------------------------------------------------------------

    @fuse_op(keeps_pending=True, keeps_held=True)
    def fill_stat(self, path: str | None, fh: int | None, out) -> int:
        """getattr straight into libfuse's `struct stat`: 0, or -ENOENT without raising.

        `runner._Fuse.getattr_fuse_3` calls it in place of mfusepy's dict-based getattr:
        the kernel asks for attributes more than for anything else (git: 1,900 of 3,900
        requests, a third of them misses), so this skips the dict, copy and exceptions."""
        return self._fill_stat(path, fh, out)

    def _fill_stat(self, path: str | None, fh: int | None, out) -> int:
        """`fill_stat`'s body (the caller holds the lock). The per-request path of every
        getattr, lookup and setattr reply: written out, not through helpers (~65,000 calls
        in a Django untar)."""
        if path is None or path in self.hidden:
            st = self._lookup_stat(None, fh, path)
        elif self.fresh is None and not (self.pending and path in self.pending):
            # (`_lookup_stat`'s last step, its common case written out: two calls fewer for each of
            # the ~90,000 lookups and getattrs of a Django `git add`)
            st = self.cache.stats.get(path) or self.cache.stat(path, self._load_stat, self._names_in)
        else:
            st = self._lookup_stat(path, fh)
        if st is None:
            return -errno.ENOENT  # (also for a free stand-in name: libfuse probes for one)
        node = self.table.nodes.get(st.ino)
        # Size and times as programs must see them: buffered writes and truncates count at once
        # (a write or ftruncate moves ctime as well as mtime).
        if node is not None and node.dirty and node.spool is not None:
            size, mtime_ns = node.spool.size, node.mtime_ns
            ctime_ns = max(st.ctime_ns, mtime_ns)
        else:
            size, mtime_ns, ctime_ns = st.size, st.mtime_ns, st.ctime_ns
        if _PACK_STAT is not None:  # (one C call for the 16 fields: ~4x fewer bytecodes than setting each)
            atime_ns = st.atime_ns
            _PACK_STAT(out, 0, 0, st.ino, st.nlink, st.mode, st.uid, st.gid, 0, st.rdev, size, BLKSIZE,
                       (size + 511) // 512, atime_ns // 1_000_000_000, atime_ns % 1_000_000_000,
                       mtime_ns // 1_000_000_000, mtime_ns % 1_000_000_000, ctime_ns // 1_000_000_000,
                       ctime_ns % 1_000_000_000)
            return 0
        out.st_ino, out.st_mode, out.st_nlink = st.ino, st.mode, st.nlink
        out.st_uid, out.st_gid, out.st_rdev = st.uid, st.gid, st.rdev
        out.st_size, out.st_blocks, out.st_blksize = size, (size + 511) // 512, BLKSIZE
        for spec, ns in ((out.st_atimespec, st.atime_ns), (out.st_mtimespec, mtime_ns), (out.st_ctimespec, ctime_ns)):
            spec.tv_sec, spec.tv_nsec = divmod(ns, 1_000_000_000)
        return 0

    @fuse_op(mutates=True, targeted=True, keeps_pending=True, keeps_held=True)
    def set_attrs_fill(self, path: str, fh: int | None, out, mode: int | None = None, uid: int = -1, gid: int = -1,
                       times: tuple[int, int] | None = None) -> int:
        """The low-level SETATTR without a size: chmod, chown, utimens in libfuse's order and
        the attributes they left (`_fill_stat`), under one pass of `fuse_op` instead of one
        per step and one for the reply (`tar -x` sends three per file: futimens, fchown,
        fchmod). The same steps, the same group transaction, as the separate calls."""
        if mode is not None:
            self.chmod.__wrapped__(self, path, mode)
        if uid != -1 or gid != -1:
            self.chown.__wrapped__(self, path, uid, gid)
        if times is not None:
            self.utimens.__wrapped__(self, path, times)
        return self._fill_stat(path, fh, out)

    def _named(self, path: str | None) -> str | None:
        """`path`, or None for a stand-in name of an open file with no name left."""
        return None if path is None or path in self.hidden else path

    def _lookup_stat(self, path: str | None, fh: int | None, given: str | None = None) -> vfs.Stat | None:
        if path is None:  # an open file whose last name is gone: its last known state
            node = self.table.get(fh).node if fh is not None else self.table.node(self.hidden.get(given, -1))
            return None if node is None else node.stat
        fresh, self.fresh = self.fresh, None
        if fresh is not None and fresh[0] == path:
            return fresh[1]
        if self.pending and path in self.pending:
            return self.pending[path].stat
        return self.cache.stat(path, self._load_stat, self._names_in)

    def _names_in(self, path: str) -> set[str]:
        return {entry.name for entry in self.ws.readdir(path)}

    def _load_stat(self, path: str) -> vfs.Stat | None:
        st = self.ws.lstat_if_exists(path)
        if st is not None:
            self.links.seen(st.ino, name_count(st), path)
        return st

    @fuse_op(mutates=True, targeted=True, keeps_pending=True, keeps_held=True)
    def chmod(self, path: str, mode: int) -> int:
        if self._named(path) is None:
            return 0  # fchmod/fchown/futimens on a file with no name left: nothing to keep
        if self.pending and self.chattr_pending(path, mode=mode):
            return 0
        if self._hold(path, mode=mode):
            return 0
        self._store_before_attrs(path)
        self._attributes_changed(path, self.ws.chmod(path, mode & 0o7777))
        return 0

    @fuse_op(mutates=True, targeted=True, keeps_pending=True, keeps_held=True)
    def chown(self, path: str, uid: int, gid: int) -> int:
        if self._named(path) is None:
            return 0  # fchmod/fchown/futimens on a file with no name left: nothing to keep
        if self.pending and self.chattr_pending(path, uid=uid, gid=gid):
            return 0
        if self._hold(path, uid=uid, gid=gid):
            return 0
        self._store_before_attrs(path)
        # FUSE hands us the inode itself: never follow a symlink here.
        self._attributes_changed(path, self.ws.chown(path, uid, gid, follow_symlinks=False))
        return 0

    def _hold(self, path: str, **changes) -> bool:
        """chmod/chown/utimens of a directory, held in the mount (held.py): answered from
        the cache, stored with the next ones on it as one change. False: not held.

        Nothing is stored here: the files still pending in the directory were made before
        this change and `store_held` stores them before it (their stamps would move the held
        times); a create or mkdir in a held directory stores its changes first (`holds_dir`).
        So `tar -x`, which sets each directory's attributes as it leaves it, no longer stores
        the pending files at every directory (batches of ~3 files in a Django untar)."""
        if not self.holds:
            return False
        held = self.held.get(path)
        if held is None:
            st = self.cache.stat(path, self._load_stat)
            if not holdable(st, changes.get("atime_ns"), changes.get("mtime_ns")):
                return False
            held = self.held[path] = HeldAttrs(path, st)
        elif not holdable(held.stat, changes.get("atime_ns"), changes.get("mtime_ns")):
            self.store_held()
            return False
        self.cache.put(path, held.apply(time.time_ns(), **changes))  # (a directory: one name, nothing cleared)
        return True

    def holds_dir(self, path: str) -> None:
        """A name is added in `path`'s directory (create, mkdir): if that directory's attributes
        are held, store them first (the new name moves its times after the held ones)."""
        if (path.rpartition("/")[0] or "/") in self.held:
            self.store_held()

    def store_held(self) -> None:
        """Store the attribute changes held for directories (one `set_attrs` each), after the
        files still pending in them: those were made before the changes (see `_hold`)."""
        if not self.held:
            return
        if self.pending:
            self.store_pending(inside=self.held)
        while self.held:
            path = next(iter(self.held))
            held = self.held.pop(path)
            self.cache.put(path, self.ws.set_attrs(path, **held.changes))

    def _store_before_attrs(self, path: str) -> None:
        """Before a chmod, chown or utimens of a stored node: what the mount holds, stored
        first (`store_all`), unless the node is a local store's file, symlink or special node.
        Its change moves no directory's times and names no pending file (a pending name is
        answered by `chattr_pending`/`touch_pending`), so the closed files kept pending
        (`_keep_closed`) stay in their batch. git freshens an existing object with
        utime(2) (788 in the Django `git add`): each stored every pending file, ~580 small
        `write_new_files` batches a commit."""
        if self.defers_close:
            st = self.cache.stat(path, self._load_stat)
            if st is not None and st.kind != "dir":
                return
        self.store_all()

    def store_all(self) -> None:
        """Store what the mount holds (held attributes, pending files), as `fuse_op` does before
        a request that knows about neither."""
        if self.held:
            self.store_held()
        if self.pending:
            self.store_pending()

    def _before_group_commit(self) -> None:
        """What the mount holds goes into the group before it commits: held attributes,
        then closed pending files (made after them: see `fuse_op`). A failure here reaches
        no caller; logged."""
        try:
            self.store_held()
        except Exception:  # noqa: BLE001 - see the docstring
            log.exception("held attribute changes could not be stored")
        if self.defers_close:
            self.store_closed()

    def _attributes_changed(self, path: str, st: vfs.Stat) -> None:
        """After chmod/chown/utimens: the new attributes (the store's answer to the change)
        are what the next getattr asks for. (The kernel never chmods a symlink, so a
        chmod that follows one is not seen here: its answer is the path's own node.)"""
        self.cache.forget(path, nlink=name_count(st))
        self.cache.put(path, st)
        self.links.changed(st.ino, path)

    @fuse_op(mutates=True, targeted=True, keeps_pending=True, keeps_held=True)
    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        if self._named(path) is None:
            return 0  # fchmod/fchown/futimens on a file with no name left: nothing to keep
        now = time.time_ns()
        atime_ns, mtime_ns = times if times is not None else (now, now)
        if self.pending and self.touch_pending(path, _utime_value(atime_ns, now), _utime_value(mtime_ns, now), now):
            return 0
        if self._hold(path, atime_ns=_utime_value(atime_ns, now), mtime_ns=_utime_value(mtime_ns, now)):
            return 0
        self._store_before_attrs(path)
        st = self.cache.stat(path, self.ws.lstat)
        node = self.table.node(st.ino)
        if node is not None and node.dirty:
            self._commit(node, path)  # the new content must not overwrite the mtime set here
        self._attributes_changed(path, self.ws.set_times(
            path, atime_ns=_utime_value(atime_ns, now), mtime_ns=_utime_value(mtime_ns, now), follow_symlinks=False
        ))  # fmt: skip
        return 0

    @fuse_op
    def statfs(self, path: str) -> dict:
        disk = os.statvfs(self._statfs_dir)
        return {
            "f_bsize": BLKSIZE, "f_frsize": disk.f_frsize, "f_blocks": disk.f_blocks, "f_bfree": disk.f_bfree,
            "f_bavail": disk.f_bavail, "f_files": 1 << 32, "f_ffree": 1 << 31, "f_favail": 1 << 31, "f_namemax": 255,
        }  # fmt: skip

    # -- names -------------------------------------------------------------------

    @fuse_op(mutates=True, targeted=True, keeps_pending=True, keeps_held=True)
    def mkdir(self, path: str, mode: int) -> int:
        # Pending files are not the new directory's business (its parent's times: see `_create_pending`),
        # unless one has its name (the store answers EEXIST); remote mode stores them, as before.
        if self.held:
            self.holds_dir(path)
        if self.pending and (path in self.pending or not self.defers_close):
            self.store_pending()
        with self._as_caller():
            st = self.ws.mkdir(path, mode=mode & 0o7777)
        self.cache.forget(path, added=True, parent_ns=self._dir_times(), subdirs=1)
        self.cache.new_dir(path)
        if st is not None:  # (a local store's answer: the getattr that follows needs no lookup)
            self.cache.put(path, st)
        return 0

    @fuse_op(mutates=True, targeted=True)
    def mknod(self, path: str, mode: int, dev: int) -> int:
        """FIFOs, sockets (bind(2) on a Unix socket) and device nodes: kept as nodes
        with their type and device number. The kernel never sends their I/O here:
        a FIFO is a pipe in the opener's kernel, and the mount is `nodev`."""
        with self._as_caller():
            self.ws.mknod(path, mode, dev)
        self.cache.forget(path, added=True, parent_ns=self._dir_times())
        return 0

    @fuse_op(mutates=True)
    def rmdir(self, path: str) -> int:
        self.ws.rmdir(path)
        self._forget_dirs()
        return 0

    @fuse_op(mutates=True, targeted=True, keeps_pending=True)
    def unlink(self, path: str) -> int:
        if self.hidden.pop(path, None) is not None:
            return 0  # libfuse removing its stand-in after the last close: never in the store
        if self.pending:
            if self.unlink_pending(path):
                return 0  # (git: an object's temporary name, linked while pending)
            self.store_pending()  # (as `fuse_op` does before any request that does not know them)
        self._unlink(path)
        return 0

    def _unlink(self, path: str) -> vfs.Stat:
        st = self.cache.stat(path, self.ws.lstat)  # (the kernel asked for it just before)
        self.ws.unlink(path)
        others = self.links.others(st.ino, path)
        known = st.nlink == 2 and len(others) == 1  # (git: an object's temporary name) one name is left
        touched = self._dir_times()
        if known:
            other = others.pop()
            self.cache.forget(other)
            if touched and st.kind == "file":
                # A local store stamps the inode's ctime with the parent's new times (one clock
                # reading), so the name left needs no lookup: git's object after its temporary
                # name goes.
                self.cache.put(other, restat(st, nlink=1, ctime_ns=touched, ctime=touched / 1e9))
        self.cache.forget(path, added=False, nlink=1 if known else st.nlink, parent_ns=touched)
        self.links.forget(st.ino, path)
        self.links.changed(st.ino, path)  # nlink dropped under the other names
        return st

    def _hide(self, path: str, stand_in: str) -> None:
        """libfuse hides an open file it must unlink: remove the name, keep the inode here."""
        st = self.cache.stat(path, self.ws.lstat)
        self.keep_readers(st.ino, path)
        st = self._unlink(path)
        node = self.table.node(st.ino)
        if node is not None:
            base = node.stat if node.stat is not None else st
            node.stat = restat(base, nlink=max(st.nlink - 1, 0), ctime_ns=time.time_ns())
        self.hidden[stand_in] = st.ino

    @fuse_op(mutates=True, targeted=True)
    def symlink(self, target: str, source: str) -> int:
        # mfusepy's naming: `target` is the new link's path, `source` its content.
        with self._as_caller():
            self.ws.symlink(source, target)
        self.cache.forget(target, added=True, parent_ns=self._dir_times())
        return 0

    @fuse_op
    def readlink(self, path: str) -> str:
        return self.ws.readlink(path)

    @fuse_op(mutates=True, targeted=True, keeps_pending=True)
    def link(self, target: str, source: str) -> int:
        # mfusepy's naming: `target` is the new name, `source` the existing file.
        if self.pending:
            if self.link_pending(source, target):
                return 0  # (git: a closed object file under its final name; stored with it)
            self.store_pending()
        st = self.ws.link(source, target)  # (a local store answers with the new Stat)
        touched = self._dir_times()
        if st is None:
            st = self.ws.lstat(target)
        if st.nlink == 2:  # (git: every object) the only other name is `source`
            self.cache.forget(source)
            self.cache.forget(target, added=True, parent_ns=touched)
            # Both names are the one inode just read: the getattr after link(2) and
            # the unlink of the temporary name that follows need no store lookup.
            self.cache.put_names((source, target), st)
        else:
            self.cache.clear()
        self.links.seen(st.ino, st.nlink, source)
        self.links.seen(st.ino, st.nlink, target)
        self.links.changed(st.ino, target)
        return 0

    @fuse_op(mutates=True, targeted=True, keeps_pending=True)
    def rename(self, old: str, new: str, flags: int = 0) -> int:
        if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE):
            raise mfusepy.FuseOSError(errno.EINVAL)
        hide = not flags and new.rpartition("/")[2].startswith(self.stand_in_prefix) and old not in self.hidden
        if hide and old not in self.pending:
            # (libfuse hides an open file a rename is about to replace: the pending file
            # being renamed over it is stored by that rename, which follows at once)
            self._hide(old, new)
            return 0
        if self.pending:
            self.store_pending()  # (as `fuse_op` does before any request that does not know them)
        if hide:
            self._hide(old, new)
            return 0
        exchange = bool(flags & RENAME_EXCHANGE)
        moving, replaced = (None, None) if exchange else (self._cached(old), self._cached(new))
        self.ws.rename(old, new, noreplace=bool(flags & RENAME_NOREPLACE), exchange=exchange)
        self._renamed(old, new, moving, replaced)
        if moving is not None:
            self.links.forget(moving.ino, old)
            self.links.seen(moving.ino, name_count(moving), new)
        if replaced is not None:  # its other names lost a link: nlink and ctime moved under them
            self.links.forget(replaced.ino, new)
            self.links.changed(replaced.ino, new)
        self._forget_dirs()
        return 0

    def _cached(self, path: str) -> vfs.Stat | None:
        return self.cache.stat(path, self.ws.lstat_if_exists)

    def _renamed(self, old: str, new: str, moving: vfs.Stat | None, replaced: vfs.Stat | None) -> None:
        """A file renamed (lock files, editors' saves) changes two names and their
        parents; a directory, an exchange or a node with other names, much more."""
        if moving is None or moving.kind == "dir" or moving.nlink > 1 or (replaced is not None and replaced.nlink > 1):
            self.cache.clear()
        else:
            touched = self._dir_times()  # (both parents: one stamp)
            self.cache.forget(old, added=False, parent_ns=touched)
            self.cache.forget(new, added=True, parent_ns=touched)

    def _dir_times(self) -> int | None:
        """The times the last change of names gave its directories (a local store only:
        `Workspace.dir_times_ns`; the remote backend has none and keeps no cache)."""
        return getattr(self.ws, "dir_times_ns", None) or None

    def _as_caller(self):
        """New nodes belong to the calling process's uid/gid (as on any filesystem)."""
        uid, gid, _pid = self.caller()
        return self.ws.as_owner(uid, gid)


def _utime_value(value: int, now: int) -> int | None:
    """Decode libfuse's UTIME_NOW / UTIME_OMIT markers (tv_sec 0, special tv_nsec)."""
    if value == UTIME_OMIT:
        return None
    if value == UTIME_NOW:
        return now
    return value
