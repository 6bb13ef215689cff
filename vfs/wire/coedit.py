"""Co-editing on the workspace WebSocket: the messages and the Yjs payloads they carry.

A text file open for co-editing is a Yjs document whose one shared type is
the `Y.Text` named `COEDIT_TEXT` ("text"). What travels is exactly what
y-protocols puts on a y-websocket connection (sync step 1, sync step 2,
update, awareness), base64 in a JSON text frame that names the file, so
any Yjs editor binding can join with the encoders it already has, and the
frame fits this protocol's request ids, replies and error handling
(docs/protocol.md §5.11):

- `coedit_open`  client -> server: join the document of `path` (optionally
  with the client's sync step 1); reply `ok`, then the server's step 2 and 1.
- `coedit`       both ways: one y-protocols message for `path`. A client's
  message with an `id` is answered `ok` only once what it carried is stored.
- `coedit_close` client -> server: leave the document.
- `coedit_closed` server -> client: the document ended for this connection
  (the file was deleted, or became binary or too large), with why.

The lib0 varint codec below is the one y-protocols uses; pycrdt's
`create_sync_message` & co. produce byte-identical payloads (tested).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from vfs.paths import normalize
from vfs.wire.errors import EBADMSG, EPROTO, ProtocolError
from vfs.wire.fields import RequestId, _fail, _Fields, _request_id

COEDIT_TEXT = "text"  # the name of the document's Y.Text
COEDIT_MAX_BYTES = 4 * 1024 * 1024  # larger files keep the save-with-If-Match flow
MAX_Y_PAYLOAD = 5 * 1024 * 1024  # bytes of one decoded y-protocols message
MAX_OPEN_DOCS = 64  # documents one connection may have open at once

# y-protocols message kinds
Y_SYNC = 0
Y_AWARENESS = 1
SYNC_STEP1 = 0  # payload: a state vector ("what I have")
SYNC_STEP2 = 1  # payload: an update ("what you lack")
SYNC_UPDATE = 2  # payload: an update (a live edit)

EMPTY_UPDATE = b"\x00\x00"  # a Yjs update carrying nothing


# -- lib0 encoding -------------------------------------------------------------------


def write_varuint(out: bytearray, n: int) -> None:
    while n > 0x7F:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    out.append(n)


def read_varuint(data: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it); EBADMSG if the data ends inside it."""
    n = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ProtocolError(EBADMSG, "y message: truncated or oversized varint")
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return n, pos


def read_bytes(data: bytes, pos: int) -> tuple[bytes, int]:
    """A length-prefixed byte string (lib0 `varUint8Array`)."""
    size, pos = read_varuint(data, pos)
    if pos + size > len(data):
        raise ProtocolError(EBADMSG, "y message: byte string runs past the end")
    return bytes(data[pos : pos + size]), pos + size


def _with_bytes(prefix: tuple[int, ...], payload: bytes) -> bytes:
    out = bytearray()
    for n in prefix:
        write_varuint(out, n)
    write_varuint(out, len(payload))
    out += payload
    return bytes(out)


# -- y-protocols messages ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class YSync:
    """A sync message: `step` is SYNC_STEP1 (data = state vector), SYNC_STEP2 or SYNC_UPDATE (data = update)."""

    step: int
    data: bytes

    @property
    def carries_update(self) -> bool:
        return self.step in (SYNC_STEP2, SYNC_UPDATE) and self.data != EMPTY_UPDATE


@dataclass(frozen=True, slots=True)
class YAwareness:
    """An awareness message: `data` is an awareness update (see `decode_awareness`)."""

    data: bytes


def read_y_message(payload: bytes) -> YSync | YAwareness:
    """Parse one y-protocols message; EBADMSG naming what is wrong."""
    kind, pos = read_varuint(payload, 0)
    if kind == Y_SYNC:
        step, pos = read_varuint(payload, pos)
        if step not in (SYNC_STEP1, SYNC_STEP2, SYNC_UPDATE):
            raise ProtocolError(EBADMSG, f"y message: unknown sync step {step}")
        data, _ = read_bytes(payload, pos)
        return YSync(step, data)
    if kind == Y_AWARENESS:
        data, _ = read_bytes(payload, pos)
        return YAwareness(data)
    raise ProtocolError(EBADMSG, f"y message: unknown kind {kind} (0 sync, 1 awareness)")


def sync_step1(state_vector: bytes) -> bytes:
    return _with_bytes((Y_SYNC, SYNC_STEP1), state_vector)


def sync_step2(update: bytes) -> bytes:
    return _with_bytes((Y_SYNC, SYNC_STEP2), update)


def sync_update(update: bytes) -> bytes:
    return _with_bytes((Y_SYNC, SYNC_UPDATE), update)


def awareness_message(update: bytes) -> bytes:
    return _with_bytes((Y_AWARENESS,), update)


@dataclass(frozen=True, slots=True)
class AwarenessEntry:
    """One client's awareness state; `state` None means it left."""

    client: int
    clock: int
    state: dict[str, Any] | None


def decode_awareness(update: bytes) -> list[AwarenessEntry]:
    """The entries of an awareness update (y-protocols `encodeAwarenessUpdate`)."""
    count, pos = read_varuint(update, 0)
    entries = []
    for _ in range(min(count, 4096)):
        client, pos = read_varuint(update, pos)
        clock, pos = read_varuint(update, pos)
        raw, pos = read_bytes(update, pos)
        try:
            state = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ProtocolError(EBADMSG, "awareness: a state is not JSON") from None
        entries.append(AwarenessEntry(client, clock, state if isinstance(state, dict) else None))
    return entries


