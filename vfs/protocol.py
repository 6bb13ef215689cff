"""The wsfs wire protocol, sans-I/O: every message defined once.

Both the server and `client_py` import this module, so the two sides cannot
drift apart. It does no I/O: it turns bytes/str into validated message
objects (`decode_client`, `decode_server`, `decode_chunk_frame`) and message
objects into bytes (`encode`, `encode_chunk_frame`), and maps errors to wire
codes and HTTP statuses both ways. `docs/protocol.md` is the prose version of
this file; when they disagree, this file is the bug to fix *and* the doc is.

Validation raises `ProtocolError`, whose `code`/`message` go straight into an
error frame, so a malformed frame always gets an answer naming the problem.
"""

from __future__ import annotations

import base64
import errno as _errno
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable, Mapping

import orjson

from vfs.errors import (
    BadObject,
    CursorTooOld,
    MissingObjects,
    PreconditionFailed,
    StoreBusy,
    errno_from_name,
    errno_name,
)
from vfs.types import (
    ApplyResult,
    Change,
    Conflict,
    Cursor,
    DirEntry,
    GcStats,
    GrepMatch,
    Stat,
    Version,
)

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS: tuple[int, ...] = (1,)

# ---------------------------------------------------------------- limits

MAX_TEXT_FRAME = 8 * 1024 * 1024  # bytes of one JSON text frame
MAX_CHUNK_PAYLOAD = 4 * 1024 * 1024  # bytes of chunk data in one binary frame
MAX_HASHES = 4096  # hashes in one `has` / `get`
MAX_PUSH_ENTRIES = 4096  # entries in one `push`
MAX_INLINE = 1024 * 1024  # largest `inline_max` a subscriber may ask for
DEFAULT_BATCH = 256  # change entries per `changes` message
MAX_BATCH = 1024
MAX_GLOBS = 64
MAX_PRESENCE_FIELD = 256  # bytes of name / color; `cursor` encoded at most 1 KiB
MAX_ID_LEN = 64
TRANSPORT_MAX_FRAME = 16 * 1024 * 1024  # above this the transport closes with 1009

LIMITS: dict[str, int] = {
    # what the server announces in its hello
    "max_text_frame": MAX_TEXT_FRAME,
    "max_chunk": MAX_CHUNK_PAYLOAD,
    "max_hashes": MAX_HASHES,
    "max_push_entries": MAX_PUSH_ENTRIES,
    "max_inline": MAX_INLINE,
    "max_batch": MAX_BATCH,
}

# ---------------------------------------------------------------- binary frames

FRAME_PUT = 0x01  # client -> server: store this chunk
FRAME_CHUNK = 0x02  # server -> client: a chunk you asked for with `get`
HASH_BYTES = 32
FRAME_HEADER = 1 + HASH_BYTES

# ---------------------------------------------------------------- close codes

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001  # server shutting down
CLOSE_POLICY = 1008  # flood, too many errors, token revoked
CLOSE_TOO_BIG = 1009  # frame above the transport limit
CLOSE_INTERNAL = 1011
CLOSE_BAD_HELLO = 4000  # missing/invalid hello or unsupported protocol version
CLOSE_WORKSPACE_GONE = 4404  # the workspace was deleted while connected

# ---------------------------------------------------------------- error codes

# Codes that are not errno names. Everything else on the wire is an errno name
# ("ENOENT", ...) produced by `vfs.errors.errno_name`.
EAUTH = "EAUTH"  # 401: missing, wrong or revoked token
EACCES = "EACCES"  # 403: valid token, wrong workspace or scope
EPRECONDITION = "EPRECONDITION"  # 412: If-Match / If-None-Match / if_match failed
ECURSORTOOOLD = "ECURSORTOOOLD"  # 410: cursor older than the tombstone horizon
EMISSINGOBJECTS = "EMISSINGOBJECTS"  # 422: push references chunks the server lacks
EBADOBJECT = "EBADOBJECT"  # 422: chunk bytes do not hash to the claimed id
EPROTO = "EPROTO"  # 422 / WS: well-formed JSON, wrong message (type, field, value)
EBADMSG = "EBADMSG"  # 400 / WS: not JSON, not an object, binary frame out of place
EMSGSIZE = "EMSGSIZE"  # 413 / WS: frame or body too large
EPROTONOSUPPORT = "EPROTONOSUPPORT"  # WS hello: unsupported protocol version
ERANGE = "ERANGE"  # 416: unsatisfiable Range
EINTERNAL = "EINTERNAL"  # 500
ESHUTDOWN = "ESHUTDOWN"  # 503: server is stopping

