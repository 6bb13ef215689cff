"""The WebSocket endpoint: hello, subscriptions, objects, push, presence.

One `Session` per connection: the I/O and store calls around a
`vfs.wire.ServerSession`, the sans-I/O state machine that decides what each
frame means (hello first, which messages are legal, subscription ids, error
counting, presence merging). Its receive loop handles frames strictly in
order (so chunks uploaded before a `push` are stored before it applies).
Outgoing traffic comes from three kinds of tasks, none of which queues
without bound:

- each **subscription** is a task that owns a cursor and pulls the next page
  from the store only after its previous message went out (uvicorn's `send`
  waits while the socket buffer is full). A slow reader costs a cursor, not
  a queue; it gets coalesced current state later, flagged `coalesced`;
- the **presence** task sends the latest state per peer (a dict, bounded by
  the number of peers), never a backlog;
- replies are sent by the receive loop itself, so a client that does not read
  stops being read (TCP backpressure), and floods cost nothing.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

import vfs
from vfs.paths import normalize
from vfs.sync import verify_object
from vfs.wire import (
    CLOSE_GOING_AWAY,
    ESHUTDOWN,
    FRAME_CHUNK,
    Get,
    Has,
    Ok,
    PathFilter,
    Ping,
    Presence,
    PresenceEvent,
    ProtocolError,
    Push,
    Subscribe,
    Unsubscribe,
    apply_result_to_wire,
    encode,
    encode_chunk_frame,
    error_body,
    exception_to_error,
)
from vfs.wire.server_session import HelloRefused, ServerSession
from vfs.wire.session import Close

from server import coedit
from server.auth import Principal, token_from
from server.fanout import frame_writer
from server.feed import Page
from server.http_base import json_response
from server.keepalive import keepalive_for
from server.rawsocket import text_frame
from server.state import ServerState, __version__, log
from server.store_options import check_push
from server.stores import WorkspaceHandle
from server.ws_subscription import Subscription, _Closed

GET_BATCH = 16  # chunks read per thread hop when answering `get`
WRITE_WINDOW = 64  # chunk uploads and pushes queued to the writer before the receive loop waits
WRITE_BYTES = 32 * 1024 * 1024  # ... or this many bytes of them
UPLOAD_BATCH = 64  # verified chunk uploads stored in one transaction ...
SMALL_PUSH = 4096  # a push this small (a few entries) runs on the loop when the writer is free
UPLOAD_BATCH_BYTES = 4 * 1024 * 1024  # ... or this many bytes of them (one commit per chunk cost ~30 %)


class Session:
    """One WebSocket connection to one workspace."""

    def __init__(self, st: ServerState, websocket: WebSocket, principal: Principal, handle: WorkspaceHandle):
        self.st = st
        self.websocket = websocket
        self.principal = principal
        self.token_id = principal.id
        self.handle = handle
        self.workspace = handle.name
        self.session = st.next_session()
        self.proto: ServerSession[Subscription] = ServerSession(self.session, max_errors=st.config.max_errors)
        self.closed = False  # the socket is gone or closing (the protocol may have ended earlier)
        self._presence_wake = asyncio.Event()
        self._writes: list[asyncio.Task[Any]] = []  # queued chunk puts and pushes, in order
        self._write_sizes: dict[asyncio.Task[Any], int] = {}
        self._uploads: list[tuple[str, bytes]] = []  # verified PUT frames not yet handed to the writer
        self._upload_bytes = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._close_requested: tuple[int, str] | None = None
        # the server's own ASGI send (kept in the scope by `app.RawSend`): no Starlette wrapper per
        # message, and uvicorn can say whether the socket is writable (see server/fanout.py)
        self._asgi_send = websocket.scope.get("wsfs.send") or websocket._send
        self.write_frame = frame_writer(self._asgi_send)  # the fan-out's direct path (server/fanout.py)

    @property
    def subs(self) -> dict[Any, Subscription]:
        """The live subscriptions by id (the protocol state's own table)."""
        return self.proto.subscriptions

    # -- sending ---------------------------------------------------------

    async def send_json(self, payload: bytes) -> None:
        await self._send({"type": "websocket.send", "text": payload.decode("utf-8")}, len(payload))

    async def send_reply(self, payload: bytes) -> None:
        """Send a write's reply: written to the socket now as one built frame when it takes it without
        waiting (what uvicorn's `send` would do, without decoding the JSON to text, handing it to
        websockets' framing and collecting the frame back: ~1/6 of a small push's loop time), else
        as any message."""
        if not self.reply_now(payload):
            await self.send_json(payload)

    def reply_now(self, payload: bytes) -> bool:
        """Write a reply as one built frame if the socket takes it now without waiting; False if not."""
        if not self.closed and self.write_frame is not None and self.write_frame(text_frame(payload)):
            counters = self.st.metrics.ws
            counters.messages_out += 1
            counters.bytes_out += len(payload)
            return True
        return False

    async def send_page(self, page: Page, sub: Subscription) -> bool:
        """Send a `changes` page to `sub` and move its cursor on; False if the socket is gone."""
        text, size = page.text(sub.id, sub.cursor)
        try:
            await self._send({"type": "websocket.send", "text": text}, size)
        except _Closed:
            return False
        self.st.metrics.ws.entries += page.count
        sub.cursor = page.cursor
        return True

    async def send_bytes(self, payload: bytes) -> None:
        await self._send({"type": "websocket.send", "bytes": payload}, len(payload))

    async def _send(self, message: dict[str, Any], size: int) -> None:
        if self.closed:
            raise _Closed()
        try:
            # the raw ASGI send: Starlette's wrapper only re-checks state we track ourselves
            await self._asgi_send(message)
        except (WebSocketDisconnect, RuntimeError, OSError) as e:
            self.closed = True
            raise _Closed() from e
        except Exception as e:  # uvicorn's ClientDisconnected and friends
            if type(e).__name__ == "ClientDisconnected":
                self.closed = True
                raise _Closed() from e
            raise
        counters = self.st.metrics.ws
        counters.messages_out += 1
        counters.bytes_out += size

    async def send_error(self, exc: BaseException, id: Any = None) -> None:
        reply = self.proto.error_reply(exc, id)
        if reply.error.code == "EINTERNAL":
            log.error("internal error on %s", self.session, exc_info=exc)
        self.st.metrics.ws_errors.labels(reply.error.code).inc()
        await self.send_json(encode(reply.message))
        if reply.close is not None:
            await self.close(reply.close.code, reply.close.reason)

    async def close(self, code: int, reason: str = "") -> None:
        if self.closed:
            return
        self.closed = True
        try:
            await self.websocket.close(code, reason)
        except Exception:  # noqa: BLE001 - already gone
            pass

    @property
    def author(self) -> str:
        """Who its writes are by: the presence name when it gave one, else the token's name."""
        return self.proto.author(self.principal.name)

    # -- hub listener (sync, non-blocking) ---------------------------------

    def on_commit(self, rev: int) -> None:
        fanout = self.handle.fanout
        for sub in self.proto.subscriptions.values():  # (per session per commit: no property here)
            if sub in fanout.parked:
                fanout.kick()  # one task serves every parked subscription
            else:
                sub.wake.set()

    def on_presence(self, op: str, peer: dict[str, Any]) -> None:
        if self.proto.outbox.add(op, peer):
            self._presence_wake.set()

    def on_close(self, code: int, reason: str) -> None:
        self._close_requested = (code, reason)
        self._spawn(self.close(code, reason))

    # -- lifecycle -------------------------------------------------------

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def run(self) -> None:
        try:
            if not await self._handshake():
                return
            self.st.hub.listen(self.workspace, self)
            self.st.sessions[self.session] = self
            self.st.metrics.ws_connections.inc()
            try:
                peers = [p for p in self.st.hub.presence(self.workspace) if p["session"] != self.session]
                await self.send_json(encode(PresenceEvent(op="sync", peers=peers)))
                hello = self.proto.hello
                if hello is not None and hello.presence is not None:
                    await self._presence(hello.presence)
                self._spawn(self._presence_sender())
                await self._receive_loop()
            finally:
                self.st.metrics.ws_connections.dec()
                self.st.sessions.pop(self.session, None)
                self.st.hub.unlisten(self.workspace, self)
                coedit.leave_all(self)
                self._publish_presence(self.proto.leave())
        except _Closed:
            pass
        finally:
            self._release()

    def _release(self) -> None:
        """Let go of everything the session holds, whatever state it ended in (total: nothing here raises)."""
        self.closed = True
        subs = self.proto.close()
        self.st.metrics.subscriptions.dec(len(subs))
        for sub in subs:
            sub.stop()  # a subscription whose `ok` could not be sent has no task yet
        for task in list(self._tasks):
            task.cancel()

    async def _receive(self) -> dict[str, Any] | None:
        try:
            message = await self.websocket.receive()
        except (RuntimeError, WebSocketDisconnect):
            self.closed = True
            return None
        if message["type"] == "websocket.disconnect":
            self.closed = True
            return None
        counters = self.st.metrics.ws
        counters.messages_in += 1
        payload = message.get("text") if message.get("text") is not None else message.get("bytes")
        counters.bytes_in += len(payload or b"")
        return message

    async def _handshake(self) -> bool:
        try:
            message = await asyncio.wait_for(self._receive(), self.st.config.hello_timeout)
        except asyncio.TimeoutError:
            await self._close_with(self.proto.no_hello())
            return False
        if message is None:
            return False
        try:
            self.proto.receive_hello(message.get("text"))
        except HelloRefused as refused:
            await self.send_error(refused.error)
            await self._close_with(refused.close)
            return False
        rev = await self.handle.read(lambda ws: ws.rev, op="hello")
        hello = self.proto.server_hello(
            server=f"wsfs/{__version__}", workspace=self.workspace, scope=self.principal.scope, rev=rev
        )
        await self.send_json(encode(hello))
        return True

    async def _close_with(self, close: Close) -> None:
        await self.close(close.code, close.reason)

    async def _receive_loop(self) -> None:
        while not self.closed:
            message = await self._receive()
            if message is None:
                try:
                    await self._flush_uploads()  # the client left: what it uploaded is still kept
                except Exception:  # noqa: BLE001 - the store closed meanwhile: nobody is left to tell
                    log.warning("uploads of %s not stored: the workspace closed", self.session)
                return
            request_id = None
            try:
                if message.get("bytes") is not None:
                    await self._chunk_upload(message["bytes"])
                    continue
                if self._uploads:
                    await self._flush_uploads()  # a message after uploads is handled after them (5.6)
                msg = self.proto.receive_text(message.get("text") or "")
                request_id = getattr(msg, "id", None)
                await self._dispatch(msg)
            except _Closed:
                return
            except Exception as e:  # noqa: BLE001 - every failure is answered, nothing crashes
                await self._drain_writes()  # earlier replies first
                await self.send_error(e, request_id)

    async def _dispatch(self, msg: Any) -> None:
        if isinstance(msg, Push):  # (the most frequent first)
            await self._push(msg)
        elif isinstance(msg, Subscribe):
            await self._subscribe(msg)
        elif isinstance(msg, Unsubscribe):
            await self._unsubscribe(msg)
        elif isinstance(msg, Has):
            await self._has(msg)
        elif isinstance(msg, Get):
            await self._get(msg)
        elif isinstance(msg, Presence):
            await self._presence(msg)
            if msg.id is not None:
                await self.send_json(encode(Ok(id=msg.id)))
        elif isinstance(msg, Ping):
            await self._drain_writes()
            await self.send_json(encode(Ok(id=msg.id)))
        elif isinstance(msg, coedit.COEDIT_MESSAGES):
            await coedit.dispatch(self, msg)

    # -- requests --------------------------------------------------------

    async def _subscribe(self, msg: Subscribe) -> None:
        self.proto.check_subscribe(msg)
        prefix = normalize(msg.prefix)
        filt = PathFilter(prefix, msg.globs, msg.ignore)
        if msg.after == "now":
            start = await self.handle.read(lambda ws: ws.cursor(), op="cursor")
        else:
            start = msg.after if isinstance(msg.after, vfs.Cursor) else vfs.Cursor(0)
        sub = Subscription(self, msg, filt, start)
        first = await sub.fetch(start)  # raises CursorTooOld before anything is promised
        self.proto.add_subscription(msg.id, sub)
        self.st.metrics.subscriptions.inc()
        await self.send_json(encode(Ok(id=msg.id, result={"cursor": str(start)})))
        sub.task = self._spawn(sub.run(first))

    async def _unsubscribe(self, msg: Unsubscribe) -> None:
        sub = self.proto.unsubscribe(msg)
        sub.stop()  # now, not when the task sees its cancellation: nothing after the ok
        self.st.metrics.subscriptions.dec()
        await self.send_json(encode(Ok(id=msg.id)))

    async def _has(self, msg: Has) -> None:
        await self._drain_writes()
        hashes = list(dict.fromkeys(msg.hashes))
        present = await self.handle.read(lambda ws: ws.has_objects(hashes), op="has")
        await self.send_json(encode(Ok(id=msg.id, result={"missing": [h for h in hashes if h not in present]})))

    async def _get(self, msg: Get) -> None:
        await self._drain_writes()
        hashes = list(msg.hashes)
        missing: list[str] = []
        for i in range(0, len(hashes), GET_BATCH):
            batch = hashes[i : i + GET_BATCH]
            found = await self.handle.read(lambda ws, b=batch: dict(ws.read_objects(list(dict.fromkeys(b)))), op="get")
            for h in batch:
                data = found.get(h)
                if data is None:
                    missing.append(h)
                else:
                    await self.send_bytes(encode_chunk_frame(FRAME_CHUNK, h, data))
        await self.send_json(encode(Ok(id=msg.id, result={"missing": list(dict.fromkeys(missing))})))

    async def _chunk_upload(self, frame: bytes) -> None:
        """Check a PUT (or PUT_MANY) frame's chunks now (a bad one refused at once), store them later."""
        chunks = self.proto.receive_chunks(frame)
        self.principal.require(self.workspace, "write")
        for chunk in chunks:
            data = bytes(chunk.data)
            try:
                verify_object(data, chunk.hash)
            except vfs.BadObject as e:
                err = exception_to_error(e)
                err.extra["hash"] = chunk.hash
                await self.send_error(err)
                continue
            self._uploads.append((chunk.hash, data))
            self._upload_bytes += len(data)
            if len(self._uploads) >= UPLOAD_BATCH or self._upload_bytes >= UPLOAD_BATCH_BYTES:
                await self._flush_uploads()

    async def _flush_uploads(self) -> None:
        """Hand the pending uploads to the writer as one transaction."""
        if not self._uploads:
            return
        batch, size = self._uploads, self._upload_bytes
        self._uploads, self._upload_bytes = [], 0
        fut = self.handle.submit_write(lambda ws: ws.put_objects(batch), author=None, op="put_chunks")
        await self._queue_write(self._finish_put(fut, batch[0][0] if len(batch) == 1 else None), size)

    async def _push(self, msg: Push) -> None:
        """Queue the batch to the writer and go on reading: pipelined pushes commit back to back."""
        self.principal.require(self.workspace, "write")
        changes, base = list(msg.changes), msg.base
        check_quota = check_push(self.st.stores.options, changes)  # EFBIG now, EDQUOT in the writer's hop

        def job(ws: vfs.Workspace) -> vfs.ApplyResult:
            check_quota(ws)
            return ws.apply_changes(changes, base=base)

        held = sum(256 + 128 * len(c.chunks) for c in changes)  # rough bytes of the decoded batch
        fut = self.handle.submit_write(job, author=self.author, small=held <= SMALL_PUSH, op="push")
        before = self._writes[-1] if self._writes else None
        # Run on the loop already (its commit's fan-out is a loop turn away) with every earlier reply
        # sent (each finisher waits for the one before it): answered here, no finisher task.
        if (before is None or before.done()) and fut.done() and not fut.cancelled() and fut.exception() is None:
            if self.reply_now(encode(Ok(id=msg.id, result=apply_result_to_wire(fut.result())))):
                return
        await self._queue_write(self._finish_push(fut, msg.id, before), held)

    async def _queue_write(self, finisher: Any, size: int) -> None:
        """Track a queued write. Past WRITE_WINDOW writes or WRITE_BYTES bytes in flight the
        receive loop waits (and so stops reading the socket): memory per connection stays bounded."""
        task = self._spawn(finisher)
        self._writes.append(task)
        self._write_sizes[task] = size
        task.add_done_callback(self._write_sizes.pop)
        while len(self._writes) >= WRITE_WINDOW or sum(self._write_sizes.values()) > WRITE_BYTES:
            await asyncio.wait([self._writes[0]])
            self._writes = [t for t in self._writes if not t.done()]

    async def _finish_put(self, fut: asyncio.Future[Any], digest: str | None) -> None:
        try:
            await fut
        except Exception as e:  # noqa: BLE001 - reported to the client, not raised
            err = exception_to_error(e)
            if digest is not None:
                err.extra["hash"] = digest
            try:
                await self.send_error(err)
            except _Closed:
                pass

    async def _finish_push(self, fut: asyncio.Future[Any], request_id: Any,
                           before: asyncio.Task[Any] | None = None) -> None:
        try:
            try:
                result = await fut  # (awaited itself: the reply goes out before the commit's fan-out)
            except Exception:  # an error goes out in push order too
                await _after(before)
                raise
            await _after(before)
            await self.send_reply(encode(Ok(id=request_id, result=apply_result_to_wire(result))))
        except _Closed:
            pass
        except Exception as e:  # noqa: BLE001 - reported to the client, not raised
            try:
                await self.send_error(e, request_id)
            except _Closed:
                pass

    async def _drain_writes(self) -> None:
        """Wait until every queued write is done and its reply or error sent (frames are handled in order)."""
        if self._writes:
            await asyncio.wait(self._writes)
            self._writes.clear()

    async def _presence(self, msg: Presence) -> None:
        self._publish_presence(self.proto.update_presence(msg))

    def _publish_presence(self, event: tuple[str, dict[str, Any]] | None) -> None:
        if event is not None:
            op, peer = event
            self.st.hub.publish_presence(self.workspace, self.session, op, peer)

    async def _presence_sender(self) -> None:
        try:
            while not self.closed:
                await self._presence_wake.wait()
                self._presence_wake.clear()
                for event in self.proto.outbox.take():
                    await self.send_json(encode(event))
        except _Closed:
            pass


async def _after(before: asyncio.Task[Any] | None) -> None:
    """Replies go out in push order: one waiting for the socket to drain is not overtaken by a later one."""
    if before is not None and not before.done():
        await asyncio.wait([before])


async def ws_endpoint(websocket: WebSocket) -> None:
    st: ServerState = websocket.app.state.wsfs
    name = websocket.path_params["ws"]
    try:
        principal = st.tokens.authenticate(token_from(websocket.headers, websocket.query_params))
        principal.require(name, "read")
        if st.stopping:
            raise ProtocolError(ESHUTDOWN, "server is shutting down")
        handle = await st.stores.get(name)
    except Exception as exc:  # noqa: BLE001 - refuse the upgrade with a JSON error
        err = exception_to_error(exc)
        await websocket.send_denial_response(
            json_response(error_body(err.code, err.message, **err.extra), err.status)
        )
        return
    handle.users += 1
    pinged = None
    try:
        await websocket.accept()
        session = Session(st, websocket, principal, handle)
        pinged = keepalive_for(session._asgi_send, st.keepalive)  # server/keepalive.py
        await session.run()
        if not session.closed:
            await session.close(1000)
    finally:
        if pinged is not None:
            st.keepalive.discard(pinged)
            st.keepalive.linger(pinged)  # bytes queued to a peer that reads no more: abort (keepalive.py)
        handle.users -= 1
        handle.last_used = time.monotonic()


async def going_away(st: ServerState, timeout: float = 5.0) -> None:
    """Shutdown step: tell every WebSocket client we are going away (1001)."""
    closes = (s.close(CLOSE_GOING_AWAY, "server shutting down") for s in list(st.sessions.values()))
    try:
        await asyncio.wait_for(asyncio.gather(*closes, return_exceptions=True), timeout)
    finally:  # and sockets whose session ended with bytes queued to a peer that reads no more
        await st.keepalive.abort_lingering()

