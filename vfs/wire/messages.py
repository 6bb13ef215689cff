"""The WebSocket text messages, one frozen dataclass each, both directions.

Each class has `from_wire` (validate a decoded JSON object, raising EPROTO
naming the field) and `to_wire` (the JSON-ready dict). Turning frames into
messages and back is `vfs.wire.codec`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

import orjson

from vfs.types import Change, Cursor
from vfs.wire.coedit import (
    COEDIT_CLIENT_MESSAGES,
    COEDIT_SERVER_MESSAGES,
    Coedit,
    CoeditClose,
    CoeditClosed,
    CoeditOpen,
)
from vfs.wire.errors import error_to_exception
from vfs.wire.fields import RequestId, _fail, _Fields, _request_id
from vfs.wire.limits import (
    DEFAULT_BATCH,
    MAX_BATCH,
    MAX_GLOBS,
    MAX_IGNORE_PATTERN,
    MAX_INLINE,
    MAX_PRESENCE_FIELD,
    MAX_PUSH_ENTRIES,
)
from vfs.wire.values import base_to_wire, change_from_wire, change_to_wire, parse_base

@dataclass(frozen=True, slots=True)
class Hello:
    """client -> server, first frame. `presence` optionally joins at once."""

    TYPE: ClassVar[str] = "hello"
    protocol: int
    client: str | None = None
    presence: Presence | None = None

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> Hello:
        f = _Fields(d)
        protocol = f.int("protocol", hi=2**31)
        pres = f.obj("presence", required=False)
        return cls(
            protocol=protocol,
            client=f.str("client", required=False, max_len=MAX_PRESENCE_FIELD),
            presence=Presence.from_wire({"type": "presence", "op": "join", **pres}) if pres is not None else None,
        )

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.TYPE, "protocol": self.protocol}
        if self.client is not None:
            d["client"] = self.client
        if self.presence is not None:
            p = self.presence.to_wire()
            del p["type"], p["op"]
            d["presence"] = p
        return d


def _features(value: Any) -> tuple[str, ...]:
    """A hello's `features`, read leniently: a client uses those it knows and ignores the rest
    (anything but a list of strings is no feature at all)."""
    if not isinstance(value, list):
        return ()
    return tuple(item for item in value[:256] if isinstance(item, str))


@dataclass(frozen=True, slots=True)
class ServerHello:
    """server -> client, first frame: the version it will speak and the session facts."""

    TYPE: ClassVar[str] = "hello"
    protocol: int
    server: str
    workspace: str
    session: str
    scope: str  # "read" | "write" | "admin"
    rev: int
    cursor: str
    limits: dict[str, int] = field(default_factory=dict)
    # what the server speaks beyond the version's first form (`vfs.wire.limits.FEATURES`); a
    # server older than the field sends none: the client then uses none of them
    features: tuple[str, ...] = ()

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> ServerHello:
        f = _Fields(d)
        return cls(
            protocol=f.int("protocol"),
            server=f.str("server"),
            workspace=f.str("workspace"),
            session=f.str("session"),
            scope=f.str("scope"),
            rev=f.int("rev"),
            cursor=f.str("cursor"),
            limits=dict(f.obj("limits", required=False) or {}),
            features=_features(d.get("features")),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "protocol": self.protocol,
            "server": self.server,
            "workspace": self.workspace,
            "session": self.session,
            "scope": self.scope,
            "rev": self.rev,
            "cursor": self.cursor,
            "limits": self.limits,
            "features": list(self.features),
        }


@dataclass(frozen=True, slots=True)
class Subscribe:
    TYPE: ClassVar[str] = "subscribe"
    id: RequestId
    prefix: str = "/"
    globs: tuple[str, ...] | None = None
    ignore: tuple[str, ...] = ()
    after: Cursor | str | None = None  # Cursor, "now", or None = from the beginning
    inline_max: int = 0
    batch_max: int = DEFAULT_BATCH

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> Subscribe:
        rid = _request_id(d)
        f = _Fields(d, rid)
        globs = f.patterns("globs", max_items=MAX_GLOBS, max_len=1024, kind="glob")
        ignore = f.patterns("ignore", max_items=MAX_GLOBS, max_len=MAX_IGNORE_PATTERN, kind="ignore")
        return cls(
            id=rid,
            prefix=f.path("prefix", required=False, default="/"),
            globs=tuple(globs) if globs is not None else None,
            ignore=tuple(ignore or ()),
            after=f.cursor("after", allow_now=True),
            inline_max=f.int("inline_max", required=False, default=0, hi=MAX_INLINE),
            batch_max=f.int("batch_max", required=False, default=DEFAULT_BATCH, lo=1, hi=MAX_BATCH),
        )

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "type": self.TYPE,
            "id": self.id,
            "prefix": self.prefix,
            "after": None if self.after is None else str(self.after),
            "inline_max": self.inline_max,
            "batch_max": self.batch_max,
        }
        if self.globs is not None:
            d["globs"] = list(self.globs)
        if self.ignore:
            d["ignore"] = list(self.ignore)
        return d


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    TYPE: ClassVar[str] = "unsubscribe"
    id: RequestId  # the request id of this message
    sub: RequestId  # the id the subscription was created with

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> Unsubscribe:
        rid = _request_id(d)
        sub = d.get("sub")
        if sub is None or isinstance(sub, bool) or not isinstance(sub, (str, int)):
            raise _fail("sub", "required: the id of the subscription", rid)
        return cls(id=rid, sub=sub)

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE, "id": self.id, "sub": self.sub}


@dataclass(frozen=True, slots=True)
class Has:
    """Which of these hashes does the server lack? Reply: `ok` with `missing`."""

    TYPE: ClassVar[str] = "has"
    id: RequestId
    hashes: tuple[str, ...]

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> Has:
        rid = _request_id(d)
        return cls(id=rid, hashes=tuple(_Fields(d, rid).hashes("hashes")))

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE, "id": self.id, "hashes": list(self.hashes)}


@dataclass(frozen=True, slots=True)
class Get:
    """Send me these chunks: binary CHUNK frames, then `ok` with `missing`."""

    TYPE: ClassVar[str] = "get"
    id: RequestId
    hashes: tuple[str, ...]

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> Get:
        rid = _request_id(d)
        return cls(id=rid, hashes=tuple(_Fields(d, rid).hashes("hashes")))

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE, "id": self.id, "hashes": list(self.hashes)}


@dataclass(frozen=True, slots=True)
class Push:
    """A batch of changes with the base the writer saw; applied atomically."""

    TYPE: ClassVar[str] = "push"
    id: RequestId
    changes: tuple[Change, ...]
    base: Cursor | dict[str, int] | None = None

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> Push:
        rid = _request_id(d)
        raw = d.get("changes")
        if not isinstance(raw, list):
            raise _fail("changes", "required: a list of change entries", rid)
        if len(raw) > MAX_PUSH_ENTRIES:
            raise _fail("changes", f"more than {MAX_PUSH_ENTRIES} entries", rid)
        return cls(
            id=rid,
            changes=tuple(change_from_wire(c, id=rid) for c in raw),
            base=parse_base(d.get("base"), id=rid),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "id": self.id,
            "changes": [change_to_wire(c) for c in self.changes],
            "base": base_to_wire(self.base),
        }


_PRESENCE_OPS = ("join", "update", "leave")


@dataclass(frozen=True, slots=True)
class Presence:
    """client -> server: announce or update what this connection looks at."""

    TYPE: ClassVar[str] = "presence"
    op: str  # "join" | "update" | "leave"
    name: str | None = None
    color: str | None = None
    file: str | None = None
    cursor: dict[str, Any] | None = None
    id: RequestId | None = None

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> Presence:
        rid = _request_id(d, required=False)
        f = _Fields(d, rid)
        op = f.str("op", required=False, default="update")
        if op not in _PRESENCE_OPS:
            raise _fail("op", "must be join, update or leave", rid)
        cursor = f.obj("cursor", required=False)
        if cursor is not None and len(orjson.dumps(cursor)) > 1024:
            raise _fail("cursor", "encoded larger than 1 KiB", rid)
        return cls(
            op=op,
            name=f.str("name", required=False, max_len=MAX_PRESENCE_FIELD),
            color=f.str("color", required=False, max_len=MAX_PRESENCE_FIELD),
            file=f.path("file", required=False),
            cursor=cursor,
            id=rid,
        )

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.TYPE, "op": self.op}
        for k in ("name", "color", "file", "cursor", "id"):
            v = getattr(self, k)
            if v is not None:
                d[k] = v
        return d


@dataclass(frozen=True, slots=True)
class Ping:
    """A no-op round trip; also a barrier (replies after every earlier frame)."""

    TYPE: ClassVar[str] = "ping"
    id: RequestId

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> Ping:
        return cls(id=_request_id(d))

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE, "id": self.id}


@dataclass(frozen=True, slots=True)
class Ok:
    """server -> client: the successful reply to the request `id`."""

    TYPE: ClassVar[str] = "ok"
    id: RequestId
    result: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> Ok:
        rid = _request_id(d)
        return cls(id=rid, result={k: v for k, v in d.items() if k not in ("type", "id")})

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE, "id": self.id, **self.result}


@dataclass(frozen=True, slots=True)
class Error:
    """server -> client: a request (when `id` is set) or a frame could not be served."""

    TYPE: ClassVar[str] = "error"
    code: str
    message: str
    id: RequestId | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> Error:
        f = _Fields(d)
        return cls(
            code=f.str("code"),
            message=f.str("message", required=False, default="", max_len=1 << 20),
            id=d.get("id"),
            extra={k: v for k, v in d.items() if k not in ("type", "code", "message", "id")},
        )

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.TYPE, "code": self.code, "message": self.message}
        if self.id is not None:
            d["id"] = self.id
        d.update(self.extra)
        return d

    def to_exception(self) -> Exception:
        return error_to_exception(self.code, self.message, self.extra)


@dataclass(frozen=True, slots=True)
class Changes:
    """server -> client: a batch of change entries for subscription `sub`.

    `entries` are wire dicts (see `change_to_wire`; a client turns them into
    `Change` with `change_from_wire` and reads inlined bytes with `entry_data`).
    `cursor` is where to resume after this batch. `coalesced` says the batch was
    read across more than one revision, so intermediate states of a path may
    have been skipped (each entry is still the path's latest state).
    """

    TYPE: ClassVar[str] = "changes"
    sub: RequestId
    entries: list[dict[str, Any]]
    cursor: str
    coalesced: bool = False

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> Changes:
        f = _Fields(d)
        entries = d.get("entries")
        if not isinstance(entries, list):
            raise _fail("entries", "expected a list")
        return cls(sub=d["sub"], entries=entries, cursor=f.str("cursor"), coalesced=f.bool("coalesced"))

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "sub": self.sub,
            "cursor": self.cursor,
            "coalesced": self.coalesced,
            "entries": self.entries,
        }


@dataclass(frozen=True, slots=True)
class CaughtUp:
    """server -> client: catch-up of subscription `sub` is complete; live changes follow."""

    TYPE: ClassVar[str] = "caught_up"
    sub: RequestId
    cursor: str

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> CaughtUp:
        return cls(sub=d["sub"], cursor=_Fields(d).str("cursor"))

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE, "sub": self.sub, "cursor": self.cursor}


@dataclass(frozen=True, slots=True)
class PresenceEvent:
    """server -> client: `sync` (full list, sent after hello), `join`, `update`, `leave`.

    A peer is `{"session", "name", "color", "file", "cursor"}`.
    """

    TYPE: ClassVar[str] = "presence"
    op: str
    peer: dict[str, Any] | None = None
    peers: list[dict[str, Any]] | None = None

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> PresenceEvent:
        f = _Fields(d)
        op = f.str("op")
        if op == "sync":
            peers = d.get("peers")
            if not isinstance(peers, list):
                raise _fail("peers", "expected a list")
            return cls(op=op, peers=peers)
        return cls(op=op, peer=f.obj("peer"))

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.TYPE, "op": self.op}
        if self.op == "sync":
            d["peers"] = self.peers or []
        else:
            d["peer"] = self.peer
        return d


ClientMessage = Hello | Subscribe | Unsubscribe | Has | Get | Push | Presence | Ping | CoeditOpen | Coedit | CoeditClose
ServerMessage = ServerHello | Ok | Error | Changes | CaughtUp | PresenceEvent | Coedit | CoeditClosed

_CLIENT_TYPES: dict[str, Any] = {
    m.TYPE: m for m in (Hello, Subscribe, Unsubscribe, Has, Get, Push, Presence, Ping, *COEDIT_CLIENT_MESSAGES)
}
_SERVER_TYPES: dict[str, Any] = {
    m.TYPE: m for m in (ServerHello, Ok, Error, Changes, CaughtUp, PresenceEvent, *COEDIT_SERVER_MESSAGES)
}