STATUS_BY_CODE: dict[str, int] = {
    "ENOENT": 404,
    "EEXIST": 409,
    "ENOTEMPTY": 409,
    "ENOTDIR": 409,
    "EISDIR": 409,
    "EXDEV": 409,
    "EBUSY": 409,
    "EINVAL": 400,
    "ENAMETOOLONG": 400,
    "ELOOP": 400,
    EBADMSG: 400,
    EPROTONOSUPPORT: 400,
    "EPERM": 403,
    EACCES: 403,
    "EROFS": 403,
    EAUTH: 401,
    ECURSORTOOOLD: 410,
    EPRECONDITION: 412,
    "EFBIG": 413,
    EMSGSIZE: 413,
    ERANGE: 416,
    EPROTO: 422,
    EBADOBJECT: 422,
    EMISSINGOBJECTS: 422,
    EINTERNAL: 500,
    ESHUTDOWN: 503,
}


def status_for(code: str) -> int:
    """HTTP status for a wire error code (500 for anything unknown)."""
    return STATUS_BY_CODE.get(code, 500)


class ProtocolError(Exception):
    """A request or frame that cannot be served, with its wire code.

    `extra` holds additional fields of the error object (`missing`, `horizon`,
    `supported`, `current`, `field`, ...).
    """

    def __init__(self, code: str, message: str, *, id: RequestId | None = None, **extra: Any):
        super().__init__(message)
        self.code = code
        self.message = message
        self.id = id
        self.extra = extra

    @property
    def status(self) -> int:
        return status_for(self.code)

    def to_message(self) -> Error:
        return Error(code=self.code, message=self.message, id=self.id, extra=dict(self.extra))


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The HTTP error body: `{"error": {"code", "message", ...extra}}`."""
    return {"error": {"code": code, "message": message, **extra}}


def exception_to_error(exc: BaseException) -> ProtocolError:
    """Map anything the store (or validation) raises to a wire error.

    Unknown exceptions become EINTERNAL without leaking their text.
    """
    if isinstance(exc, ProtocolError):
        return exc
    if isinstance(exc, PreconditionFailed):
        return ProtocolError(
            EPRECONDITION, str(exc), path=exc.path, expected=exc.expected, current=exc.current
        )
    if isinstance(exc, CursorTooOld):
        return ProtocolError(ECURSORTOOOLD, str(exc), cursor=str(exc.cursor), horizon=exc.horizon)
    if isinstance(exc, MissingObjects):
        return ProtocolError(EMISSINGOBJECTS, str(exc), missing=list(exc.missing))
    if isinstance(exc, BadObject):
        return ProtocolError(EBADOBJECT, str(exc))
    if isinstance(exc, StoreBusy):  # its filename is the server's store file: not the client's business
        return ProtocolError(errno_name(exc.errno), exc.strerror)
    if isinstance(exc, OSError) and exc.errno is not None:
        message = exc.strerror or str(exc)
        if exc.filename is not None:
            return ProtocolError(errno_name(exc.errno), message, path=str(exc.filename))
        return ProtocolError(errno_name(exc.errno), message)
    return ProtocolError(EINTERNAL, "internal server error")


def error_to_exception(code: str, message: str, extra: Mapping[str, Any] | None = None) -> Exception:
    """The inverse of `exception_to_error`, for clients: rebuild what vfs would raise.

    errno codes become the matching `OSError` subclass (FileNotFoundError, ...),
    so code written against `vfs.Workspace` handles a remote workspace the same way.
    Codes with no local equivalent become `ProtocolError`.
    """
    extra = {k: v for k, v in (extra or {}).items() if k not in ("code", "message", "id")}
    if code == EPRECONDITION:
        return PreconditionFailed(extra.get("path", ""), extra.get("expected", ""), extra.get("current"))
    if code == ECURSORTOOOLD:
        return CursorTooOld(extra.get("cursor"), int(extra.get("horizon", 0)))
    if code == EMISSINGOBJECTS:
        return MissingObjects(list(extra.get("missing", [])))
    if code == EBADOBJECT:
        return BadObject(message)
    if code == EACCES:
        return PermissionError(_errno.EACCES, message, extra.get("path"))
    number = errno_from_name(code)
    if number is not None and code.startswith("E"):
        return OSError(number, message, extra.get("path"))
    return ProtocolError(code, message, **extra)


# ---------------------------------------------------------------- field validation

RequestId = str | int
_HASH_RE = re.compile(r"[0-9a-f]{64}\Z")
_WORKSPACE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


def valid_workspace_name(name: str) -> bool:
    """Workspace names: 1-64 of `[A-Za-z0-9._-]`, not starting with `.`, `_` or `-`."""
    return bool(_WORKSPACE_RE.match(name))


def _fail(field_name: str, what: str, id: RequestId | None = None) -> ProtocolError:
    return ProtocolError(EPROTO, f"field {field_name!r}: {what}", id=id, field=field_name)


class _Fields:
    """Typed access to one decoded JSON object, raising EPROTO naming the field."""

    __slots__ = ("d", "id")

    def __init__(self, d: Mapping[str, Any], id: RequestId | None = None):
        self.d = d
        self.id = id

    def _get(self, name: str, required: bool) -> Any:
        if name not in self.d or self.d[name] is None:
            if required:
                raise _fail(name, "required", self.id)
            return None
        return self.d[name]

    def str(self, name: str, *, required: bool = True, default: str | None = None, max_len: int = 4096) -> Any:
        v = self._get(name, required)
        if v is None:
            return default
        if not isinstance(v, str):
            raise _fail(name, "expected a string", self.id)
        if len(v.encode("utf-8", "surrogatepass")) > max_len:
            raise _fail(name, f"longer than {max_len} bytes", self.id)
        return v

    def int(self, name: str, *, required: bool = True, default: int | None = None, lo: int = 0, hi: int = 2**63 - 1) -> Any:
        v = self._get(name, required)
        if v is None:
            return default
        if isinstance(v, bool) or not isinstance(v, int):
            raise _fail(name, "expected an integer", self.id)
        if not lo <= v <= hi:
            raise _fail(name, f"out of range [{lo}, {hi}]", self.id)
        return v

    def float(self, name: str, *, required: bool = True, default: float | None = None) -> Any:
        v = self._get(name, required)
        if v is None:
            return default
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _fail(name, "expected a number", self.id)
        return float(v)

    def bool(self, name: str, *, default: bool = False) -> bool:
        v = self._get(name, False)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise _fail(name, "expected true or false", self.id)
        return v

    def str_list(self, name: str, *, required: bool = True, max_items: int = MAX_HASHES, max_len: int = 4096) -> Any:
        v = self._get(name, required)
        if v is None:
            return None
        if not isinstance(v, list):
            raise _fail(name, "expected a list of strings", self.id)
        if len(v) > max_items:
            raise _fail(name, f"more than {max_items} items", self.id)
        for item in v:
            if not isinstance(item, str) or len(item) > max_len:
                raise _fail(name, "expected a list of strings", self.id)
        return list(v)

    def hashes(self, name: str) -> list[str]:
        v = self.str_list(name, max_len=64)
        for h in v:
            if not _HASH_RE.match(h):
                raise _fail(name, f"{h!r} is not a 64-char lowercase hex BLAKE3 hash", self.id)
        return v

    def path(self, name: str, *, required: bool = True, default: str | None = None) -> Any:
        """An absolute path; full normalisation is the store's job (it raises EINVAL)."""
        v = self.str(name, required=required, default=default, max_len=8192)
        if v is not None and not v.startswith("/"):
            raise _fail(name, "expected an absolute path starting with '/'", self.id)
        return v

    def cursor(self, name: str, *, allow_now: bool = False) -> Any:
        """A cursor string, `null` (the very beginning) or, where allowed, "now"."""
        v = self._get(name, False)
        if v is None:
            return None
        if allow_now and v == "now":
            return "now"
        if isinstance(v, bool) or not isinstance(v, (str, int)):
            raise _fail(name, "expected a cursor string" + (' or "now"' if allow_now else ""), self.id)
        try:
            return Cursor.parse(v)
        except ValueError as e:
            raise _fail(name, str(e), self.id) from None

    def obj(self, name: str, *, required: bool = True) -> Any:
        v = self._get(name, required)
        if v is None:
            return None
        if not isinstance(v, dict):
            raise _fail(name, "expected an object", self.id)
        return v


