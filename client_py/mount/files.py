"""The open-file half of the FUSE operations: create, open, read, write, truncate, flush, release.

Content writes go to the inode's `Spool` (see `handles.py`) and are
committed with one `write_file` on flush, fsync or release, inside the open
group transaction (`group.py`). `WsfsOperations` (ops.py) mixes this in; it
shares that class's state (the store, the open-file table, the caches).
"""

from __future__ import annotations

import errno
import logging
import os
import stat as stat_mod
import time

import blake3
import mfusepy

import vfs
from client_py.mount.fuseop import fuse_op
from client_py.mount.handles import OpenNode
from client_py.mount.metacache import change_in_place, restat
from client_py.mount.spool import Spool
from vfs.surface import ReadableFile

EMPTY_DIGEST = blake3.blake3(b"").digest()
EMPTY_ID = EMPTY_DIGEST.hex()  # the content id of an empty file

log = logging.getLogger("wsfs.mount")

SMALL_WRITE = 1 << 20  # content up to this size is committed from one buffer, not streamed


class OpenFileOps:
    """create/open/read/write/truncate/flush/fsync/release over the mount's state (see ops.py)."""

    @fuse_op(mutates=True, targeted=True, keeps_pending=True, keeps_held=True)
    def create(self, path: str, mode: int, flags: int = os.O_WRONLY) -> int:
        if self.held:
            self.holds_dir(path)
        if self.reserves:
            return self._create_pending(path, mode, flags)
        try:
            # The kernel only asks after a negative lookup; if_match="" keeps a
            # racing creator's file intact (we open it instead).
            with self._as_caller():
                st = self.ws.write_file(path, b"", mode=mode & 0o7777, if_match="")
        except vfs.PreconditionFailed:
            if flags & os.O_EXCL:
                raise mfusepy.FuseOSError(errno.EEXIST) from None
            return self._open(path, flags)
        handle = self.table.open(st.ino, flags)
        handle.node.base, handle.node.stat = st.hash, st
        self.fresh = (path, st)
        self.cache.forget(path, added=True, parent_ns=st.ctime_ns)  # (the store stamps the parent with it)
        self.cache.put(path, st)
        if handle.node.spool is None:
            handle.node.spool = Spool()  # known empty: no need to read it back on first write
        return handle.fh

    def _create_pending(self, path: str, mode: int, flags: int) -> int:
        """A local store's create: the file exists in this mount at once (a reserved inode
        number, its stat in the metadata cache) and reaches the store with its content at
        the first flush, fsync or release (`_commit`): one store call, not two.

        Until then only requests that know about it (getattr, open, read, write, flush,
        fsync, release, another create) run; any other request stores every pending
        file first (`fuse_op`). A crash before the close loses the file, as it would
        lose the bytes a disk had only in its page cache."""
        known = path in self.pending or self.cache.stat(path, self._load_stat) is not None  # (from memory)
        if known:
            if flags & os.O_EXCL:
                raise mfusepy.FuseOSError(errno.EEXIST)
            return self._open(path, flags)
        uid, gid, _pid = self.caller()
        now = time.time_ns()
        st = vfs.Stat(
            kind="file", mode=stat_mod.S_IFREG | (mode & 0o7777), size=0, mtime=now / 1e9, ctime=now / 1e9,
            ino=self.ws.reserve_ino(), nlink=1, rev=0, hash=EMPTY_ID, atime=now / 1e9, mtime_ns=now, ctime_ns=now,
            atime_ns=now, uid=uid, gid=gid,
        )  # fmt: skip
        handle = self.table.open(st.ino, flags)
        node = handle.node
        node.base, node.stat, node.spool, node.created_ns = st.hash, st, Spool(), now
        created = getattr(self.ws, "pending_created", None)  # remote: the parent's mtime moves now, as on a disk
        if created is not None:
            created(path)
        self.pending[path] = node
        self.cache.forget(path, added=True, parent_ns=now)  # (the store stamps the parent with it: `created_ns`)
        self.cache.put(path, st)
        return handle.fh

    def touch_pending(self, path: str, atime_ns: int | None, mtime_ns: int | None, now: int) -> bool:
        """utimens on a pending file (`touch`: create, futimens, close; `tar -x`: create,
        write, futimens, fchown, fchmod, close): the new times go into its pending stat,
        stored with it at close. A write after it moves mtime again, as on a disk.
        False: not a pending file."""
        node = self.pending.get(path) if self.pending else None
        if node is None:
            return False
        made = node.stat
        atime_ns = made.atime_ns if atime_ns is None else atime_ns
        if mtime_ns is None:
            mtime_ns = node.mtime_ns if node.dirty else made.mtime_ns
        elif node.dirty:
            node.mtime_ns = mtime_ns  # (what `_fill_stat` reports and `_store_created` stores)
        self._pending_changed(path, node, now, atime_ns=atime_ns, atime=atime_ns / 1e9, mtime_ns=mtime_ns,
                              mtime=mtime_ns / 1e9)
        return True

    def chattr_pending(self, path: str, *, mode: int | None = None, uid: int = -1, gid: int = -1) -> bool:
        """chmod/chown (fchmod/fchown: `tar -x` as root) of a pending file: into its pending
        stat, stored with it at close (one store call for the whole file). False: not one."""
        node = self.pending.get(path) if self.pending else None
        if node is None:
            return False
        made = node.stat
        self._pending_changed(
            path, node, time.time_ns(), mode=made.mode if mode is None else stat_mod.S_IFREG | (mode & 0o7777),
            uid=made.uid if uid < 0 else uid, gid=made.gid if gid < 0 else gid,
        )  # fmt: skip
        return True

    def _pending_changed(self, path: str, node: OpenNode, now: int, **changes) -> None:
        """A pending file's attributes changed (ctime moves to `now`): kept in its stat and the
        cache. Changed in place, not copied (`restat`): a pending file's stat is the mount's own
        (made by `_create_pending`, `_keep_closed` or `link_pending`; the store's answer replaces
        it at the commit), and every holder of it (the cache, `fresh`) must see the change anyway.
        `tar -x` changes it three times a file (futimens, fchown, fchmod)."""
        st = change_in_place(node.stat, now, changes)
        if node.names:  # (a closed file linked here: every name shows the change)
            self.cache.put_names(tuple(node.names), st)
            self.links.changed(node.ino, path)
        elif self.cache.stats.get(path) is not st:  # (tar's second and third change: kept already)
            self.cache.put(path, st)

    def store_pending(self, inside: dict | None = None) -> None:
        """Store every file created here and not yet committed (before a request that
        does not know about them: a readdir, rename, unlink, chmod, ...); with `inside`,
        only those whose directory is one of its keys (before their held attributes)."""
        self._store_batch(inside)
        for path, node in list(self.pending.items()):
            if self.pending.get(path) is node and (inside is None or (path.rpartition("/")[0] or "/") in inside):
                self._commit(node, path)  # (`is node`: another name of it may have stored it)

    # -- small files kept pending after their close (a local store) ----------------------
    # A small created file is stored when the group transaction commits (group.py calls
    # `store_closed` first) or before the next request that does not know about pending
    # files, not at its close: so git's object dance (create tmp_obj, write, close,
    # link tmp_obj -> the object's name, unlink tmp_obj) ends as one `write_file` under
    # the object's name instead of a `write_file`, a `link` and an `unlink` (~30 SQL
    # statements, two versions rows and a tombstone for a name no revision ever showed).
    # The crash window is the group's, which already holds the file's store call.

    def _defers(self, node: OpenNode) -> bool:
        """May this pending file stay pending after its close (small enough to hold)?"""
        return self.defers_close and (node.spool is None or node.spool.size < SMALL_WRITE)  # (`small_content`)

    @staticmethod
    def _content_times(node: OpenNode) -> tuple[int, int]:
        """(mtime_ns, ctime_ns) a pending file is stored with: its writes' mtime if it has any."""
        mtime_ns = node.mtime_ns if node.dirty else node.stat.mtime_ns
        return mtime_ns, max(mtime_ns, node.stat.ctime_ns)

    def _keep_closed(self, node: OpenNode, path: str) -> None:
        """The last descriptor of a pending file closed: its stat now shows its content."""
        mtime_ns, ctime_ns = self._content_times(node)
        spool = node.spool
        digest = spool.digest() if spool is not None else EMPTY_DIGEST  # (hashed in place: no copy)
        st = node.stat  # (the mount's own, changed in place: `_pending_changed`)
        st.size, st.mtime_ns, st.mtime = spool.size if spool is not None else 0, mtime_ns, mtime_ns / 1e9
        st.ctime_ns, st.ctime = ctime_ns, ctime_ns / 1e9
        st.hash, node.digest = digest.hex(), (node.version, digest)
        self.cache.put(path, st)

    def store_closed(self) -> None:
        """Store the pending files no descriptor holds (before the group commits). A store
        error here reaches no caller (close(2) returned): logged, the file is lost, as a
        disk's writeback error after close."""
        self._store_batch()
        for path, node in list(self.pending.items()):
            if node.refs == 0 and self.pending.get(path) is node:
                try:
                    self._commit(node, path)
                except Exception:  # noqa: BLE001 - see the docstring
                    log.exception("a closed file could not be stored: %s", path)

    def _store_batch(self, inside: dict | None = None) -> None:
        """The closed pending files with one name (those in `inside`'s directories if given),
        stored in one `write_new_files` (an untar closes hundreds between two group commits);
        on any error, none: then one by one."""
        batch = [(path, node) for path, node in self.pending.items() if node.refs == 0 and not node.names
                 and (inside is None or (path.rpartition("/")[0] or "/") in inside)]
        if len(batch) < 2 or not self.defers_close or not self.batches:
            return
        files = []
        for path, node in batch:
            made, kept = node.stat, node.digest
            mtime_ns, ctime_ns = self._content_times(node)
            files.append({
                "path": path, "data": node.spool.small_content(SMALL_WRITE) if node.spool is not None else b"",
                "mode": made.mode, "uid": made.uid, "gid": made.gid, "ino": made.ino, "created_ns": node.created_ns,
                "atime_ns": made.atime_ns, "mtime_ns": mtime_ns, "ctime_ns": ctime_ns,
                # (the content's digest from its close, if no change came after: the store need not hash it again)
                "hash": kept[1] if kept is not None and kept[0] == node.version else None,
            })  # fmt: skip
        try:
            stats = self.ws.write_new_files(files)
        except Exception:  # noqa: BLE001 - stored one by one instead, each error its own
            log.debug("batch of %d closed files refused; storing them one by one", len(files), exc_info=True)
            return
        for (path, node), st in zip(batch, stats):
            del self.pending[path]
            self._stored(node, path, st)

    def _store_now(self, node: OpenNode, path: str) -> None:
        self.group.begin()
        try:
            self._commit(node, path)
        finally:
            self.group.after_op()

    def link_pending(self, source: str, target: str) -> bool:
        """link(2) of a closed pending file to a free name in the same directory: a second
        pending name (stored with the file). False: not such a case, the store links."""
        node = self.pending.get(source)
        parent, _, name = target.rpartition("/")
        if node is None or node.refs or not self.defers_close or source.rpartition("/")[0] != parent:
            return False
        if not 0 < len(name.encode("utf-8", "surrogateescape")) <= 255 or target in self.pending:
            return False
        if self.cache.stat(target, self._load_stat) is not None:
            return False  # (the store answers EEXIST)
        now = time.time_ns()
        names = node.names = (node.names or [source]) + [target]
        node.created_ns = now  # (the parent's times in the store: this change of its names)
        node.stat = restat(node.stat, nlink=len(names), ctime_ns=now, ctime=now / 1e9)
        self.pending[target] = node
        self.cache.forget(target, added=True, parent_ns=now)
        self.cache.put_names(tuple(names), node.stat)
        for known in names:
            self.links.seen(node.ino, len(names), known)
        self.links.changed(node.ino, target)
        return True

    def unlink_pending(self, path: str) -> bool:
        """unlink(2) of one of several names `link_pending` gave a closed pending file: only
        the names here change. False: not such a name (the store unlinks)."""
        node = self.pending.get(path)
        if node is None or node.refs or not node.names or len(node.names) < 2:
            return False
        now = time.time_ns()
        del self.pending[path]
        node.names.remove(path)
        names = tuple(node.names)
        if len(names) == 1:
            node.names = None
        node.created_ns = now
        node.stat = restat(node.stat, nlink=len(names), ctime_ns=now, ctime=now / 1e9)
        self.cache.forget(path, added=False, parent_ns=now)
        self.cache.put_names(names, node.stat)
        self.links.forget(node.ino, path)
        self.links.changed(node.ino, path)  # (the kernel's attributes of the other names: nlink moved)
        return True

    @fuse_op(keeps_pending=True, keeps_held=True)
    def open(self, path: str, flags: int) -> int:
        return self._open(path, flags)

    def _open(self, path: str, flags: int) -> int:
        if path in self.hidden or _stand_in(path, self.stand_in_prefix):
            # An inode looked up before a rename replaced (or unlink removed) its name; libfuse
            # keeps calling it by its stand-in name even after unlinking that. ESTALE makes
            # the kernel look the name up again.
            if path in self.hidden or not self.ws.exists(path):
                raise mfusepy.FuseOSError(errno.ESTALE)
        # The kernel resolves symlinks itself and asks for attributes just before, so the
        # metadata cache (a local store) nearly always knows the file already.
        pending = self.pending.get(path) if self.pending else None
        if pending is not None and pending.refs == 0:  # closed, kept pending: a new descriptor reads the store
            self._store_now(pending, path)
            pending = None
        st = pending.stat if pending is not None else self.cache.stat(path, self._load_stat)
        if st is None:
            raise mfusepy.FuseOSError(errno.ENOENT)
        if st.kind == "symlink":
            st = self.ws.stat(path)
        if st.kind == "dir":
            raise mfusepy.FuseOSError(errno.EISDIR)
        handle = self.table.open(st.ino, flags)
        node = handle.node
        if node.refs == 1 and not node.dirty:
            node.base, node.stat = st.hash, st
        if flags & os.O_TRUNC and (flags & os.O_ACCMODE) != os.O_RDONLY:
            self._set_size(node, path, 0, handle)
        elif node.spool is None and not self.cache.enabled:
            # Remote mode: snapshot the content now, so a descriptor keeps reading what it
            # opened when the file changes elsewhere. A local store is changed only
            # through this mount: its reader opens at the first READ (most opens never
            # send one: the kernel serves cached pages), and before libfuse hides an
            # open file whose name goes (`keep_readers`).
            self._reader(handle, path)
        return handle.fh

    def keep_readers(self, ino: int, path: str) -> None:
        """Open a store reader for each descriptor of `ino` that has none yet, before its
        name `path` is removed: those descriptors must still read the content they opened."""
        node = self.table.node(ino)
        if node is None or node.spool is not None:
            return  # (a spool holds the content itself)
        for handle in list(self.table.handles.values()):
            if handle.node is node and handle.reader is None:
                self._reader(handle, path)

    def _reader(self, handle, path: str | None) -> ReadableFile:
        """The handle's store reader, reopened if this mount committed newer content.

        A local store opens it by the inode the descriptor opened (`open_ino`: one row, no walk
        of the path; git's `add -A` reads ~6,200 files); the remote backend by path."""
        node = handle.node
        if handle.reader is None or (handle.reader_version != node.version and path is not None):
            handle.close_reader()
            open_ino = getattr(self.ws, "open_ino", None)  # (only a local store has it)
            handle.reader = open_ino(node.ino) if open_ino is not None else self.ws.open(path, "rb")
            handle.reader_version = node.version
        return handle.reader

    @fuse_op(keeps_pending=True, keeps_held=True)
    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        path = self._named(path)
        handle = self.table.get(fh)
        node = handle.node
        if node.spool is not None:
            return node.spool.pread(offset, size)
        reader = self._reader(handle, path)
        reader.seek(offset)
        return reader.read(size)

    @fuse_op(keeps_pending=True, keeps_held=True)
    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        handle = self.table.handles[fh]  # (`table.get`; an untar's every write: no helper calls once spooled)
        spool = handle.node.spool
        if spool is None:
            spool = self._spool(handle, self._named(path))
        if handle.flags & os.O_APPEND:
            offset = spool.size
        written = spool.pwrite(offset, data)
        handle.node.changed()
        return written

    @fuse_op(mutates=True, targeted=True)
    def truncate(self, path: str | None, length: int, fh: int | None = None) -> int:
        if fh is None and path in self.hidden:
            fh = next(h.fh for h in self.table.handles.values() if h.node.ino == self.hidden[path])
        path = self._named(path)
        handle = self.table.get(fh) if fh is not None else None
        if handle is None:
            st = self.ws.stat(path)
            node = self.table.node(st.ino)
            if node is None:
                self.cache.put(path, self.ws.truncate(path, length))  # nobody has it open: no buffer
                self.links.changed(st.ino, path)
                return 0
            handle = next(h for h in self.table.handles.values() if h.node is node)
        self._set_size(handle.node, path, length, handle)
        return 0

    @fuse_op(mutates=True, targeted=True, keeps_pending=True, keeps_held=True)
    def flush(self, path: str, fh: int) -> int:
        node = self.table.get(fh).node
        created = bool(self.pending) and self.pending.get(path) is node
        if not created or (node.dirty and not self._defers(node)):
            # (a created file with nothing written yet waits for its release: `echo > f`
            # closes one descriptor of it, dup2'd, before writing through the other;
            # a small one with bytes, on a local store, waits too: `_keep_closed`)
            self._commit(node, self._named(path))
        check_writes = getattr(self.ws, "check_writes", None)  # remote: a lost queued push fails close(2)
        if check_writes is not None:
            check_writes()
        return 0

    @fuse_op(mutates=True, targeted=True, keeps_pending=True, keeps_held=True)
    def fsync(self, path: str, datasync: int, fh: int) -> int:
        self._commit(self.table.get(fh).node, self._named(path))
        self._sync()
        return 0

    @fuse_op
    def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
        self._sync()
        return 0

    def _sync(self) -> None:
        """fsync: the group transaction committed (a local store), or every queued change
        acknowledged by the server (remote: `RemoteBackend.sync`, EIO if one was lost)."""
        self.group.commit()
        sync = getattr(self.ws, "sync", None)
        if sync is not None:
            sync()

    @fuse_op(mutates=True, targeted=True, keeps_pending=True, keeps_held=True)
    def release(self, path: str, fh: int) -> int:
        node = self.table.close(fh)
        if node is not None:
            if self.pending and self.pending.get(path) is node and self._defers(node):
                self._keep_closed(node, path)
                return 0
            try:
                self._commit(node, self._named(path))
            finally:
                node.drop_spool()
        return 0

    def _spool(self, handle, path: str | None) -> Spool:
        """The node's buffer, filled on first use from the content the handle opened."""
        node = handle.node
        if node.spool is None:
            reader = self._reader(handle, path)
            reader.seek(0)
            node.spool = Spool.from_pieces(iter(lambda: reader.read(1 << 20), b""))
        return node.spool

    def _set_size(self, node: OpenNode, path: str | None, length: int, handle=None) -> None:
        if length == 0 and node.spool is None:
            node.spool = Spool()  # O_TRUNC: no need to read what is thrown away
        else:
            self._spool(handle, path).truncate(length)
        node.changed()

    def _commit(self, node: OpenNode, path: str | None) -> None:
        """Write the node's buffer to the store as one transaction (creating a pending file)."""
        if self.pending and path is not None and self.pending.get(path) is node:
            self._store_created(node, path)
            return
        if not node.dirty or node.spool is None:
            return
        if path is None:
            node.dirty = False  # the file has no name left (unlinked while open): as on disk, its bytes go
            return
        commit_file = getattr(self.ws, "commit_file", None)  # duck-typed: only the remote backend has it
        if commit_file is not None:
            # A remote backend pushes against the content this buffer started from.
            content = node.spool.small_content(SMALL_WRITE)
            st = commit_file(path, node.spool.reader() if content is None else content, base=node.base)
        else:
            # mtime is the time of the last write(2), as on any filesystem, and what
            # getattr reported while the bytes were buffered: the kernel then sees
            # no change at commit and keeps its page cache (kernel_cache).
            # ctime likewise: what `_fill_stat` reported, max(the store's, the last write's), which the
            # kernel keeps; the store never stamps one older than its own.
            content = node.spool.small_content(SMALL_WRITE)
            st = self.ws.write_file(path, node.spool.reader() if content is None else content, mtime_ns=node.mtime_ns,
                                    ctime_ns=node.mtime_ns)
        node.base, node.stat = st.hash, st
        node.dirty = False
        node.version += 1
        self.cache.put(path, st)  # (a node with other names clears the cache)
        self.links.changed(node.ino, path)

    def _store_created(self, node: OpenNode, path: str) -> None:
        """A pending file (`_create_pending`) and its content into the store: one `write_file`
        (and a `link` for each other name a closed one was given here, `link_pending`)."""
        del self.pending[path]
        others = [name for name in node.names if name != path] if node.names else []
        node.names = None
        for name in others:
            del self.pending[name]
        made = node.stat
        mtime_ns, ctime_ns = self._content_times(node)
        content = node.spool.small_content(SMALL_WRITE) if node.spool is not None else b""
        data = (node.spool.reader() if node.spool is not None else b"") if content is None else content
        try:
            with self.ws.as_owner(made.uid, made.gid):
                st = self.ws.write_file(
                    path, data, mode=made.mode & 0o7777, if_match="", ino=made.ino, created_ns=node.created_ns,
                    atime_ns=made.atime_ns, mtime_ns=mtime_ns, ctime_ns=ctime_ns,
                )
            for name in others:
                st = self.ws.link(path, name, at_ns=node.created_ns)
        except BaseException:
            for name in (path, *others):
                self.cache.forget(name, added=False)  # (the store refused it: the name is not there)
            if node.refs == 0:
                node.drop_spool()
            raise
        self._stored(node, path, st, others)

    def _stored(self, node: OpenNode, path: str, st: vfs.Stat, others: list[str] = ()) -> None:
        """A pending file is in the store now, `st` its answer."""
        node.base, node.stat = st.hash, st
        if node.dirty:
            node.dirty = False
            node.version += 1
        if others:
            self.cache.put_names((path, *others), st)
        elif self.cache.stats.get(path) is not st:  # (tar's second and third change: kept already)
            self.cache.put(path, st)
        if node.refs == 0:  # (closed and kept pending until now: `_keep_closed`)
            node.drop_spool()

    def _commit_by_ino(self, node: OpenNode) -> None:
        """At unmount: commit under any name the inode still has."""
        for entry in self.ws.find("/", kind="file"):
            if self.ws.lstat(entry).ino == node.ino:
                self._commit(node, entry)
                return
        log.warning("inode %d was removed before its buffered writes were committed", node.ino)



def _stand_in(path: str | None, prefix: str) -> bool:
    """Is `path` one of libfuse's `.fuse_hidden*` names (`prefix`) for an open file with no name left?"""
    return path is not None and path.rpartition("/")[2].startswith(prefix)

