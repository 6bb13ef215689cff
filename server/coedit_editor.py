"""Sending to a document's editors: one outbox per editor, one relay pass per loop turn.

A keystroke reaches every other editor of its document. Done naively that
is, per recipient, an event set, a task wake-up, a frame encode and an
awaited send through the ASGI stack; at 50 editors that overhead, not the
socket writes, was what a keystroke cost. So (like `server/fanout.py` for
change pages), leaving the socket writes themselves (the kernel's TCP work)
as most of a 50-editor keystroke's server time (bench/bench_coedit.py):

- a relayed frame is built once (`Outgoing`) and the same object is handed
  to every recipient; so are its WebSocket frame bytes: a server's frames
  are unmasked and ours uncompressed (`ws_per_message_deflate=False`), so
  they are the same bytes on every connection;
- the `Relay` of a document is one callback per loop turn (no task): it
  walks the editors with something queued and writes those bytes straight
  to each socket that can take them without waiting (`RawSocket`: uvicorn's
  WebSocket protocol, whose own `send` would serialise the frame again);
- an editor whose socket is full (a slow reader), or a server that gives no
  raw socket, gets its own task sending through the ASGI `send` for as long
  as it is behind; the relay skips it meanwhile, so its messages keep their
  order and the others are not held up. Its queued updates are merged into
  one when the backlog grows (`OUTBOX_MERGE`), so a slow reader costs
  bounded memory.

The `ok` that acknowledges a stored update goes through the same outbox
(`Editor.acker`): the update log commits before the relay's pass of the
same turn (`SharedDocument.receive` queues the log write first), so the
`ok` and the relayed update usually leave in one pass.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Callable

from pycrdt import merge_updates

from vfs.wire import Coedit, Ok, encode, sync_update

from server.rawsocket import RawSocket, text_frame

if TYPE_CHECKING:
    from server.ws_api import Session

log = logging.getLogger("wsfs.server.coedit")

OUTBOX_MERGE = 64  # queued messages per editor above which its pending updates are merged into one
ACK_WINDOW = 256  # updates of one editor waiting for their `ok` before its receive loop waits


class Outgoing:
    """One text frame, shared by every recipient: its JSON, its WebSocket bytes, its ASGI message."""

    __slots__ = ("frame", "update", "_wire", "_message")

    def __init__(self, frame: bytes, update: bytes | None = None):
        self.frame = frame
        self.update = update  # the Yjs update it carries, if any (to merge a slow reader's backlog)
        self._wire: bytes | None = None
        self._message: dict[str, Any] | None = None

    @property
    def size(self) -> int:
        return len(self.frame)

    @property
    def wire(self) -> bytes:
        """The frame as a server writes it on the socket (unmasked, no extension), built once."""
        if self._wire is None:
            self._wire = text_frame(self.frame)
        return self._wire

    @property
    def message(self) -> dict[str, Any]:
        """The ASGI message sending it (for a socket written through `send`)."""
        if self._message is None:
            self._message = {"type": "websocket.send", "text": self.frame.decode("utf-8")}
        return self._message


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
        self._raw = RawSocket.of(getattr(session, "_asgi_send", None))
        self._counters = session.st.metrics.ws

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

    def acker(self, request_id: Any) -> Callable[[BaseException | None], None]:
        """The callback the update log calls once an update of this editor is stored (or not):
        it queues the `ok` (or the error, and the editor must resend)."""
        self.unacked += 1

        def stored(error: BaseException | None) -> None:
            self.unacked -= 1
            self._acked.set()
            if error is None:
                self.put(Outgoing(encode(Ok(id=request_id))))
            else:
                self.put(Outgoing(encode(self.session.proto.error_reply(error, request_id).message)))

        return stored

    def ack_now(self, request_id: Any) -> None:
        """`ok` for a message that stored nothing."""
        self.put(Outgoing(encode(Ok(id=request_id))))

    async def wait_acks(self) -> None:
        """Hold the receive loop while too many of this editor's updates wait to be stored."""
        while self.unacked >= ACK_WINDOW and not self._stopped:
            self._acked.clear()
            await self._acked.wait()

    # -- sending ------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._started and not self._stopped and bool(self._items) and self._own is None

    def send_now(self) -> None:
        """Write what the socket takes without waiting; hand the rest to the editor's own task."""
        if self.session.closed:
            self.stop()
            return
        raw = self._raw
        if raw is None or not raw.ready:
            self._own = self.session._spawn(self._send_own())
            return
        items, self._items = self._items, []
        if len(items) == 1:
            data, size = items[0].wire, len(items[0].frame)
        else:  # one write for all of them (the outbox is bounded: OUTBOX_MERGE)
            data, size = b"".join([i.wire for i in items]), sum(len(i.frame) for i in items)
        raw.transport.write(data)
        counters = self._counters
        counters.messages_out += len(items)
        counters.bytes_out += size

    async def _send_own(self) -> None:
        from server.ws_subscription import _Closed

        try:
            while self._items and not self._stopped:
                items, self._items = self._items, []
                for item in items:
                    await self.session._send(item.message, item.size)  # waits while the socket is full
                if self._raw is not None and self._raw.ready:
                    break  # caught up: the relay writes again
        except _Closed:
            self.stop()
        finally:
            self._own = None
            if self._items and not self._stopped:
                self.relay.kick(self)


class Relay:
    """Sends a document's queued frames to its editors: one pass per loop turn, no task."""

    def __init__(self) -> None:
        self._due: dict[Editor, None] = {}  # editors with something to send, in order
        self._loop = asyncio.get_running_loop()
        self._scheduled = False
        self._stopped = False

    def kick(self, editor: Editor) -> None:
        self._due[editor] = None
        if not self._scheduled and not self._stopped:
            self._scheduled = True
            self._loop.call_soon(self._run)

    def stop(self) -> None:
        self._stopped = True
        self._due = {}

    def _run(self) -> None:
        self._scheduled = False
        while self._due and not self._stopped:
            due, self._due = self._due, {}
            for editor in due:
                if editor.ready:
                    try:
                        editor.send_now()
                    except Exception:  # noqa: BLE001 - one broken socket must not stop the others
                        log.exception("co-editing: sending to %s failed", editor.session.session)
                        editor.stop()