def _request_id(d: Mapping[str, Any], *, required: bool = True) -> RequestId | None:
    v = d.get("id")
    if v is None:
        if required:
            raise _fail("id", "required")
        return None
    if isinstance(v, bool) or not isinstance(v, (str, int)) or (isinstance(v, str) and len(v) > MAX_ID_LEN):
        raise _fail("id", f"expected a string (at most {MAX_ID_LEN} chars) or an integer")
    return v


# ---------------------------------------------------------------- value types <-> wire


def stat_to_wire(st: Stat, path: str | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {
        "kind": st.kind,
        "mode": st.mode,
        "size": st.size,
        "mtime": st.mtime,
        "ctime": st.ctime,
        "ino": st.ino,
        "nlink": st.nlink,
        "rev": st.rev,
        "hash": st.hash,
        "target": st.target,
    }
    if path is not None:
        d["path"] = path
    return d


def stat_from_wire(d: Mapping[str, Any]) -> Stat:
    return Stat(
        kind=d["kind"],
        mode=int(d["mode"]),
        size=int(d["size"]),
        mtime=float(d["mtime"]),
        ctime=float(d["ctime"]),
        ino=int(d["ino"]),
        nlink=int(d["nlink"]),
        rev=int(d["rev"]),
        hash=d.get("hash"),
        target=d.get("target"),
    )


def direntry_to_wire(e: DirEntry) -> dict[str, Any]:
    return {"name": e.name, "kind": e.kind, "size": e.size, "mtime": e.mtime}


def direntry_from_wire(d: Mapping[str, Any]) -> DirEntry:
    return DirEntry(name=d["name"], kind=d["kind"], size=int(d["size"]), mtime=float(d["mtime"]))


def version_to_wire(v: Version) -> dict[str, Any]:
    return {"path": v.path, "rev": v.rev, "kind": v.kind, "size": v.size, "hash": v.hash, "mtime": v.mtime}


def version_from_wire(d: Mapping[str, Any]) -> Version:
    return Version(
        path=d["path"], rev=int(d["rev"]), kind=d["kind"], size=int(d["size"]), hash=d.get("hash"), mtime=float(d["mtime"])
    )


def grepmatch_to_wire(m: GrepMatch) -> dict[str, Any]:
    return {"path": m.path, "line_number": m.line_number, "line": m.line, "context": list(m.context)}


def grepmatch_from_wire(d: Mapping[str, Any]) -> GrepMatch:
    return GrepMatch(path=d["path"], line_number=int(d["line_number"]), line=d["line"], context=tuple(d.get("context", ())))


def gcstats_to_wire(g: GcStats) -> dict[str, Any]:
    return {
        "chunks_removed": g.chunks_removed,
        "bytes_removed": g.bytes_removed,
        "chunks_kept": g.chunks_kept,
        "versions_pruned": g.versions_pruned,
    }


def gcstats_from_wire(d: Mapping[str, Any]) -> GcStats:
    return GcStats(**{k: int(d[k]) for k in ("chunks_removed", "bytes_removed", "chunks_kept", "versions_pruned")})


_KINDS = ("file", "dir", "symlink", "delete")


def change_to_wire(c: Change, *, data: bytes | None = None, author: str | None = None) -> dict[str, Any]:
    """One change entry. `data` (inlined content) and `author` are optional extras."""
    d: dict[str, Any] = {
        "path": c.path,
        "kind": c.kind,
        "rev": c.rev,
        "cursor": str(c.cursor),
        "mode": c.mode,
        "mtime": c.mtime,
        "size": c.size,
        "hash": c.hash,
        "chunks": [[h, s] for h, s in c.chunks],
        "target": c.target,
    }
    if data is not None:
        d["data"] = base64.b64encode(data).decode("ascii")
    if author is not None:
        d["author"] = author
    return d


def change_from_wire(d: Any, *, id: RequestId | None = None, where: str = "changes") -> Change:
    """Validate and build a `Change` (fields `cursor`, `data`, `author` are ignored here)."""
    if not isinstance(d, dict):
        raise _fail(where, "each entry must be an object", id)
    f = _Fields(d, id)
    kind = f.str("kind")
    if kind not in _KINDS:
        raise _fail("kind", f"must be one of {', '.join(_KINDS)}", id)
    raw_chunks = d.get("chunks") or []
    if not isinstance(raw_chunks, list):
        raise _fail("chunks", "expected a list of [hash, size] pairs", id)
    chunks: list[tuple[str, int]] = []
    for item in raw_chunks:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not isinstance(item[0], str)
            or not _HASH_RE.match(item[0])
            or isinstance(item[1], bool)
            or not isinstance(item[1], int)
            or item[1] < 0
        ):
            raise _fail("chunks", "expected a list of [hash, size] pairs", id)
        chunks.append((item[0], item[1]))
    h = f.str("hash", required=False, max_len=64)
    if h is not None and not _HASH_RE.match(h):
        raise _fail("hash", "expected a 64-char lowercase hex BLAKE3 hash", id)
    return Change(
        path=f.path("path"),
        kind=kind,
        rev=f.int("rev", required=False, default=0),
        mode=f.int("mode", required=False, default=0, hi=0o177777),
        mtime=f.float("mtime", required=False, default=0.0),
        size=f.int("size", required=False, default=0),
        hash=h,
        chunks=tuple(chunks),
        target=f.str("target", required=False),
    )


