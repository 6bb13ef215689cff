"""`Replica`: a real local directory kept in sync with a workspace, both ways.

The loop is simple because the server's change stream is state-based and
resumable:

- remote -> local: subscribe `after` the persisted watermark; apply each
  `changes` batch (contents first, into temp files, then renames), then
  store the batch's cursor and every path's new base in one SQLite
  transaction. A kill anywhere replays at most the batch in flight, and
  what was already written is recognised by its hash, not downloaded again.
- local -> remote: a rescan at start and on every `watchfiles` event (and
  periodically, since inotify misses files created in new directories)
  compares each path's stat with the stat recorded when it was synced;
  only differing files are read and hashed. Changes are pushed with the
  per-path base revision, so the server refuses to overwrite anything the
  replica had not seen.
- conflicts: the server's version wins the path; the local one is renamed
  `NAME.conflict-<host>-<YYYYmmdd-HHMMSS>.EXT` (and synced like any file).
  A deletion never beats an edit, on either side.

Only one task mutates the directory and the state, so there are no races
between applying remote changes and pushing local ones.
"""

from __future__ import annotations

import asyncio
import fcntl
import io
import logging
import os
import stat as statmod
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import blake3

from client_py.backoff import Backoff
from client_py.client import Client
from client_py.conflicts import conflict_name, host_label
from client_py.errors import ConnectionLost, ServerUnreachable
from client_py.replica.download import Content, Downloader, write_inline
from client_py.replica.ignore import IgnoreRules
from client_py.replica.localfs import (
    STATE_DIR,
    LocalTree,
    TempFile,
    UnsafePath,
    is_temp_name,
    split_path,
    symlink_stays_inside,
)
from client_py.replica.state import Entry, State
from client_py.session import Session, Subscription
from vfs.chunks import cut_stream
from vfs.errors import CursorTooOld, MissingObjects
from vfs.protocol import CaughtUp, Changes, ProtocolError, change_from_wire, entry_data
from vfs.types import ApplyResult, Change, Conflict, Cursor

log = logging.getLogger("client_py.replica")

PUSH_ENTRIES = 512  # entries per push
PUSH_BYTES = 64 << 20  # file bytes hashed per push batch
FSYNC_EACH_MAX = 32  # durability "auto": up to this many files per batch are fsynced one by one
SETTLE_TIMEOUT = 30.0  # sync_once: how long to wait for the echo of its own pushes
RETRYABLE = (ConnectionLost, ServerUnreachable)


@dataclass
class SyncSummary:
    """What a sync did. `conflicts` are the conflict copies made (workspace paths)."""

    downloaded: int = 0
    uploaded: int = 0
    deleted_local: int = 0
    deleted_remote: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0
    conflicts: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    cursor: str | None = None

    def __str__(self) -> str:
        parts = [
            f"{self.downloaded} in", f"{self.uploaded} out", f"{self.deleted_local} deleted here",
            f"{self.deleted_remote} deleted there", f"{_human(self.bytes_received)} received",
            f"{_human(self.bytes_sent)} sent",
        ]
        if self.conflicts:
            parts.append(f"{len(self.conflicts)} conflict(s): " + ", ".join(self.conflicts[:5]))
        if self.refused:
            parts.append(f"{len(self.refused)} refused: " + ", ".join(p for p, _ in self.refused[:5]))
        return "; ".join(parts)


@dataclass
class _Local:
    """A local change ready to push."""

    change: Change
    base: int | None  # the revision the replica last synced this path at (None: never)
    stat: os.stat_result | None = None


def _kind_of(st: os.stat_result) -> str | None:
    if statmod.S_ISREG(st.st_mode):
        return "file"
    if statmod.S_ISDIR(st.st_mode):
        return "dir"
    if statmod.S_ISLNK(st.st_mode):
        return "symlink"
    return None  # fifos, sockets, devices: not synced


RACY_NS = 100_000_000  # file timestamps tick at jiffy granularity: a stat this fresh proves nothing


def _trusted_mtime(st: os.stat_result) -> int:
    """The mtime to record for a file we read, or -1 when it is too recent to trust ("racy git").

    Two writes of the same size within one timestamp tick leave size and mtime
    unchanged; recording such a stat would hide the second write from every
    later rescan. -1 never matches, so the next rescan hashes the file again.
    """
    return st.st_mtime_ns if time.time_ns() - st.st_mtime_ns > RACY_NS else -1


def _join(parent: str, name: str) -> str:
    return parent + name if parent == "/" else f"{parent}/{name}"


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


