"""Workspace stores, run off the event loop (docs/server.md, "Running store work off the event loop").

`vfs.Workspace` is synchronous SQLite. Each open workspace gets **one write
queue** (`server/writers.py`, drained by the server's bounded writer pool)
owning one read-write `Workspace`: a whole operation runs as one call in a
pool thread (small PUTs may run on the loop when the queue is idle), so its
writes are serialised in arrival order, which lets a WebSocket upload chunks
without waiting and then `push`. Reads use **reader `Workspace` objects**
(`server/readers.py`) from a reader executor shared by all workspaces.

The hub hears of a commit after the writer's reply is sent: a write is
answered when it is committed, never after its fan-out. Stores open on first
use, sleep when quiet (`WorkspaceHandle.sleep`) and close after `idle_close`
seconds without users.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import vfs
from vfs import storelock
from vfs.checkpointer import Deferred
from vfs.commit_handover import CommitCapture
from vfs.wire import ProtocolError

from server.coedit import Documents
from server.fanout import Fanout
from server.feed import DELTA_LIMIT, Delta, Feed, read_delta
from server.hub import Hub
from server.metrics import Metrics
from server.placement import LocalPlacement, Placement
from server.readers import ReaderPool
from server.sleep import SLEEP_LOCKS, Activity, files_stamp
from server.store_options import StoreOptions
from server.writers import SerialQueue, with_content_ids

T = TypeVar("T")
log = logging.getLogger("wsfs.server")
_AUTHORS_KEPT = 4096


INLINE_WRITES = os.environ.get("WSFS_INLINE_WRITES", "1") != "0"  # small writes on the loop (see `write`)
# WAL checkpoints as jobs on the writer pool, not inside the COMMIT that fills the WAL (`_checkpoint_job`)
POOL_CHECKPOINTS = os.environ.get("WSFS_POOL_CHECKPOINTS", "1") != "0"
# a writer's commit capture (`vfs.commit_handover`) is installed once it made this many commits that
# could be handed over: its triggers cost ~0.3-0.7 ms per open (DDL, and the statements SQLite then
# prepares again), ~20-60 us saved per write after, so a store that writes now and then never pays;
# each writer waits a random 1-3x this, so stores woken together do not all install at once
CAPTURE_AFTER = 32
DURABLE_READ_WAIT = 30.0  # seconds a change page waits for its revisions' acknowledgement
DURABLE_READ_POLL = 0.005  # seconds between looks at the acknowledged head meanwhile


def _copy_result(job: asyncio.Future[Any], into: asyncio.Future[Any]) -> None:
    """`into` gets the job's result (the first of its `(result, rev)`) or its exception."""
    exc = job.exception()
    if exc is not None:
        into.set_exception(exc)
    else:
        into.set_result(job.result()[0])


