"""One WebSocket connection to one workspace (protocol v1, `docs/protocol.md` §5).

A `Session` is the I/O adapter of a `vfs.wire.ClientSession`, the sans-I/O
state machine that does the hello, matches replies to requests by id, routes
`changes`/`caught_up` events to their `Subscription`, and checks chunk
frames for `get` requests. Every message is built and parsed by `vfs.wire`,
the package the server uses too; here is only reading, writing, and waking
whoever waits.

Flow control: a subscription's queue is bounded, and when it is full the
reader stops reading the socket, so TCP pushes back on the server (which
then just keeps our cursor, see §5.3). That also holds up replies on the
same connection, so a program that both consumes a subscription and makes
requests should use two sessions (the replica does).
"""

from __future__ import annotations

import asyncio
import errno
import logging
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Iterable, Mapping

import orjson

from client_py.errors import ConnectionLost, ServerUnreachable, exception_from_error
from vfs import wire as P
from vfs.wire import routes
from vfs.types import ApplyResult, Change, Cursor
from vfs.wire.client_session import (
    BadFrame,
    ClientSession,
    CoeditEvent,
    GetDone,
    Replied,
    ServerError,
    SubscriptionEnded,
    SubscriptionMessage,
    close_error,
)

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection
    from websockets.exceptions import ConnectionClosed, InvalidStatus

log = logging.getLogger("client_py.session")

CLIENT_NAME = "client_py/0.1.0"
_TRANSPORT_MAX = P.TRANSPORT_MAX_FRAME + 1024


def ws_url(base_url: str, workspace: str) -> str:
    """`http://host:port` -> `ws://host:port/api/workspaces/NAME/ws`."""
    base = base_url.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base[len("https://") :]
    elif base.startswith("http://"):
        base = "ws://" + base[len("http://") :]
    return base + routes.build(routes.WEBSOCKET, ws=workspace)


def _close_exception(code: int | None, reason: str, url: str) -> Exception:
    """What a closed connection means for the caller; only ConnectionLost is worth a retry."""
    meaning = close_error(code, reason, url)
    if meaning is not None:
        return meaning
    return ConnectionLost(f"connection to {url} lost (close code {code}{': ' + reason if reason else ''})")


def _connection_closed() -> type[Exception]:
    """websockets' `ConnectionClosed`, for `except` clauses (evaluated only when something was raised).

    websockets is imported on the first connection, not with this module: its ~25 ms of CPU are
    start-up that the commands speaking only HTTP (`wsfs ls`, `cat`, `put`, ...) never need."""
    from websockets.exceptions import ConnectionClosed

    return ConnectionClosed


def _closed_by(e: ConnectionClosed, url: str) -> Exception:
    return _close_exception(e.rcvd.code if e.rcvd else None, e.rcvd.reason if e.rcvd else "", url)


class Subscription:
    """The events of one `subscribe`: `Changes` and `CaughtUp` messages, in order."""

    def __init__(self, session: Session, sub_id: str, queue_size: int):
        self.session = session
        self.id = sub_id
        self.start: str | None = None  # the cursor the server resolved `after` to
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=queue_size)
        self._error: BaseException | None = None

    async def next(self) -> P.Changes | P.CaughtUp:
        if self._queue.empty() and self._error is not None:
            raise self._error
        item = await self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def drain_nowait(self) -> list[P.Changes | P.CaughtUp]:
        """The messages queued right now, in order, without waiting.

        Raises the subscription's error (the session closed, it was
        unsubscribed) only when it has one and nothing is queued, so what
        arrived before the failure is never lost.
        """
        items: list[P.Changes | P.CaughtUp] = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, BaseException):
                break  # `_error` holds it: the next call (or `next`) raises it
            items.append(item)
        if not items and self._error is not None:
            raise self._error
        return items

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> P.Changes | P.CaughtUp:
        return await self.next()

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
            try:
                self._queue.put_nowait(exc)
            except asyncio.QueueFull:
                pass  # the consumer finds _error once it has drained the queue


