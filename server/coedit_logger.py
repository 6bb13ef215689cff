"""The update log's writer for one workspace: every acknowledged update is stored first.

An editor's `ok` waits until its update is in the store's update log
(`vfs.coedit_log`), so what was acknowledged survives a crash. One SQLite
transaction per keystroke would be one writer-thread hand-off and one
commit each; instead the updates that arrive while a log write runs (from
any document of the workspace) go together in the next one: a group
commit. Durability is unchanged — an update's future is done only once the
transaction holding it committed.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from server.stores import WorkspaceHandle


class UpdateLogWriter:
    """Batches the workspace's update-log appends: at most one write in the writer's queue."""

    def __init__(self, handle: WorkspaceHandle):
        self.handle = handle
        self._waiting: list[tuple[str, bytes]] = []
        self._futures: list[asyncio.Future[None]] = []
        self._writing = False

    def store(self, path: str, update: bytes) -> asyncio.Future[None]:
        """Store `update` of `path`; the future is done once it is durable."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.add_done_callback(_retrieve)  # an update sent without `id` is never awaited
        self._waiting.append((path, update))
        self._futures.append(done)
        if not self._writing:
            self._write()
        return done

    def _write(self) -> None:
        entries, futures = self._waiting, self._futures
        self._waiting, self._futures = [], []
        self._writing = True
        try:
            stored = self.handle.submit_write(lambda ws: ws.coedit_log.append(entries))
        except Exception as e:  # noqa: BLE001 - the workspace is closing: nobody is acknowledged
            self._writing = False
            _settle(futures, e)
            return

        def finished(fut: asyncio.Future[Any]) -> None:
            self._writing = False
            _settle(futures, fut.exception() if not fut.cancelled() else asyncio.CancelledError())
            if self._waiting:
                self._write()

        stored.add_done_callback(finished)


def _settle(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for done in futures:
        if not done.done():
            done.set_exception(error) if error is not None else done.set_result(None)


def _retrieve(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled():
        fut.exception()
