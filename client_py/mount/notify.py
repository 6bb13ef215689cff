"""Kernel cache invalidation for the other names of a hard-linked inode.

libfuse's path-based API gives every name its own kernel inode, so after
`chmod a` (or a write, or `link`) the kernel may still hold the old
attributes and pages under the inode's other names `b`, `c` for up to
attr_timeout. The mount remembers the names it has seen for inodes with
nlink > 1 and asks libfuse (`fuse_invalidate_path`) to drop their caches.

Invalidation runs after the mount lock is released. It also drops the
inode's cached pages, and the kernel may wait for a page lock held by a read
that this (possibly only) FUSE thread has yet to serve: only a descriptor
open on the inode can have such a read in flight, so for an inode nobody has
open (git's objects: link, then unlink of the temporary name) it runs right
in the FUSE thread, and otherwise in a helper thread the operation waits for
only briefly (a thread hand-off costs ~0.2 ms on a loaded machine: git's 300
object writes paid ~50 ms for them).
"""

from __future__ import annotations

import ctypes
import logging
import queue
import threading
from collections.abc import Callable

import mfusepy

log = logging.getLogger("wsfs.mount")

INVALIDATE_WAIT_SECONDS = 0.5
_NONE: tuple[list[str], bool] = ([], False)  # nothing pending (never mutated: flush only reads it)

_lib = mfusepy._libfuse  # the libfuse mfusepy loaded; there is no public accessor
_invalidate = getattr(_lib, "fuse_invalidate_path", None)
if _invalidate is not None:
    _invalidate.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    _invalidate.restype = ctypes.c_int


def current_fuse() -> int | None:
    """The `struct fuse *` of the calling libfuse thread (inside an operation only)."""
    return _lib.fuse_get_context().contents.fuse


class LinkNames:
    """Names seen per multiply-linked inode, and invalidations waiting for the lock to drop."""

    def __init__(self) -> None:
        self.fuse: int | None = None
        self._names: dict[int, set[str]] = {}
        self.waiting: list[tuple[str, int]] = []  # (name, ino) to invalidate once the lock drops
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._worker: threading.Thread | None = None

    def tracking(self) -> bool:
        """Is any multiply-linked inode known (else removals need no bookkeeping)?"""
        return bool(self._names)

    def seen(self, ino: int, nlink: int, path: str) -> None:
        if nlink > 1:
            self._names.setdefault(ino, set()).add(path)

    def changed(self, ino: int, path: str | None = None) -> None:
        """Inode `ino` changed through `path`: its other names must be refreshed. Nothing to do
        without the path API's `struct fuse *` (the low-level API: a hard-linked file is one
        kernel inode; git's 18,500 link and unlink requests of a Django `git add` queued names
        here that `flush` then dropped)."""
        if self.fuse is None:
            return
        names = self._names.get(ino)
        if names:
            self.waiting.extend((name, ino) for name in names if name != path)

    def others(self, ino: int, path: str) -> set[str]:
        """The names other than `path` seen for `ino` (all of them only if its link count says so)."""
        return self._names.get(ino, set()) - {path}

    def forget(self, ino: int, path: str) -> None:
        names = self._names.get(ino)
        if names is not None:
            names.discard(path)
            if not names:
                del self._names[ino]

    def take_pending(self, is_open: Callable[[int], object]) -> tuple[list[str], bool]:
        """(names to invalidate, whether one of their inodes is open: see the module docstring)."""
        pending = self.waiting
        if not pending:
            return _NONE
        self.waiting = []
        return [name for name, _ in pending], any(is_open(ino) for _, ino in pending)

    def flush(self, paths: list[str], busy: bool = True) -> None:
        """Invalidate `paths` before the caller's next stat; `busy`: an inode among them
        is open, so hand it to the helper thread and wait for it (bounded)."""
        if not paths or self.fuse is None or _invalidate is None:
            return
        if not busy:
            self._invalidate_all(dict.fromkeys(paths))
            return
        if self._worker is None:
            self._worker = threading.Thread(target=self._run, name="wsfs-invalidate", daemon=True)
            self._worker.start()
        done = threading.Event()
        self._jobs.put((list(dict.fromkeys(paths)), done))
        done.wait(INVALIDATE_WAIT_SECONDS)

    def _run(self) -> None:
        while True:
            paths, done = self._jobs.get()
            self._invalidate_all(paths)
            done.set()

    def _invalidate_all(self, paths) -> None:
        for path in paths:
            _invalidate(self.fuse, path.encode("utf-8", "surrogateescape"))  # -ENOENT if not cached: fine


class StreamInvalidator:
    """Remote mode: drop the kernel's caches of paths the change stream reports changed.

    The kernel then keeps names, attributes and listings for the long timeouts a local
    store gets (a repeated `git status` never reaches the daemon), and a change made
    elsewhere still shows at once. The watcher hands paths over; a helper thread of its own
    invalidates them, so neither the watcher nor a FUSE request ever waits for the kernel
    (which may first need a page lock held by a request the FUSE thread is serving).
    A path the kernel does not hold costs a lookup in libfuse's table (-ENOENT: fine).

    Paths are handed over in bursts: the watcher appends to a list and wakes the thread
    only if no wake-up is on its way already; the thread takes the whole list (each path
    once, deepest first). A wake-up per streamed change cost the watcher ~70 us (the queue's
    put and the thread's grab for the GIL: 0.8 s of the event loop's time in a profiled
    Django untar, one per echoed entry). (Letting the thread gather for 5 ms first lost
    invalidations: `test_changes_made_elsewhere_show_up_live` found a file under a removed
    directory still there in 4 of 6 runs; why is not understood, so it does not gather.)
    """

    def __init__(self, fuse: int | None) -> None:
        self.fuse = fuse if _invalidate is not None else None  # (the low-level API's subclass: its session)
        self._lock = threading.Lock()  # `stop` waits for a call in progress: libfuse frees `fuse` after
        self._paths: list[str] = []  # handed over, not taken yet (guarded by `_handed`)
        self._handed = threading.Lock()
        self._awake = False  # a wake-up is on its way or the thread is gathering: no other needed
        self._wake: queue.SimpleQueue = queue.SimpleQueue()
        self.paths = 0  # paths handed over and invalidated (logged at unmount; tests count them)
        self._worker = threading.Thread(target=self._run, name="wsfs-stream-invalidate", daemon=True)
        self._worker.start()

    def __call__(self, paths: list[str]) -> None:
        """Hand `paths` over (from the watcher, holding nothing the FUSE thread needs)."""
        if not paths or self.fuse is None:
            return
        with self._handed:
            self._paths += paths
            if self._awake:
                return
            self._awake = True
        self._wake.put(None)

    def _run(self) -> None:
        while True:
            self._wake.get()
            with self._handed:
                paths, self._paths = self._paths, []
                self._awake = False
            # Deepest first: a removed directory's entries lose their attributes before the
            # directory does, so nobody sees the directory gone and a name below it still there.
            for path in sorted(dict.fromkeys(paths), key=lambda p: -p.count("/")):
                with self._lock:
                    if self.fuse is None:
                        return
                    self.invalidate(path)
                    self.paths += 1

    def invalidate(self, path: str) -> None:
        """Drop the kernel's copy of one path (libfuse's path API: its node's attributes and pages)."""
        _invalidate(self.fuse, path.encode("utf-8", "surrogateescape"))

    def stop(self) -> None:
        """At unmount, before libfuse frees its `struct fuse`: no call after this returns."""
        with self._lock:
            self.fuse = None
        log.info("change stream: %d paths invalidated", self.paths)
