"""Writing pre-built WebSocket frames straight to uvicorn's transport.

A change page or a co-editing update goes to many sockets at once. Server
frames are unmasked and (with no extension) uncompressed, so the same bytes
serve every connection: `text_frame` builds them once, and `RawSocket` writes
them after the checks uvicorn's own `send` makes, without the per-socket
encoding, framing and await: straight to the descriptor while the transport
holds nothing (what the transport's own write does first, minus its buffer
bookkeeping: ~1 µs of a fan-out's ~10 per socket), through the transport
otherwise, so the stream keeps its order. The fan-out
(`server/fanout.py`) and the co-editing relay (`server/coedit_editor.py`)
both go through here.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from websockets.protocol import State


def text_frame(payload: bytes) -> bytes:
    """An unfragmented, unmasked, uncompressed WebSocket text frame holding `payload` (RFC 6455 5.2)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x81, n))
    elif n < 1 << 16:
        head = bytes((0x81, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x81, 127)) + n.to_bytes(8, "big")
    return head + payload


class RawSocket:
    """The uvicorn WebSocket protocol behind a session's ASGI `send`, for writing built frames.

    Only uvicorn's websockets-sansio protocol is recognised (the server runs it,
    `server/runner.py`), and only without extensions; anything else gives None
    and its frames go through `send`. `ready` says what uvicorn's own `send`
    would check before writing a data frame: open, not closing, not paused.
    """

    __slots__ = ("protocol", "conn", "transport", "writable", "fd")

    def __init__(self, protocol: Any):
        self.protocol = protocol
        self.conn = protocol.conn
        self.transport = protocol.transport
        self.writable: asyncio.Event = protocol.writable
        self.fd = _plain_fd(self.transport)

    @staticmethod
    def of(send: Any) -> RawSocket | None:
        protocol = getattr(send, "__self__", None)
        conn = getattr(protocol, "conn", None)
        if (conn is None or getattr(conn, "extensions", None) != [] or not hasattr(protocol, "transport")
                or not isinstance(getattr(protocol, "writable", None), asyncio.Event)
                or not all(hasattr(protocol, a) for a in ("disconnected", "close_sent", "handshake_complete"))):
            return None
        return RawSocket(protocol)

    @property
    def ready(self) -> bool:
        p = self.protocol
        return (self.writable.is_set() and not p.disconnected and not p.close_sent and p.handshake_complete
                and self.conn.state is State.OPEN)

    def write(self, frame: bytes) -> bool:
        """Write a whole pre-built frame now if `ready` (its checks inline: this runs once per socket
        of a fan-out); False if the socket cannot take it without waiting, or is closing."""
        p = self.protocol
        if (not self.writable.is_set() or p.disconnected or p.close_sent or not p.handshake_complete
                or self.conn.state is not State.OPEN):
            return False
        t = self.transport
        if self.fd < 0 or t.get_write_buffer_size() or t.is_closing():
            t.write(frame)
            return True
        # nothing queued in the transport: the bytes it would send at once go straight to the socket
        # (what its own write does first), without its buffer bookkeeping; what the socket does not
        # take goes through the transport after them, so the stream keeps its order
        try:
            sent = os.write(self.fd, frame)
        except BlockingIOError:
            sent = 0
        except OSError:
            t.write(frame)  # the transport meets the same error and closes as it always does
            return True
        if sent < len(frame):
            t.write(frame[sent:])
        return True


def _plain_fd(transport: Any) -> int:
    """The descriptor under a plain (not TLS) socket transport, or -1: then every write goes
    through the transport. A descriptor is only written while its transport is not closing
    (`RawSocket.write` checks), so it is never one closed and reused by another connection."""
    if transport.get_extra_info("sslcontext") is not None or transport.get_extra_info("ssl_object") is not None:
        return -1
    sock = transport.get_extra_info("socket")
    try:
        return -1 if sock is None else int(sock.fileno())
    except (OSError, ValueError):
        return -1