def entry_data(d: Mapping[str, Any]) -> bytes | None:
    """The inlined content of a wire change entry, if the server inlined it."""
    raw = d.get("data")
    return None if raw is None else base64.b64decode(raw)


def conflict_to_wire(c: Conflict) -> dict[str, Any]:
    return {
        "path": c.path,
        "local_kind": c.local_kind,
        "local_rev": c.local_rev,
        "local_hash": c.local_hash,
        "remote_kind": c.remote_kind,
        "remote_rev": c.remote_rev,
        "remote_hash": c.remote_hash,
        "reason": c.reason,
    }


def conflict_from_wire(d: Mapping[str, Any]) -> Conflict:
    return Conflict(
        path=d["path"],
        local_kind=d.get("local_kind"),
        local_rev=int(d["local_rev"]),
        local_hash=d.get("local_hash"),
        remote_kind=d["remote_kind"],
        remote_rev=int(d["remote_rev"]),
        remote_hash=d.get("remote_hash"),
        reason=d["reason"],
    )


def apply_result_to_wire(r: ApplyResult) -> dict[str, Any]:
    return {
        "applied": list(r.applied),
        "unchanged": list(r.unchanged),
        "conflicts": [conflict_to_wire(c) for c in r.conflicts],
        "rev": r.rev,
    }