class Replica:
    """Mirror workspace `workspace` of the server at `url` into `local_dir`.

    - `await replica.sync_once()` converges both ways once and returns a `SyncSummary`;
    - `await replica.run()` stays live until cancelled, surviving disconnects.

    Options: `ignore` (gitignore-style patterns, added to `.wsfsignore`),
    `host` (name used in conflict copies), `inline_max` (small files come
    inside change messages), `reconcile_interval` (seconds between full
    rescans in `run`), `durability` (when written files reach the disk before
    the state records them: "auto" fsyncs each file of a small batch and
    syncfs()s once after a big one, "file" always fsyncs each file, "batch"
    always syncfs()s, "none" leaves it to the kernel, as rsync does; a killed
    process never leaves a partial file whatever the mode), `on_progress(summary)`
    called after each batch.
    """

    def __init__(
        self,
        url: str,
        workspace: str,
        local_dir: str | os.PathLike[str],
        *,
        token: str | None = None,
        ignore: Iterable[str] = (),
        host: str | None = None,
        inline_max: int = 64 * 1024,
        batch_max: int = 256,
        reconcile_interval: float = 30.0,
        durability: str = "auto",
        backoff: Backoff | None = None,
        on_progress: Callable[[SyncSummary], None] | None = None,
    ):
        self.url = url.rstrip("/")
        self.workspace = workspace
        self.local_dir = os.path.abspath(os.fspath(local_dir))
        self.host = host_label(host)
        self.inline_max = inline_max
        self.batch_max = batch_max
        self.reconcile_interval = reconcile_interval
        if durability not in ("auto", "file", "batch", "none"):
            raise ValueError(f"durability must be auto, file, batch or none, not {durability!r}")
        self.durability = durability
        self._fsync_each = False
        self.on_progress = on_progress
        self.backoff = backoff or Backoff(base=0.2, cap=5.0, retries=None)
        self.client = Client(self.url, token, backoff=Backoff(base=0.1, cap=1.0, retries=2))
        self.tree = LocalTree(self.local_dir)
        self._lock_fd = self._lock()
        self.state = State(os.path.join(self.local_dir, STATE_DIR, "state.db"))
        self.rules = IgnoreRules(self.local_dir, ignore)
        self.summary = SyncSummary()
        self.downloader = Downloader(self.tree, self.state, self._count_received)
        self.connected = asyncio.Event()
        self.ready = asyncio.Event()  # set once the first catch-up and rescan are done (run)
        self._req: Session | None = None
        self._stream: Session | None = None
        self._sub: Subscription | None = None
        self._sub_cursor: str | None = None
        self._snapshot = False
        self._pending: set[str] = set()
        self._wake = asyncio.Event()
        self._closed = False
        self._last_push_rev = 0
        self._users: dict[str, int] = {}
        self._rows: dict[str, Entry | None] | None = None
        self._check_identity()

    # -- lifecycle ------------------------------------------------------------------

    def _lock(self) -> int:
        """One replica process per directory: two would fight over the same files."""
        os.makedirs(os.path.join(self.local_dir, STATE_DIR), exist_ok=True)
        fd = os.open(os.path.join(self.local_dir, STATE_DIR, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RuntimeError(f"another replica is already running in {self.local_dir}") from None
        return fd

    def _check_identity(self) -> None:
        """A state made for another server/workspace is worthless: start over (contents are kept, adopted by hash)."""
        ident = f"{self.url} {self.workspace}"
        if self.state.get_meta("identity") not in (None, ident):
            log.warning("%s was synced with %s; starting a fresh sync with %s", self.local_dir,
                        self.state.get_meta("identity"), ident)
            self.state.begin()
            self.state.conn.execute("DELETE FROM entries")
            self.state.conn.execute("DELETE FROM chunks")
            self.state.conn.execute("DELETE FROM meta")
            self.state.commit()
        self.state.set_meta("identity", ident)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._disconnect()
        await self.client.aclose()
        self.state.close()
        self.tree.close()
        os.close(self._lock_fd)

    async def __aenter__(self) -> Replica:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def watermark(self) -> str | None:
        return self.state.get_meta("watermark")

    # -- connection -----------------------------------------------------------------

    async def _connect(self) -> None:
        self._req = await self.client.connect(self.workspace)
        self._stream = await self.client.connect(self.workspace)
        patterns = "\n".join(self.rules.wire_patterns())
        after = self.watermark
        if self.state.get_meta("ignore") != patterns:
            after = None  # different filters: paths hidden before may now be wanted
        try:
            self._sub = await self._subscribe(after)
        except CursorTooOld:
            log.warning("watermark %s is older than the server's horizon; resyncing from a snapshot", after)
            after = None
            self._sub = await self._subscribe(None)
        self._snapshot = after is None and self.state.count() > 0  # nothing to sweep in a fresh replica
        if self._snapshot:
            self.state.conn.execute("CREATE TEMP TABLE IF NOT EXISTS seen(path TEXT PRIMARY KEY)")
            self.state.conn.execute("DELETE FROM seen")
        self.state.set_meta("ignore", patterns)
        self._sub_cursor = self._sub.start
        self.connected.set()

    async def _subscribe(self, after: str | None, *, inline: bool = False) -> Subscription:
        """Catch-up subscribes without inlining: chunk bytes in binary frames cost less than base64
        in JSON; live subscriptions inline small files to save the `get` round trip."""
        assert self._stream is not None
        return await self._stream.subscribe(
            after=after, ignore=self.rules.wire_patterns(), inline_max=self.inline_max if inline else 0,
            batch_max=self.batch_max, queue_size=4,
        )

    async def _go_live(self) -> None:
        """Switch the caught-up subscription to one that inlines small files."""
        assert self._stream is not None and self._sub is not None
        if not self.inline_max:
            return
        await self._stream.unsubscribe(self._sub)
        self._sub = await self._subscribe(self._sub_cursor, inline=True)

    async def _disconnect(self) -> None:
        self.connected.clear()
        for session in (self._stream, self._req):
            if session is not None:
                await session.close()
        self._stream = self._req = None
        self._sub = None

    def _count_received(self, n: int) -> None:
        self.summary.bytes_received += n

    # -- public entry points ----------------------------------------------------------

    async def sync_once(self) -> SyncSummary:
        """Converge once: pull everything after the watermark, push local changes, settle, disconnect.

        A connection lost on the way (server restart, keepalive timeout during a very
        long transfer) is retried with backoff; each attempt resumes from the watermark.
        """
        self.summary = SyncSummary()
        delays = Backoff(base=0.2, cap=2.0, retries=8).delays()
        while True:
            try:
                await self._connect()
                await self._catch_up()
                await self._push(self._scan("/"), drain=True)
                await self._settle()
                break
            except RETRYABLE as e:
                delay = next(delays, None)
                if delay is None:
                    raise
                log.warning("sync of %s: %s; resuming in %.1fs", self.local_dir, e, delay)
                await asyncio.sleep(delay)
            finally:
                await self._disconnect()
        self.summary.cursor = self.watermark
        return self.summary

    async def run(self) -> None:
        """Stay live until cancelled: remote changes in, local edits out, through disconnects."""
        watcher = asyncio.ensure_future(self._watch_local())
        delays = self.backoff.delays()
        try:
            while True:
                try:
                    await self._connect()
                    await self._catch_up()
                    self._pending.clear()
                    await self._push(self._scan("/"), drain=True)
                    await self._go_live()
                    self.ready.set()
                    delays = self.backoff.delays()
                    await self._live()
                except RETRYABLE as e:
                    delay = next(delays)
                    log.warning("replica %s: %s; retrying in %.1fs", self.local_dir, e, delay)
                    await self._disconnect()
                    await asyncio.sleep(delay)
        finally:
            watcher.cancel()
            try:
                await watcher
            except (asyncio.CancelledError, Exception):
                pass
            await self._disconnect()

    # -- remote -> local --------------------------------------------------------------

    async def _catch_up(self) -> None:
        assert self._sub is not None
        while True:
            msg = await self._sub.next()
            if isinstance(msg, CaughtUp):
                self._sub_cursor = msg.cursor
                break
            await self._apply_batch(msg)
        if self._snapshot:
            self._sweep_unseen()
            self._snapshot = False
        self._clean_tmp()

    async def _apply_message(self, msg: Changes | CaughtUp) -> None:
        if isinstance(msg, Changes):
            await self._apply_batch(msg)
        else:
            self._sub_cursor = msg.cursor

    async def _stop_waiting(self, next_msg: asyncio.Future[Any]) -> None:
        """Cancel a pending `sub.next()`, applying its message if it already had one."""
        if not next_msg.done():
            next_msg.cancel()
            try:
                await next_msg
            except asyncio.CancelledError:
                return
        if not next_msg.cancelled():
            await self._apply_message(next_msg.result())

    async def _drain_stream(self) -> None:
        """Apply the remote batches already queued, without waiting for more."""
        sub = self._sub
        while sub is not None and not sub._queue.empty():
            await self._apply_message(await sub.next())

    async def _settle(self) -> None:
        """Apply changes until the subscription has passed the last revision we pushed."""
        target = self._last_push_rev
        deadline = time.monotonic() + SETTLE_TIMEOUT
        assert self._sub is not None
        while self._sub_cursor is not None and Cursor.parse(self._sub_cursor).rev < target:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                msg = await asyncio.wait_for(self._sub.next(), remaining)
            except asyncio.TimeoutError:
                break
            if isinstance(msg, Changes):
                await self._apply_batch(msg)
            else:
                self._sub_cursor = msg.cursor

    async def _apply_batch(self, msg: Changes) -> None:
        entries: list[tuple[Change, bytes | None]] = []
        for raw in msg.entries:
            change = self._accept(raw)
            if change is not None:
                entries.append((change, entry_data(raw) if isinstance(raw, dict) else None))
        await self._apply_entries(entries, cursor=msg.cursor)
        self._sub_cursor = msg.cursor
        if self.on_progress:
            self.on_progress(self.summary)

    def _accept(self, raw: Any) -> Change | None:
        """Validate one incoming entry; refuse (and report) anything unsafe."""
        try:
            change = change_from_wire(raw)
            split_path(change.path)
            if change.path == "/":
                return None
            if change.kind == "symlink" and not symlink_stays_inside(change.path, change.target or ""):
                raise UnsafePath(change.path, f"symlink target {change.target!r} points outside the replica")
        except (ProtocolError, UnsafePath, KeyError, TypeError, ValueError) as e:
            path = raw.get("path") if isinstance(raw, dict) else None
            self._refuse(str(path), getattr(e, "reason", None) or str(e))
            return None
        is_dir = change.kind == "dir"
        if self.rules.ignored(change.path, is_dir) or (change.kind == "delete" and self.rules.ignored(change.path, True)):
            return None  # a tombstone does not say what it was: `build/` must also cover a deleted build dir
        return change

    def _refuse(self, path: str, reason: str) -> None:
        log.warning("refused %s from the server: %s", path, reason)
        self.summary.refused.append((path, reason))

    async def _apply_entries(
        self, entries: list[tuple[Change, bytes | None]], *, cursor: str | None, force: bool = False
    ) -> None:
        with self.tree.batch():
            await self._apply_entries_batch(entries, cursor=cursor, force=force)

    async def _apply_entries_batch(
        self, entries: list[tuple[Change, bytes | None]], *, cursor: str | None, force: bool
    ) -> None:
        paths = [c.path for c, _ in entries]
        found = self.state.get_many(paths)
        self._rows = {p: found.get(p) for p in paths}  # None: known to have no row
        try:
            await self._apply_entries_rows(entries, cursor=cursor, force=force)
        finally:
            self._rows = None

    def _row(self, path: str) -> Entry | None:
        """The state row of `path`, from the batch's prefetch when there is one."""
        if self._rows is not None and path in self._rows:
            return self._rows[path]
        return self.state.get(path)

    async def _apply_entries_rows(
        self, entries: list[tuple[Change, bytes | None]], *, cursor: str | None, force: bool
    ) -> None:
        todo = [(c, d) for c, d in entries if force or not self._stale(c)]
        contents: dict[str, Any] = {}
        try:
            await self._materialise(todo, contents)
        except BaseException:
            self._close_contents(contents, unlink=False)  # partial files stay for the next attempt
            raise
        self._users = {}
        for change, _ in todo:
            if change.kind == "file" and isinstance(contents.get(change.hash or ""), Content):
                if contents.get(change.path) != "adopt":
                    self._users[change.hash] = self._users.get(change.hash, 0) + 1  # type: ignore[index]
        files = sum(1 for c, _ in todo if c.kind == "file")
        self._fsync_each = self.durability == "file" or (self.durability == "auto" and files <= FSYNC_EACH_MAX)
        sync_after = files and (self.durability == "batch" or (self.durability == "auto" and not self._fsync_each))
        self.state.begin()
        try:
            if self._snapshot:
                self.state.conn.executemany("INSERT OR IGNORE INTO seen(path) VALUES(?)", [(c.path,) for c, _ in entries])
            for change, _ in todo:
                try:
                    self._apply_one(change, contents)
                except UnsafePath as e:
                    self._refuse(change.path, e.reason)
                except NotADirectoryError as e:
                    self._refuse(change.path, f"a parent is not a directory here ({e.filename})")
            if cursor is not None:
                self.state.set_meta("watermark", cursor)
            if sync_after:
                self.tree.syncfs()
            self.state.commit()
        except BaseException:
            self.state.rollback()
            raise
        finally:
            self._close_contents(contents, unlink=True)

    def _close_contents(self, contents: dict[str, Any], *, unlink: bool) -> None:
        for content in contents.values():
            if isinstance(content, Content):
                self.downloader.close(content)
                if unlink:
                    if content.tmp is not None:
                        self.tree.temp_unlink(content.tmp)

    def _stale(self, change: Change) -> bool:
        """An entry at or below the revision we already hold for the path changes nothing."""
        row = self._row(change.path)
        if row is not None:
            return row.rev >= change.rev
        return change.kind == "delete" and self.tree.lstat(change.path) is None

    async def _materialise(self, todo: list[tuple[Change, bytes | None]], out: dict[str, Any]) -> None:
        """Content for every file entry, into `out`: "adopt" (already here), inline bytes, or a Content."""
        fetch: list[Content] = []
        self.downloader.lookup([c for c, _ in todo if c.kind == "file"])
        for change, data in todo:
            if change.kind != "file" or change.hash is None or change.hash in out or change.path in out:
                continue
            if self._local_has(change):
                out[change.path] = "adopt"
                continue
            if data is not None and len(data) == change.size and blake3.blake3(data).hexdigest() == change.hash:
                out[change.hash] = ("inline", data)
                self.summary.bytes_received += len(data)
                continue
            content = self.downloader.prepare(change)
            out[change.hash] = content
            if content.missing:
                fetch.append(content)
        if fetch:
            assert self._req is not None
            await self.downloader.fetch(self._req, fetch)

    def _local_has(self, change: Change) -> bool:
        """Is `change`'s content already at its path (e.g. written before a kill, or copied in by hand)?"""
        st = self.tree.lstat(change.path)
        if st is None or not statmod.S_ISREG(st.st_mode) or st.st_size != change.size:
            return False
        row = self._row(change.path)
        if row is not None and row.kind == "file" and row.matches(st) and row.hash == change.hash:
            return True
        return self._hash_local(change.path) == change.hash

    def _hash_local(self, path: str) -> str | None:
        try:
            with self.tree.open_read(path) as fd:
                hasher = blake3.blake3()
                while piece := os.read(fd, 1 << 20):
                    hasher.update(piece)
                return hasher.hexdigest()
        except (OSError, UnsafePath):
            return None

    def _apply_one(self, change: Change, contents: dict[str, Any]) -> None:
        path = change.path
        local = self.tree.lstat(path)
        row = self._row(path)
        if self._rows is not None:
            self._rows.pop(path, None)  # written below: later reads must see the new row
        if change.kind == "delete":
            self._remote_delete(path, local, row)
            return
        if local is not None and statmod.S_ISDIR(local.st_mode) and change.kind != "dir":
            # a directory replaced by a file or link there: drop what was synced below it,
            # and keep anything made here beside it (as a conflict copy)
            if self._delete_clean_tree(path):
                local, row = None, None
            else:
                self._conflict_copy(path)
                local, row = None, None
        if local is not None and not self._clean(local, row, path):
            if self._same_as_remote(change, local, contents):
                pass  # identical on both sides: adopt
            elif change.kind == "dir" and statmod.S_ISDIR(local.st_mode):
                pass  # directories merge
            else:
                self._conflict_copy(path)
        if change.kind == "dir":
            st = self.tree.make_dir(path, change.mode)
            self._record(change, st)
        elif change.kind == "symlink":
            st = self.tree.make_symlink(path, change.target or "", change.mtime)
            self._record(change, st)
        else:
            st = self._install_file(change, contents)
            self._record(change, st)
            self.state.index_chunks(path, change.chunks, fresh=row is None)
        self.summary.downloaded += 1

    def _clean(self, local: os.stat_result, row: Entry | None, path: str | None = None) -> bool:
        """Is the local object exactly what was last synced? With `path`, a racy stat is settled by hashing."""
        if row is None or row.kind != _kind_of(local):
            return False
        if row.kind == "file" and (local.st_mode & 0o7777) != (row.mode & 0o7777):
            return False
        if row.matches(local):
            return True
        racy = row.kind == "file" and row.mtime_ns == -1 and row.size == local.st_size and row.ino == local.st_ino
        return path is not None and racy and self._hash_local(path) == row.hash

    def _same_as_remote(self, change: Change, local: os.stat_result, contents: dict[str, Any]) -> bool:
        kind = _kind_of(local)
        if kind != change.kind:
            return False
        if kind == "file":
            return contents.get(change.path) == "adopt"
        if kind == "symlink":
            try:
                return self.tree.readlink(change.path) == change.target
            except OSError:
                return False
        return True

    def _install_file(self, change: Change, contents: dict[str, Any]) -> os.stat_result:
        path = change.path
        if contents.get(path) == "adopt":
            with self.tree.open_read(path) as ffd:
                os.fchmod(ffd, change.mode & 0o7777)
                ns = int(change.mtime * 1e9)
                os.utime(ffd, ns=(ns, ns))
                return os.fstat(ffd)
        if change.size == 0 or change.hash is None:
            tmp = write_inline(self.tree, b"", path, change.mode, change.mtime, fsync=self._fsync_each)
            return self.tree.install(tmp, path)
        source = contents[change.hash]
        if isinstance(source, tuple):  # inline
            tmp = write_inline(self.tree, source[1], path, change.mode, change.mtime, fsync=self._fsync_each)
            return self.tree.install(tmp, path)
        content: Content = source
        self.downloader.finish(content, change.mode, change.mtime, fsync=self._fsync_each)
        self._users[change.hash] -= 1
        if self._users[change.hash] > 0:  # another path of this batch needs the same bytes
            copy = self.downloader.copy_for(content, path, fsync=self._fsync_each)
            return self.tree.install(copy, path)
        assert content.tmp is not None
        return self.tree.install(content.tmp, path)

    def _record(self, change: Change, st: os.stat_result) -> None:
        self.state.put(Entry(change.path, change.kind, change.rev, change.hash, change.target,
                             change.mode & 0o7777, st.st_size, st.st_mtime_ns, st.st_ino))

    def _remote_delete(self, path: str, local: os.stat_result | None, row: Entry | None) -> None:
        if local is None:
            self._forget_tree(path)
            return
        if statmod.S_ISDIR(local.st_mode):
            self._delete_clean_tree(path)
            return
        if self._clean(local, row, path):
            self.tree.remove(path)
            self.summary.deleted_local += 1
        else:
            log.info("kept %s: edited here, deleted on the server (the edit wins)", path)
            self._pending.add(path)
        self.state.delete(path)

    def _delete_clean_tree(self, path: str) -> bool:
        """Remove what was synced under `path`; keep local edits (they will be pushed). True if gone."""
        empty = True
        for name, st in self.tree.scandir(path):
            child = _join(path, name)
            if statmod.S_ISDIR(st.st_mode):
                empty = self._delete_clean_tree(child) and empty
            elif self._clean(st, self.state.get(child), child) or self.rules.ignored(child):
                self.tree.remove(child)
                self.state.delete(child)
                self.summary.deleted_local += 1
            else:
                empty = False
                self.state.delete(child)  # now a local-only file: pushed again
                self._pending.add(child)
        self.state.delete(path)
        if empty and self.tree.rmdir(path):
            for p in self.state.subtree(path):
                self.state.delete(p)
            return True
        return False

    def _forget_tree(self, path: str) -> None:
        for p in self.state.subtree(path):
            self.state.delete(p)
        self.state.delete(path)

    def _conflict_copy(self, path: str) -> str:
        base = conflict_name(path, self.host)
        target, n = base, 1
        while self.tree.lstat(target) is not None:
            n += 1
            stem, ext = os.path.splitext(base)
            target = f"{stem}-{n}{ext}"
        self.tree.rename(path, target)
        self.state.delete(path)
        self.summary.conflicts.append(target)
        self._pending.add(target)
        log.warning("conflict on %s: the server's version is at the path, yours is kept as %s", path, target)
        return target

    def _sweep_unseen(self) -> None:
        """After a snapshot: paths we hold that the server no longer lists are gone there."""
        rows = self.state.conn.execute(
            "SELECT path FROM entries WHERE path NOT IN (SELECT path FROM seen) ORDER BY path DESC"
        ).fetchall()
        self.state.begin()
        try:
            for (path,) in rows:
                self._remote_delete(path, self.tree.lstat(path), self.state.get(path))
            self.state.commit()
        except BaseException:
            self.state.rollback()
            raise

    def _clean_tmp(self) -> None:
        for name in self.tree.tmp_names():
            self.tree.temp_unlink(TempFile(None, name))

    # -- local -> remote --------------------------------------------------------------

    def _scan(self, top: str) -> Iterator[str]:
        """Paths under `top` whose local state differs from the recorded one (parents first).

        One directory at a time, against the state rows of that directory
        only, so memory stays bounded by the largest directory.
        """
        stack = [top]
        while stack:
            d = stack.pop()
            local = dict(self.tree.scandir(d))
            known = self.state.children(d)
            for name in sorted(local):
                if d == "/" and name == STATE_DIR:
                    continue
                if is_temp_name(name):
                    self.tree.unlink_name(d, name)  # left by an interrupted run (scans never overlap a batch)
                    continue
                st = local[name]
                path = _join(d, name)
                kind = _kind_of(st)
                if kind is None or self.rules.ignored(path, kind == "dir"):
                    continue
                if not self._clean(st, known.get(name)):
                    yield path
                if kind == "dir":
                    stack.append(path)
            for name in known:
                if name not in local:
                    yield _join(d, name)

    async def _push(self, paths: Iterable[str], *, drain: bool = False) -> None:
        """Push the local state of `paths` in batches; resolve conflicts; repeat for conflict copies.

        `drain`: between batches, apply what the subscription has queued (mostly the
        echoes of our own pushes), so its socket keeps being read during a long push
        and the server's keepalive pings get their pongs. (Not in `_live`, where a
        task is already waiting on the subscription.)
        """
        for _round in range(3):
            batch: list[_Local] = []
            size = 0
            for path in paths:
                for item in self._local_changes(path):
                    batch.append(item)
                    size += item.change.size
                if len(batch) >= PUSH_ENTRIES or size >= PUSH_BYTES:
                    await self._push_batch(batch)
                    batch, size = [], 0
                    if drain:
                        await self._drain_stream()
            if batch:
                await self._push_batch(batch)
            if not self._pending:
                return
            paths = sorted(self._pending)
            self._pending.clear()

    def _local_changes(self, path: str) -> list[_Local]:
        """What to push for one path: nothing, its new state, or deletes (a whole subtree's)."""
        try:
            split_path(path)
        except UnsafePath:
            return []
        st = self.tree.lstat(path)
        row = self.state.get(path)
        kind = _kind_of(st) if st is not None else None
        if kind is not None and self.rules.ignored(path, kind == "dir"):
            return []
        if kind is None:
            if row is None:
                return []
            subtree = self.state.subtree(path) if row.kind == "dir" else []
            out = [_Local(Change(p, "delete", 0), self.state.get(p).rev) for p in subtree if self.state.get(p)]
            return out + [_Local(Change(path, "delete", row.rev), row.rev)]
        if self._clean(st, row):
            return []
        base = row.rev if row is not None else None
        if kind == "dir":
            if row is not None and row.kind == "dir":
                return []  # directory mode changes are not synced (we keep them writable)
            return [_Local(Change(path, "dir", base or 0, mode=st.st_mode, mtime=st.st_mtime), base, st)]
        if kind == "symlink":
            try:
                target = self.tree.readlink(path)
            except OSError:
                return []
            if row is not None and row.kind == "symlink" and row.target == target:
                self._remember_stat(row, st)
                return []
            return [_Local(Change(path, "symlink", base or 0, mode=st.st_mode, mtime=st.st_mtime, target=target,
                                  size=len(target.encode())), base, st)]
        change = self._hash_file(path, base or 0)
        if change is None:
            return []  # changing under our feet: its next event (or the next rescan) pushes it
        hashed_st, change = change
        if row is not None and row.kind == "file" and row.hash == change.hash and row.mode == (change.mode & 0o7777):
            self._remember_stat(row, hashed_st)
            return []
        return [_Local(change, base, hashed_st)]

    def _remember_stat(self, row: Entry, st: os.stat_result) -> None:
        self.state.put(Entry(row.path, row.kind, row.rev, row.hash, row.target, row.mode,
                             st.st_size, _trusted_mtime(st), st.st_ino))

    def _hash_file(self, path: str, rev: int) -> tuple[os.stat_result, Change] | None:
        """Chunk and hash a local file exactly as the store does (same CDC, same ids)."""
        try:
            with self.tree.open_read(path) as fd:
                before = os.fstat(fd)
                if not statmod.S_ISREG(before.st_mode):
                    return None
                reader = io.BufferedReader(io.FileIO(fd, closefd=False), buffer_size=1 << 20)
                whole = blake3.blake3()
                chunks = []
                for piece in cut_stream(reader):
                    whole.update(piece)
                    chunks.append((blake3.blake3(piece).hexdigest(), len(piece)))
                after = os.fstat(fd)
        except (OSError, UnsafePath):
            return None
        if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns) or sum(s for _, s in chunks) != after.st_size:
            return None
        digest = chunks[0][0] if len(chunks) == 1 else whole.hexdigest()
        return after, Change(path, "file", rev, mode=after.st_mode, mtime=after.st_mtime, size=after.st_size,
                             hash=digest, chunks=tuple(chunks))

    async def _push_batch(self, batch: list[_Local]) -> None:
        assert self._req is not None
        batch = await self._upload_chunks(batch)
        if not batch:
            return
        base = {item.change.path: item.base for item in batch if item.base is not None}
        changes = [item.change for item in batch]
        try:
            result = await self._req.push(changes, base)
        except MissingObjects:
            batch = await self._upload_chunks(batch, force=True)
            result = await self._req.push([i.change for i in batch], base)
        self._last_push_rev = max(self._last_push_rev, result.rev)
        await self._record_push(batch, result)

    async def _upload_chunks(self, batch: list[_Local], force: bool = False) -> list[_Local]:
        """Send the chunks the server lacks, read back from disk and verified; drop files that changed."""
        assert self._req is not None
        sizes = {h: s for item in batch for h, s in item.change.chunks}
        if not sizes:
            return batch
        missing = set(await self._req.has(list(sizes)))
        if not missing:
            return batch
        kept = []
        for item in batch:
            if item.change.kind != "file" or not any(h in missing for h, _ in item.change.chunks):
                kept.append(item)
                continue
            if await self._upload_file(item, missing):
                kept.append(item)
        await self._req.ping()  # a barrier: every upload above is stored before the push
        return kept

    async def _upload_file(self, item: _Local, missing: set[str]) -> bool:
        assert self._req is not None
        try:
            with self.tree.open_read(item.change.path) as fd:
                offset = 0
                for h, size in item.change.chunks:
                    if h in missing:
                        data = os.pread(fd, size, offset)
                        if blake3.blake3(data).hexdigest() != h:
                            return False  # the file changed since it was hashed: its next event pushes it
                        await self._req.put_chunk(h, data)
                        self.summary.bytes_sent += size
                        missing.discard(h)
                    offset += size
        except (OSError, UnsafePath):
            return False
        return True

    async def _record_push(self, batch: list[_Local], result: ApplyResult) -> None:
        done = set(result.applied) | set(result.unchanged)
        conflicts = {c.path: c for c in result.conflicts}
        self.state.begin()
        try:
            for item in batch:
                c = item.change
                if c.path not in done:
                    continue
                if c.kind == "delete":
                    self.state.delete(c.path)
                    self.summary.deleted_remote += 1
                    continue
                st = item.stat
                assert st is not None
                self.state.put(Entry(c.path, c.kind, result.rev, c.hash, c.target, c.mode & 0o7777,
                                     st.st_size, _trusted_mtime(st), st.st_ino))
                if c.kind == "file":
                    self.state.index_chunks(c.path, c.chunks)
                self.summary.uploaded += 1
            self.state.commit()
        except BaseException:
            self.state.rollback()
            raise
        for item in batch:
            conflict = conflicts.get(item.change.path)
            if conflict is not None:
                await self._resolve_push_conflict(item, conflict)

    async def _resolve_push_conflict(self, item: _Local, conflict: Conflict) -> None:
        """The server changed the path since our base: nothing is lost either way."""
        path = item.change.path
        if item.change.kind == "delete":
            log.info("%s: deleted here but changed on the server; the server's version comes back", path)
        elif conflict.local_kind is None:
            # deleted on the server, edited here: the edit wins; push again on top of the tombstone
            self.state.put(Entry(path, item.change.kind, conflict.local_rev, None, None, 0, -1, -1, -1))
            self._pending.add(path)
            return
        elif item.change.kind == "dir" and conflict.local_kind == "dir":
            pass  # both made the directory: merge
        elif self.tree.lstat(path) is not None:
            self._conflict_copy(path)
        entry = await self.client.workspace(self.workspace).entry(path)
        if entry is not None:
            await self._apply_entries([(entry, None)], cursor=None, force=True)

    # -- live -------------------------------------------------------------------------

    async def _watch_local(self) -> None:
        """Feed local filesystem events into `_pending` (the engine decides what they mean)."""
        import watchfiles

        state_dir = os.path.join(self.local_dir, STATE_DIR)

        def keep(_change: Any, path: str) -> bool:
            if path == state_dir or path.startswith(state_dir + os.sep):
                return False
            return not is_temp_name(os.path.basename(path))

        async for events in watchfiles.awatch(self.local_dir, watch_filter=keep, debounce=50, step=10,
                                              recursive=True, ignore_permission_denied=True):
            for _change, abs_path in events:
                rel = os.path.relpath(abs_path, self.local_dir)
                if rel.startswith(".."):
                    continue
                self._pending.add("/" + rel.replace(os.sep, "/") if rel != "." else "/")
            self._wake.set()

    def _expand(self, paths: Iterable[str]) -> Iterator[str]:
        """Events name paths; a new directory means its whole subtree (inotify misses files in new dirs)."""
        for path in sorted(paths):
            if path == "/":
                yield from self._scan("/")
                continue
            yield path
            st = self.tree.lstat(path)
            if st is not None and statmod.S_ISDIR(st.st_mode):
                yield from self._scan(path)

    async def _live(self) -> None:
        assert self._sub is not None
        next_msg: asyncio.Future[Any] = asyncio.ensure_future(self._sub.next())
        wake = asyncio.ensure_future(self._wake.wait())
        last_reconcile = time.monotonic()
        try:
            while True:
                timeout = max(0.0, last_reconcile + self.reconcile_interval - time.monotonic())
                done, _ = await asyncio.wait({next_msg, wake}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if next_msg in done:
                    await self._apply_message(next_msg.result())
                    next_msg = asyncio.ensure_future(self._sub.next())
                local = wake in done or bool(self._pending)
                reconcile = time.monotonic() - last_reconcile >= self.reconcile_interval
                if not (local or reconcile):
                    continue
                # Pushing may take long: stop waiting on the subscription (no message is lost:
                # a cancelled queue get leaves its item queued) so `_push` can drain it itself.
                await self._stop_waiting(next_msg)
                if local:
                    self._wake.clear()
                    wake = asyncio.ensure_future(self._wake.wait())
                    if any(p == "/.wsfsignore" for p in self._pending) and self.rules.reload():
                        log.info("ignore rules changed; resubscribing")
                        raise ConnectionLost("ignore rules changed")
                    paths, self._pending = self._pending, set()
                    await self._push(self._expand(paths), drain=True)
                if reconcile:
                    await self._push(self._scan("/"), drain=True)
                    last_reconcile = time.monotonic()
                next_msg = asyncio.ensure_future(self._sub.next())
        finally:
            next_msg.cancel()
            wake.cancel()
