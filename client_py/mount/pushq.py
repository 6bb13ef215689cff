"""Remote mode: write-behind of the mount's small changes, pushed in batches.

Measured before this module (1,000 `echo $i > f$i` on loopback, load ~4):
each closed file cost one HTTP `PUT`, about 2 ms of the mount's CPU (1.4 ms
of it in the event-loop thread: httpx, h11, anyio) and 0.7 ms of the
server's, where ext4 spends ~0.1 ms. So the mount queues what a burst of
closes, mkdirs, chmods, symlinks, unlinks and directory utimes changes, as change entries (the
state each path should have, `vfs.types.Change`), and one task on the event
loop pushes them over a WebSocket of its own (`Session.push`: chunks as
binary frames, then one `push` message applied atomically by the server):
one round trip and one server transaction per batch, not per file.

The rule a caller can rely on (docs/mount.md, "Write-behind"):

- `close()` returns once the change is queued: in this mount's memory, in
  the index (so `stat`, `readdir` and reads here see it at once) and the
  content in the chunk cache. The pusher sends what is queued as soon as the
  previous batch is answered (no timer: an idle server gets each change at
  once; a busy one gets bigger batches).
- `fsync`, `fsyncdir`, `sync()` of the backend, unmount, and every mutation
  that is still one HTTP call (a directory's rename, rmdir, a link to a
  pushed file, truncate, a utime of a file not queued, big files) wait until what is
  queued before them is acknowledged by the server, so the server applies
  changes in the order they were made (a utime, chmod or truncate of one
  path waits only if that path or a directory above it has a change queued).
- A path changed on the server meanwhile (the push's per-path base) is a
  conflict: the server's version stays, ours is pushed beside it as a
  conflict copy, as before. A push the server refuses (quota, permissions,
  a bad path) or that cannot reach the server within `CALL_BACKOFF` loses
  that batch: it is logged with its paths, the index is put back to the
  server's state, and the next fsync, close (FUSE flush) or mutation fails
  once with EIO, as a disk reports a failed writeback.
- The queue is bounded (`MAX_QUEUED` entries, `MAX_QUEUED_BYTES`): a writer
  that outruns the server waits at close, as for a full page cache.

While a path has a change queued or on its way, the change stream's entries
for it are held back (`intercept`): the index keeps showing our state, and
the last streamed one is applied when ours is confirmed (its echo arrived)
or refused, so the index never goes back to an older state in between.
An entry the server already held (`unchanged`: a node unlinked and made
again the same way before its batch went) has no echo: its hold ends when
the stream has passed the batch's revision (`settled`), and the index keeps
ours stamped with that revision, the base of the path's next push. (Once it
ended at the answer, leaving our entry with revision 0: the next change to
the name conflicted on the server, pjdfstest's `chown/07` and stray
conflict copies.)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import heapq
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import vfs
from client_py.errors import ServerUnreachable
from vfs.errors import fs_error
from vfs.types import ApplyResult, Change, Cursor, TimedChange
from vfs.wire import FEATURE_FILE_SET_MTIME

log = logging.getLogger("wsfs.mount")

MAX_BATCH = 4096  # the server's `max_push_entries`
MAX_BATCH_BYTES = 16 << 20  # chunk bytes sent ahead of one push
MAX_QUEUED = 8192  # a close waits while this many entries are queued and unsent
MAX_QUEUED_BYTES = 64 << 20
# After the first change of a burst the pusher gathers for this long before it sends (unless
# someone waits: fsync, an HTTP mutation): a serial writer (tar, git, compileall closes a file
# every 1-3 ms here) then fills a batch, where without it nearly every push carried one entry
# (Django untar: 13,015 entries in 10,162 pushes). 20 ms, not 5: the store's cost of a push is
# ~0.5 ms plus ~45 us per entry once it resolves a batch's directories once (`vfs.sync`), so
# bigger batches pay: Django untar + git add + commit, mount + server CPU 22.5/22.8 -> 19.2/17.9 s
# (two interleaved pairs, load 4.7-5.7), the server's share 30-40 % lower.
GATHER_SECONDS = 0.02
SMALL_FILE = 4 << 20  # larger contents keep the streamed HTTP PUT (after the queue drains)
INHERIT = -1  # base: whatever our own change on its way there lands as
# How long a link is kept back while its source still has the inode (see `PushQueue._keep_back`):
# git unlinks an object's temporary name within a millisecond or two of linking it.
LINK_WAIT = 0.02


def _timed_files(batch: list[Item], session: Any) -> None:
    """A file's new mtime (`Item.utime`) as an entry of the push that sets it (`set_mtime`), where
    the server speaks `file_set_mtime`: one wire `utime` round trip after the push each before
    (240-430 in a Django `git add`: git freshens the objects it would write again)."""
    speaks = session.speaks(FEATURE_FILE_SET_MTIME)
    for item in batch:
        if speaks and item.utime and not item.link_now:
            item.change, item.utime, item.timed = timed_entry(item.change, item.change.mtime), False, True
        elif not speaks and item.timed:  # a retry reached a server without it: a wire `utime` again
            item.change, item.utime, item.timed = _untimed(item.change), True, False


def _untimed(entry: Change) -> Change:
    """A file's entry made by `_timed_files`, as the plain entry it was (its mtime kept)."""
    return Change(**{f.name: getattr(entry, f.name) for f in dataclasses.fields(Change)})