class _Get:
    """An outstanding `get`: its verified chunks, then None (or an exception), in a queue."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.missing: list[str] = []


# the protocol state of one connection; a request's caller awaits a future of the ok's fields
_Proto = ClientSession["asyncio.Future[dict[str, Any]]", _Get, Subscription]


class Session:
    """An open, greeted WebSocket connection. Use `await Session.connect(...)`.

    The I/O around a `vfs.wire.ClientSession`, which decides what every frame
    means; this class only reads, writes, and wakes whoever waits.
    """

    def __init__(self, ws: ClientConnection, proto: _Proto, url: str):
        assert proto.hello is not None
        self.ws = ws
        self.proto = proto
        self.hello = proto.hello
        self.url = url
        self._closed: BaseException | None = None
        # co-edited documents on this connection: path -> what to call with its coedit messages
        self.coedit_handlers: dict[str, Callable[[P.Coedit | P.CoeditClosed], None]] = {}
        self._reader = asyncio.get_running_loop().create_task(self._read_loop(), name=f"wsfs-reader {url}")

    @property
    def peers(self) -> dict[str, dict[str, Any]]:
        """Presence: session id -> peer, as the server last told."""
        return self.proto.peers

    @property
    def bytes_received(self) -> int:
        """Chunk payload bytes received (for resume accounting)."""
        return self.proto.bytes_received

    # -- connect --------------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        base_url: str,
        workspace: str,
        token: str | None,
        *,
        presence: Mapping[str, Any] | None = None,
        open_timeout: float = 10.0,
    ) -> Session:
        url = ws_url(base_url, workspace)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        from websockets.asyncio.client import connect  # here, not above: see _connection_closed
        from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI

        try:
            ws = await connect(
                url,
                additional_headers=headers,
                compression=None,  # chunk data does not compress; deflate costs 40x throughput
                max_size=_TRANSPORT_MAX,
                open_timeout=open_timeout,
                ping_interval=20,
                ping_timeout=60,
                user_agent_header=CLIENT_NAME,
            )
        except InvalidStatus as e:
            if e.response.status_code in _RETRY_UPGRADE:  # nothing was done: safe to try again
                raise ServerUnreachable(base_url, _refused(e)) from None
            raise _refused(e) from None
        except InvalidURI as e:
            raise ValueError(f"invalid server URL {base_url!r}: {e}") from None
        except (OSError, TimeoutError, InvalidHandshake) as e:
            raise ServerUnreachable(base_url, e) from None
        proto: _Proto = ClientSession()
        try:
            await cls._handshake(ws, proto, presence, url)
        except BaseException:
            await ws.close()
            raise
        return cls(ws, proto, url)

    @staticmethod
    async def _handshake(
        ws: ClientConnection, proto: _Proto, presence: Mapping[str, Any] | None, url: str
    ) -> P.ServerHello:
        try:
            await ws.send(proto.hello_frame(CLIENT_NAME, presence))
            first = await asyncio.wait_for(ws.recv(), timeout=15)
        except _connection_closed() as e:
            raise _closed_by(e, url) from None
        return proto.receive_hello(first)

    # -- lifecycle ------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed is not None

    async def close(self) -> None:
        if self._closed is None:
            self._fail_all(ConnectionLost(f"session to {self.url} closed"))
        await self.ws.close()
        self._reader.cancel()
        try:
            await self._reader
        except (asyncio.CancelledError, Exception):
            pass

    async def wait_closed(self) -> BaseException | None:
        """Wait until the connection ends; what ended it."""
        await asyncio.wait([self._reader])
        return self._closed

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _fail_all(self, exc: BaseException) -> None:
        left = self.proto.close()
        if left is None:
            return
        self._closed = exc
        for fut in left.replies:
            if not fut.done():
                fut.set_exception(exc)
        for get in left.gets:
            get.queue.put_nowait(exc)
        for sub in left.subscriptions:
            sub._fail(exc)

    # -- reading --------------------------------------------------------------------

    async def _read_loop(self) -> None:
        try:
            async for frame in self.ws:
                if isinstance(frame, bytes):
                    self._on_chunk(frame)
                else:
                    await self._on_text(frame)
            self._fail_all(_close_exception(self.ws.close_code, self.ws.close_reason or "", self.url))
        except _connection_closed() as e:
            self._fail_all(_closed_by(e, self.url))
        except asyncio.CancelledError:
            self._fail_all(ConnectionLost(f"session to {self.url} closed"))
            raise
        except Exception as e:  # a broken server must not leave callers hanging
            log.warning("closing session to %s: %s", self.url, e)
            self._fail_all(e)
            await self.ws.close(P.CLOSE_POLICY, "protocol violation")

    def _on_chunk(self, frame: bytes) -> None:
        chunk = self.proto.receive_chunk(frame)  # raises on a frame out of place: the loop closes
        chunk.get.queue.put_nowait((chunk.hash, chunk.data))

    async def _on_text(self, frame: str) -> None:
        event = self.proto.receive_text(frame)
        if isinstance(event, SubscriptionMessage):
            await event.sub._queue.put(event.message)  # blocks when full: TCP backpressure on the server
        elif isinstance(event, SubscriptionEnded):
            event.sub._fail(event.error)  # raised by `next` after what was queued before it
        elif isinstance(event, Replied):
            if not event.waiter.done():
                if event.error is not None:
                    event.waiter.set_exception(event.error)
                else:
                    event.waiter.set_result(event.result or {})
        elif isinstance(event, GetDone):
            event.get.missing = event.missing
            event.get.queue.put_nowait(event.error)  # None: the end
        elif isinstance(event, CoeditEvent):
            handler = self.coedit_handlers.get(event.message.path)
            if handler is not None:
                handler(event.message)
        elif isinstance(event, ServerError):
            log.warning("server error on %s: %s %s", self.url, event.error.code, event.error.message)
        elif isinstance(event, BadFrame):
            log.warning("ignoring a bad frame from %s: %s", self.url, event.error.message)

    # -- requests -------------------------------------------------------------------

    async def _send(self, payload: Mapping[str, Any] | bytes) -> None:
        if self._closed is not None:
            raise self._closed
        try:
            if isinstance(payload, bytes):
                await self.ws.send(payload)
            else:
                await self.ws.send(orjson.dumps(payload).decode())
        except _connection_closed() as e:
            exc = _closed_by(e, self.url)
            self._fail_all(exc)
            raise exc from None

    async def request(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Send a message that expects an `ok`/`error` reply; return the ok's fields."""
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        rid = self.proto.start_request(fut)
        try:
            await self._send({**payload, "id": rid})
        except BaseException:
            self.proto.forget(rid)
            if fut.done() and not fut.cancelled():
                fut.exception()  # failed with the connection: the raise below reports it
            raise
        return await fut

    async def ping(self) -> None:
        await self.request({"type": "ping"})

    async def subscribe(
        self,
        *,
        prefix: str = "/",
        after: str | Cursor | None = None,
        globs: Iterable[str] | None = None,
        ignore: Iterable[str] = (),
        inline_max: int = 0,
        batch_max: int = P.DEFAULT_BATCH,
        queue_size: int = 8,
    ) -> Subscription:
        sub = Subscription(self, self.proto.new_subscription_id(), queue_size)
        msg = P.Subscribe(
            id=sub.id,
            prefix=prefix,
            globs=tuple(globs) if globs is not None else None,
            ignore=tuple(ignore),
            after=None if after is None else str(after),
            inline_max=inline_max,
            batch_max=batch_max,
        ).to_wire()
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.proto.start_subscription(sub.id, sub, fut)
        try:
            await self._send(msg)
            result = await fut
        except BaseException:
            self.proto.forget(sub.id)
            raise
        sub.start = result.get("cursor")
        return sub

    async def unsubscribe(self, sub: Subscription) -> None:
        """Stop a subscription; events it still had queued are dropped.

        The subscription is detached and its queue emptied *before* asking the
        server, so a reader blocked on that full queue is released and can read
        the reply.
        """
        self.proto.end_subscription(sub.id)
        try:
            sub.drain_nowait()
        except Exception:  # noqa: BLE001 - already failed: nothing queued to drop
            pass
        sub._fail(ConnectionLost(f"subscription {sub.id} was unsubscribed"))
        await self.request({"type": "unsubscribe", "sub": sub.id})

    async def has(self, hashes: Iterable[str]) -> list[str]:
        """The hashes the server lacks (any number; batched by the protocol limit)."""
        missing: list[str] = []
        for batch in _batches(list(dict.fromkeys(hashes)), P.MAX_HASHES):
            missing += (await self.request({"type": "has", "hashes": batch}))["missing"]
        return missing

    async def start_get(self, hashes: list[str]) -> _Get:
        """Ask for chunks; iterate them with `iter_get`. Several may be outstanding."""
        get = _Get()
        rid = self.proto.start_get(hashes, get)
        try:
            await self._send({"type": "get", "id": rid, "hashes": hashes})
        except BaseException:
            self.proto.forget(rid)
            raise
        return get

    @staticmethod
    async def iter_get(get: _Get) -> AsyncIterator[tuple[str, memoryview]]:
        """The chunks of one `get`, verified, in request order; then `get.missing` is set."""
        while True:
            item = await get.queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    async def get(self, hashes: Iterable[str]) -> AsyncIterator[tuple[str, memoryview]]:
        """Every requested chunk the server has; raises FileNotFoundError if any is missing."""
        for batch in _batches(list(hashes), P.MAX_HASHES):
            req = await self.start_get(batch)
            async for item in self.iter_get(req):
                yield item
            if req.missing:
                raise FileNotFoundError(errno.ENOENT, f"server lacks {len(req.missing)} chunk(s)", req.missing[0])

    async def put_chunk(self, hash_hex: str, data: bytes | memoryview) -> None:
        """Upload one chunk (not acknowledged by itself; `has`, `ping` or `push` confirm)."""
        await self._send(P.encode_chunk_frame(P.FRAME_PUT, hash_hex, data))

    def speaks(self, feature: str) -> bool:
        """Does the server list `feature` (`vfs.wire.FEATURES`) in its hello? An older one lists none."""
        return feature in self.hello.features

    async def put_chunks(self, chunks: Iterable[tuple[str, bytes | memoryview]]) -> None:
        """Upload chunks as `put_chunk` does, several per frame where the server speaks PUT_MANY
        (an untar's ~8,400 chunks were as many socket sends of the mount's event loop and
        WebSocket messages of the server's)."""
        if not self.speaks(P.FEATURE_PUT_MANY):
            for hash_hex, data in chunks:
                await self.put_chunk(hash_hex, data)
            return
        for frame in P.encode_put_many_frames(chunks):
            await self._send(frame)

    async def push(self, changes: Iterable[Change], base: Cursor | Mapping[str, int] | None = None) -> ApplyResult:
        result = await self.request(
            {"type": "push", "changes": [P.change_to_wire(c) for c in changes], "base": P.base_to_wire(base)}
        )
        return P.apply_result_from_wire(result)

    async def presence(self, op: str = "update", **fields: Any) -> None:
        await self._send(P.Presence(op=op, **fields).to_wire())


def _batches(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# A refused upgrade with one of these is passing (a node stopping or handing a workspace over, a proxy
# whose upstream is away, too many open files): the caller's reconnect loop retries it with backoff.
_RETRY_UPGRADE = (502, 503, 504)


def _refused(e: InvalidStatus) -> Exception:
    """A refused upgrade carries the same JSON error body as any HTTP error."""
    response = e.response
    try:
        body = orjson.loads(response.body or b"{}")
    except orjson.JSONDecodeError:
        body = None
    return exception_from_error(body, response.status_code, response.reason_phrase)


__all__ = ["Session", "Subscription", "ws_url"]