class WorkspaceHandle:
    """One open workspace: its writer thread, its reader pool, who wrote which revision."""

    def __init__(self, name: str, path: Path, *, readers: Executor, hub: Hub,
                 metrics: Metrics, options: StoreOptions, loop: asyncio.AbstractEventLoop,
                 placement: Placement | None = None, writers: Executor | None = None,
                 activity: Activity | None = None):
        self.name = name
        self._activity = activity if activity is not None else Activity()  # what the sweep looks at
        self.placement: Placement = placement if placement is not None else LocalPlacement()
        self.path = path
        self._hub = hub
        self._metrics = metrics
        self._options = options
        self._loop = loop
        self._reader_exec = readers
        if writers is None:  # a handle on its own: a private one-thread pool
            writers = ThreadPoolExecutor(1, thread_name_prefix=f"wsfs-writer-{name}")
        self._writer = SerialQueue(writers, loop, here_ok=self._writer_open)
        self._writer_ws: vfs.Workspace | None = None
        # what the writer's transactions log, for jobs that hand their commit over (`write(handover=)`)
        self._capture: CommitCapture | None = None
        self._capture_tried = False  # installed (or found impossible) on the writer now open
        self._install_due = False  # its installation is to be queued once the running job is done
        self._handover_jobs = 0  # jobs that could have handed their commit over since the writer opened
        self.handed_over = 0  # commits whose delta was captured as written, not read back (tests)
        # the writer's WAL checkpoints, run as jobs of this queue once due (`_checkpoint_job`)
        self._checkpoints: Deferred | None = None
        self._checkpoint_queued = False
        self.checkpoints = 0  # run so far (tests, benches)
        self._author: str | None = None  # touched only in the writer thread
        # (path, bytes) the running write job stores at path (`write(known=...)`): its commit's delta
        # takes the content from here instead of reading it back (writer thread only)
        self._known: tuple[str, bytes] | None = None
        self._job_rev: int | None = None  # the newest revision the running write job committed
        # the newest revision this server's writer committed, and whether a write job is running:
        # the outside-commit watch (server/background.py) must not announce our own commits early
        self.own_rev = 0
        self.writing = False
        self._pending: list[tuple[int, str | None, Delta | None]] | None = None  # its commits, to publish
        # asleep (`sleep`): every connection closed, only this shared store lock kept (one
        # descriptor) so a local mount still cannot take the store; set and cleared in the writer's
        # hops only. `sleep_stamp` says what the store files looked like once we closed them.
        self._sleep_lock: int | None = None
        self.sleep_stamp: tuple[Any, ...] | None = None
        # the store as our writer left it after its last commit (while someone subscribes): the
        # outside-commit watch skips a store that still looks like that (`own_mark`)
        self.own_stamp: Any = None
        self.falling_asleep = False
        self.readers = ReaderPool(path, self._open_kwargs(), self._reader_opened)
        self.authors: OrderedDict[int, str] = OrderedDict()
        self.feed = Feed(self)
        self.fanout = Fanout(self)
        self.coedit = Documents(self, hub)  # its open co-edited documents (server/coedit.py)
        # inline_max of every live subscription; read by the writer thread to decide
        # whether (and how much content) to hand over with each commit
        self._live: dict[Any, int] = {}
        self.live_inline: int | None = None
        self._users = 0
        self.busy = 0
        self.last_used = time.monotonic()
        self.closed = False

    def _open_kwargs(self) -> dict[str, Any]:
        return {"history_keep": self._options.history_keep, "history_days": self._options.history_days,
                "chunk_backend": self.placement.chunk_backend_for(self.name),
                "checkpoints": self.placement.store_checkpoints}

    @property
    def users(self) -> int:
        """Connections and requests holding this store open (no idle close while any)."""
        return self._users

    @users.setter
    def users(self, n: int) -> None:
        self._activity.users += n - self._users
        self._users = n
        self._activity.handles.add(self)  # fewer users: the sweep may close it

    def head(self) -> int:
        """The latest revision this server committed or saw when opening the store
        (in a cluster: the latest acknowledged one, `server/cluster/durable_hub.py`)."""
        return self._hub.head(self.name)

    @property
    def durable_reads(self) -> bool:
        """Whether change pages must wait until `head()` covers them (`Placement.durable_reads`)."""
        return self.placement.durable_reads

    async def until_durable(self, rev: int) -> None:
        """Return once revision `rev` may be shown to subscribers (at once unless `durable_reads`).

        A subscriber told of a revision its owner then lost would hold a cursor the
        next owner reuses for other changes; so in a cluster nothing newer than the
        acknowledged head is shown. EAGAIN if `rev` is not acknowledged in time.
        """
        if not self.durable_reads or rev <= self.head():
            return
        deadline = self._loop.time() + DURABLE_READ_WAIT
        while rev > self.head():
            if self.closed or self._loop.time() > deadline:
                raise ProtocolError("EAGAIN", f"revision {rev} of {self.name!r} is not acknowledged yet; retry",
                                    workspace=self.name)
            await asyncio.sleep(DURABLE_READ_POLL)

    # -- writer --------------------------------------------------------

    def _write_job(self, fn: Callable[..., T], args: tuple, author: str | None,
                   known: tuple[str, bytes] | None = None,
                   handover: bool = False) -> tuple[T, int | None, list[tuple[int, str | None, Delta | None]]]:
        """Run one write; returns its result, the newest revision it committed (None: nothing) and
        its commits for the loop to publish (`_publish_all`) once the caller has its result."""
        if self._writer_ws is None:
            self._writer_ws = vfs.Workspace(self.path, **self._open_kwargs())
            self._writer_ws.on_commit(self._committed)
            if POOL_CHECKPOINTS and self.placement.store_checkpoints:
                self._checkpoints = Deferred(self._writer_ws)
            self._wake()
        self._author = author
        self._known = known
        self._job_rev = None
        pending: list[tuple[int, str | None, Delta | None]] = []
        self._pending = pending
        self.writing = True
        capture = self._capture_for_job() if handover and self.live_inline is not None else None
        if capture is not None:
            capture.arm()  # its commit's entries are captured as written, not read back (`_committed`)
        try:
            with self._writer_ws.as_author(author):  # stored with each version this write records
                result = with_content_ids(fn(self._writer_ws, *args))
        except BaseException:
            if pending:  # committed, then failed: the commits stand and are published all the same
                self._call_soon(self._publish_all, pending)
            raise
        finally:
            if capture is not None:
                capture.disarm()
            self._author = self._known = None
            self._pending = None
            self.writing = False
            if self._install_due:
                self._queue_install()
            self._checkpoint_if_due()
        return result, self._job_rev, pending

    def _writer_open(self) -> bool:  # (SerialQueue: a small job queued behind others may run on the loop)
        return self._writer_ws is not None

    def _capture_for_job(self) -> CommitCapture | None:  # writer thread, or the loop for an inline job
        """The writer's capture, or None (the job's commit is read back). It is installed by a job of
        its own in this workspace's queue (on the pool, never inline on the loop) once `CAPTURE_AFTER`
        jobs could have used it: a store that writes now and then, or a thousand stores woken at once,
        do not pay its triggers (~0.3-0.7 ms) for a few writes."""
        if self._capture is None and not self._capture_tried:
            self._handover_jobs += 1
            if self._handover_jobs >= CAPTURE_AFTER * (1 + 2 * (hash(self.name) & 0xFF) / 0xFF):
                self._capture_tried = True
                self._install_due = True  # queued once this job is done with the connection (`_write_job`)
        return self._capture

    def _queue_install(self) -> None:  # after a write job, its connection no longer in use
        """Queue the capture's install behind the job that asked for it. Queued from inside an inline job
        it ran at once on a pool thread: two threads on one connection ("abort due to ROLLBACK": 2 of
        60,000 PUTs failed at 1,000 workspaces x 1 write/s for 60 s)."""
        self._install_due = False
        try:
            self._writer.submit(self._install_capture)
        except RuntimeError:
            pass  # closing

    def _install_capture(self) -> None:  # writer pool thread, in the workspace's write order
        if self._writer_ws is not None:
            self._capture = CommitCapture.install(self._writer_ws)

    def _checkpoint_if_due(self) -> None:  # after each write job (writer pool thread, or the loop)
        checkpoints = self._checkpoints
        if checkpoints is not None and not self._checkpoint_queued and checkpoints.due():
            self._checkpoint_queued = True
            try:
                self._writer.submit(self._checkpoint_job)
            except RuntimeError:
                pass  # closing: the writer's close copies the WAL (this job's result must stand)

    def _checkpoint_job(self) -> None:  # writer pool thread, in the workspace's write order
        """A PASSIVE WAL checkpoint, `vfs.checkpointer.Deferred`: the copy and its two `fsync`s
        (~9 ms, ~1.2 ms of CPU, every ~140 small writes of a store) in a pool thread between this
        workspace's writes, instead of inside whichever COMMIT passed SQLite's 1,000 pages (a small
        write's COMMIT runs on the event loop: every connection waited for it). `sqlite3` lets go
        of the GIL meanwhile; this workspace's next writes queue behind it."""
        self._checkpoint_queued = False
        if self._checkpoints is not None and self._writer_ws is not None:
            self._checkpoints.run()
            self.checkpoints += 1
            if self.live_inline is not None:
                self.own_stamp = self.own_mark()  # (a files stamp moves with the copy: ours, not news)

    def _call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass  # the loop is gone (process exiting): the commit stands, nobody is left to tell

    def _publish_all(self, pending: list[tuple[int, str | None, Delta | None]], turns: int = 2) -> None:  # event loop
        for rev, author, delta in pending:
            self._publish(rev, author, delta, turns)

    def add_live(self, sub: Any, inline_max: int) -> None:
        self._live[sub] = inline_max
        self.live_inline = max(self._live.values())

    def drop_live(self, sub: Any) -> None:
        self._live.pop(sub, None)
        self.live_inline = max(self._live.values()) if self._live else None

    def _committed(self, rev: int) -> None:  # writer thread, right after COMMIT
        self._job_rev = rev
        self.own_rev = rev
        # While someone subscribes, read what this commit changed now, in this thread:
        # live subscribers then get their page without another thread hop.
        delta = None
        inline = self.live_inline
        if inline is not None and self._writer_ws is not None:
            self.own_stamp = self.own_mark()  # spares the outside-commit watch a revision read
            capture = self._capture
            try:
                entries = capture.take(rev, limit=DELTA_LIMIT) if capture is not None else None
                self.handed_over += entries is not None
                delta = read_delta(self._writer_ws, rev, inline, self._known, entries)
            except Exception:  # noqa: BLE001 - an optimisation only: readers fall back to the store
                delta = None
        if self._pending is not None:
            self._pending.append((rev, self._author, delta))  # published when the job's caller resumes
        else:
            self._call_soon(self._publish, rev, self._author, delta)

    def _publish(self, rev: int, author: str | None, delta: Delta | None, turns: int = 2) -> None:  # event loop
        if author:
            self.authors[rev] = author
            while len(self.authors) > _AUTHORS_KEPT:
                self.authors.popitem(last=False)
        if delta is not None:
            self.feed.prime(delta)
        self._metrics.commits.inc()
        # `turns` loop turns later, so the writer's reply is sent before any subscriber is even woken
        # (the fan-out task runs one turn after that): from the pool, an HTTP handler resumes one turn
        # after this and a pipelined WebSocket push's reply two; a job run inline on a single node
        # (`_inline_job`, turns=1) has its HTTP reply written in this same turn, its push reply the next
        if turns > 1:
            self._loop.call_soon(self._loop.call_soon, self._hub.publish_commit, self.name, rev)
        else:
            self._loop.call_soon(self._hub.publish_commit, self.name, rev)

    async def write(self, fn: Callable[..., T], *args: Any, author: str | None = None, op: str = "write",
                    small: bool = False, known: tuple[str, bytes] | None = None, handover: bool = False) -> T:
        """Run `fn(workspace, *args)` in the writer thread, as one operation; returns once what it
        committed may be acknowledged (`Placement.durable`). `small` (~0.3 ms in the store): with
        nothing of this workspace queued or running and its writer open, it runs right here on the
        loop, without the thread hops and GIL hand-offs around it (`INLINE_WRITES`). `known`:
        (path, bytes) that `fn` writes at path, for the commit's delta (no read-back). `handover`:
        `fn` makes at most one transaction and fails as a whole (one `put_file`), so its commit's
        entries are taken as the store writes them (`vfs.commit_handover`), not read back."""
        self._enter()
        t0 = time.perf_counter()
        try:
            if small and INLINE_WRITES and self._writer.idle and self._writer_ws is not None:
                result, rev = self._inline(fn, args, author, known, handover)  # (no future to make and await)
            else:
                result, rev = await self._job_future(fn, args, author, small, known, handover)
        finally:
            self._metrics.op(op).observe(time.perf_counter() - t0)
            self._leave()
        if rev is not None and not self._local:
            await self.placement.durable(self.name, rev)
        return result

    def submit_write(self, fn: Callable[..., T], *args: Any, author: str | None = None,
                     small: bool = False, op: str = "write") -> asyncio.Future[T]:
        """Queue a write without waiting for it (its order among writes is kept); the future
        resolves once what it committed may be acknowledged; the time from here until the job
        is done (committed, not acknowledged) is `wsfs_op_seconds{op}`, as for `write`.
        `small`: as for `write`. Where commits need no acknowledgement (`LocalPlacement`) the
        future is the job's own, its `(result, rev)` unpacked by a callback (one run at once on the
        loop: a finished future), no task per write (a pipelined push costs at most one, its reply's)."""
        self._enter()
        t0 = time.perf_counter()
        if small and INLINE_WRITES and self._local and self._writer.idle and self._writer_ws is not None:
            return self._inline_now(fn, args, author, op, t0)
        queued = self._job_future(fn, args, author, small)
        timing = self._metrics.op(op)

        def finished(_f: Any) -> None:
            timing.observe(time.perf_counter() - t0)
            self._leave()

        if not self._local:
            queued.add_done_callback(finished)
            return asyncio.ensure_future(self._acknowledged(queued))
        result: asyncio.Future[T] = self._loop.create_future()

        def unpack(f: asyncio.Future[Any]) -> None:
            finished(f)
            if not result.cancelled():
                _copy_result(f, result)

        queued.add_done_callback(unpack)
        return result

    def _inline_now(self, fn: Callable[..., T], args: tuple, author: str | None, op: str,
                    t0: float) -> asyncio.Future[T]:
        """`submit_write`'s job run right here on the loop (a single node, nothing of this workspace
        queued or running): a finished future of its result (one future, no callbacks)."""
        done: asyncio.Future[T] = self._loop.create_future()
        try:
            done.set_result(self._inline(fn, args, author, None, False)[0])
        except Exception as exc:  # noqa: BLE001 - handed to the caller, as from the pool
            done.set_exception(exc)
        finally:
            self._metrics.op(op).observe(time.perf_counter() - t0)
            self._leave()
        return done

    def _job_future(self, fn: Callable[..., T], args: tuple, author: str | None, small: bool = False,
                    known: tuple[str, bytes] | None = None, handover: bool = False) -> asyncio.Future[Any]:
        """Queue a write job: a loop future of (result, rev), resolved right after the job's commits
        are published. Publication happens on the loop whether or not anyone still awaits the
        future (a cancelled caller loses its answer, never a notification), and the hub hears of
        the commit one loop turn after the caller resumes (`_publish`): the reply goes out first."""
        small = small and INLINE_WRITES
        if small and self._writer.idle and self._writer_ws is not None:
            return self._inline_job(fn, args, author, known, handover)
        done_on_loop = self._loop.create_future()

        def finished(job: Any) -> None:  # writer pool thread, or the loop for a small job queued (`SerialQueue`)
            if self._writer.here_now:
                self._job_done(job, done_on_loop, False)
            else:
                self._call_soon(self._job_done, job, done_on_loop)

        self._writer.submit(self._write_job, fn, args, author, known, handover, here=small).add_done_callback(finished)
        return done_on_loop

    def _inline_job(self, fn: Callable[..., T], args: tuple, author: str | None,
                    known: tuple[str, bytes] | None = None, handover: bool = False) -> asyncio.Future[Any]:
        """The job run right here on the loop (nothing of this workspace queued or running), as a future."""
        done = self._loop.create_future()
        try:
            done.set_result(self._inline(fn, args, author, known, handover))
        except Exception as exc:  # noqa: BLE001 - handed to the caller, as from the pool
            done.set_exception(exc)
        return done

    def _inline(self, fn: Callable[..., T], args: tuple, author: str | None, known: tuple[str, bytes] | None,
                handover: bool) -> tuple[T, int | None]:
        """Run the job right here on the loop and publish its commits (`_publish`: the hub hears of
        them a loop turn or two later, after the caller's reply); (result, newest revision)."""
        self._metrics.jobs_on_loop.inc()
        result, rev, pending = self._write_job(fn, args, author, known, handover)
        if pending:
            self._publish_all(pending, 1 if self._local else 2)
        return result, rev

    def _job_done(self, job: Any, done_on_loop: asyncio.Future[Any], in_pool: bool = True) -> None:  # event loop
        (self._metrics.jobs_in_pool if in_pool else self._metrics.jobs_on_loop).inc()
        exc = job.exception()
        if exc is None:
            result, rev, pending = job.result()
            self._publish_all(pending)
            if not done_on_loop.cancelled():
                done_on_loop.set_result((result, rev))
        elif not done_on_loop.cancelled():
            done_on_loop.set_exception(exc)

    async def _acknowledged(self, queued: asyncio.Future[tuple[T, int | None]]) -> T:
        result, rev = await queued
        if rev is not None:
            await self.placement.durable(self.name, rev)
        return result

    @property
    def _local(self) -> bool:
        """Commits are acknowledged as they are made (a single node: nothing to wait for)."""
        return type(self.placement) is LocalPlacement

    # -- sleep: an idle open workspace holds one descriptor ------------

    @property
    def asleep(self) -> bool:
        """Every connection of the store is closed (they reopen on the next operation)."""
        return self.sleep_stamp is not None and not self.readers.any_open

    async def sleep(self) -> int:
        """Close every SQLite connection of this store (`server/sleep.py`); how many were closed.
        Subscriptions, head and authors stay; the next operation reopens what it needs. One shared
        store lock stays (within `SLEEP_LOCKS`): a local mount is still refused. Call when no
        operation is in flight (`busy == 0`); a write queued meanwhile runs after this and reopens."""
        n = self.close_idle_readers()
        if self.closed or self.readers.any_open:
            return n  # a reader is checked out (a stream): not idle after all
        self.feed.forget()
        self.falling_asleep = True  # the outside-commit watch waits: our closing checkpoint is not news
        try:
            closed, rev = await asyncio.wrap_future(self._writer.submit(self._sleep_job), loop=self._loop)
        except RuntimeError:
            return n  # closed meanwhile
        finally:
            self.falling_asleep = False
        if rev > self._hub.head(self.name):  # committed by another process just before we closed
            self._hub.publish_commit(self.name, rev)
        return n + closed

    def _sleep_job(self) -> tuple[int, int]:  # writer pool thread, in the workspace's write order
        if self.readers.any_open:
            return 0, 0  # a reader opened meanwhile: stay awake
        closed = rev = 0
        if self._writer_ws is not None:  # (None: asleep already, or mounted elsewhere and read-only)
            if self._sleep_lock is None and SLEEP_LOCKS.take():  # past the budget: sleeps unlocked
                try:  # shares the writer's lock, so never busy; EMFILE and the like: stay awake
                    self._sleep_lock = storelock.acquire(str(self.path), exclusive=False)
                except (OSError, vfs.StoreBusy):
                    SLEEP_LOCKS.give_back()
                    return 0, 0
            rev = self._writer_ws.rev
            self._close_writer()  # the last connection: SQLite checkpoints and removes -wal and -shm
            closed = 1
        stamp = self.files_stamp()
        if not self.readers.any_open:  # a reader opened meanwhile (it cleared the stamp): it stays awake
            self.sleep_stamp = stamp
        return closed, rev

    def _close_writer(self) -> None:  # writer thread (or after the queue's shutdown)
        assert self._writer_ws is not None
        self._writer_ws.close()
        self._writer_ws = self._capture = self._checkpoints = None
        self._capture_tried = False
        self._handover_jobs = 0

    def files_stamp(self) -> tuple[Any, ...]:
        """What the store's files look like now: an outside commit changes it (any thread)."""
        return files_stamp(self.path)

    def own_mark(self) -> Any:
        """What any commit, ours or another process's, changes (any thread): the WAL-index header
        while the writer is open with its checkpoints (one 48-byte read, which a checkpoint does not
        change), else the files' stamp (two `stat`s, ~9 us at load: twice per write before, once at
        the commit and once in the outside-commit watch that our own WAL write woke)."""
        checkpoints = self._checkpoints
        header = checkpoints.header() if checkpoints is not None else None
        return header if header is not None else self.files_stamp()

    def _wake(self) -> None:  # writer pool thread, after the writer connection opened again
        self.sleep_stamp = None
        if self._sleep_lock is not None:
            storelock.release(self._sleep_lock)
            self._sleep_lock = None
            SLEEP_LOCKS.give_back()

    # -- readers -------------------------------------------------------

    def _reader_opened(self) -> None:  # any thread
        self.sleep_stamp = None  # awake (a reader is open); the sleep lock stays until the writer reopens
        self._activity.handles.add(self)

    def checkout(self) -> vfs.Workspace:
        """A reader Workspace for exclusive use (call from any thread); give it back with `checkin`."""
        return self.readers.checkout()

    def checkin(self, ws: vfs.Workspace) -> None:
        self.readers.checkin(ws, close=self.closed)

    def peek_rev(self) -> int | None:
        """The store's revision, read on the calling thread with an idle reader (one O(1) query, no
        thread hop); None when no reader is idle (then use `read`)."""
        return self.readers.peek_rev()

    def close_idle_readers(self) -> int:
        """Close the readers nobody has checked out (they reopen on demand); how many were closed."""
        return self.readers.close_idle()

    def _read_job(self, fn: Callable[..., T], args: tuple) -> T:
        ws = self.checkout()
        try:
            return with_content_ids(fn(ws, *args))
        finally:
            self.checkin(ws)

    async def read(self, fn: Callable[..., T], *args: Any, op: str = "read") -> T:
        """Run `fn(reader_workspace, *args)` in the reader pool."""
        return await self._run(self._reader_exec, self._read_job, (fn, args), op)

    async def read_with(self, ws: vfs.Workspace, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` in the reader pool with a Workspace already checked out (streams)."""
        return await self._run(self._reader_exec, fn, args, "stream")

    async def _run(self, executor: Executor | SerialQueue, job: Callable[..., T], args: tuple, op: str) -> T:
        self._enter()
        t0 = time.perf_counter()
        try:
            return await asyncio.wrap_future(executor.submit(job, *args), loop=self._loop)
        finally:
            self._metrics.op(op).observe(time.perf_counter() - t0)
            self._leave()

    def _enter(self) -> None:
        if self.closed:
            raise ProtocolError("ENOENT", f"workspace {self.name!r} is closed")
        self.busy += 1
        self.last_used = time.monotonic()
        self._activity.handles.add(self)

    def _leave(self) -> None:
        self.busy -= 1
        self.last_used = time.monotonic()

    # -- lifecycle -----------------------------------------------------

    async def close(self) -> None:
        """Finish queued writes, then close every connection of this store."""
        if self.closed:
            return
        self.closed = True
        self.fanout.close()
        await asyncio.to_thread(self._writer.shutdown, True)
        if self._writer_ws is not None:
            self._close_writer()
        if self._sleep_lock is not None:
            storelock.release(self._sleep_lock)
            self._sleep_lock = None
            SLEEP_LOCKS.give_back()
        self.readers.close_idle()