def encode_awareness(entries: list[AwarenessEntry]) -> bytes:
    out = bytearray()
    write_varuint(out, len(entries))
    for e in entries:
        write_varuint(out, e.client)
        write_varuint(out, e.clock)
        raw = json.dumps(e.state, separators=(",", ":")).encode("utf-8")
        write_varuint(out, len(raw))
        out += raw
    return bytes(out)


def peer_from_awareness(state: Mapping[str, Any]) -> dict[str, Any]:
    """The presence fields (name, color, cursor) an awareness state carries.

    Yjs editor bindings put `{"user": {"name", "color"}}` and a `cursor`
    (`{"anchor", "head"}`, Yjs relative positions or offsets) in it; what
    is missing or oversized is left out rather than refused.
    """
    user = state.get("user") if isinstance(state.get("user"), dict) else {}
    peer: dict[str, Any] = {}
    for key in ("name", "color"):
        value = user.get(key) if user else None
        if isinstance(value, str) and len(value.encode()) <= 256:
            peer[key] = value
    cursor = state.get("cursor")
    if isinstance(cursor, dict) and len(json.dumps(cursor)) <= 1024:
        peer["cursor"] = cursor
    return peer


# -- the WebSocket messages -----------------------------------------------------------


def _y_field(d: Mapping[str, Any], rid: RequestId | None, *, required: bool = True) -> bytes | None:
    raw = _Fields(d, rid).str("y", required=required, max_len=MAX_Y_PAYLOAD * 4 // 3 + 4)
    if raw is None:
        return None
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise _fail("y", "expected base64 (RFC 4648, with padding)", rid) from None


def _path(d: Mapping[str, Any], rid: RequestId | None) -> str:
    """The document's path, normalised as the store does (the key both sides use)."""
    raw = _Fields(d, rid).path("path")
    try:
        return normalize(raw)
    except OSError as e:
        raise _fail("path", e.strerror or "invalid path", rid) from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True, slots=True)
class CoeditOpen:
    """client -> server: join `path`'s document; `y` optionally a sync step 1."""

    TYPE: ClassVar[str] = "coedit_open"
    id: RequestId
    path: str
    y: bytes | None = None

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> CoeditOpen:
        rid = _request_id(d)
        return cls(id=rid, path=_path(d, rid), y=_y_field(d, rid, required=False))

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.TYPE, "id": self.id, "path": self.path}
        if self.y is not None:
            d["y"] = _b64(self.y)
        return d


@dataclass(frozen=True, slots=True)
class CoeditClose:
    """client -> server: leave `path`'s document."""

    TYPE: ClassVar[str] = "coedit_close"
    id: RequestId
    path: str

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> CoeditClose:
        rid = _request_id(d)
        return cls(id=rid, path=_path(d, rid))

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE, "id": self.id, "path": self.path}


@dataclass(frozen=True, slots=True)
class Coedit:
    """Both ways: one y-protocols message for the document of `path`.

    From a client, an `id` asks for an `ok` once the message's update is stored.
    """

    TYPE: ClassVar[str] = "coedit"
    path: str
    y: bytes
    id: RequestId | None = None

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> Coedit:
        rid = _request_id(d, required=False)
        y = _y_field(d, rid)
        assert y is not None
        if len(y) > MAX_Y_PAYLOAD:
            raise _fail("y", f"decoded larger than {MAX_Y_PAYLOAD} bytes", rid)
        return cls(path=_path(d, rid), y=y, id=rid)

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.TYPE, "path": self.path, "y": _b64(self.y)}
        if self.id is not None:
            d["id"] = self.id
        return d

    def message(self) -> YSync | YAwareness:
        return read_y_message(self.y)


@dataclass(frozen=True, slots=True)
class CoeditClosed:
    """server -> client: the document of `path` ended for this connection, and why."""

    TYPE: ClassVar[str] = "coedit_closed"
    path: str
    code: str
    message: str = ""

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> CoeditClosed:
        f = _Fields(d)
        return cls(path=f.path("path"), code=f.str("code"), message=f.str("message", required=False, default=""))

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE, "path": self.path, "code": self.code, "message": self.message}


COEDIT_CLIENT_MESSAGES = (CoeditOpen, Coedit, CoeditClose)
COEDIT_SERVER_MESSAGES = (Coedit, CoeditClosed)


class OpenDocuments:
    """The documents one connection has joined (sans-I/O bookkeeping for `ServerSession`).

    Messages for a document the connection has not joined are EPROTO; joining one twice
    is EPROTO; more than MAX_OPEN_DOCS at once is EPROTO.
    """

    def __init__(self) -> None:
        self.paths: set[str] = set()

    def open(self, path: str, id: RequestId) -> None:
        if path in self.paths:
            raise ProtocolError(EPROTO, f"{path} is already open for co-editing on this connection",
                                field="path", id=id)
        if len(self.paths) >= MAX_OPEN_DOCS:
            raise ProtocolError(EPROTO, f"at most {MAX_OPEN_DOCS} documents open per connection", id=id)
        self.paths.add(path)

    def require(self, path: str, id: RequestId | None) -> None:
        if path not in self.paths:
            raise ProtocolError(EPROTO, f"{path} is not open for co-editing on this connection (send coedit_open)",
                                field="path", id=id)

    def close(self, path: str) -> bool:
        """Forget `path`; False if it was not open."""
        if path in self.paths:
            self.paths.remove(path)
            return True
        return False