def _linked(item: Item, inos: dict[str, int]) -> bool:
    """Is `item` a link whose source still has its inode (a wire `link` if sent now)?"""
    source = item.link_of
    return source is not None and inos.get(source) is not None and inos.get(source) == inos.get(item.change.path)


def timed_entry(entry: Change, mtime: float) -> TimedChange:
    """`entry` (a directory's, or a file's where the server speaks `file_set_mtime`) with `mtime`,
    as an entry that sets it on the server (`set_mtime`)."""
    if isinstance(entry, TimedChange):
        return dataclasses.replace(entry, mtime=mtime)
    return TimedChange(**{**{f.name: getattr(entry, f.name) for f in dataclasses.fields(Change)}, "mtime": mtime})


@dataclass(slots=True)
class Item:
    """One queued path: the state to push, the base to push it against, its chunk bytes."""

    change: Change
    base: int | None  # the server revision of the path we build on; None: the path must not exist
    chunks: list[tuple[str, Any]] = field(default_factory=list)  # (hash, bytes) to upload first
    seq: int = 0  # the first enqueue this entry carries (flush waits by it)
    link_of: str | None = None  # a hard link made here to this unsent file (see `RemoteBackend.link`)
    link_now: bool = False  # sent as a wire `link` after the batch's push (its source still has this inode)
    fresh: bool = False  # a node made here the server has not had yet (its rename may be queued: no history)
    utime: bool = False  # only a pushed file's new mtime: a wire `utime` after the batch's push (see `enqueue`)
    timed: bool = False  # such a utime sent as an entry of the push instead (`_timed_files`)
    hold_until: float = 0.0  # a link kept back until then for its source's unlink (see `_take`)
    size: int = field(init=False, default=0)  # bytes of `chunks`, counted once (the queue reads it at each step)

    def __post_init__(self) -> None:
        self.size = sum(len(data) for _, data in self.chunks) if self.chunks else 0

    @property
    def wire(self) -> bool:
        """Sent as a wire call after the batch's push, not as one of its entries."""
        return self.link_now or self.utime


