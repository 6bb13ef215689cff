"""WAL checkpoints on a thread of their own, so no committing call waits for one.

SQLite's automatic checkpoint runs inside whichever COMMIT takes the WAL
past `wal_autocheckpoint` pages: that call copies every page into the
database file and `fsync`s both files. Measured in a local FUSE mount (the
Django sdist untarred, then `git add -A` + commit), that was ~60 checkpoints
and ~1.2 s of `fsync` spent in the mount's request thread, up to 160 ms at
once, while every other request waited for the mount's lock.

With `checkpoints="background"` the store's connection checkpoints only as a
backstop (`wal_autocheckpoint=LIMIT`, four times the usual size), and a
`Checkpointer` thread runs `PRAGMA wal_checkpoint(PASSIVE)` on its own
connection when the frames not yet copied reach `PAGES` (SQLite's default
threshold), or when no commit came for `QUIET` seconds. A PASSIVE checkpoint
takes no write lock and waits for no reader: writers keep committing while it
copies, and `sqlite3` releases the GIL while it runs.

Why the WAL stays bounded: SQLite restarts the WAL at the first write after a
checkpoint copied everything. A writer that never pauses (a mount's group
transactions follow each other without a gap during an untar), or a reader
that pins an old snapshot, leaves the WAL growing until `LIMIT`, where the
committing connection checkpoints inline as before, but copies only what the
thread has not (if the thread's own checkpoint is still copying then, the
committer first waits for it: SQLite's would give up on the taken checkpoint
lock). Durability is SQLite's: a checkpoint never loses a committed
transaction, and with `synchronous=NORMAL` a commit is covered by an `fsync`
at the next checkpoint, which now comes at most `QUIET` seconds after the
writes stop (before: whenever 1,000 pages had accumulated, maybe never).

How much is left to copy is read from the WAL-index header in the store's
`-shm` file (`mxFrame` and the salts, which change when the WAL restarts;
sqlite.org/walformat.html), through the stat cache's mapping: a commit pays
a 48-byte read, not a statement.

A server with thousands of open stores cannot give each a thread. There the
store's owner schedules them (`Deferred`): the same backstop, and a PASSIVE
checkpoint run as a job among the store's own writes on the server's
bounded writer pool once `PAGES` frames wait (`due`), on the writer's own
connection, so no extra descriptor is held. Before, SQLite's own checkpoint
ran inside whichever COMMIT passed 1,000 pages; a small write runs on the
server's event loop, so every connection of the server waited for that
checkpoint's copy and two `fsync`s (~9 ms at the median, 1.2 ms of CPU,
once per ~140 small writes of a store).

    db  ->  checkpointer
"""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

PAGES = 1000  # frames not yet copied that start a checkpoint at once (SQLite's default threshold)
LIMIT = 4 * PAGES  # the committing connection's own wal_autocheckpoint: the backstop (16 MiB of 4 KiB pages)
QUIET = 0.25  # seconds without a commit after which whatever is left is copied
STALLED = 1.0  # seconds between tries while a reader's snapshot keeps frames from being copied
BACKSTOP_WAIT = 5.0  # seconds a committer past LIMIT waits at most for the thread's checkpoint to finish

_MX_FRAME = slice(16, 20)  # WalIndexHdr.mxFrame: frames in the WAL (native byte order)
_SALTS = slice(32, 40)  # WalIndexHdr.aSalt: new values each time the WAL restarts


class WalProgress:
    """How much of a store's WAL our PASSIVE checkpoints have copied, from its WAL-index header."""

    def __init__(self, header: Callable[[], bytes | None]):
        """`header`: the store's WAL-index header as it is now (None while there is no `-shm`)."""
        self._header = header
        self._done: tuple[bytes, int] = (b"", 0)  # (salts, frames copied) as of our last checkpoint
        self.runs = 0  # checkpoints run, their time and frames copied: for tests and benches
        self.seconds = 0.0
        self.copied = 0  # frames

    def backlog(self) -> int:
        """Frames in the WAL that no checkpoint of ours has copied yet."""
        header = self._header()
        if header is None:
            return 0
        frames = int.from_bytes(header[_MX_FRAME], sys.byteorder)
        salts, done = self._done
        return frames - done if header[_SALTS] == salts else frames

    def frames(self) -> int:
        """Frames in the WAL, copied or not: what SQLite's `wal_autocheckpoint` counts. A WAL restarts
        only at a write that finds every frame copied, so under writes that never pause the thread's
        checkpoints keep the backlog small while the WAL itself grows to `LIMIT`."""
        header = self._header()
        return 0 if header is None else int.from_bytes(header[_MX_FRAME], sys.byteorder)

    def checkpoint(self, conn: sqlite3.Connection) -> bool:
        """One PASSIVE checkpoint on `conn`; True if it copied anything."""
        before = self._header()
        start = time.perf_counter()
        try:
            _busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:
            return False  # another checkpoint under way, or the store is closing: later
        self.seconds += time.perf_counter() - start
        self.runs += 1
        after = self._header()
        if before is None or after is None or frames < 0:
            return False
        salts, done = self._done
        newly = copied - done if salts == before[_SALTS] else copied
        self.copied += max(newly, 0)
        # Frames are counted from the WAL's start; a restart since (new salts) left nothing copied.
        self._done = (before[_SALTS], copied) if after[_SALTS] == before[_SALTS] else (after[_SALTS], 0)
        return newly > 0


