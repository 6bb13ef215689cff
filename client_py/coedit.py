"""A co-edited text file, live in Python: `doc = await ws.coedit(path)`.

`CoeditDoc.text` is a `pycrdt.Text` bound to the server's shared document
(docs/protocol.md §5.11): what you change in it is sent, what others change
appears in it. pycrdt indexes text by UTF-8 byte (`len(doc.text)` is the
byte length), as its own documentation says.

One WebSocket per document. Local edits are collected by a document
observer and sent by one task, merged into one update while the previous
one is unacknowledged; the server acknowledges an update once it is
stored, which is what `synced()` waits for. If the connection drops, the
task reconnects with backoff and rejoins with the document's state
vector: the server answers with what we lack and asks for what it lacks,
so edits made offline are merged, not lost.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from pycrdt import Doc, Text, TransactionEvent, merge_updates

from client_py.errors import ConnectionLost, ServerUnreachable
from vfs.paths import normalize
from vfs.wire import (
    COEDIT_TEXT,
    AwarenessEntry,
    Coedit,
    CoeditClose,
    CoeditClosed,
    CoeditOpen,
    ProtocolError,
    YAwareness,
    awareness_message,
    decode_awareness,
    encode_awareness,
    error_to_exception,
    read_y_message,
    sync_step1,
    sync_step2,
    sync_update,
)
from vfs.wire.coedit import SYNC_STEP1

if TYPE_CHECKING:
    from client_py.session import Session
    from client_py.workspace import RemoteWorkspace

log = logging.getLogger("client_py.coedit")

AWARENESS_RENEW = 15.0  # seconds between renewals of our awareness state (y-protocols' value)
AWARENESS_TIMEOUT = 30.0  # a peer's state not renewed for this long is dropped (y-protocols' value)
_RETRYABLE = (ConnectionLost, ServerUnreachable, ConnectionError, asyncio.TimeoutError)


class CoeditDoc:
    """One co-edited file. Make it with `await RemoteWorkspace.coedit(path)`."""

    def __init__(self, ws: RemoteWorkspace, path: str, *, name: str | None = None, color: str | None = None,
                 awareness_renew: float = AWARENESS_RENEW, awareness_timeout: float = AWARENESS_TIMEOUT):
        self.workspace = ws
        self.path = normalize(path)
        self.doc = Doc()
        self.text: Text = self.doc.get(COEDIT_TEXT, type=Text)
        self.peers: dict[int, dict[str, Any]] = {}  # other editors' awareness states by Yjs client id
        self._peer_seen: dict[int, float] = {}  # when each peer's state last arrived (monotonic)
        self._awareness_state: dict[str, Any] | None = None  # ours, as last published
        self._awareness_clock = 0
        self._renew, self._timeout = awareness_renew, awareness_timeout
        self._presence_task: asyncio.Task[Any] | None = None
        self._user = {k: v for k, v in (("name", name or ws.client.name), ("color", color)) if v}
        self._session: Session | None = None
        self._applying = False  # remote updates being applied: not ours to send
        self._pending: list[bytes] = []  # local updates not yet sent
        self._local = 0  # local edits made so far (a counter)
        self._acked = 0  # local edits the server has stored
        self._server_sv: bytes | None = None  # the server asked (sync step 1): answer with what it lacks
        self._changed = asyncio.Event()  # an ack, an error, or new work for the sender
        self._loaded = asyncio.Event()
        self._error: BaseException | None = None
        self._closing = False
        self._task: asyncio.Task[Any] | None = None
        self._sub = self.doc.observe(self._on_transaction)

    # -- lifecycle ---------------------------------------------------------------------

    async def _start(self) -> CoeditDoc:
        try:
            await self._join()  # errors of the first join (EFBIG, EINVAL, EACCES ...) reach the caller
        except BaseException:
            # the document's observer refers back to us through pycrdt's Rust side, a cycle Python's
            # collector cannot see: without this a refused document (and its socket) lived on to exit
            self._closing = True
            self.doc.unobserve(self._sub)
            raise
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"wsfs-coedit {self.path}")
        self._presence_task = asyncio.get_running_loop().create_task(self._keep_presence(),
                                                                     name=f"wsfs-coedit-presence {self.path}")
        await self._wait(self._loaded)
        return self

    async def close(self) -> None:
        """Send what is left, leave the document and close the connection."""
        if self._closing:
            return
        try:
            if self._error is None and self._session is not None and not self._session.closed:
                await asyncio.wait_for(self.synced(), 30)
                await self._session.request(CoeditClose(id=0, path=self.path).to_wire())
        except (Exception, asyncio.TimeoutError):  # noqa: BLE001 - closing anyway
            pass
        finally:
            self._closing = True
            for task in (self._task, self._presence_task):
                if task is not None:
                    task.cancel()
            if self._session is not None:
                await self._session.close()
            self.doc.unobserve(self._sub)

    async def __aenter__(self) -> CoeditDoc:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def error(self) -> BaseException | None:
        """Why the document ended for us (file deleted, grew past the limit, access lost); None while live."""
        return self._error

    async def synced(self) -> None:
        """Wait until every local edit made so far is stored on the server."""
        target = self._local
        while self._acked < target:
            await self._wait(self._changed)

    async def reconnect(self) -> None:
        """Drop the connection now and rejoin (what a network failure does); edits meanwhile are kept."""
        if self._session is not None:
            await self._session.ws.close()

    async def set_awareness(self, state: dict[str, Any]) -> None:
        """Publish this editor's awareness state (`user`, `cursor`, ...) to the other editors.

        It is sent again every `awareness_renew` seconds while the document is open (as
        y-protocols does): editors drop a state not renewed within 30 s."""
        self._awareness_state = {"user": self._user, **state}
        await self._publish_awareness()

    async def _publish_awareness(self) -> None:
        if self._awareness_state is None or self._session is None or self._session.closed:
            return
        self._awareness_clock += 1
        entry = AwarenessEntry(self.doc.client_id, self._awareness_clock, self._awareness_state)
        await self._session._send(Coedit(path=self.path, y=awareness_message(encode_awareness([entry]))).to_wire())

    async def _keep_presence(self) -> None:
        """Renew our awareness state; forget peers whose state was not renewed in time."""
        loop = asyncio.get_running_loop()
        step = min(self._renew, self._timeout / 10)
        last_sent = loop.time()
        while not self._closing:
            await asyncio.sleep(step)
            now = loop.time()
            for client, seen in list(self._peer_seen.items()):
                if now - seen > self._timeout:  # that editor vanished without a goodbye
                    self._peer_seen.pop(client, None)
                    self.peers.pop(client, None)
            if now - last_sent >= self._renew:
                last_sent = now
                try:
                    await self._publish_awareness()
                except _RETRYABLE:
                    pass  # the rejoin publishes it again

    async def _wait(self, event: asyncio.Event) -> None:
        if self._error is not None:
            raise self._error
        await event.wait()
        if event is self._changed:
            event.clear()
        if self._error is not None:
            raise self._error

    # -- the connection ----------------------------------------------------------------------

    async def _join(self) -> None:
        session = await self.workspace.client.connect(self.workspace.name)
        session.coedit_handlers[self.path] = self._on_message
        self._session = session
        try:
            await session.request(CoeditOpen(id=0, path=self.path, y=sync_step1(self.doc.get_state())).to_wire())
        except BaseException:
            await session.close()
            raise
        if self._awareness_state is not None:
            await self._publish_awareness()  # what we last published, again on the new connection
        elif self._user:
            await self.set_awareness({})

    async def _run(self) -> None:
        """Send local edits; reconnect when the connection drops."""
        backoff = self.workspace.client.backoff
        while not self._closing:
            session = self._session
            try:
                if session is None or session.closed:
                    await self._join()
                    continue
                await self._send_loop(session)
            except asyncio.CancelledError:
                raise
            except _RETRYABLE as e:
                log.info("co-editing %s: connection lost (%s); rejoining", self.path, e)
                self._server_sv = None
                delays = backoff.delays()
                await asyncio.sleep(next(delays, 1.0))
            except BaseException as e:  # noqa: BLE001 - the document cannot go on: waiters hear why
                self._fail(e)
                return

    async def _send_loop(self, session: Session) -> None:
        closed = asyncio.ensure_future(session.wait_closed())
        try:
            while True:
                if self._server_sv is not None or self._pending:
                    await self._send_one(session)
                    continue
                woke = asyncio.ensure_future(self._changed.wait())
                await asyncio.wait([woke, closed], return_when=asyncio.FIRST_COMPLETED)
                woke.cancel()
                if closed.done():
                    raise closed.result() or ConnectionLost(f"co-editing {self.path}: connection closed")
                self._changed.clear()
        finally:
            closed.cancel()

    async def _send_one(self, session: Session) -> None:
        upto = self._local
        if self._server_sv is not None:
            y = sync_step2(self.doc.get_update(self._server_sv or None))  # everything it lacks, pending included
            self._server_sv = None
        else:
            y = sync_update(merge_updates(*self._pending) if len(self._pending) > 1 else self._pending[0])
        self._pending = []
        await session.request(Coedit(path=self.path, y=y, id=0).to_wire())
        self._acked = max(self._acked, upto)
        self._changed.set()

    # -- events --------------------------------------------------------------------------------

    def _on_transaction(self, event: TransactionEvent) -> None:
        if self._applying:
            return
        self._pending.append(event.update)
        self._local += 1
        self._changed.set()

    def _on_message(self, msg: Coedit | CoeditClosed) -> None:
        if isinstance(msg, CoeditClosed):
            self._fail(error_to_exception(msg.code, msg.message, {"path": msg.path}))
            return
        try:
            y = read_y_message(msg.y)
        except ProtocolError as e:
            log.warning("co-editing %s: ignoring a bad message: %s", self.path, e.message)
            return
        if isinstance(y, YAwareness):
            for entry in decode_awareness(y.data):
                if entry.client == self.doc.client_id:
                    continue
                if entry.state is None:
                    self.peers.pop(entry.client, None)
                    self._peer_seen.pop(entry.client, None)
                else:
                    self.peers[entry.client] = entry.state
                    self._peer_seen[entry.client] = asyncio.get_running_loop().time()
        elif y.step == SYNC_STEP1:
            self._server_sv = y.data
            self._changed.set()
        elif y.carries_update:
            self._applying = True
            try:
                self.doc.apply_update(y.data)
            finally:
                self._applying = False
            self._loaded.set()
        else:
            self._loaded.set()

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self._changed.set()
        self._loaded.set()

    def __repr__(self) -> str:
        return f"<CoeditDoc {self.workspace.name}:{self.path}>"
