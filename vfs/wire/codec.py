"""WebSocket text frames to messages and back, and the hello's version negotiation.

A malformed frame raises `ProtocolError` carrying the request id when it could
be read, so the error reply can name the request it answers.
"""

from __future__ import annotations

from typing import Any, Mapping

import orjson

from vfs.wire.errors import EBADMSG, EMSGSIZE, EPROTO, EPROTONOSUPPORT, ProtocolError
from vfs.wire.fields import RequestId
from vfs.wire.limits import MAX_ID_LEN, MAX_TEXT_FRAME, SUPPORTED_VERSIONS
from vfs.wire.messages import (
    _CLIENT_TYPES,
    _SERVER_TYPES,
    ClientMessage,
    Hello,
    ServerMessage,
)



def _load_object(frame: str | bytes) -> dict[str, Any]:
    if len(frame) > MAX_TEXT_FRAME:
        raise ProtocolError(EMSGSIZE, f"text frame larger than {MAX_TEXT_FRAME} bytes")
    try:
        d = orjson.loads(frame)
    except orjson.JSONDecodeError as e:
        raise ProtocolError(EBADMSG, f"frame is not valid JSON: {e}") from None
    if not isinstance(d, dict):
        raise ProtocolError(EBADMSG, "frame must be a JSON object")
    return d


def _decode(frame: str | bytes, table: Mapping[str, Any]) -> Any:
    d = _load_object(frame)
    t = d.get("type")
    if not isinstance(t, str):
        raise ProtocolError(EPROTO, "field 'type': required string", field="type", id=_safe_id(d))
    cls = table.get(t)
    if cls is None:
        known = ", ".join(sorted(table))
        raise ProtocolError(EPROTO, f"field 'type': unknown message type {t!r} (expected one of {known})",
                            field="type", id=_safe_id(d))
    try:
        return cls.from_wire(d)
    except ProtocolError as e:
        if e.id is None:
            e.id = _safe_id(d)
        raise


def _safe_id(d: Mapping[str, Any]) -> RequestId | None:
    v = d.get("id")
    if isinstance(v, bool) or not isinstance(v, (str, int)) or (isinstance(v, str) and len(v) > MAX_ID_LEN):
        return None
    return v


def decode_client(frame: str | bytes) -> ClientMessage:
    """Parse one client text frame; raises `ProtocolError` (with the request id when known)."""
    return _decode(frame, _CLIENT_TYPES)


def decode_server(frame: str | bytes) -> ServerMessage:
    """Parse one server text frame (client side)."""
    return _decode(frame, _SERVER_TYPES)


def encode(msg: ClientMessage | ServerMessage) -> bytes:
    """UTF-8 JSON bytes of a message; send them as a *text* frame."""
    return orjson.dumps(msg.to_wire())


def negotiate(hello: Hello) -> int:
    """The version the server speaks to this client, or EPROTONOSUPPORT naming the supported ones."""
    if hello.protocol in SUPPORTED_VERSIONS:
        return hello.protocol
    supported = ", ".join(map(str, SUPPORTED_VERSIONS))
    raise ProtocolError(
        EPROTONOSUPPORT,
        f"protocol version {hello.protocol} is not supported; this server speaks {supported}",
        supported=list(SUPPORTED_VERSIONS),
    )
