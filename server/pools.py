"""A thread pool whose threads leave when they have had nothing to do for a while (`IdlePool`).

Why: the server runs on glibc's malloc (`server/allocator.py`), which gives
each thread an arena of its own and a cache of freed blocks (the tcache: up to
7 blocks of each of 64 sizes, kept for that thread's next allocations). The
store pools' threads free their blocks amid a peak's other allocations, so
after 1,000 workspaces had closed, each cached block pinned a 4 KiB page of
an arena that `malloc_trim` could not give back: ~2,300 pages (9 MiB), the
largest part of what the idle close left (docs/server.md, nineteenth pass).
glibc empties a thread's tcache into the arenas only when the thread exits,
so a pool thread that has been idle `IDLE_EXIT` seconds exits, and the next
sweep trims (`gcpolicy.trim_soon`). A job after that starts a thread again
(~0.1 ms, once per quiet spell).

`concurrent.futures.ThreadPoolExecutor` keeps its threads until shutdown,
hence this small executor: the same `submit`/`shutdown`, at most `workers`
threads, a thread started only when no idle one can take the job.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Executor, Future
from typing import Any, Callable, TypeVar

from server import gcpolicy

T = TypeVar("T")
IDLE_EXIT = 10.0  # seconds without a job after which a pool thread exits

_Job = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class IdlePool(Executor):
    """At most `workers` threads, each leaving after `idle` seconds without a job."""

    def __init__(self, workers: int, thread_name_prefix: str = "wsfs-pool", idle: float = IDLE_EXIT):
        self._max = max(1, workers)
        self._prefix = thread_name_prefix
        self._idle_exit = idle
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._idle = 0  # threads waiting for a job and not yet promised one
        self._started = 0  # threads ever started (names, tests)
        self._shutdown = False

    @property
    def threads(self) -> int:
        """Threads alive now."""
        return len(self._threads)

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        fut: Future[T] = Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._jobs.put((fut, fn, args, kwargs))
            if self._jobs.qsize() > self._idle and len(self._threads) < self._max:
                self._start()
        return fut

    def _start(self) -> None:  # under the lock
        self._started += 1
        thread = threading.Thread(target=self._work, name=f"{self._prefix}_{self._started}", daemon=True)
        self._threads.add(thread)
        thread.start()

    def _work(self) -> None:
        try:
            while (job := self._wait()) is not None:
                _run(job)
                del job  # nothing of the last job kept while idle
        finally:
            gcpolicy.trim_soon()  # this thread's cached blocks go back to its arena as it exits

    def _wait(self) -> _Job | None:
        """The next job, or None when this thread is to leave (shutdown, or `idle` seconds without a
        job). It leaves the pool under the lock and only with nothing queued, so a job `submit` saw a
        thread for is never left without one."""
        me = threading.current_thread()
        with self._lock:
            self._idle += 1
        while True:
            try:
                job = self._jobs.get(timeout=self._idle_exit)
            except queue.Empty:
                with self._lock:
                    if self._jobs.empty():
                        self._idle -= 1
                        self._threads.discard(me)
                        return None
                continue
            with self._lock:
                self._idle -= 1
                if job is None:
                    self._threads.discard(me)
            return job

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            threads = list(self._threads)
            if cancel_futures:
                while True:
                    try:
                        job = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if job is not None:
                        job[0].cancel()
        for _ in threads:
            self._jobs.put(None)
        if wait:
            for thread in threads:
                thread.join()


def _run(job: _Job) -> None:
    fut, fn, args, kwargs = job
    if not fut.set_running_or_notify_cancel():
        return
    try:
        result = fn(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
        fut.set_exception(exc)
    else:
        fut.set_result(result)