class PushQueue:
    """The queue, its pusher task (on the backend's event loop) and the stream hold-back.

    State is guarded by the backend's index lock (`lock`): FUSE threads enqueue
    and wait, the event-loop thread pushes and follows the stream.
    """

    def __init__(self, backend: Any, lock: threading.RLock):
        self._backend = backend
        self._lock = lock
        self._moved = threading.Condition(lock)  # notified when a batch is answered
        self.queued: dict[str, Item] = {}  # seq order (a coalesced entry keeps its place and seq)
        self.inflight: dict[str, Item] = {}
        self.held: dict[str, int] = {}  # applied, waiting for the stream to bring this revision
        self.shadow: dict[str, Change] = {}  # the stream's latest entry for a path we hold back
        self._quiet: list[tuple[int, str]] = []  # (revision, path) held with no echo to come (`settled`)
        self.error: OSError | None = None  # a lost batch, reported once by the next check()
        self._restale: list[str] = []  # paths set back to the stream's state: the kernel drops them
        self._seq = 0
        self._flush_to = 0  # the last enqueue a flush waits for
        self._retry_at: float | None = None  # when a link kept back is taken anyway (`_take`)
        self._queued_bytes = 0
        self._idle = True
        self._wake: asyncio.Event | None = None
        self._urgent: asyncio.Event | None = None  # someone waits: stop gathering
        self.gather = float(os.environ.get("WSFS_MOUNT_PUSH_GATHER", GATHER_SECONDS))
        self._session = None
        self._task: asyncio.Task | None = None
        self.pushes = 0  # batches sent (tests and the log count them)
        self.entries = 0  # entries those batches carried

    # -- the FUSE side -------------------------------------------------------------

    def outstanding(self, path: str) -> bool:
        return path in self.queued or path in self.inflight or path in self.held

    def pending_near(self, paths: tuple[str, ...]) -> bool:
        """Has one of `paths`, or a directory above one, a change queued or on its way (lock held)?"""
        if not self.queued and not self.inflight:
            return False
        for path in paths:
            while True:
                if path in self.queued or path in self.inflight:
                    return True
                if path == "/":
                    break
                path = path.rpartition("/")[0] or "/"
        return False

    def base_for(self, path: str, *, new: bool) -> int | None:
        """The base a fresh entry for `path` pushes against (lock held)."""
        if path in self.inflight:
            return INHERIT
        held = self.held.get(path)
        if held is not None:
            return held
        if new:
            return None
        entry = self._backend.index.entries.get(path)
        return None if entry is None else entry.rev

    def enqueue(self, change: Change, chunks: list[tuple[str, Any]] = (), *, new: bool = False,
                link_of: str | None = None, fresh: bool | None = None, utime: bool = False) -> None:
        """Queue `change` (lock held): the index shows it at once, the pusher sends it.
        `new`: the path must not exist on the server. `fresh` (default: `new`): the node was
        made here and the server has not had it yet. `utime`: `change` is a file the server
        has with only its mtime moved (git freshens an object it would write again), sent as
        a wire `utime` after its batch's push: a pushed entry of the server's content and mode
        is `unchanged`, its mtime not applied. Queued, not called at once: the caller does not
        wait for the queue to drain, the round trip and the change stream (~15 ms each;
        Django `git add`: 774 of them). Any other change coalesced onto it is a pushed entry
        (it carries the mtime: a changed file's entry sets it)."""
        fresh = new if fresh is None else fresh
        path = change.path
        index = self._backend.index
        previous = self.queued.get(path)
        if previous is not None:
            self._queued_bytes -= previous.size
            if change.kind == "delete" and previous.base is None and path not in self.inflight:
                del self.queued[path]  # made and removed before the server heard of it
                index.apply(change)
                self._parent_moved(path)
                self._moved.notify_all()
                return
            if not chunks and change.kind == "file" and previous.change.hash == change.hash:
                chunks = previous.chunks  # (a chmod or utime of a file whose content is still unsent)
            same = previous.change.kind == change.kind and previous.change.hash == change.hash
            item = Item(change, previous.base, list(chunks), previous.seq, link_of or (previous.link_of if same else None),
                        fresh=fresh or (previous.fresh and change.kind != "delete"), utime=utime and previous.utime)
        else:
            self._seq += 1
            item = Item(change, self.base_for(path, new=new), list(chunks), self._seq, link_of, fresh=fresh, utime=utime)
        self.queued[path] = item
        self._queued_bytes += item.size
        existed = path in index.entries
        index.apply(change)
        if existed == (change.kind == "delete"):
            self._parent_moved(path)
        if self._idle:
            self._idle = False
            self._backend._loop.loop.call_soon_threadsafe(self._wake.set)

    def _parent_moved(self, path: str) -> None:
        """A name came or went in a directory whose queued entry sets its mtime: on a disk
        that moves the mtime after a utimensat, so the entry takes the index's (now)."""
        parent = path.rpartition("/")[0] or "/"
        item = self.queued.get(parent)
        if item is not None and isinstance(item.change, TimedChange):
            shown = self._backend.index.entries.get(parent)
            if shown is not None and shown.mtime != item.change.mtime:
                item.change = dataclasses.replace(item.change, mtime=shown.mtime)

    def wait_room(self) -> None:
        """Block while the queue is full (lock held; the pusher empties it)."""
        while len(self.queued) >= MAX_QUEUED or self._queued_bytes >= MAX_QUEUED_BYTES:
            self._moved.wait(1.0)

    def flush(self) -> None:
        """Wait until everything queued so far is answered by the server (lock held); EIO if a batch was lost."""
        target = self._seq
        self._flush_to = target  # (no link is kept back for its source's unlink now: `_take`)
        if self._oldest() <= target:
            self._backend._loop.loop.call_soon_threadsafe(self._urgent.set)
        while self._oldest() <= target:
            self._moved.wait(1.0)
        self.check()

    def check(self) -> None:
        """Report a lost batch once (EIO), as a disk reports a failed writeback."""
        if self.error is not None:
            error, self.error = self.error, None
            raise fs_error(errno.EIO, None, f"queued changes were not saved: {error}") from error

    def _oldest(self) -> int:
        """The first enqueue not answered yet (a conflict copy carries its original's)."""
        return min((item.seq for items in (self.queued, self.inflight) for item in items.values()), default=self._seq + 1)

    # -- the stream side (event loop, lock held) ------------------------------------

    def intercept(self, change: Change) -> Change | None:
        """A streamed entry, or None to hold it back (our own change to its path is not
        confirmed yet: the index keeps showing ours)."""
        path = change.path
        if path in self.queued or path in self.inflight:
            self.shadow[path] = change
            return None
        rev = self.held.get(path)
        if rev is None:
            return change
        if change.rev < rev:
            self.shadow[path] = change
            return None
        del self.held[path]
        self.shadow.pop(path, None)
        return self._confirmed(change)

    def _confirmed(self, change: Change) -> Change:
        """The streamed entry that ends a hold (our change's echo, or a later one): a directory
        keeps the mtime its entries moved here meanwhile (the echo carries the mtime pushed with it)."""
        shown = self._backend.index.entries.get(change.path)
        if change.kind == "dir" and shown is not None and shown.kind == "dir" and shown.mtime > change.mtime:
            return dataclasses.replace(change, mtime=shown.mtime)
        return change

    def _hold(self, path: str, rev: int, *, echo: bool) -> None:
        """The server holds our state of `path` at revision `rev` (lock held): the index keeps
        ours until the stream gets there. `echo`: the push changed the path at `rev`, so the
        stream brings it; else (`unchanged`) nothing comes and `settled` ends the hold."""
        seen = self.shadow.get(path)
        if seen is not None and seen.rev >= rev:  # (the stream was there before the answer)
            del self.shadow[path]
            self.held.pop(path, None)
            self._backend.index.apply(self._confirmed(seen))
            self._restale.append(path)
            return
        self.held[path] = rev
        if not echo:
            heapq.heappush(self._quiet, (rev, path))

    def settled(self, cursor: Cursor) -> None:
        """The stream reached `cursor` (lock held): the holds of `unchanged` entries it has
        passed end. Nothing newer came for their paths (that would have ended the hold), so
        the server still has our state: the index keeps ours, stamped with the revision (the
        base of the path's next push), and what the stream said before it is dropped."""
        while self._quiet and not cursor < Cursor(*self._quiet[0]):
            rev, path = heapq.heappop(self._quiet)
            if self.held.get(path) != rev or path in self.queued or path in self.inflight:
                continue  # (ended already, or changed again: that change's answer takes over)
            del self.held[path]
            self.shadow.pop(path, None)
            entry = self._backend.index.entries.get(path)
            if entry is not None and entry.rev < rev:
                self._backend.index.entries[path] = dataclasses.replace(entry, rev=rev)

    def _release(self, path: str) -> None:
        """Stop holding `path` back: apply what the stream said meanwhile, if anything."""
        self.held.pop(path, None)
        change = self.shadow.pop(path, None)
        if change is not None:
            self._backend.index.apply(change)
            self._restale.append(path)  # (the kernel may have read ours after the stream dropped it)

    # -- the pusher (event loop) ---------------------------------------------------

    def start(self) -> None:
        """Start the pusher task (called on the event loop)."""
        self._wake = asyncio.Event()
        self._urgent = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            retry = self._retry_at
            if retry is None:
                await self._wake.wait()
            else:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), max(0.0, retry - time.monotonic()))
            self._wake.clear()
            await self._gather(time.monotonic() + self.gather)
            while True:
                started = time.monotonic()
                if not (batch := self._take()):
                    break
                if not self.queued:
                    self._urgent.clear()  # (whoever waits, waits for this batch: later changes gather again)
                await self._send(batch)
                # (and between two pushes: a serial writer's next closes fill the next batch. Once the
                # next went as soon as one was answered: Django git add + commit, ~12,000 entries in
                # ~4,300 pushes of ~3, each a server transaction)
                await self._gather(started + self.gather)

    async def _gather(self, until: float) -> None:
        """Let changes gather until `until`, unless someone waits for them (`_urgent`: fsync, a
        mutation that is one HTTP call)."""
        remaining = until - time.monotonic()
        if remaining > 0 and not self._urgent.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._urgent.wait(), remaining)

    def _take(self) -> list[Item]:
        with self._lock:
            batch, size = [], 0
            self._retry_at = None
            inos = self._backend.index.inos
            now = time.monotonic()
            for path in list(self.queued):
                item = self.queued[path]
                if path in self.inflight or len(batch) >= MAX_BATCH or (batch and size + item.size > MAX_BATCH_BYTES):
                    break
                if self._keep_back(item, inos, now):
                    self._retry_at = item.hold_until
                    break
                del self.queued[path]
                self._queued_bytes -= item.size
                self.inflight[path] = item
                batch.append(item)
                size += item.size
            if not batch:
                self._idle = True
            for item in batch:
                # A link whose source was unlinked before anything was sent (git: write a
                # temporary object, link it to its name, unlink the temporary) is a plain new
                # file; one whose source still has its inode is a server-side link after the push.
                item.link_now = _linked(item, inos)
            self._moved.notify_all()  # (room in the queue)
            return batch

    def _keep_back(self, item: Item, inos: dict[str, int], now: float) -> bool:
        """Keep a link back (and what is queued after it) for up to `LINK_WAIT` while its source
        still has the inode and nobody waits for it: git links each object's temporary name to
        its real one and unlinks the temporary a moment later, and a batch taken in between
        sent the link as a wire `link` call (Django `git add`: 556 of them), not one entry."""
        if item.link_of is None or item.seq <= self._flush_to or not _linked(item, inos):
            return False
        if not item.hold_until:
            item.hold_until = now + LINK_WAIT
        return now < item.hold_until

    async def _send(self, batch: list[Item]) -> None:
        error: OSError | None = None
        unreachable: Exception | None = None
        for attempt in range(2):  # a second try on a new connection (`connect` itself rides out a short outage)
            try:
                session = await self._connected()
                _timed_files(batch, session)
                pushed = [item for item in batch if not item.wire]
                base = {item.change.path: item.base for item in pushed if item.base is not None}
                changes = [item.change for item in pushed]
                # (one frame per chunk cost a socket send each, 8,400 in an untar: PUT_MANY frames)
                await session.put_chunks([chunk for item in pushed for chunk in item.chunks])
                result = await session.push(changes, base) if changes else ApplyResult()
                self.pushes += 1
                self.entries += len(pushed)
                linked, failed = await self._wire_calls([item for item in batch if item.wire])
                self._answered(batch, result, linked)
                if failed:
                    await self._lost([item for item, _ in failed], failed[0][1])
                return
            except (ConnectionError, ServerUnreachable) as exc:
                await self._drop_session()
                error = fs_error(errno.EIO, None, f"server unreachable: {exc}")
                unreachable = exc
            except vfs.MissingObjects as exc:  # (never expected: every entry carries its chunks)
                error = fs_error(errno.EIO, None, str(exc))
                break
            except OSError as exc:  # refused: quota, permission, a bad path
                error = exc
                break
        if unreachable is not None:
            self._backend._set_online(False, unreachable)
        await self._lost(batch, error)

    async def _wire_calls(self, items: list[Item]) -> tuple[dict[str, int], list[tuple[Item, OSError]]]:
        """The hard links of a batch (each one wire `link` after its source was pushed) and its
        files' new mtimes (`utime`); {path: the revision each made}, and the failures."""
        linked, failed = {}, []
        remote = self._backend._remote
        for item in items:
            try:
                if item.link_now:
                    st = await remote.link(item.link_of, item.change.path)
                else:
                    st = await remote.utime(item.change.path, item.change.mtime)
                linked[item.change.path] = st.rev
            except OSError as exc:
                failed.append((item, exc))
        return linked, failed

    async def _connected(self):
        if self._session is None or self._session.closed:
            self._session = await self._backend._client.connect(self._backend.workspace)
        return self._session

    async def _drop_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            try:
                await session.close()
            except Exception:  # noqa: BLE001 - already broken
                pass

    def _answered(self, batch: list[Item], result: ApplyResult, linked: dict[str, int]) -> None:
        conflicts = {c.path for c in result.conflicts}
        applied = set(result.applied)
        copies: list[Item] = []
        with self._lock:
            for item in batch:
                path = item.change.path
                if item.wire and path not in linked:
                    continue  # (a failed link or utime: `_lost` takes it)
                del self.inflight[path]
                following = self.queued.get(path)
                if following is not None and following.base == INHERIT:
                    following.base = item.base if path in conflicts else linked.get(path, result.rev)
                if path in linked:
                    if following is None:
                        self._hold(path, linked[path], echo=True)
                    continue
                if path in conflicts:
                    if item.timed:  # (only an mtime: the server's newer change stands, as a later write would)
                        log.info("%s changed on the server before its mtime was set: the server's stays", path)
                    elif item.change.kind == "file":
                        copies.append(item)
                    else:
                        log.warning("conflict on %s: the server's version stays, our %s is dropped", path,
                                    item.change.kind)
                elif following is None:
                    # Applied: its echo comes. Unchanged (the server had our state already): none comes.
                    self._hold(path, result.rev, echo=path in applied)
                    continue
                if following is None:
                    self._release(path)
            for item in copies:
                self._conflict_copy(item)
            self.settled(self._backend.index.cursor)  # (the stream may have passed the batch already)
            self._moved.notify_all()
        self._tell_kernel([])

    def _conflict_copy(self, item: Item) -> None:
        """Ours beside the server's version, under the replica's conflict name (lock held)."""
        from client_py.conflicts import conflict_name, host_label

        copy = conflict_name(item.change.path, host_label())
        change = dataclasses.replace(item.change, path=copy)
        self.enqueue(change, item.chunks, new=True)
        self.queued[copy].seq = min(self.queued[copy].seq, item.seq)  # an fsync waiting for ours waits for it
        log.warning("conflict on %s: the server's version stays there, ours is %s", item.change.path, copy)

    async def _lost(self, batch: list[Item], error: OSError | None) -> None:
        log.error("could not push %d queued change(s) (%s): %s%s", len(batch), error,
                  ", ".join(item.change.path for item in batch[:10]), " ..." if len(batch) > 10 else "")
        unknown: list[str] = []
        reverted = [item.change.path for item in batch]
        with self._lock:
            self.error = self.error or error or fs_error(errno.EIO, None, "push failed")
            for item in batch:
                path = item.change.path
                del self.inflight[path]
                following = self.queued.get(path)
                if following is not None:
                    if following.base == INHERIT:
                        following.base = item.base
                    continue
                if path in self.shadow:
                    self._release(path)
                elif item.base is None:  # never on the server
                    self._backend.index.apply(Change(path=path, kind="delete", rev=0))
                else:
                    unknown.append(path)
            self._moved.notify_all()
        for path in unknown:  # put back the server's state of a path we changed
            try:
                entry = await self._backend._remote.entry(path)
            except Exception:  # noqa: BLE001 - unreachable: the next catch-up brings it
                continue
            with self._lock:
                if not self.outstanding(path):
                    self._backend.index.apply(entry or Change(path=path, kind="delete", rev=0))
        self._tell_kernel(reverted)

    def _tell_kernel(self, paths: list[str]) -> None:
        """The kernel drops what it was shown of `paths` and of those set back to the stream's state."""
        with self._lock:
            paths, self._restale = paths + self._restale, []
        on_change = self._backend.on_change
        if paths and on_change is not None:
            on_change([p for path in paths for p in (path.rpartition("/")[0] or "/", path)])

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self._drop_session()