def apply_result_from_wire(d: Mapping[str, Any]) -> ApplyResult:
    return ApplyResult(
        applied=list(d.get("applied", [])),
        unchanged=list(d.get("unchanged", [])),
        conflicts=[conflict_from_wire(c) for c in d.get("conflicts", [])],
        rev=int(d.get("rev", 0)),
    )


def parse_base(v: Any, *, id: RequestId | None = None) -> Cursor | dict[str, int] | None:
    """`base` of a push: null, a cursor string, or an object `{path: rev}`."""
    if v is None:
        return None
    if isinstance(v, dict):
        out: dict[str, int] = {}
        for k, rev in v.items():
            if not k.startswith("/") or isinstance(rev, bool) or not isinstance(rev, int) or rev < 0:
                raise _fail("base", "expected {absolute path: revision} pairs", id)
            out[k] = rev
        return out
    return _Fields({"base": v}, id).cursor("base")


def base_to_wire(base: Cursor | Mapping[str, int] | None) -> Any:
    if base is None:
        return None
    if isinstance(base, Cursor):
        return str(base)
    return dict(base)


# ---------------------------------------------------------------- globs


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """Compile a path glob: `*` and `?` stay inside one component, `**` spans any.

    `**/` also matches zero directories, so `**/*.md` matches `a.md` and `x/y/a.md`.
    `[...]` is a character class as in fnmatch. The match is against the whole
    relative path (no leading `/`).
    """
    i, n, out = 0, len(pattern), []
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                    out.append("(?:.*/)?")
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i + 2)
            if j == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : j]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


