"""Sending to a document's editors: one outbox per editor, one relay task per document.

A keystroke reaches every other editor of its document. Done naively that
is, per recipient, an event set, a task wake-up, a frame decode and an
awaited send; at 50 editors that overhead, not the socket writes, is what
a keystroke costs. So (like `server/fanout.py` for change pages):

- a relayed frame is built once, as the ASGI message itself
  (`Outgoing`), and the same object is handed to every recipient;
- one `Relay` task per document walks the editors with something queued
  and writes to each socket that can take it without waiting (uvicorn's
  writable flag, `Session.writable`), so one wake-up serves them all;
- an editor whose socket is full (a slow reader) gets its own task for as
  long as it is behind; the relay skips it meanwhile, so its messages keep
  their order and the others are not held up. Its queued updates are
  merged into one when the backlog grows (`OUTBOX_MERGE`), so a slow
  reader costs bounded memory.

The `ok` that acknowledges a stored update goes through the same outbox
(`Editor.ack`), so it costs no task of its own either.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from pycrdt import merge_updates

from vfs.wire import Coedit, Ok, encode, sync_update

if TYPE_CHECKING:
    from server.ws_api import Session

OUTBOX_MERGE = 64  # queued messages per editor above which its pending updates are merged into one
ACK_WINDOW = 256  # updates of one editor waiting for their `ok` before its receive loop waits


class Outgoing:
    """One frame as the ASGI message that sends it (shared by every recipient) and its size."""

    __slots__ = ("message", "size", "update")

    def __init__(self, frame: bytes, update: bytes | None = None):
        self.message = {"type": "websocket.send", "text": frame.decode("utf-8")}
        self.size = len(frame)
        self.update = update  # the Yjs update it carries, if any (to merge a slow reader's backlog)


def update_frame(path: str, update: bytes) -> Outgoing:
    """The `coedit` frame carrying `update` to an editor."""
    return Outgoing(encode(Coedit(path=path, y=sync_update(update))), update)


def y_frame(path: str, y: bytes) -> Outgoing:
    return Outgoing(encode(Coedit(path=path, y=y)))


class Editor:
    """One connection editing one document: its outbox, its awareness clients."""

    def __init__(self, session: Session, path: str, relay: Relay):
        self.session = session
        self.path = path
        self.relay = relay
        self.clients: set[int] = set()
        self.unacked = 0  # updates stored-or-storing whose `ok` is not yet queued
        self._acked = asyncio.Event()
        self._items: list[Outgoing] = []
        self._started = False
        self._stopped = False
        self._own: asyncio.Task[Any] | None = None  # sending on its own while its socket is full

    def start(self) -> None:
        """Begin sending (after the `ok` of its `coedit_open` went out)."""
        self._started = True
        if self._items:
            self.relay.kick(self)

    def stop(self) -> None:
        self._stopped = True
        self._items = []
        if self._own is not None:
            self._own.cancel()

    def send_update(self, update: bytes, frame: Outgoing | None = None) -> None:
        """Send an update; `frame` is its `Outgoing` when the caller made it for every editor."""
        self.put(frame or update_frame(self.path, update))

    def send(self, y: bytes) -> None:
        self.put(y_frame(self.path, y))

    def put(self, item: Outgoing) -> None:
        if self._stopped:
            return
        self._items.append(item)
        if len(self._items) > OUTBOX_MERGE:  # a slow reader: one merged update, not a backlog
            updates = [i.update for i in self._items if i.update is not None]
            others = [i for i in self._items if i.update is None][-OUTBOX_MERGE // 2:]
            self._items = others + ([update_frame(self.path, merge_updates(*updates))] if updates else [])
        self.relay.kick(self)

    # -- acknowledgements -------------------------------------------------------------

    def ack_when_stored(self, stored: asyncio.Future[Any] | None, request_id: Any) -> None:
        """Queue the `ok` (or the error) of an update once `stored` is done."""
        if stored is None:
            self.put(Outgoing(encode(Ok(id=request_id))))
            return
        self.unacked += 1

        def done(fut: asyncio.Future[Any]) -> None:
            self.unacked -= 1
            self._acked.set()
            error = fut.exception() if not fut.cancelled() else asyncio.CancelledError()
            if error is None:
                self.put(Outgoing(encode(Ok(id=request_id))))
            else:  # not stored: the editor hears it and must resend
                reply = self.session.proto.error_reply(error, request_id)
                self.put(Outgoing(encode(reply.message)))

        stored.add_done_callback(done)

    async def wait_acks(self) -> None:
        """Hold the receive loop while too many of this editor's updates wait to be stored."""
        while self.unacked >= ACK_WINDOW and not self._stopped:
            self._acked.clear()
            await self._acked.wait()

    # -- sending ------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._started and not self._stopped and bool(self._items) and self._own is None

    async def send_writable(self) -> None:
        """Send what the socket takes without waiting; hand the rest to the editor's own task."""
        from server.ws_api import _Closed

        writable = self.session.writable
        items, self._items = self._items, []
        for n, item in enumerate(items):
            if writable is None or not writable():
                self._items = items[n:] + self._items
                self._own = self.session._spawn(self._send_own())
                return
            try:
                await self.session._send(item.message, item.size)
            except _Closed:
                self.stop()
                return

    async def _send_own(self) -> None:
        from server.ws_api import _Closed

        try:
            while self._items and not self._stopped:
                items, self._items = self._items, []
                for item in items:
                    await self.session._send(item.message, item.size)
        except _Closed:
            self.stop()
        finally:
            self._own = None
            if self._items and not self._stopped:
                self.relay.kick(self)


class Relay:
    """The task that sends a document's queued frames to its editors (one wake-up per batch)."""

    def __init__(self) -> None:
        self._due: dict[Editor, None] = {}  # editors with something to send, in order
        self._wake = asyncio.Event()
        self._task: asyncio.Task[Any] | None = None

    def kick(self, editor: Editor) -> None:
        self._due[editor] = None
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._due:
                due, self._due = self._due, {}
                for editor in due:
                    if editor.ready:
                        await editor.send_writable()
