"""Writing pre-built WebSocket frames straight to uvicorn's transport.

A change page or a co-editing update goes to many sockets at once. Server
frames are unmasked and (with no extension) uncompressed, so the same bytes
serve every connection: `text_frame` builds them once, and `RawSocket` writes
them to a socket's transport after the checks uvicorn's own `send` makes,
without the per-socket encoding, framing and await. The fan-out
(`server/fanout.py`) and the co-editing relay (`server/coedit_editor.py`)
both go through here.
"""

from __future__ import annotations

import asyncio
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

    __slots__ = ("protocol", "conn", "transport", "writable")

    def __init__(self, protocol: Any):
        self.protocol = protocol
        self.conn = protocol.conn
        self.transport = protocol.transport
        self.writable: asyncio.Event = protocol.writable

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
        self.transport.write(frame)
        return True