class PathFilter:
    """The path filter of a subscription: under `prefix`, matching any glob, not ignored.

    `ignore` takes gitignore-style patterns, exactly as `Workspace.changes` does.

    Kept here (not in the server) so a client can apply exactly the same filter
    to what it already holds.
    """

    def __init__(self, prefix: str = "/", globs: Iterable[str] | None = None, ignore: Iterable[str] = ()):
        self.prefix = prefix.rstrip("/") or "/"
        from vfs.changelog import compile_ignore, is_ignored  # the store's own matcher, so both agree

        self._is_ignored = is_ignored

        self.globs = [glob_to_regex(g) for g in globs] if globs else None
        self.ignore = compile_ignore(ignore)

    def under_prefix(self, path: str) -> bool:
        return self.prefix == "/" or path == self.prefix or path.startswith(self.prefix + "/")

    def relative(self, path: str) -> str:
        return path[1:] if self.prefix == "/" else path[len(self.prefix) + 1 :]

    def __call__(self, path: str, kind: str = "file") -> bool:
        """Does the entry at `path` pass? Give `kind` ("dir", "delete", ...) for change entries:
        directory patterns (`build/`) also drop a directory or a tombstone of that name, as the store does."""
        if not self.under_prefix(path):
            return False
        if self.ignore is not None and self._is_ignored(self.ignore, path, kind):
            return False
        if self.globs is None:
            return True
        rel = self.relative(path)
        return any(g.match(rel) for g in self.globs)


# ---------------------------------------------------------------- messages


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
        globs = f.str_list("globs", required=False, max_items=MAX_GLOBS, max_len=1024)
        ignore = f.str_list("ignore", required=False, max_items=MAX_GLOBS, max_len=255)
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


ClientMessage = Hello | Subscribe | Unsubscribe | Has | Get | Push | Presence | Ping
ServerMessage = ServerHello | Ok | Error | Changes | CaughtUp | PresenceEvent

_CLIENT_TYPES: dict[str, Any] = {
    m.TYPE: m for m in (Hello, Subscribe, Unsubscribe, Has, Get, Push, Presence, Ping)
}
_SERVER_TYPES: dict[str, Any] = {
    m.TYPE: m for m in (ServerHello, Ok, Error, Changes, CaughtUp, PresenceEvent)
}


# ---------------------------------------------------------------- codec


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


@dataclass(frozen=True, slots=True)
class ChunkFrame:
    kind: int  # FRAME_PUT or FRAME_CHUNK
    hash: str  # lowercase hex
    data: bytes | memoryview


def encode_chunk_frame(kind: int, hash_hex: str, data: bytes | memoryview) -> bytes:
    """Binary frame: 1 byte kind, 32 bytes raw BLAKE3 hash, then the chunk bytes."""
    return bytes([kind]) + bytes.fromhex(hash_hex) + bytes(data)


