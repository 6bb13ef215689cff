"""Remote mode's write-behind: how a mount operation becomes a queued change (`pushq.py`).

`QueuedChanges` holds the `RemoteBackend` methods that turn a close, mkdir,
chmod, symlink, mknod, unlink, a file's rename or a link to a file not
pushed yet into entries of the push queue, answer from the index as the
server would (EEXIST, ENOENT, ENOTDIR), and wait for the server where the
rule says so (`sync`: fsync, unmount, and before a mutation that is one HTTP
call). A mixin, like `remote_stream.StreamFollower`: it uses the backend's
index, lock, queue, chunk cache and attribute overlay (`remote_backend.py`).
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import stat as stat_mod
import time
from typing import Any

import blake3

from client_py.conflicts import conflict_name, host_label
from client_py.mount.index import rechange
from client_py.mount.pushq import SMALL_FILE, timed_entry
from vfs.chunks import MIN_CHUNK, cut
from vfs.errors import fs_error
from vfs.paths import normalize
from vfs.types import Change, Stat

log = logging.getLogger("wsfs.mount")


class QueuedChanges:
    """The write-behind methods of `RemoteBackend` (see the module docstring)."""

    def sync(self, only: tuple[str, ...] | None = None) -> None:
        """Wait until every queued change is acknowledged by the server (fsync, unmount,
        and before any mutation that is one HTTP call); EIO if a queued batch was lost.
        `only`: unless one of these paths or a directory above one has a queued change."""
        if self.pushq is not None:
            with self._lock:
                if only is None or self.pushq.pending_near(only):
                    self.pushq.flush()
                else:
                    self.pushq.check()

    def check_writes(self) -> None:
        """EIO, once, if a queued batch was lost since the last report (a FUSE flush: close(2))."""
        if self.pushq is not None:
            with self._lock:
                self.pushq.check()

    def _queueing(self) -> bool:
        """Queue this mutation (lock held)? EROFS while offline; a lost batch's EIO first."""
        if self.pushq is None:
            return False
        if not self.online:
            raise fs_error(errno.EROFS, None, "server unreachable: the mount is read-only")
        self.pushq.check()
        return True

    def _queue_content(self, data: Any) -> tuple[str, int, list[tuple[str, bytes]]] | None:
        """(content id, size, chunks) of a small content, its chunks kept for the cache first
        (so reads here never need the server); None: too big to queue (streamed PUT instead)."""
        if self.pushq is None or not isinstance(data, (bytes, bytearray, memoryview)) or len(data) > SMALL_FILE:
            return None
        if not data:
            chunks = []
        elif len(data) <= MIN_CHUNK:  # one chunk, the whole content: what `cut` yields, without the cutter
            piece = bytes(data)
            chunks = [(blake3.blake3(piece).hexdigest(), piece)]
        else:
            chunks = [(blake3.blake3(piece).hexdigest(), bytes(piece)) for piece in cut(data)]
        digest = chunks[0][0] if len(chunks) == 1 else blake3.blake3(data).hexdigest()
        self.written.add(chunks)  # (saved to the cache many per transaction, by a thread of their own: `remote_cache.py`)
        return digest, len(data), chunks

    def _enqueue(self, change: Change, chunks: list[tuple[str, bytes]] = (), *, new: bool = False,
                 utime: bool = False) -> None:
        """Queue `change` (lock held) and wait for room if the queue is full."""
        self.pushq.enqueue(change, chunks, new=new, utime=utime)
        self.pushq.wait_room()

    def pending_created(self, path: str) -> None:
        """A file was created here and is pushed at its close: its directory's mtime moves
        now (the kernel asks for the directory's attributes right after the create)."""
        with self._lock:
            self.index.touch(normalize(path).rpartition("/")[0] or "/")

    def reserve_ino(self) -> int:
        """An inode number for a file created here and pushed at its close (`write_file(ino=)`)."""
        with self._lock:
            return self.index.reserve_ino()

    def _queue_created(
        self, path: str, content: tuple[str, int, list], *, mode: int | None, ino: int, atime_ns: int | None,
        mtime_ns: int | None,
    ) -> Stat:
        """A file created here, queued with its content (one entry of a later push)."""
        digest, size, chunks = content
        mtime = time.time() if mtime_ns is None else mtime_ns / 1e9
        with self._lock:
            self._queueing()
            target = path
            if path in self.index.entries and not self.pushq.outstanding(path):
                target = conflict_name(path, host_label())  # made elsewhere meanwhile: ours goes beside it
                log.warning("conflict on %s: the server's version stays there, ours is %s", path, target)
            change = Change(path=target, kind="file", rev=0, mode=stat_mod.S_IFREG | ((0o644 if mode is None else mode) & 0o7777),
                            mtime=mtime, size=size, hash=digest, chunks=tuple((h, len(b)) for h, b in chunks))
            self.index.reserved[target] = ino
            parent = target.rpartition("/")[0] or "/"
            touched = self.index.entries.get(parent)  # (moved at the create: `pending_created`)
            try:
                self._enqueue(change, chunks, new=True)
            finally:
                self.index.reserved.pop(target, None)
            if touched is not None and touched.kind == "dir" and self.index.entries.get(parent) is not None:
                self.index.entries[parent] = touched
            ino = self.index.inos.get(target)  # (the reserved number: the owner and exact times go with it)
            if ino is not None:
                self.attrs.created(ino, *self._owner)
                if atime_ns is not None or mtime_ns is not None:  # (exact ns: the wire carries floats)
                    self.attrs.set_times(ino, atime_ns, mtime_ns, self.index.entries[target].mtime)
            return self.lstat(target)  # (one Stat, after both: an untar closes ~7,000 files)

    def _queue_commit(self, path: str, content: tuple[str, int, list], base: str | None) -> Stat:
        """New content of a file, queued against the content id it was edited from: if the
        index already holds another version (changed elsewhere), ours is a conflict copy."""
        digest, size, chunks = content
        real = self._real(path)
        with self._lock:
            self._queueing()
            entry = self.index.entries.get(real)
            target, mode = real, stat_mod.S_IFREG | 0o644
            if entry is not None and entry.kind == "file" and entry.hash == base:
                mode = entry.mode
            elif entry is not None or base:
                target = conflict_name(real, host_label())
                log.warning("conflict on %s: the server's version stays there, ours is %s", real, target)
            change = Change(path=target, kind="file", rev=0 if entry is None else entry.rev, mode=mode,
                            mtime=time.time(), size=size, hash=digest, chunks=tuple((h, len(b)) for h, b in chunks))
            self._enqueue(change, chunks, new=target != real or entry is None)
        return self.lstat(target)

    def _queue_new(self, change: Change) -> bool:
        """Queue a new node (mkdir, symlink, mknod): EEXIST, ENOENT and ENOTDIR from the
        index, as the server would answer. False: not queueing (one HTTP call instead)."""
        with self._lock:
            if not self._queueing():
                return False
            if change.path in self.index.entries:
                raise fs_error(errno.EEXIST, change.path)
            parent = self.index.entries.get(change.path.rpartition("/")[0] or "/")
            if parent is None or parent.kind != "dir":
                raise fs_error(errno.ENOENT if parent is None else errno.ENOTDIR, change.path)
            self._enqueue(change, new=True)
        self._created(change.path)
        return True

    def _queue_link(self, src: str, new: str) -> bool:
        """A hard link to a file created here and not pushed yet, queued (git writes every
        object to a temporary name, links it to its real one and unlinks the temporary: then
        only the real name is pushed, as a new file). If the source still has the inode when
        the batch goes, the pusher makes it a wire `link` after the push. False: not queued."""
        with self._lock:
            # (queued, or on its way when the gathering window closed between git's close and link)
            item = None if self.pushq is None else self.pushq.queued.get(src) or self.pushq.inflight.get(src)
            parent = self.index.entries.get(new.rpartition("/")[0] or "/")
            # (`new` with a change of its own queued or on its way, an unlink whose push may not have
            # gone: the wire `link` would find the old name still there, EEXIST, pjdfstest link/02)
            if (item is None or item.base is not None or item.change.kind != "file" or self.index.nlink(src) > 1
                    or new in self.index.entries or new in self.pushq.queued or new in self.pushq.inflight
                    or parent is None or parent.kind != "dir" or not self._queueing()):
                return False
            self.pushq.enqueue(rechange(item.change, path=new), item.chunks, new=True, link_of=src)
            self.pushq.wait_room()
            self.index.link(src, new)
            self.attrs.changed(self.index.inos[new])
        return True

    def _queue_rename(self, src: str, dst: str) -> bool:
        """A file's rename as two queued entries, its old name deleted and its content at the
        new one (compileall's `.pyc` and git's lock files: written, then renamed into place).
        Only for a file the server has not had yet (made here, queued or on its way): the change
        stream shows a rename as those two entries anyway, but the server's history of a file
        it has would start again at the new name, so that one is a `rename` call. A file with
        other names, a directory (a subtree) or a symlink stays one `rename` call too. False:
        not queued."""
        with self._lock:
            moving = self.index.entries.get(src)
            replaced = self.index.entries.get(dst)
            made = self.pushq.queued.get(src) or self.pushq.inflight.get(src) if self.pushq is not None else None
            if (moving is None or moving.kind != "file" or src == dst or made is None or not made.fresh
                    or made.change.kind != "file" or (moving.size and not moving.chunks)
                    or self.index.nlink(src) > 1 or (replaced is not None and (replaced.kind == "dir" or self.index.nlink(dst) > 1))
                    or not self._queueing()):
                return False
            before = self.index.inos_below(src)
            item = self.pushq.queued.get(src)
            chunks = item.chunks if item is not None else []  # (else the server has them, or will before this)
            self._enqueue(Change(path=src, kind="delete", rev=0))
            self.pushq.enqueue(dataclasses.replace(moving, path=dst), chunks, new=replaced is None, fresh=True)
            self.pushq.wait_room()
            self.index.moved(src, dst, before)  # a rename keeps the inode: number, owners, times
            self.attrs.changed(before[0][src])
        return True

    def _queue_times(self, real: str, mtime_ns: int) -> bool:
        """A new mtime, queued: folded into a file's queued, unsent entry (the push applies a
        file's mtime), or a directory's entry that sets it (`TimedChange`: a pushed entry of a
        directory the server has changes its mode only; `tar -x` sets the times of every
        directory it made at its end: 3,233 HTTP `utime` calls in the Django untar before), or
        for a file the server has, an entry of the next push that sets it (`set_mtime`, a server
        that speaks `file_set_mtime`), else a wire `utime` the pusher makes after its batch
        (`PushQueue.enqueue(utime=True)`; git freshens every object it would write again).
        False: not queued (a wire `utime` now)."""
        with self._lock:
            if self.pushq is None or not self.online or real == "/":
                return False
            item = self.pushq.queued.get(real)
            entry = item.change if item is not None else self.index.entries.get(real)
            if entry is None or entry.kind not in ("dir", "file"):
                return False
            mtime = mtime_ns / 1e9
            if entry.kind == "dir":
                self._enqueue(timed_entry(entry, mtime), item.chunks if item is not None else [])
                return True
            if item is not None:
                self._enqueue(dataclasses.replace(entry, mtime=mtime), item.chunks, utime=item.utime)
                return True
            if (entry.size and not entry.chunks) or self.index.nlink(real) > 1:
                return False  # (a name of several: the server's utime changes them all)
            self._queueing()
            self._enqueue(dataclasses.replace(entry, mtime=mtime), utime=True)
            return True
