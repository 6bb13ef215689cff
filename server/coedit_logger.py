"""The update log's writer for one workspace: every acknowledged update is stored first.

An editor's `ok` waits until its update is in the store's update log
(`vfs.coedit_log`), so what was acknowledged survives a crash. The updates
that arrive in one turn of the event loop (from any document of the
workspace) go together in one transaction: a group commit. That
transaction runs right on the loop through the log's own connection
(`vfs.coedit_log.DirectLog`): a short local commit costs less than a hop to
the writer thread and back, which at one keystroke per commit was most of
a keystroke's server time. While another write holds the store (a file
write, a compaction, an HTTP request), the log cannot be appended without
waiting; then the entries go through the writer thread as any write does,
and the ones arriving meanwhile wait for that write and share the next
commit. Durability is unchanged either way: an update's callback (which
queues the editor's `ok`) runs only once the transaction holding it
committed (in a cluster: and was replicated, `Placement.stored`, as any
acknowledged write); it is called right after that commit, not through a future, so
the `ok` leaves in the same relay pass as the update (`server/coedit_editor.py`).

`seen` is the newest log row known committed; a compaction takes it with
its snapshot (`vfs.coedit_log.CoeditLog.compact` `upto`), so rows appended
after the snapshot was taken, by either connection, are never dropped.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Callable

from vfs.coedit_log import DirectLog

if TYPE_CHECKING:
    from server.stores import WorkspaceHandle

log = logging.getLogger("wsfs.server.coedit")

Stored = Callable[[BaseException | None], None]  # told None once its update is durable, else the error


class UpdateLogWriter:
    """Batches the workspace's update-log appends: one commit per loop turn, at most one in the writer's queue."""

    def __init__(self, handle: WorkspaceHandle):
        self.handle = handle
        self.seen = 0  # the newest log row (`seq`) known to be committed
        self._waiting: list[tuple[str, bytes]] = []
        self._callbacks: list[Stored] = []  # of the waiting entries
        self._in_flight: list[Stored] | None = None  # of the entries in the writer thread's queue
        self._due = False  # a commit is scheduled for the end of this loop turn
        self._direct: DirectLog | None = None
        self._direct_failed = False  # the store refused a connection of our own: use the writer
        self._acks: set[asyncio.Future[None]] = set()  # cluster: replication waits under way (kept referenced)

    def store(self, path: str, update: bytes, then: Stored | None = None) -> None:
        """Store `update` of `path`; `then(None)` once it is durable, `then(error)` if it is not."""
        self._waiting.append((path, update))
        if then is not None:
            self._callbacks.append(then)
        if self._in_flight is None and not self._due:
            self._due = True
            asyncio.get_running_loop().call_soon(self._commit)  # after the other messages of this turn: one commit for all

    def logged(self) -> asyncio.Future[None] | None:
        """Done once every update stored so far is committed (or failed); None if they all are."""
        if self._waiting:
            callbacks = self._callbacks
        elif self._in_flight is not None:
            callbacks = self._in_flight
        else:
            return None
        done = asyncio.get_running_loop().create_future()
        callbacks.append(lambda _error: done.done() or done.set_result(None))
        return done

    def saw(self, seq: int) -> None:
        """Log rows up to `seq` are committed (read from the store)."""
        self.seen = max(self.seen, seq)

    def close(self) -> None:
        """Let go of the log's own connection (no document is open; the next append reopens it)."""
        if self._direct is not None:
            self._direct.close()
            self._direct = None

    def _commit(self) -> None:
        self._due = False
        if self._in_flight is not None or not self._waiting:
            return
        entries, callbacks = self._waiting, self._callbacks
        self._waiting, self._callbacks = [], []
        direct = self._direct_log()
        if direct is not None:
            try:
                seq = direct.try_append(entries)
            except Exception as e:  # noqa: BLE001 - not stored (disk full, I/O error): nobody is acknowledged
                _settle(callbacks, e)
                return
            if seq is not None:
                self.saw(seq)
                self._acknowledge(callbacks)
                return
        self._write(entries, callbacks)  # another write holds the store: queue behind it

    def _acknowledge(self, callbacks: list[Stored]) -> None:
        """The commit holding these updates is done: acknowledge them now on one node; in a cluster
        once it is replicated and still ours (`Placement.stored`), or fail them if it is not."""
        if not self.handle.durable_reads:
            _settle(callbacks, None)
            return
        task = asyncio.ensure_future(self.handle.placement.stored(self.handle.name))
        self._acks.add(task)

        def replicated(done: asyncio.Future[None]) -> None:
            self._acks.discard(task)
            _settle(callbacks, done.exception() if not done.cancelled() else asyncio.CancelledError())

        task.add_done_callback(replicated)

    def _direct_log(self) -> DirectLog | None:
        if self.handle.closed:  # e.g. ownership moved to another node: never store behind its back
            self.close()
            return None
        if self._direct is None and not self._direct_failed:
            try:
                self._direct = DirectLog(str(self.handle.path))
            except Exception as e:  # noqa: BLE001 - e.g. mounted locally: the writer path decides
                log.warning("workspace %s: update log appended through the writer (%s)", self.handle.name, e)
                self._direct_failed = True
        return self._direct

    def _write(self, entries: list[tuple[str, bytes]], callbacks: list[Stored]) -> None:
        try:
            stored = self.handle.submit_write(lambda ws: ws.coedit_log.append(entries), op="coedit_log")
        except Exception as e:  # noqa: BLE001 - the workspace is closing: nobody is acknowledged
            _settle(callbacks, e)
            return
        self._in_flight = callbacks

        def finished(fut: asyncio.Future[Any]) -> None:
            self._in_flight = None
            error = fut.exception() if not fut.cancelled() else asyncio.CancelledError()
            if error is None:
                self.saw(fut.result())
                self._acknowledge(callbacks)
            else:
                _settle(callbacks, error)
            if self._waiting and not self._due:
                self._due = True
                asyncio.get_running_loop().call_soon(self._commit)

        stored.add_done_callback(finished)


def _settle(callbacks: list[Stored], error: BaseException | None) -> None:
    for then in callbacks:
        try:
            then(error)
        except Exception:  # noqa: BLE001 - one editor's failure must not keep the others' `ok`
            log.exception("co-editing: acknowledging a stored update failed")
