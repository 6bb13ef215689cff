"""Remote mode: `wsfs mount URL WORKSPACE MOUNTPOINT [--cache DIR]`.

`RemoteBackend` serves a remote workspace to the FUSE operations (`ops.py`):
it follows `vfs.surface.MountBackend`, as a local store does, over a server:

- Metadata: an in-memory index of every path, built from one `changes`
  snapshot and kept live by the change stream (`watch`), so a change made
  elsewhere shows in the mount within a second. Browsing never downloads
  content: a 10 GB tree costs only its metadata.
- Content: chunk bytes are fetched by hash on first read and kept in a local
  `vfs.Workspace` used as a content-addressed cache (`--cache DIR`), so they
  are fetched once, across mounts. Content written through the mount is
  chunked into the cache too (same FastCDC parameters as the server, hence
  the same chunk ids), so reading back what you wrote costs no download.
- Writes: small changes (a closed file up to 4 MiB, mkdir, chmod, symlink,
  mknod, unlink, a file's rename, a link to a file not pushed yet) are
  queued and pushed in batches against their base (`pushq.py`: close
  returns once queued, fsync once acknowledged). If someone else changed
  the path meanwhile, the server's version stays and ours is written beside
  it as `NAME.conflict-<host>-<time>.EXT`: nothing is lost. Other mutations
  (rmdir, a directory's rename or utime, big files, ...) are one HTTP call
  each, made after the queue drained.
- Offline: when the server is unreachable the mount keeps serving what the
  index and the cache hold, read-only (EROFS on writes, EIO on content never
  fetched), logs it once, keeps trying to reconnect for as long as it is
  mounted (`remote_stream.OFFLINE_BACKOFF`: every few seconds at most), and catches up
  (and logs it) when the server is back: a server restart needs no remount.
  A call made while still online rides out a short blip (`CALL_BACKOFF`,
  about 2 s) before the mount goes read-only.

The async client runs on an event loop in a helper thread (`loop_thread.py`);
FUSE threads call into it with `run()`. The index itself is `index.py`; following
the change stream is `remote_stream.py`; queueing changes is `remote_queued.py`; file content is read through
`vfs.chunkreader`, with `chunk()` as its fetch.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import logging
import os
import stat as stat_mod
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import vfs
from client_py.backoff import Backoff
from client_py.client import Client
from client_py.conflicts import conflict_name, host_label
from client_py.errors import ServerUnreachable
from client_py.mount.attrs import AttrOverlay
from client_py.mount.index import Index, rechange
from client_py.mount.loop_thread import LoopThread
from client_py.mount.pushq import PushQueue
from client_py.mount.remote_cache import WrittenChunks
from client_py.mount.remote_queued import QueuedChanges
from client_py.mount.remote_reads import IFMT, IndexReads
from client_py.mount.remote_stream import StreamFollower
from vfs.chunkreader import iter_range, open_chunks
from vfs.errors import fs_error
from vfs.paths import normalize
from vfs.types import Change, Stat

log = logging.getLogger("wsfs.mount")

STREAM_WAIT_SECONDS = 0.25  # how long a mutation waits for the change stream before asking itself
# One call (a read of an uncached chunk, a write) retries this long before the
# mount goes offline: about 2 s, a quick server restart, without hanging the
# caller for long.
CALL_BACKOFF = Backoff(base=0.1, cap=1.0, retries=4)


class RemoteBackend(IndexReads, QueuedChanges, StreamFollower):
    """The surface the FUSE operations use (`vfs.surface.MountBackend`), over a wsfs server.

    Beyond the protocol it offers `commit_file()`, a push against a base
    that keeps both versions on a conflict; `ops.py` uses it when present.
    """

    def __init__(self, url: str, workspace: str, *, token: str | None, cache_dir: str):
        self.url = url
        self.workspace = workspace
        self.path = f"{url.rstrip('/')}/{workspace}"
        self._token = token
        self._cache_dir = cache_dir
        self._lock = threading.RLock()  # the index: FUSE threads read it, the watcher writes it
        self._index_moved = threading.Condition(self._lock)  # notified whenever the index changes
        self.stream_wait = STREAM_WAIT_SECONDS
        self.index = Index()
        self.online = True
        self._loop: LoopThread | None = None
        self._client: Client | None = None
        self._remote = None
        self.cache: vfs.Workspace | None = None
        self._watcher: asyncio.Task | None = None
        self.attrs = AttrOverlay(os.getuid(), os.getgid())
        self._owner = (self.attrs.default_uid, self.attrs.default_gid)
        # Called (from the watcher) with the paths each streamed change made stale in the
        # kernel's caches: the path, its parent, and what a deletion removed below it.
        self.on_change: Callable[[list[str]], None] | None = None
        # Small changes are queued and pushed in batches (`pushq.py`); WSFS_MOUNT_PUSH=0: one HTTP call each.
        self.pushq: PushQueue | None = None
        self.written: WrittenChunks | None = None  # chunks written here, saved to the cache by a thread of their own
        if os.environ.get("WSFS_MOUNT_PUSH", "1") != "0":
            self.pushq = PushQueue(self, self._lock)

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> RemoteBackend:
        os.makedirs(self._cache_dir, exist_ok=True)
        self.cache = vfs.Workspace(os.path.join(self._cache_dir, f"{self.workspace}.cache.db"))
        self.written = WrittenChunks(self.cache)
        self._loop = LoopThread()
        self._client = Client(self.url, token=self._token, backoff=CALL_BACKOFF)
        self._remote = self._client.workspace(self.workspace)
        try:
            self.catch_up()
        except OSError as exc:
            raise (exc.__cause__ if isinstance(exc.__cause__, ServerUnreachable) else exc) from None
        self.index.live = True
        log.info("remote %s: %d paths at %s", self.path, len(self.index.entries), self.index.cursor)
        self._loop.run(self._start_watching())
        return self

    async def _start_watching(self) -> None:
        self._watcher = asyncio.create_task(self._watch())
        if self.pushq is not None:
            self.pushq.start()

    async def _shutdown(self) -> None:
        """Cancel every task on the loop (the watcher and the WebSocket's own), then close HTTP."""
        if self.pushq is not None:
            await self.pushq.stop()
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._client.aclose()

    def close(self) -> None:
        if self.pushq is not None and self._loop is not None:
            try:
                self.sync()  # everything queued reaches the server before the mount goes
            except OSError as exc:
                log.error("unmount: %s", exc)
            log.info("pushed %d queued change(s) in %d batch(es)", self.pushq.entries, self.pushq.pushes)
        if self._loop is not None:
            try:
                self._loop.run(self._shutdown(), 10)
            except Exception:  # noqa: BLE001 - closing is best effort at unmount
                log.debug("remote shutdown", exc_info=True)
            self._loop.stop()
        if self.cache is not None:
            self.written.close()
            log.info("saved written chunks to the cache in %d batch(es)", self.written.saves)
            self.cache.close()

    @property
    def rev(self) -> int:
        return self.index.cursor.rev

    def _call(self, coro):
        """Run a client call; an unreachable server turns the mount offline."""
        try:
            return self._loop.run(coro)
        except ServerUnreachable as exc:
            self._set_online(False, exc)
            raise fs_error(errno.EIO, None, "server unreachable") from exc

    def _mutate(self, coro, *, changes: str | None = None, gone: str | None = None, only: tuple[str, ...] | None = None):
        """A mutation: refused (EROFS) while offline; the index catches up right after.

        `changes`: the one real path the mutation makes or changes. The server
        answers with the new Stat, whose revision the change stream delivers to
        this mount about when the answer arrives; waiting for it there saves the
        second round trip of asking for the changes. `gone`: the one path it
        removes (an unlink, or a file renamed away), confirmed when the stream
        has taken it out of the index. Anything else (a stream that lags, a
        directory's subtree, no Stat) falls back to asking. `only`: the paths the
        mutation touches (none a directory with queued changes below it): it waits
        for the queue only if one of them, or a directory above one, has a change in it.
        """
        if not self.online:
            coro.close()
            raise fs_error(errno.EROFS, None, "server unreachable: the mount is read-only")
        try:
            self.sync(only)  # what is queued goes first: the server sees changes in the order made
        except OSError:
            coro.close()
            raise
        try:
            result = self._call(coro)
        except OSError as exc:
            if exc.errno == errno.EIO:
                raise fs_error(errno.EROFS, None, "server unreachable: the mount is read-only") from exc
            raise
        if changes is None:
            confirmed = gone is not None
        else:
            confirmed = isinstance(result, Stat) and self._streamed(changes, result.rev)
        if not (confirmed and (gone is None or self._streamed(gone, None))):
            self.catch_up()
        return result

    def _streamed(self, path: str, rev: int | None) -> bool:
        """Wait (briefly) until the change stream has brought `path` to revision `rev`
        (None: has taken `path` out of the index)."""
        deadline = time.monotonic() + self.stream_wait
        with self._index_moved:
            while True:
                entry = self.index.entries.get(path)
                if (entry is None) if rev is None else (entry is not None and entry.rev >= rev):
                    return True
                held = self.pushq.shadow.get(path) if self.pushq is not None and rev is not None else None
                if held is not None and held.rev >= rev:
                    return True  # (brought, and held back behind a queued change of ours: `pushq.intercept`)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._watcher is None:
                    return False
                self._index_moved.wait(remaining)

    def _real(self, path: str) -> str:
        """Where a write to `path` lands: its symlinks followed, or `path` itself if it is new."""
        try:
            return self._entry(path, follow=True)[0]
        except OSError:
            return normalize(path)

    # -- content -------------------------------------------------------------------

    def _file(self, path: str) -> Change:
        _, change = self._entry(path, follow=True)
        if change.kind == "dir":
            raise fs_error(errno.EISDIR, path)
        return change

    def chunk(self, digest: str) -> bytes:
        """One chunk: from the cache, else fetched from the server and cached."""
        data = self.written.get(digest)
        if data is not None:
            return data
        with self.written.lock:
            for _, data in self.cache.read_objects([digest]):
                return data
        if not self.online:
            raise fs_error(errno.EIO, None, f"chunk {digest[:12]} not cached and the server is unreachable")

        async def fetch() -> bytes | None:
            async for _, data in self._remote.read_objects([digest]):
                return data
            return None

        data = self._call(fetch())
        if data is None:
            raise fs_error(errno.EIO, None, f"chunk {digest[:12]} missing on the server")
        with self.written.lock:
            self.cache.put_object(data, expected_hash=digest)
        return data

    def iter_file(self, path: str, offset: int = 0, size: int | None = None) -> Iterator[bytes]:
        """The file's bytes from `offset` (at most `size`), chunks fetched as they are reached."""
        yield from iter_range(self._file(path).chunks, self.chunk, offset, size)

    def open(self, path: str, mode: str = "rb") -> io.BufferedReader:
        """A seekable reader over the file's chunks as they are now, each fetched on first read."""
        if mode != "rb":
            raise ValueError("remote mode opens files read-only; writes go through the mount's buffers")
        return open_chunks(self._file(path).chunks, self.chunk, normalize(path))

    # -- writes ----------------------------------------------------------------------

    def write_file(
        self, path: str, data: Any, *, mode: int | None = None, if_match: str | None = None, ino: int | None = None,
        atime_ns: int | None = None, mtime_ns: int | None = None, **_: Any,
    ) -> Stat:
        """PUT a whole file; `if_match` as in `vfs.Workspace.write_file` (PreconditionFailed on mismatch).

        `ino`: a file the mount created with a number from `reserve_ino` and kept
        until its close (`files.py`), pushed now with its content, mode and times:
        one request for the whole file. If the server has the path by now (made
        elsewhere meanwhile), ours is written beside it as a conflict copy."""
        if ino is None:
            return self._put(path, data, mode=mode, if_match=if_match)
        path = normalize(path)
        content = self._queue_content(data)
        if content is not None:
            return self._queue_created(path, content, mode=mode, ino=ino, atime_ns=atime_ns, mtime_ns=mtime_ns)
        with self._lock:
            self.index.reserved[path] = ino
        try:
            st = self._put(path, data, mode=mode, if_match=if_match, mtime=None if mtime_ns is None else mtime_ns / 1e9)
        except vfs.PreconditionFailed:
            st = self.lstat(self._write_conflict_copy(path, _replayable(data)))
        finally:
            with self._lock:
                self.index.reserved.pop(path, None)
        if atime_ns is not None or mtime_ns is not None:
            self.attrs.set_times(st.ino, atime_ns, mtime_ns, st.mtime)  # (exact ns: the wire carries floats)
            st = self.lstat(path)
        return st

    def _put(self, path: str, data: Any, *, mode: int | None, if_match: str | None, mtime: float | None = None) -> Stat:
        path = normalize(path)
        body = _replayable(data)
        try:
            self._mutate(self._remote.write_file(path, body(), mode=mode, if_match=if_match, mtime=mtime),
                         changes=self._real(path))
        except vfs.PreconditionFailed:
            self.catch_up()
            raise
        if if_match == "":
            self._created(path)
        self._cache_content(body)
        return self.lstat(path)

    def commit_file(self, path: str, data: Any, *, base: str | None) -> Stat:
        """Push a file's new content against `base` (the content id it was edited from).

        If the server has moved on, the server's version stays at `path` and
        ours is written beside it as a conflict copy; nothing is lost.
        """
        path = normalize(path)
        content = self._queue_content(data)
        if content is not None:
            return self._queue_commit(path, content, base)
        body = _replayable(data)
        try:
            self._mutate(self._remote.write_file(path, body(), if_match=base or ""), changes=self._real(path))
        except vfs.PreconditionFailed:
            copy = self._write_conflict_copy(path, body)
            self._cache_content(body)
            return self.lstat(copy)
        self._cache_content(body)
        return self.lstat(path)

    def _write_conflict_copy(self, path: str, body) -> str:
        copy = conflict_name(path, host_label())
        self._mutate(self._remote.write_file(copy, body(), mode=None, if_match=""), changes=copy)
        log.warning("conflict on %s: the server's version stays there, ours is %s", path, copy)
        return copy

    def _cache_content(self, body) -> None:
        # Same chunker as the server: the chunk ids match, so a read-back hits the cache.
        with self.written.lock:
            self.cache.write_file("/written", body())

    @contextlib.contextmanager
    def as_owner(self, uid: int, gid: int) -> Iterator[None]:
        previous, self._owner = self._owner, (uid, gid)
        try:
            yield
        finally:
            self._owner = previous

    def _created(self, path: str) -> None:
        """Record the owner of a node this mount just created (kept for the session)."""
        with self._lock:
            ino = self.index.inos.get(normalize(path))
        if ino is not None:
            self.attrs.created(ino, *self._owner)

    def mkdir(self, path: str, *, mode: int = 0o755, **_: Any) -> Stat:
        """The new directory's `Stat`, from the index (the server's answer names its
        revision; the index's adds this mount's inode number and owner)."""
        if self._queue_new(Change(path=normalize(path), kind="dir", rev=0, mode=stat_mod.S_IFDIR | (mode & 0o7777),
                                  mtime=time.time())):
            return self.lstat(path)
        self._mutate(self._remote.mkdir(path, mode=mode), changes=normalize(path))
        self._created(path)
        return self.lstat(path)

    def rmdir(self, path: str) -> None:
        self._mutate(self._remote.rmdir(path))

    def unlink(self, path: str) -> None:
        st = self.lstat(path)
        real = normalize(path)
        if st.kind != "dir":
            with self._lock:
                # (a pushed delete takes one name: a file's other names stay, on the server too)
                if self._queueing():
                    self._enqueue(Change(path=real, kind="delete", rev=0))
                    if st.nlink > 1:
                        self.attrs.changed(st.ino)  # its other names lost a link
                    return
        self._mutate(self._remote.unlink(path), gone=normalize(path))
        if st.nlink > 1:
            self.attrs.changed(st.ino)  # its other names lost a link

    def symlink(self, target: str, path: str) -> None:
        if self._queue_new(Change(path=normalize(path), kind="symlink", rev=0, mode=stat_mod.S_IFLNK | 0o777,
                                  mtime=time.time(), size=len(target.encode()), target=target)):
            return
        self._mutate(self._remote.symlink(target, path), changes=normalize(path))
        self._created(path)

    def mknod(self, path: str, mode: int, rdev: int = 0) -> None:
        kind = next((k for k, fmt in IFMT.items() if fmt == stat_mod.S_IFMT(mode) and k not in ("file", "dir", "symlink")), None)
        if kind is not None and self._queue_new(Change(path=normalize(path), kind=kind, rev=0, mode=mode, mtime=time.time(),
                                                       rdev=rdev if kind in ("char", "block") else 0)):
            return
        self._mutate(self._remote.mknod(path, mode, rdev))
        self._created(path)

    def link(self, existing: str, new: str) -> Stat:
        """The file's `Stat` after the link, from the index: one inode number for both
        names, link count 2 or more. The server's answer names the revision that made
        `new`, which the change stream brings (no second request)."""
        new = normalize(new)
        if self._queue_link(self._real(existing), new):
            return self.lstat(new)
        self._mutate(self._remote.link(existing, new), changes=new)
        with self._lock:
            self.index.link(self._real(existing), new)
            self.attrs.changed(self.index.inos[new])
            return self.lstat(new)

    def rename(self, src: str, dst: str, *, noreplace: bool = False, exchange: bool = False) -> None:
        if exchange:
            raise fs_error(errno.EINVAL, src, "RENAME_EXCHANGE is not in the wire protocol")
        if noreplace and self.exists(dst):
            raise fs_error(errno.EEXIST, dst)
        src_real, dst_real = normalize(src), normalize(dst)  # FUSE hands real paths
        if self._queue_rename(src_real, dst_real):
            return
        with self._lock:
            before = self.index.inos_below(src_real)
            replaced = self.index.inos.get(dst_real)
            replaced_links = self.index.nlink(dst_real) if replaced is not None else 0
            moving = self.index.entries.get(src_real)
        if moving is not None and moving.kind != "dir" and src_real != dst_real:
            # (git: every lock file renamed into place) one name goes, one comes: the stream confirms both
            self._mutate(self._remote.rename(src, dst), changes=dst_real, gone=src_real, only=(src_real, dst_real))
        else:
            self._mutate(self._remote.rename(src, dst))
        with self._lock:
            # A rename keeps the inode: same number, owners and times as before.
            self.index.moved(src_real, dst_real, before)
            if src_real in before[0]:
                self.attrs.changed(before[0][src_real])
            if replaced_links > 1:
                self.attrs.changed(replaced)

    # chmod, chown and utimens: tar sends all three for every directory it made (3,233 in the
    # Django untar) and a chown and utimens for every file: each resolves the path once and
    # builds one `Stat` (they took 2-4 of each), under one hold of the lock unless an HTTP
    # call is needed.

    def chmod(self, path: str, mode: int) -> Stat:
        with self._lock:
            real, entry = self._entry(path, follow=True)
            # (a name of several: one HTTP call, whose answer the index applies to every name of the inode)
            if (entry.kind != "symlink" and (entry.kind != "file" or entry.chunks or not entry.size)
                    and self.index.nlink(real) <= 1 and self._queueing()):
                if (entry.mode & 0o7777) != (mode & 0o7777):
                    self._enqueue(rechange(entry, mode=stat_mod.S_IFMT(entry.mode) | (mode & 0o7777)))
                    entry = self.index.entries[real]
                return self._changed(real, entry)
        self._mutate(self._remote.chmod(path, mode), changes=real, only=(real,))
        with self._lock:
            return self._changed(*self._entry(path, follow=True))  # (the index, in memory: the new attributes)

    def _changed(self, real: str, entry: Change) -> Stat:
        """The node's `Stat` after a metadata change made here, its ctime now (lock held)."""
        self.attrs.changed(self.index.inos[real])
        return self._stat(real, entry)

    def chown(self, path: str, uid: int, gid: int, *, follow_symlinks: bool = True) -> Stat:
        with self._lock:
            real, entry = self._entry(path, follow=follow_symlinks)
            self.attrs.chown(self.index.inos[real], uid, gid)
            return self._stat(real, entry)

    def set_times(
        self, path: str, *, atime_ns: int | None = None, mtime_ns: int | None = None, follow_symlinks: bool = True
    ) -> Stat:
        """The mtime goes to the server (queued, or a wire `utime`, which follows symlinks: a
        symlink's stays here); the exact nanoseconds and the atime stay in the session's overlay."""
        with self._lock:
            real, entry = self._entry(path, follow=follow_symlinks)
            if mtime_ns is None or entry.kind == "symlink" or self._queue_times(real, mtime_ns):
                entry = self.index.entries[real]  # (the queued mtime, if any)
                self.attrs.set_times(self.index.inos[real], atime_ns, mtime_ns, entry.mtime)
                return self._stat(real, entry)
        self._mutate(self._remote.utime(path, mtime_ns / 1e9), changes=real, only=(real,))
        with self._lock:
            real, entry = self._entry(path, follow=follow_symlinks)
            self.attrs.set_times(self.index.inos[real], atime_ns, mtime_ns, entry.mtime)
            return self._stat(real, entry)

    def truncate(self, path: str, size: int) -> None:
        real = self._real(path)
        self._mutate(self._remote.truncate(path, size), changes=real, only=(real,))


def _replayable(data: Any):
    """A function returning a fresh iterable of the content each call (upload, conflict copy, cache)."""
    if isinstance(data, (bytes, bytearray, memoryview, str)):
        return lambda: data
    spool = getattr(data, "spool", None)  # a `SpoolReader`: replay the spool itself
    if spool is not None:
        return spool.pieces
    materialized = data.read() if hasattr(data, "read") else b"".join(data)
    return lambda: materialized


def mount_remote(url: str, workspace: str, mountpoint: str, *, cache: str | None, token: str | None, debug: bool = False,
                 api: str = "lowlevel") -> None:
    from client_py.mount.ops import WsfsOperations
    from client_py.mount.runner import run_foreground

    cache_dir = os.path.abspath(cache or os.path.join(os.path.expanduser("~"), ".cache", "wsfs"))
    # Connect and load the index before mounting: an unreachable server or a
    # wrong token fails `wsfs mount` with a clear message instead of a dead mount.
    backend = RemoteBackend(url, workspace, token=token, cache_dir=cache_dir).start()
    operations = WsfsOperations(lambda: backend, statfs_dir=cache_dir)
    # The kernel keeps names, attributes and listings, dropped as the change stream
    # reports changes (`WSFS_MOUNT_REMOTE_CACHE=0`: 0.5 s timeouts, and on the path API no kept
    # listings; the low-level API keeps listings by protocol, so it always follows the stream).
    follows = os.environ.get("WSFS_MOUNT_REMOTE_CACHE", "1") != "0"
    operations.cache_dirs = follows and api == "path"
    operations.follows_stream = follows or api == "lowlevel"
    run_foreground(operations, mountpoint, local=False, debug=debug, follows_stream=follows, api=api)
