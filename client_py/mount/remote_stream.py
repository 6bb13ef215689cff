"""Remote mode: the index kept live by the change stream (`RemoteBackend`'s half that follows it).

`StreamFollower` loads the index from `changes` pages (a snapshot the first
time), follows the WebSocket change stream for as long as the mount lives,
goes offline (said once) while the server is away and catches up when it is
back, and reports the paths each streamed change made stale in the kernel's
caches (`on_change`, see `notify.StreamInvalidator`). It shares
`RemoteBackend`'s state (the index, its lock and condition, the client).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from client_py.backoff import Backoff
from client_py.watch import Lost, messages
from vfs.types import Change, ChangePage, Cursor
from vfs.wire import Changes, change_from_wire

log = logging.getLogger("wsfs.mount")

# Offline, the watcher tries to reconnect forever, backing off to one attempt
# every `cap` seconds: a server down for hours costs a request now and then.
OFFLINE_BACKOFF = Backoff(base=0.5, cap=3.0, retries=None)
SNAPSHOT_PAGE = 10000  # the server's largest `changes` page: a big tree loads in few requests
_NOTHING: list[str] = []  # no path made stale (never mutated: callers only read or add it)


def _view(change: Change) -> tuple:
    """What the mount answers for a node from its index entry (`IndexReads._stat`: the
    permission and sticky bits, size, mtime; content; a symlink's target; a device number).
    Its revision is not shown; its inode number, link count, owners and exact times come from
    elsewhere (the index's numbers, the session's overlay), which applying it leaves alone."""
    return change.mode & 0o1777, change.size, change.mtime, change.hash, change.target, change.rdev


class StreamFollower:
    """The live-metadata methods of `RemoteBackend` (see the module docstring)."""

    # -- live metadata -----------------------------------------------------------

    def catch_up(self) -> None:
        """Pull every change after the index's cursor (a snapshot the first time)."""
        while True:
            after = None if self.index.cursor.rev == 0 else self.index.cursor
            page = self._call(self._remote.changes_page(after, limit=SNAPSHOT_PAGE))
            self._absorb(page)
            if not page.more:
                return

    def _apply(self, change: Change) -> list[str]:
        """Apply one streamed change to the index (lock held): the paths whose kernel caches
        it made stale (`on_change`). Nothing for a change that leaves what the mount answers as it
        was: our own change's echo (the index has shown it since the change was queued), a
        change held back behind ours (`pushq.intercept`: shown when ours is confirmed, and
        dropped from the kernel then), the delete of a name already gone. Every echo once cost
        the kernel the path and its parent (an untar: 10,434 invalidations, one per file)."""
        index = self.index
        if index.cursor.rev and change.rev <= index.cursor.rev and change.cursor <= index.cursor:
            return _NOTHING  # already seen (the stream and catch_up overlap)
        if self.pushq is not None:
            change = self.pushq.intercept(change)
            if change is None:
                return _NOTHING  # our own change to it is queued or on its way: shown until confirmed
        path = change.path
        old = index.entries.get(path)
        if old is None:
            index.apply(change)
            return _NOTHING if change.kind == "delete" else [path.rpartition("/")[0] or "/", path]
        if old.kind == change.kind:
            shown = _view(old)
            index.apply(change)
            return _NOTHING if _view(change) == shown else [path]  # (the same name, inode and kind)
        # Removed, or another kind of node at the name: it and everything below it.
        stale = [path.rpartition("/")[0] or "/", *(index.subtree(path) if path in index.children else (path,))]
        index.apply(change)
        return stale

    async def _watch(self) -> None:
        """Follow the change stream for as long as the mount lives; offline (said once) while the server is away.

        Every failure, however long the server stays away, leads to another
        attempt after an `OFFLINE_BACKOFF` delay; the first catch-up that
        succeeds brings the mount back online and the delays start over.
        """
        delays = OFFLINE_BACKOFF.delays()
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure: offline, retry
                self._set_online(False, exc)
            await asyncio.sleep(next(delays))
            try:
                await self._catch_up_async()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - still away: the next round tries again
                log.debug("server %s still unreachable", self.url, exc_info=True)
                continue
            self._set_online(True)
            delays = OFFLINE_BACKOFF.delays()

    async def _follow(self) -> None:
        """Follow the stream from the index's cursor, one message (a batch of entries) at a time.

        `watch.messages`, not `RemoteWorkspace.watch`, whose one event per entry (a
        `WatchEvent`, then a `Change` from it, its cursor parsed and compared, the lock taken
        and waiters woken for each) was most of the event loop's share of an untar: the
        mount's own pushes come back as ~10,000 entries. A lost connection is resumed after
        the last message taken while the client's backoff lasts (a quick server restart);
        past it the error goes up (offline)."""
        async with contextlib.aclosing(messages(self._client, self.workspace, str(self.index.cursor))) as stream:
            async for message in stream:
                if isinstance(message, Lost):
                    if self.online:
                        log.warning("change stream of %s lost (%s): resuming after %s",
                                    self.url, message.reason, message.position)
                    continue
                if isinstance(message, Changes):
                    self._take(message)
                self._set_online(True)

    async def _catch_up_async(self) -> None:
        while True:
            page = await self._remote.changes_page(self.index.cursor, limit=SNAPSHOT_PAGE)
            self._absorb(page)
            if not page.more:
                return

    def _absorb(self, page: ChangePage) -> None:
        """Apply one page of `changes` to the index (see `_absorb_entries`)."""
        self._absorb_entries(page.entries, page.cursor)

    def _take(self, message: Changes) -> None:
        """Apply one message of the change stream to the index (see `_absorb_entries`)."""
        self._absorb_entries(map(change_from_wire, message.entries), Cursor.parse(message.cursor))

    def _absorb_entries(self, entries: Iterable[Change], cursor: Cursor) -> None:
        """Apply changes to the index and move its cursor, under one lock: wake who waits for
        the index, and hand what the changes made stale to the kernel's invalidator."""
        stale: list[str] = []
        with self._index_moved:
            for change in entries:
                stale += self._apply(change)
            if cursor > self.index.cursor:
                self.index.cursor = cursor
                if self.pushq is not None:
                    self.pushq.settled(cursor)
            self._index_moved.notify_all()
        if stale and self.on_change is not None and self.index.live:
            self.on_change(stale)

    def _set_online(self, online: bool, reason: object = None) -> None:
        if online == self.online:
            return
        self.online = online
        if online:
            log.warning("server %s reachable again: writes enabled, caught up to %s", self.url, self.index.cursor)
        else:
            log.warning("server %s unreachable (%s): serving read-only from the cache", self.url, reason)

