"""`Replica`: a real local directory kept in sync with a workspace, both ways.

The work is split by direction, each module one path through it:

- `pull.py` — remote -> local: a batch of the change stream becomes files
  (written as temp files, renamed into place), state rows and the
  watermark, committed in one SQLite transaction; a kill replays at most
  the batch in flight, and what already landed is recognised by its hash;
- `push.py` — local -> remote: a rescan compares each path's stat with the
  one recorded when it was synced, reads and hashes only what differs, and
  pushes it with the revision it was synced at, so the server refuses to
  overwrite what the replica had not seen;
- `loop.py` — connecting, catching up, settling, staying live;
- `workdir.py` — what both directions share: the verdict "unchanged since
  synced" and conflict copies (`NAME.conflict-<host>-<YYYYmmdd-HHMMSS>.EXT`,
  the server's version keeps the path; a deletion never beats an edit).

This module only assembles them and owns what outlives a connection: the
directory lock, the state's identity, closing.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from typing import Callable, Iterable

from client_py.backoff import Backoff
from client_py.client import Client
from client_py.conflicts import host_label
from client_py.replica.download import Downloader
from client_py.replica.ignore import IgnoreRules
from client_py.replica.localfs import STATE_DIR, LocalTree
from client_py.replica.loop import SyncLoop
from client_py.replica.pull import Puller
from client_py.replica.push import Pusher
from client_py.replica.state import State
from client_py.replica.summary import SyncSummary
from client_py.replica.workdir import Workdir

log = logging.getLogger("client_py.replica")

DURABILITY_MODES = ("auto", "file", "batch", "none")


class Replica:
    """Mirror workspace `workspace` of the server at `url` into `local_dir`.

    - `await replica.sync_once()` converges both ways once and returns a `SyncSummary`;
    - `await replica.run()` stays live until cancelled, surviving disconnects.

    Options: `ignore` (gitignore-style patterns, added to `.wsfsignore`),
    `host` (name used in conflict copies), `inline_max` (small files come
    inside change messages), `reconcile_interval` (seconds between the
    stat-only rescans in `run`, the safety net behind the watcher), `watch`
    (False: no `watchfiles` watcher, the rescans alone find local edits),
    `durability` (when written files reach the disk before
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
        reconcile_interval: float = 600.0,
        watch: bool = True,
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
        if durability not in DURABILITY_MODES:
            raise ValueError(f"durability must be auto, file, batch or none, not {durability!r}")
        self.durability = durability
        self.on_progress = on_progress
        self.backoff = backoff or Backoff(base=0.2, cap=5.0, retries=None)
        self.client = Client(self.url, token, backoff=Backoff(base=0.1, cap=1.0, retries=2))
        self.tree = LocalTree(self.local_dir)
        self._lock_fd = self._lock()
        self.state = State(os.path.join(self.local_dir, STATE_DIR, "state.db"))
        self.rules = IgnoreRules(self.local_dir, ignore)
        self.workdir = Workdir(self.tree, self.state, self.rules, self.host)
        self.downloader = Downloader(self.tree, self.state, self.workdir.count_received)
        self.puller = Puller(self.workdir, self.downloader, durability)
        self.pusher = Pusher(self.workdir, self.puller, self.client.workspace(workspace))
        self.sync_loop = SyncLoop(
            self.client, workspace, self.workdir, self.puller, self.pusher, inline_max=inline_max,
            batch_max=batch_max, reconcile_interval=reconcile_interval, after_batch=self._report_progress,
            watch=watch,
        )
        self.connected = self.sync_loop.connected
        self.ready = asyncio.Event()  # set once the first catch-up and rescan are done (run)
        self._closed = False
        self._check_identity()

    # -- public entry points ----------------------------------------------------------

    async def sync_once(self) -> SyncSummary:
        """Converge once: pull everything after the watermark, push local changes, settle, disconnect.

        A connection lost on the way (server restart, keepalive timeout during a very
        long transfer) is retried with backoff; each attempt resumes from the watermark.
        """
        self.summary = SyncSummary()
        await self.sync_loop.once()
        self.summary.cursor = self.watermark
        return self.summary

    async def run(self) -> None:
        """Stay live until cancelled: remote changes in, local edits out, through disconnects."""
        await self.sync_loop.forever(self.backoff, self.ready)

    @property
    def watermark(self) -> str | None:
        """The cursor of the last remote batch fully applied (where the next run resumes)."""
        return self.state.get_meta("watermark")

    @property
    def summary(self) -> SyncSummary:
        """What the current sync (or the live run so far) did."""
        return self.workdir.summary

    @summary.setter
    def summary(self, value: SyncSummary) -> None:
        self.workdir.summary = value

    def _report_progress(self) -> None:
        if self.on_progress:
            self.on_progress(self.summary)

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
        previous = self.state.get_meta("identity")
        if previous not in (None, ident):
            log.warning("%s was synced with %s; starting a fresh sync with %s", self.local_dir, previous, ident)
            self.state.reset()
        self.state.set_meta("identity", ident)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.sync_loop.disconnect()
        await self.client.aclose()
        self.state.close()
        self.tree.close()
        os.close(self._lock_fd)

    async def __aenter__(self) -> Replica:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
