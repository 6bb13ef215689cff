"""WAL checkpoints on a thread of their own, for a store whose writer must not wait for them.

SQLite's automatic checkpoint runs inside the commit that takes the WAL past
1,000 pages: that commit copies the log into the database and syncs it,
while its caller waits. A FUSE mount's group commit holds the mount's lock
meanwhile, so every file operation of every program using the mount stalls
with it (measured during a Django untar and `git add`: ~400 commits,
3.5-4.4 s of them, up to 260 ms each). A store opened with
`Workspace(..., checkpoints=False)` leaves that work to a `Checkpointer`:
a thread with its own connection that runs a passive checkpoint (which
never blocks a writer or waits for a reader) at most every `interval`
seconds, when the WAL was written since the last one. (Its size cannot
tell: the file keeps its length when SQLite restarts it from the top.)
Commits in WAL mode with `synchronous=NORMAL` never sync; checkpoints do,
so one a second keeps a writing mount to about two syncs a second, off
its callers' path.

A store with several writers in other processes keeps SQLite's own
checkpoints; a cluster node leaves them to Litestream instead
(`docs/cluster.md`), never to this.
"""

from __future__ import annotations

import os
import sqlite3
import threading

INTERVAL = 1.0  # seconds between checkpoints at most


class Checkpointer:
    """Checkpoints one store's WAL in the background until stopped."""

    def __init__(self, store_path: str, *, interval: float = INTERVAL):
        self._path = store_path
        self._wal = store_path + "-wal"
        self._interval = interval
        self._seen: tuple[int, int] | None = None  # the WAL's (mtime_ns, size) at the last checkpoint
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wsfs-checkpointer", daemon=True)
        self.checkpoints = 0  # passive checkpoints run (for tests and logs)

    def start(self) -> Checkpointer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop and wait for a checkpoint in progress (the store's own close then checkpoints the rest)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout=0")  # a checkpoint that cannot run now runs at the next look
            while not self._stop.wait(self._interval):
                stamp = self._wal_stamp()
                if stamp is not None and stamp != self._seen and self._checkpoint(conn):
                    self._seen = stamp  # all of it copied: look again once it is written
        finally:
            conn.close()

    def _wal_stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self._wal)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size) if st.st_size else None

    def _checkpoint(self, conn: sqlite3.Connection) -> bool:
        """One passive checkpoint; True when it copied every frame of the WAL (else retried later)."""
        try:
            busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.OperationalError:  # busy: another checkpoint runs
            return False
        self.checkpoints += 1
        return not busy and copied >= frames
