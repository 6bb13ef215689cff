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
import logging

from client_py.backoff import Backoff
from vfs.types import Change, ChangePage, Cursor

log = logging.getLogger("wsfs.mount")

# Offline, the watcher tries to reconnect forever, backing off to one attempt
# every `cap` seconds: a server down for hours costs a request now and then.
OFFLINE_BACKOFF = Backoff(base=0.5, cap=3.0, retries=None)
SNAPSHOT_PAGE = 10000  # the server's largest `changes` page: a big tree loads in few requests


class StreamFollower:
    """The live-metadata methods of `RemoteBackend` (see the module docstring)."""

    def _quiet_while_offline(self, record: logging.LogRecord) -> bool:
        """The change stream's own reconnect notices, dropped while offline: the mount said it once already."""
        return self.online

    # -- live metadata -----------------------------------------------------------

    def catch_up(self) -> None:
        """Pull every change after the index's cursor (a snapshot the first time)."""
        while True:
            after = None if self.index.cursor.rev == 0 else self.index.cursor
            page = self._call(self._remote.changes_page(after, limit=SNAPSHOT_PAGE))
            self._absorb(page)
            if not page.more:
                return

    def _apply(self, change: Change) -> None:
        if self.index.cursor.rev and change.cursor <= self.index.cursor:
            return  # already seen (the stream and catch_up overlap)
        if self.pushq is not None:
            change = self.pushq.intercept(change)
            if change is None:
                return  # our own change to it is queued or on its way: shown until confirmed
        self.index.apply(change)

    async def _watch(self) -> None:
        """Follow the change stream for as long as the mount lives; offline (said once) while the server is away.

        Every failure, however long the server stays away, leads to another
        attempt after an `OFFLINE_BACKOFF` delay; the first catch-up that
        succeeds brings the mount back online and the delays start over.
        """
        delays = OFFLINE_BACKOFF.delays()
        while True:
            try:
                async for event in self._remote.watch("/", after=str(self.index.cursor)):
                    change = event.change
                    with self._index_moved:
                        stale = self._stale(change) if self.on_change is not None else None
                        self._apply(change)
                        cursor = Cursor.parse(event.cursor)
                        if cursor > self.index.cursor:
                            self.index.cursor = cursor
                            if self.pushq is not None:
                                self.pushq.settled(cursor)
                        self._index_moved.notify_all()
                    if stale:
                        self.on_change(stale)
                    self._set_online(True)
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

    async def _catch_up_async(self) -> None:
        while True:
            page = await self._remote.changes_page(self.index.cursor, limit=SNAPSHOT_PAGE)
            self._absorb(page)
            if not page.more:
                return

    def _absorb(self, page: ChangePage) -> None:
        """Apply one page of the change stream to the index and move its cursor."""
        stale: list[str] = []
        with self._index_moved:
            for change in page.entries:
                if self.on_change is not None and self.index.live:
                    stale += self._stale(change)
                self._apply(change)
            if page.cursor > self.index.cursor:
                self.index.cursor = page.cursor
                if self.pushq is not None:
                    self.pushq.settled(page.cursor)
            self._index_moved.notify_all()
        if stale:
            self.on_change(stale)

    def _stale(self, change: Change) -> list[str]:
        """The paths whose kernel caches `change` (not applied yet) makes stale."""
        if self.index.cursor.rev and change.cursor <= self.index.cursor:
            return []  # (already applied: `_apply` skips it)
        path = change.path
        parent = path.rpartition("/")[0] or "/"
        if change.kind == "delete" or (change.kind != "dir" and path in self.index.children):
            return [parent, *self.index.subtree(path)]
        return [parent, path]

    def _set_online(self, online: bool, reason: object = None) -> None:
        if online == self.online:
            return
        self.online = online
        if online:
            log.warning("server %s reachable again: writes enabled, caught up to %s", self.url, self.index.cursor)
        else:
            log.warning("server %s unreachable (%s): serving read-only from the cache", self.url, reason)

