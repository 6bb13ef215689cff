"""uvicorn's HTTP parser and event loop for wsfs: `server_stack`, `BoundedHttpTools`.

`wsfs serve` runs on httptools and uvloop when they are installed (they are
dependencies): a small write costs the server 14-28 % less CPU than on h11
and asyncio, lower in 24 of 24 interleaved pairs (docs/server.md, "Fourth
pass"). `--http h11|httptools`, `--loop asyncio|uvloop`, or `$WSFS_HTTP` /
`$WSFS_LOOP` choose otherwise. The choice is always explicit, never
uvicorn's "auto", so a package appearing in the environment never changes
a server that did not ask for it.

httptools (llhttp) sets no limit on a request's head: a client can send
megabytes of header lines and the server keeps them all, where uvicorn's
h11 protocol answers 400 past `h11_max_incomplete_event_size` (16 KiB).
`BoundedHttpTools` keeps that bound under httptools too.

Both of uvicorn's HTTP protocols hand a WebSocket upgrade to the WebSocket
protocol as the request head rebuilt from the parsed scope, and drop any
bytes that came after the head in the same read: a client that sends its
`hello` frame at once, without waiting for the 101 (legal: RFC 6455 lets a
client send frames once it sent the handshake; loopback and a fast client
put both in one segment), lost it and was closed with 4000 "no hello" ten
seconds later. `forward_upgrade_rest` gives those bytes to the WebSocket
protocol after the head (`BoundedHttpTools`, `UpgradeH11`).

Both also skip the access log's arguments when nothing would be logged
(`quiet_access_log`): uvicorn logs a request when its access logger has a
handler, which it always has, and so formats the client's address and the
path of every request for an `info` call that `wsfs serve`'s `warning`
level then drops.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from typing import Any

HTTP_PARSERS = {"h11": "h11", "httptools": "httptools"}  # uvicorn's name -> the module it needs
EVENT_LOOPS = {"asyncio": "asyncio", "uvloop": "uvloop"}
DEFAULT_STACK = {"http": "httptools", "loop": "uvloop"}  # the faster pair, when installed
FALLBACK_STACK = {"http": "h11", "loop": "asyncio"}  # uvicorn's own, always there
HEAD_LIMIT = 16 * 1024  # bytes of a request's head (request line and headers), as uvicorn's h11 default


def server_stack(http: str | None = None, loop: str | None = None) -> dict[str, str]:
    """uvicorn's `http` and `loop` names: those asked for, else $WSFS_HTTP / $WSFS_LOOP, else
    `DEFAULT_STACK` where its package is installed, else h11 / asyncio. A cluster node too: its
    cluster tests pass on httptools + uvloop, and its end-to-end acknowledgement was 0-10 % quicker
    there in 10 of 10 interleaved comparisons (docs/cluster.md, "Third pass")."""
    chosen: dict[str, str] = {}
    for key, asked, names in (("http", http, HTTP_PARSERS), ("loop", loop, EVENT_LOOPS)):
        value = asked or os.environ.get(f"WSFS_{key.upper()}") or ""
        if value and value not in names:
            raise ValueError(f"unknown {key} {value!r} (one of {', '.join(names)})")
        if not value:
            value = DEFAULT_STACK[key]
            if importlib.util.find_spec(names[value]) is None:
                value = FALLBACK_STACK[key]
        chosen[key] = value
    return chosen


def http_protocol(name: str) -> Any:
    """What to give uvicorn's `http`: `BoundedHttpTools` or `UpgradeH11` (uvicorn's own, plus the
    bytes after an upgrade's head); another name as it is."""
    if name == "httptools":
        return bounded_httptools()
    return upgrade_h11() if name == "h11" else name


def forward_upgrade_rest(http: Any, rest: bytes) -> None:
    """Give `rest` (what followed an upgrade request's head in the same read) to the WebSocket
    protocol uvicorn has just put on the transport, as if it had been read after the switch."""
    transport = http.transport
    ws = transport.get_protocol() if transport is not None else None
    if rest and ws is not None and ws is not http and not transport.is_closing():
        ws.data_received(rest)


def quiet_access_log(http: Any) -> None:
    """Turn the access log off for this connection when its logger would drop the lines anyway."""
    if http.access_log and not http.access_logger.isEnabledFor(logging.INFO):
        http.access_log = False


_BOUNDED: Any = None
_H11: Any = None


def upgrade_h11() -> Any:
    """`UpgradeH11`: uvicorn's h11 protocol that forwards the bytes after an upgrade's head (h11
    keeps them as the connection's `trailing_data`)."""
    global _H11
    if _H11 is None:
        from uvicorn.protocols.http.h11_impl import H11Protocol

        class UpgradeH11(H11Protocol):
            def __init__(self, *args: Any, **kwargs: Any):
                super().__init__(*args, **kwargs)
                quiet_access_log(self)

            def handle_websocket_upgrade(self, event: Any) -> None:
                super().handle_websocket_upgrade(event)
                forward_upgrade_rest(self, bytes(self.conn.trailing_data[0]))

        _H11 = UpgradeH11
    return _H11


def bounded_httptools() -> Any:
    """`BoundedHttpTools`, built on first use (importing httptools only when it is chosen)."""
    global _BOUNDED
    if _BOUNDED is None:
        import httptools
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        class BoundedHttpTools(HttpToolsProtocol):
            """uvicorn's httptools protocol with a bound on a request's head: past `HEAD_LIMIT` bytes
            read inside one head, 400 and the connection closed (as h11 does). Only reads that begin
            and end inside the same head count (never a body, never a pipelined neighbour's bytes),
            so a head may overrun the bound by up to two reads before it is refused."""

            head_bytes = -1  # bytes of the current head read so far; -1 outside a head
            heads = 0  # heads begun on this connection
            read = b""  # the read being parsed (what follows an upgrade's head is in it)

            def __init__(self, *args: Any, **kwargs: Any):
                super().__init__(*args, **kwargs)
                quiet_access_log(self)

            def data_received(self, data: bytes) -> None:
                before, heads = self.head_bytes, self.heads
                self.read = data
                super().data_received(data)
                self.read = b""
                if before >= 0 and self.head_bytes >= 0 and self.heads == heads:
                    self.head_bytes += len(data)
                    if self.head_bytes > HEAD_LIMIT and not self.transport.is_closing():
                        self.head_bytes = -1
                        self.send_400_response("Request head too large.")

            def on_message_begin(self) -> None:
                super().on_message_begin()
                self.head_bytes = 0
                self.heads += 1

            def on_headers_complete(self) -> None:
                self.head_bytes = -1
                super().on_headers_complete()

            def handle_websocket_upgrade(self) -> None:
                # called inside uvicorn's `except httptools.HttpParserUpgrade`, whose argument is the
                # offset in this read where the head ended
                exc = sys.exc_info()[1]
                super().handle_websocket_upgrade()
                offset = exc.args[0] if isinstance(exc, httptools.HttpParserUpgrade) and exc.args else None
                if isinstance(offset, int):
                    forward_upgrade_rest(self, self.read[offset:])

        _BOUNDED = BoundedHttpTools
    return _BOUNDED