def decode_chunk_frame(frame: bytes, *, expect: int) -> ChunkFrame:
    """Parse a binary frame; `expect` is the kind allowed in this direction."""
    if len(frame) < FRAME_HEADER:
        raise ProtocolError(EBADMSG, f"binary frame shorter than its {FRAME_HEADER}-byte header")
    kind = frame[0]
    if kind != expect:
        raise ProtocolError(EBADMSG, f"binary frame kind 0x{kind:02x} not allowed here (expected 0x{expect:02x})")
    if len(frame) - FRAME_HEADER > MAX_CHUNK_PAYLOAD:
        raise ProtocolError(EMSGSIZE, f"chunk larger than {MAX_CHUNK_PAYLOAD} bytes")
    return ChunkFrame(kind=kind, hash=frame[1:FRAME_HEADER].hex(), data=memoryview(frame)[FRAME_HEADER:])


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


# ---------------------------------------------------------------- HTTP bodies: ops

OPS: dict[str, tuple[str, ...]] = {
    # op -> required fields (optional ones are read in parse_op)
    "mkdir": ("path",),
    "rename": ("src", "dst"),
    "copy": ("src", "dst"),
    "symlink": ("target", "path"),
    "link": ("src", "dst"),
    "chmod": ("path", "mode"),
    "utime": ("path", "mtime"),
    "truncate": ("path", "size"),
    "restore": ("path", "rev"),
    "rm": ("path",),
    "unlink": ("path",),
    "rmdir": ("path",),
}


@dataclass(frozen=True, slots=True)
class Op:
    """A validated `POST .../ops` body; `args` are the store method's keyword arguments."""

    op: str
    args: dict[str, Any]
    if_match: str | None = None


def parse_op(d: Any) -> Op:
    if not isinstance(d, dict):
        raise ProtocolError(EBADMSG, "body must be a JSON object")
    f = _Fields(d)
    op = f.str("op", max_len=32)
    if op not in OPS:
        raise ProtocolError(EPROTO, f"unknown op {op!r}; expected one of {', '.join(OPS)}", field="op")
    args: dict[str, Any] = {}
    if op == "mkdir":
        args = {
            "path": f.path("path"),
            "parents": f.bool("parents"),
            "exist_ok": f.bool("exist_ok"),
            "mode": f.int("mode", required=False, default=0o755, hi=0o7777),
        }
    elif op in ("rename", "copy", "link"):
        args = {"src": f.path("src"), "dst": f.path("dst")}
    elif op == "symlink":
        args = {"target": f.str("target", max_len=4096), "path": f.path("path")}
    elif op == "chmod":
        args = {"path": f.path("path"), "mode": f.int("mode", hi=0o7777)}
    elif op == "utime":
        args = {"path": f.path("path"), "mtime": f.float("mtime")}
    elif op == "truncate":
        args = {"path": f.path("path"), "size": f.int("size")}
    elif op == "restore":
        args = {"path": f.path("path"), "rev": f.int("rev")}
    elif op == "rm":
        args = {"path": f.path("path"), "recursive": f.bool("recursive"), "force": f.bool("force")}
    else:  # unlink, rmdir
        args = {"path": f.path("path")}
    if_match = f.str("if_match", required=False, max_len=64)
    return Op(op=op, args=args, if_match=if_match)


def parse_mode(text: str | None) -> int | None:
    """`?mode=644` (octal digits, optional `0o`/`0` prefix) -> 0o644."""
    if text is None or text == "":
        return None
    t = text.lower().removeprefix("0o")
    if not re.fullmatch(r"[0-7]{1,4}", t):
        raise ProtocolError("EINVAL", f"mode {text!r}: expected octal permission digits such as 644")
    return int(t, 8)


def parse_flag(text: str | None) -> bool:
    """Query flags: `1`, `true`, `yes` are true; absent, `0`, `false`, `no` are false."""
    if text is None:
        return False
    t = text.lower()
    if t in ("1", "true", "yes", ""):
        return True
    if t in ("0", "false", "no"):
        return False
    raise ProtocolError("EINVAL", f"flag value {text!r}: expected 1 or 0")
