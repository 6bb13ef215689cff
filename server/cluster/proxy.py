"""Any node, any workspace: requests for a workspace another node owns go to that node.

`ClusterProxy` is the outermost ASGI layer of a cluster node. For a path under
`/api/workspaces/{ws}` it asks who owns `ws` (this node's own table first,
then the Redis lease, whose value is the owner's node id, and the node's
advertised URL from `<prefix>:nodes`):

- this node, or nobody: served here (the store's open acquires ownership);
- another node: proxied there. HTTP bodies stream both ways (aiohttp); a
  WebSocket is bridged frame by frame both ways and keeps the close code
  and reason (browsers do not follow redirects on an upgrade, so nothing
  is redirected). A refused upgrade (401, 403, 404...) is relayed as is.

A request already proxied once (`x-wsfs-proxied`) is served where it lands:
ownership moving mid-flight then gets the store's own 503 (EAGAIN), never a
loop. While the owner is unreachable (killed, its lease not yet expired) an
HTTP request that has sent nothing yet retries routing for up to
`FAILOVER_WAIT` seconds, so it lands on the next owner; a WebSocket bridge
whose owner vanished is closed with 1012 so the client reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
from yarl import URL
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from vfs.wire import ProtocolError, error_body
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from server.cluster.lease import LeaseUnavailable
from server.cluster.node import ClusterNode
from server.cluster.placement import CLOSE_MOVED, EAGAIN

log = logging.getLogger("wsfs.server.cluster")

_WORKSPACE = re.compile(r"^/api/workspaces/([^/]+)")
PROXIED = "x-wsfs-proxied"
FAILOVER_WAIT = 10.0
OWNER_CHECK = 1.0  # seconds between lease checks while waiting for an owner's answer
# Kept-alive connections to owners are dropped after this many idle seconds: below uvicorn's own 5 s,
# so a connection is never reused just as the owner closes it.
KEEPALIVE = 4.0
_HOP = {b"host", b"connection", b"keep-alive", b"transfer-encoding", b"upgrade", b"te", b"trailer",
        b"proxy-connection", b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-extensions",
        b"sec-websocket-protocol", b"sec-websocket-accept"}


def _is_create(scope: Scope) -> bool:
    """`PUT /api/workspaces/{ws}`: a creation, acknowledged only once its store is replicated."""
    return scope["type"] == "http" and scope["method"] == "PUT" \
        and _WORKSPACE.fullmatch(scope["path"].rstrip("/")) is not None


def _is_delete(scope: Scope) -> bool:
    """`DELETE /api/workspaces/{ws}`: the placement must keep the lease until the marker is written."""
    return scope["type"] == "http" and scope["method"] == "DELETE" \
        and _WORKSPACE.fullmatch(scope["path"].rstrip("/")) is not None


def workspace_of(path: str) -> str | None:
    m = _WORKSPACE.match(path)
    return m.group(1) if m else None


class _Started(Exception):
    """The owner went away after its answer began: nothing more can be said to the client."""


class OwnerMoved(Exception):
    """The node a request was sent to lost the workspace before answering."""


class OwnerUnknown(Exception):
    """Another node owns the workspace but its URL cannot be found now."""


class ClusterProxy:
    def __init__(self, app: ASGIApp, node: ClusterNode, setup: Any = None):
        self.app = app
        self.setup = setup
        if setup is not None:
            setup.proxy = self  # so the node's lifespan can close the client and /metrics can count
        self.node = node
        self.proxied = 0  # requests and sockets sent to another node
        self._session: aiohttp.ClientSession | None = None

    def _upstream(self) -> aiohttp.ClientSession:
        """The node's one HTTP session to the other nodes, made on first use (inside the running loop).

        aiohttp rather than httpx: measured with sequential 200-byte PUTs proxied to the owner,
        httpx cost the proxying node ~2.6 ms of CPU per request (an earlier round found one shared
        httpx pool examining every connection per request and lent one client per request
        instead); aiohttp's pool hands out a kept-alive connection per host in constant time."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE, ssl=ssl.create_default_context())
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, trust_env=False,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5.0, sock_read=None),
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def route(self, workspace: str) -> str | None:
        """The URL of the node to send `workspace`'s requests to (None: serve here)."""
        found = await self._owner(workspace)
        return None if found is None else found[1]

    async def _owner(self, workspace: str) -> tuple[str, str] | None:
        """(node id, URL) of the node owning `workspace`, None when it is this node or nobody."""
        ownership = self.node.ownership
        if ownership is None or workspace in ownership.held:
            return None
        owner = await ownership.leases.owner(workspace)
        if owner is None or owner == self.node.node:
            return None
        url = await self.node.url_of(owner)
        if url is None:
            raise OwnerUnknown(f"workspace {workspace!r} is owned by node {owner}, whose URL is unknown")
        return owner, url

    def _durable_create(self, workspace: str, send: Send) -> Send:
        """`send`, holding back a successful `PUT /api/workspaces/{ws}` until the new store is replicated
        (a creation is an acknowledgement too); a refusal replaces the answer with the 503."""
        refused = False

        async def held_send(message: Message) -> None:
            nonlocal refused
            if refused:
                return
            if message["type"] == "http.response.start" and message["status"] in (200, 201) \
                    and self.setup is not None:
                try:
                    await self.setup.placement.created(workspace)
                except ProtocolError as exc:
                    refused = True
                    await _refuse(send, exc.message, exc.code, exc.status)
                    return
            await send(message)

        return held_send

    async def _open_here(self, workspace: str, send: Send, *, websocket: bool, receive: Receive | None = None) -> bool:
        """Open the store here (nobody else owns it); False when that was refused (answered already)."""
        if self.setup is None:
            return True
        try:
            await self.setup.open_here(workspace)
            return True
        except ProtocolError as exc:
            if websocket:
                assert receive is not None
                if (await receive())["type"] == "websocket.connect":
                    await _deny(send, exc.message, exc.code, exc.status)
            else:
                await _refuse(send, exc.message, exc.code, exc.status)
            return False

    def _watch_stop(self, receive: Receive) -> Receive:
        """`receive` of the lifespan: tells the placement the moment the server starts to stop (before
        the stores close), so their last syncs share one bounded budget."""

        async def watched() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                self.setup.placement.begin_stop()
            return message

        return watched

    async def _serve(self, workspace: str, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve an HTTP request here: a creation is held until replicated (and may start a new life
        after a deletion marker); while a deletion runs, the placement keeps the lease (for the
        marker) and reopens nothing."""
        marks: set[str] | None = None
        if _is_create(scope):
            send = self._durable_create(workspace, send)
            marks = self.setup.placement.creating if self.setup is not None else None
        elif _is_delete(scope):
            marks = self.setup.placement.deleting if self.setup is not None else None
        if marks is None:
            app = scope.get("app")  # the WsfsApp (server/fastroutes.py): skip the layers below this one
            dispatch = getattr(app, "dispatch", None)
            if scope["type"] == "http" and dispatch is not None and await dispatch(scope, receive, send):
                return
            await self.app(scope, receive, send)
            return
        marks.add(workspace)
        try:
            await self.app(scope, receive, send)
        finally:
            marks.discard(workspace)

    async def _answered(self, workspace: str, owner: str, sending: Any) -> aiohttp.ClientResponse:
        """The owner's response headers (`sending`: the request, not yet awaited); if its lease moves
        meanwhile (it was paused or died after accepting the connection), give up: `OwnerMoved`."""
        task: asyncio.Future[aiohttp.ClientResponse] = asyncio.ensure_future(sending)
        try:
            while True:
                done, _ = await asyncio.wait([task], timeout=OWNER_CHECK)
                if done:
                    return task.result()
                try:
                    now = await self._owner(workspace)
                except (LeaseUnavailable, OwnerUnknown):
                    continue
                if now is None or now[0] != owner:
                    raise OwnerMoved(f"node {owner} stopped answering and lost {workspace!r}")
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" and self.setup is not None:
            await self.app(scope, self._watch_stop(receive), send)
            return
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        workspace = workspace_of(scope["path"])
        headers = dict(scope.get("headers") or [])
        if workspace is None:
            await self.app(scope, receive, send)
            return
        if PROXIED.encode() in headers:
            await self._serve(workspace, scope, receive, send)
            return
        if scope["type"] == "http":
            await self._http(workspace, scope, receive, send)
        else:
            await self._websocket(workspace, scope, receive, send)

    # -- HTTP ---------------------------------------------------------------

    async def _http(self, workspace: str, scope: Scope, receive: Receive, send: Send) -> None:
        deadline = time.monotonic() + FAILOVER_WAIT
        while True:
            try:
                found = await self._owner(workspace)
            except (LeaseUnavailable, OwnerUnknown) as exc:
                await _refuse(send, f"cannot route {workspace!r}: {exc}")
                return
            if found is None:
                if not await self._open_here(workspace, send, websocket=False):
                    return
                await self._serve(workspace, scope, receive, send)
                return
            owner, target = found
            try:
                await self._forward(workspace, owner, target, scope, receive, send)
                return
            except aiohttp.ClientConnectorError as exc:  # nothing sent yet: the owner is gone; route again
                if time.monotonic() > deadline:
                    await _refuse(send, f"the owner of {workspace!r} at {target} is unreachable: {exc}")
                    return
                await asyncio.sleep(0.2)
            except _Started:
                raise
            except (aiohttp.ClientError, asyncio.TimeoutError, OwnerMoved) as exc:  # sent, no answer: unknown, never an ack
                await _refuse(send, f"the owner of {workspace!r} at {target} went away mid-request "
                                    f"(the write may or may not have happened): {exc!r}")
                return

    async def _forward(self, workspace: str, owner: str, target: str, scope: Scope, receive: Receive,
                       send: Send) -> None:
        self.proxied += 1
        url = target + (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in _forward_headers(scope, self.node.node)]
        sending = self._upstream().request(scope["method"], URL(url, encoded=True), headers=headers,
                                           data=_body(receive) if _has_body(scope) else None,
                                           allow_redirects=False)
        response = await self._answered(workspace, owner, sending)
        try:
            out = [(k.lower(), v) for k, v in response.raw_headers if k.lower() not in _HOP]
            await send({"type": "http.response.start", "status": response.status, "headers": out})
            try:
                async for chunk in response.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:  # the owner died mid-body: cut it short
                raise _Started(str(exc)) from exc
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            response.release()

    # -- WebSocket ------------------------------------------------------------

    async def _websocket(self, workspace: str, scope: Scope, receive: Receive, send: Send) -> None:
        deadline = time.monotonic() + FAILOVER_WAIT
        connected = False
        while True:
            try:
                target = await self.route(workspace)
            except (LeaseUnavailable, OwnerUnknown) as exc:
                if connected or (await receive())["type"] == "websocket.connect":
                    await _deny(send, f"cannot route {workspace!r}: {exc}")
                return
            if target is None:
                if not connected and not await self._open_here(workspace, send, websocket=True, receive=receive):
                    return
                if connected:  # the client's connect was consumed here: hand it to the app again
                    scope, receive = scope, _replay({"type": "websocket.connect"}, receive)
                await self.app(scope, receive, send)
                return
            if not connected:
                if (await receive())["type"] != "websocket.connect":
                    return
                connected = True
            try:
                upstream = await self._open(target, scope)
            except InvalidStatus as exc:  # the owner refused the upgrade: relay its answer
                await _relay_denial(send, exc)
                return
            except (OSError, WebSocketException, TimeoutError) as exc:  # owner gone: route again
                if time.monotonic() > deadline:
                    await _deny(send, f"the owner of {workspace!r} at {target} is unreachable: {exc}")
                    return
                await asyncio.sleep(0.2)
                continue
            self.proxied += 1
            async with contextlib.aclosing(_Closer(upstream)):
                await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})
                await _bridge(upstream, receive, send)
            return

    async def _open(self, target: str, scope: Scope) -> ClientConnection:
        parts = urlsplit(target)
        scheme = "wss" if parts.scheme == "https" else "ws"
        url = f"{scheme}://{parts.netloc}{scope['path']}"
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in _forward_headers(scope, self.node.node)]
        return await connect(url, additional_headers=headers, subprotocols=scope.get("subprotocols") or None,
                             compression=None, max_size=None, ping_interval=2.0, ping_timeout=4.0,
                             open_timeout=5.0, user_agent_header=None)


def _replay(first: Message, receive: Receive) -> Receive:
    """`receive`, giving `first` once before the rest (a message this layer already consumed)."""
    pending = [first]

    async def replayed() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replayed


class _Closer:
    def __init__(self, conn: ClientConnection):
        self.conn = conn

    async def aclose(self) -> None:
        await self.conn.close()


async def _bridge(upstream: ClientConnection, receive: Receive, send: Send) -> None:
    """Frames both ways until either side closes; the other side gets the same close code."""

    async def down() -> None:  # owner -> client
        try:
            async for frame in upstream:
                if isinstance(frame, str):
                    await send({"type": "websocket.send", "text": frame})
                else:
                    await send({"type": "websocket.send", "bytes": frame})
        except ConnectionClosed:
            pass
        code, reason = _close_of(upstream)
        with contextlib.suppress(Exception):
            await send({"type": "websocket.close", "code": code, "reason": reason})

    async def up() -> None:  # client -> owner
        while True:
            message = await receive()
            if message["type"] == "websocket.receive":
                try:
                    if message.get("text") is not None:
                        await upstream.send(message["text"])
                    else:
                        await upstream.send(message.get("bytes") or b"")
                except ConnectionClosed:
                    return
            elif message["type"] == "websocket.disconnect":
                code = message.get("code", 1000)
                await upstream.close(code if code in range(1000, 5000) and code not in (1005, 1006) else 1000,
                                     message.get("reason") or "")
                return

    tasks = [asyncio.ensure_future(down()), asyncio.ensure_future(up())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _close_of(conn: ClientConnection) -> tuple[int, str]:
    """The owner's close code and reason; an abnormal end (owner died) becomes 1012: reconnect."""
    rcvd = conn.close_rcvd
    if rcvd is None or rcvd.code in (1005, 1006):
        return CLOSE_MOVED, "the workspace's node went away; reconnect"
    return rcvd.code, rcvd.reason


def _forward_headers(scope: Scope, node: str) -> list[tuple[bytes, bytes]]:
    headers = [(k, v) for k, v in scope.get("headers") or [] if k.lower() not in _HOP]
    client = scope.get("client")
    if client:
        headers.append((b"x-forwarded-for", str(client[0]).encode()))
    headers.append((PROXIED.encode(), node.encode()))
    return headers


def _has_body(scope: Scope) -> bool:
    """Does the client's request carry a body (a length or chunks)? A GET without one must not be
    forwarded with an empty chunked body."""
    for key, value in scope.get("headers") or []:
        if key == b"content-length" or (key == b"transfer-encoding" and b"chunked" in value.lower()):
            return True
    return False


async def _body(receive: Receive) -> Any:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return
        body = message.get("body", b"")
        if body:
            yield body
        if not message.get("more_body", False):
            return


def _error(message: str, code: str = EAGAIN) -> bytes:
    return orjson.dumps(error_body(code, message))


async def _refuse(send: Send, message: str, code: str = EAGAIN, status: int = 503) -> None:
    body = _error(message, code)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _deny(send: Send, message: str, code: str = EAGAIN, status: int = 503) -> None:
    """Refuse a WebSocket upgrade with a JSON error, 503 by default (the denial-response extension)."""
    body = _error(message, code)
    await send({"type": "websocket.http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "websocket.http.response.body", "body": body})


async def _relay_denial(send: Send, exc: InvalidStatus) -> None:
    response = exc.response
    body = response.body or b""
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.raw_items()
               if k.lower().encode("latin-1") not in _HOP and k.lower() != "content-length"]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "websocket.http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body})
