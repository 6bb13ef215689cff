"""Per-workspace write queues drained by one bounded thread pool (`SerialQueue`).

A workspace's writes must run one at a time, in arrival order, against its
one read-write `Workspace` (which may be used from any thread, never from two
at once). One thread per workspace gave that for free but cost a thread per
open workspace (1,000 workspaces, 1,004 threads). Here each workspace keeps
its own FIFO of jobs and at most one drain of it is queued or running on the
shared pool at a time: order per workspace is kept, the number of threads is
the pool's size, and a busy workspace yields its thread after a few jobs so
others are not starved.
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, TypeVar

import vfs

T = TypeVar("T")
BATCH = 8  # jobs one drain runs before it yields its pool thread to other workspaces


class SerialQueue:
    """Jobs run one at a time, in submission order, on a shared pool (a drop-in for a one-worker executor)."""

    def __init__(self, pool: ThreadPoolExecutor):
        self._pool = pool
        self._jobs: deque[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]] = deque()
        self._lock = threading.Lock()
        self._draining = False  # a drain is queued or running on the pool
        self._closed = False
        self._idle = threading.Event()
        self._idle.set()

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        fut: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._jobs.append((fut, fn, args))
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

    def _drain(self) -> None:
        for _ in range(BATCH):
            with self._lock:
                if not self._jobs:
                    self._draining = False
                    self._idle.set()
                    return
                fut, fn, args = self._jobs.popleft()
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
                fut.set_exception(exc)
            else:
                fut.set_result(result)
        self._pool.submit(self._drain)  # more queued: go to the back of the pool's queue

    def shutdown(self, wait: bool = True) -> None:
        """Refuse new jobs; with `wait`, return once every queued job has run."""
        with self._lock:
            self._closed = True
        if wait:
            self._idle.wait()


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