class Deferred:
    """A store's checkpoints on its owner's schedule: `due()` after a write, `run()` (in the thread
    that may use the store's connection, between its writes) when due.

    The committing connection keeps `wal_autocheckpoint=LIMIT` as a backstop, as `Checkpointer`'s
    does: an owner that falls behind (or a reader pinning an old snapshot) still has a WAL bounded
    at ~4x SQLite's threshold, copied inline as before."""

    def __init__(self, ws: Any, *, pages: int = PAGES):
        """`ws`: a writable `vfs.Workspace` in WAL mode, whose connection `run` checkpoints with."""
        self._conn: sqlite3.Connection = ws._db.conn
        self._conn.execute(f"PRAGMA wal_autocheckpoint={LIMIT}")
        # The WAL-index header through the store's stat cache, whose shared mapping of the `-shm`
        # lives and goes with the store (as `Checkpointer` is handed it by `vfs.db`).
        self._header: Callable[[], bytes | None] = ws._db.stats.header
        self.pages = pages
        self.progress = WalProgress(self._header)
        self._retry_at = 0.0  # after a checkpoint that copied nothing: not due again before this

    def due(self) -> bool:
        """`pages` frames or more wait to be copied (one read of the WAL-index header, no SQL), and
        the last checkpoint copied something or was `STALLED` seconds ago: a reader's snapshot that
        holds the frames would otherwise make every write queue another checkpoint in vain."""
        if self._retry_at and time.monotonic() < self._retry_at:
            return False
        return self.progress.backlog() >= self.pages

    def run(self) -> bool:
        """One PASSIVE checkpoint (no write lock taken, no reader waited for); True if it copied."""
        copied = self.progress.checkpoint(self._conn)
        self._retry_at = 0.0 if copied else time.monotonic() + STALLED
        return copied

    def header(self) -> bytes | None:
        """The store's WAL-index header now (None: no `-shm` yet). Every commit of any connection
        changes it and a checkpoint does not: its owner can tell its own last commit from anyone
        else's by comparing it (a 48-byte read of a shared mapping, no syscall)."""
        return self._header()


class Checkpointer:
    """One store's background checkpoints: `committed()` after each commit, `close()` once."""

    def __init__(self, path: str, header: Callable[[], bytes | None], *, pages: int = PAGES, quiet: float = QUIET):
        """`header`: the store's WAL-index header as it is now (None while there is no `-shm`)."""
        self._path = path
        self._header = header
        self._progress = WalProgress(header)
        self.pages = pages
        self.quiet = quiet
        self._wake = threading.Event()
        self._stopping = False
        self._parked = True  # nothing left to copy: the thread waits for a commit, no timer
        self._stalled = False  # the last checkpoint copied nothing: retry every STALLED seconds
        self._last_commit = 0.0
        self._copying = threading.Lock()  # held by the thread while its checkpoint runs (see `committed`)
        self._thread = threading.Thread(target=self._run, name="wsfs-checkpoint", daemon=True)
        self._thread.start()

    @property
    def runs(self) -> int:
        """Checkpoints run (tests and benches), their time and the frames they copied."""
        return self._progress.runs

    @property
    def seconds(self) -> float:
        return self._progress.seconds

    @property
    def copied(self) -> int:
        return self._progress.copied

    def backlog(self) -> int:
        """Frames in the WAL that no checkpoint of ours has copied yet."""
        return self._progress.backlog()

    def committed(self) -> None:
        """A commit went into the WAL (called in the committing thread: a header read, no SQL).

        With the WAL past the backstop (`LIMIT` frames, copied or not: SQLite's count, not our
        backlog) while the thread's checkpoint is still copying, the committer waits for it (at
        most `BACKSTOP_WAIT`): SQLite's own checkpoint in the next COMMIT would find the checkpoint
        lock taken and give up without a word, and a writer that never pauses would grow the WAL
        for as long as the thread is kept off a CPU (22 MB against the 16 MiB bound, seen on this
        2-core machine at a load of 5; 17-38 MB at a load of 7 while the wait looked at the
        backlog, which the thread's own copies keep small)."""
        self._last_commit = time.monotonic()
        if self._parked or self.backlog() >= self.pages:
            self._parked = False
            self._wake.set()
        past_backstop = self._progress.frames() >= LIMIT
        if past_backstop and self._copying.locked() and self._copying.acquire(timeout=BACKSTOP_WAIT):
            self._copying.release()  # (the next COMMIT's own checkpoint copies what is left)

    def close(self) -> None:
        """Stop the thread (a checkpoint under way finishes first) and close its connection."""
        self._stopping = True
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while True:
                self._wake.wait(None if self._parked else STALLED if self._stalled else self.quiet)
                self._wake.clear()
                if self._stopping:
                    return
                if self._idle():
                    continue
                backlog, quiet = self.backlog(), time.monotonic() - self._last_commit >= self.quiet
                if self._progress.frames() >= LIMIT and not quiet:
                    continue  # the committers' own checkpoint copies it now: ours would take its lock
                if backlog >= self.pages or quiet:
                    if conn is None:
                        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
                    # No progress: a reader's snapshot holds the frames left; its end wakes no one.
                    with self._copying:
                        self._stalled = not self._progress.checkpoint(conn)
        finally:
            if conn is not None:
                conn.close()

    def _idle(self) -> bool:
        """Park if nothing is left to copy; a commit racing with this un-parks (see `committed`)."""
        if self.backlog() > 0:
            return False
        self._parked = True
        if self.backlog() > 0:  # committed between the two reads, and saw us not parked
            self._parked = False
            return False
        return True
