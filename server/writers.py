"""Per-workspace write queues drained by one bounded thread pool (`SerialQueue`).

A workspace's writes must run one at a time, in arrival order, against its
one read-write `Workspace` (which may be used from any thread, never from two
at once). One thread per workspace gave that for free but cost a thread per
open workspace (1,000 workspaces, 1,004 threads). Here each workspace keeps
its own FIFO of jobs and at most one drain of it is queued or running on the
shared pool at a time: order per workspace is kept, the number of threads is
the pool's size, and a busy workspace yields its thread after a few jobs so
others are not starved.

Small jobs may run on the event loop (`submit(here=True)`): the caller runs
one itself when the queue is idle (`idle`), and one queued behind other work
is handed back to the loop by the drain that reaches it, instead of running
in the pool. Without that, one pool job (a checkpoint, a big write) was
enough to keep a busy workspace on the pool for good: every write arriving
meanwhile found the queue busy and queued behind it, and so did the next
ones (10 clients writing to one workspace: 98 % of the small PUTs ran in
the pool, each paying two thread switches and the GIL's hand-offs).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from concurrent.futures import Executor, Future
from typing import Any, Callable, TypeVar

import vfs

T = TypeVar("T")
BATCH = 8  # jobs one drain runs before it yields its pool thread (or the loop) to others
Job = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], bool]


class SerialQueue:
    """Jobs run one at a time, in submission order, on a shared pool (a drop-in for a one-worker
    executor), or on `loop` for those submitted with `here=True` while `here_ok()` holds."""

    def __init__(self, pool: Executor, loop: asyncio.AbstractEventLoop | None = None,
                 here_ok: Callable[[], bool] | None = None):
        self._pool = pool
        self._loop = loop
        self._here_ok = here_ok if here_ok is not None else (lambda: True)
        self._jobs: deque[Job] = deque()
        self._lock = threading.Lock()
        self._draining = False  # a drain is queued or running, on the pool or the loop
        self._closed = False
        self._idle = threading.Event()
        self._idle.set()
        self.ran_here = 0  # queued jobs the loop ran (tests, benches)
        self.here_now = False  # the job finishing now runs on the loop (its future's callbacks too)

    def submit(self, fn: Callable[..., T], *args: Any, here: bool = False) -> Future[T]:
        """Queue `fn(*args)`. `here`: it may run on the loop (a small write) when a drain reaches it;
        its future is then resolved on the loop thread."""
        fut: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._jobs.append((fut, fn, args, here and self._loop is not None))
            if self._draining:
                return fut
            self._draining = True
            self._idle.clear()
        self._pool.submit(self._drain)
        return fut

    @property
    def idle(self) -> bool:
        """Nothing queued or running: a job run by the caller itself now keeps the order."""
        return not self._draining

    def _next(self, here: bool) -> Job | bool:
        """The next job for this drain (on the pool: `here` False; on the loop: True); False when the
        queue is empty (the drain is over), True when its head belongs to the other side (hand over)."""
        with self._lock:
            if not self._jobs:
                self._draining = False
                self._idle.set()
                return False
            if (self._jobs[0][3] and self._here_ok()) != here:
                return True
            return self._jobs.popleft()

    def _drain(self) -> None:  # pool thread
        for _ in range(BATCH):
            job = self._next(False)
            if job is False:
                return
            if job is True:  # a small job at the head: the loop runs it (and those after it)
                self._hand_to_loop()
                return
            _run(job)
        self._pool.submit(self._drain)  # more queued: go to the back of the pool's queue

    def _hand_to_loop(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._drain_here)  # type: ignore[union-attr]
        except RuntimeError:  # the loop is closed: whatever is left runs here
            with self._lock:
                self._jobs = deque((f, fn, a, False) for f, fn, a, _ in self._jobs)
            self._drain()

    def _drain_here(self) -> None:  # event loop
        for _ in range(BATCH):
            job = self._next(True)
            if job is False:
                return
            if job is True:  # the head is for the pool
                self._pool.submit(self._drain)
                return
            self.ran_here += 1
            self.here_now = True
            try:
                _run(job)
            finally:
                self.here_now = False
        self._loop.call_soon(self._drain_here)  # type: ignore[union-attr]  # let the loop's I/O in

    def shutdown(self, wait: bool = True) -> None:
        """Refuse new jobs; with `wait`, return once every queued job has run."""
        with self._lock:
            self._closed = True
        if wait:
            self._idle.wait()


def _run(job: Job) -> None:
    fut, fn, args, _ = job
    if not fut.set_running_or_notify_cancel():
        return
    try:
        result = fn(*args)
    except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
        fut.set_exception(exc)
    else:
        fut.set_result(result)


def with_content_ids(result: T) -> T:
    """`result`, with any content id a positional write left to derive derived now, in the thread
    that owns the store's connection (vfs.nodes), never later on the event loop."""
    if isinstance(result, vfs.Stat):
        result.hash  # noqa: B018 - read for its side effect
    elif isinstance(result, (list, tuple)):
        for item in result:
            if isinstance(item, vfs.Stat):
                item.hash  # noqa: B018
    return result
