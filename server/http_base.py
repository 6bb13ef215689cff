"""What every HTTP handler shares: the `api` wrapper, request reading, JSON replies.

Every endpoint is wrapped by `api(need)`, which authenticates, checks the
token's reach, and turns any exception into the JSON error of
docs/protocol.md section 2 (so a vfs `OSError` becomes its errno code and
status, never a 500 with a traceback). What a request *means* (bodies, query
values, headers) is parsed by `vfs.wire.http`; this module only reads it off
the Starlette request.
"""

from __future__ import annotations

import functools
import tempfile
from typing import IO, Any, AsyncIterator, Awaitable, Callable

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

import vfs
from vfs.wire import EBADMSG, EMSGSIZE, ESHUTDOWN, ProtocolError, error_body, exception_to_error, valid_workspace_name
from vfs.wire.http import IF_MATCH_ANY, parse_flag, parse_if_match, parse_query_int

from server.auth import Principal, token_from
from server.state import ServerState, log

SMALL_READ = 1024 * 1024  # files up to this size are read in the same hop as their stat
STREAM_STEP = 1024 * 1024  # bytes pulled per thread hop while streaming a big file

Handler = Callable[[Request, ServerState, Principal], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]
Job = Callable[[vfs.Workspace], Any]  # work for a reader Workspace, run in the reader pool


# ---------------------------------------------------------------- replies


class JsonResponse(Response):
    """A JSON reply with its header list built directly (Starlette's `init_headers` lower-cases,
    encodes and searches a header list per response: a few µs of every small write's reply)."""

    media_type = "application/json"

    def __init__(self, content: Any, status: int = 200, headers: dict[str, str] | None = None,
                 etag: str | None = None):
        """`etag`: a content id, sent as the `ETag` header (a write's reply: no header dict to walk)."""
        self.status_code = status
        self.background = None
        self.body = body = orjson.dumps(content)
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()] if headers else []
        if etag is not None:
            raw.append((b"etag", b'"%s"' % etag.encode("latin-1")))
        if status >= 200 and status not in (204, 304):
            raw.append((b"content-length", b"%d" % len(body)))
        raw.append(_JSON_TYPE)
        self.raw_headers = raw


_JSON_TYPE = (b"content-type", b"application/json")


def json_response(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JsonResponse(content, status, headers)


def error_response(exc: BaseException) -> Response:
    err = exception_to_error(exc)
    if err.code == "EINTERNAL":
        log.error("internal error", exc_info=exc)
    headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
    if err.status == 416 and isinstance(err.extra.get("size"), int):
        headers = {"Content-Range": f"bytes */{err.extra['size']}"}  # RFC 9110 15.5.17: the current length
    return json_response(error_body(err.code, err.message, **err.extra), err.status, headers)


# ---------------------------------------------------------------- the endpoint wrapper


def state_of(request: Request) -> ServerState:
    """The server's state: kept on the app by `WsfsApp` (Starlette's `State` answers each
    attribute through a Python `__getattr__`: ~1 us of every request)."""
    st = getattr(request.scope["app"], "wsfs_state", None)
    return st if st is not None else request.app.state.wsfs


_EMPTY: dict[str, Any] = {}


def api(need: str | None) -> Callable[[Handler], Endpoint]:
    """Authenticate, require `need` on the path's workspace, map errors to JSON."""

    def wrap(fn: Handler) -> Endpoint:
        @functools.wraps(fn)
        async def endpoint(request: Request) -> Response:
            try:
                st = state_of(request)
                principal = st.tokens.authenticate(token_from(headers_of(request), query_of(request)))
                scope = request.scope
                ws = scope.get("path_params", _EMPTY).get("ws")
                if ws is not None and not valid_workspace_name(ws):
                    principal.require(None, "admin")  # a non-admin never learns which names are valid
                    raise ProtocolError("EINVAL", f"invalid workspace name {ws!r}")
                if need is not None:
                    principal.require(ws, need)
                if st.stopping and scope["method"] not in ("GET", "HEAD"):
                    raise ProtocolError(ESHUTDOWN, "server is shutting down")
                return await fn(request, st, principal)
            except Exception as exc:  # noqa: BLE001 - every failure becomes a JSON error
                return error_response(exc)

        return endpoint

    return wrap


def read_route(fn: Callable[[Request], tuple[str, Job]]) -> Handler:
    """A read-only route: `fn` parses the request and returns (op name, job for a reader)."""

    async def handler(request: Request, st: ServerState, p: Principal) -> Response:
        op, job = fn(request)
        async with st.stores.use(request.path_params["ws"]) as h:
            return json_response(await h.read(job, op=op))

    handler.__name__ = fn.__name__
    return handler


def author_of(request: Request, st: ServerState, p: Principal) -> str:
    """The author of an HTTP write: the caller's own WebSocket session's presence name when
    `X-Wsfs-Session` names a live session of this workspace opened with this same token
    (a browser writes over HTTP but is known by its session), else the token's name."""
    session = st.sessions.get(headers_of(request).get("x-wsfs-session", ""))
    if session is not None and session.workspace == request.path_params.get("ws") and session.token_id == p.id:
        return session.author
    return p.name


# ---------------------------------------------------------------- path, query, headers

_NO_QUERY: dict[str, str] = {}


def headers_of(request: Request) -> dict[str, str]:
    """The request's headers as one dict (lower-case names; the first of repeated ones, as
    Starlette's `Headers.get`), built once per request and kept in its scope. Starlette's `Headers`
    walks and decodes the whole list on every lookup, and a missing header (`If-Match` on most
    writes) costs a raised and caught KeyError: ~7 lookups per small write."""
    scope = request.scope
    found = scope.get("wsfs.headers")
    if found is None:
        found = scope["wsfs.headers"] = {k.decode("latin-1"): v.decode("latin-1") for k, v in reversed(scope["headers"])}
    return found


def query_of(request: Request) -> Any:
    """The query parameters, or an empty dict when there is no query string (no parse at all)."""
    return request.query_params if request.scope.get("query_string") else _NO_QUERY



def wpath(request: Request, key: str = "path") -> str:
    """The workspace path of a `{path:path}` route parameter (normalisation is the store's)."""
    return "/" + request.path_params.get(key, "")


def q_int(request: Request, name: str, default: int | None = None, lo: int = 0, hi: int = 2**63 - 1) -> int | None:
    return parse_query_int(name, query_of(request).get(name), default, lo, hi)


def q_flag(request: Request, name: str, default: bool = False) -> bool:
    raw = query_of(request).get(name)
    return default if raw is None else parse_flag(raw)


def if_match_of(request: Request) -> str | None:
    """`If-Match: "<id>"` -> id; `If-Match: *` -> `IF_MATCH_ANY`; `If-None-Match: *` -> "" (vfs: must not exist)."""
    headers = headers_of(request)
    return parse_if_match(headers.get("if-match"), headers.get("if-none-match"))


def check_if_match(ws: vfs.Workspace, path: str, expected: str | None) -> None:
    """For ops without a native `if_match`: run inside the writer hop, so nothing can interleave."""
    if expected is None:
        return
    try:
        current = ws.stat(path).hash
    except (FileNotFoundError, NotADirectoryError):
        current = None
    if expected == IF_MATCH_ANY:
        if current is None:
            raise vfs.PreconditionFailed(path, expected, current)
        return
    if (current or "") != expected:
        raise vfs.PreconditionFailed(path, expected, current)


# ---------------------------------------------------------------- bodies


async def read_json(request: Request, limit: int) -> Any:
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise ProtocolError(EMSGSIZE, f"JSON body larger than {limit} bytes")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise ProtocolError(EBADMSG, f"body is not valid JSON: {e}") from None


async def read_body(request: Request, limit: int, code: str = "EFBIG", *, noun: str = "body") -> bytes:
    """The whole body as bytes, at most `limit` of them, taken straight off the ASGI `receive`: no
    stream generator, no spool (a small PUT arrives as one message). `noun` names it in errors."""
    declared = headers_of(request).get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ProtocolError(code, f"{noun} of {declared} bytes is larger than the limit of {limit}")
    receive = request.receive
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect, as Starlette's `stream` says it
            raise ClientDisconnect()
        part = message.get("body", b"")
        size += len(part)
        if size > limit:
            raise ProtocolError(code, f"{noun} larger than the limit of {limit} bytes")
        parts.append(part)
        if not message.get("more_body", False):
            break
    return parts[0] if len(parts) == 1 else b"".join(parts)


async def bounded_parts(request: Request, limit: int) -> AsyncIterator[bytes]:
    """The body's parts as they arrive; EFBIG as soon as more than `limit` bytes came."""
    size = 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise ProtocolError("EFBIG", f"upload larger than the limit of {limit} bytes")
        yield part


async def spool_body(request: Request, st: ServerState, limit: int | None = None) -> IO[bytes]:
    """Stream the request body into an unnamed temp file (bounded memory, checked size).

    Spooling first means the store's writer thread is busy only for the
    commit itself, never for the duration of a slow upload.
    """
    limit = st.config.max_upload if limit is None else limit
    declared = headers_of(request).get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ProtocolError("EFBIG", f"upload of {declared} bytes is larger than the limit of {limit} bytes")
    spool: IO[bytes] = tempfile.TemporaryFile(dir=st.spool_dir)  # (a small body is read as bytes: `read_body`)
    size = 0
    try:
        buf = bytearray()
        async for part in bounded_parts(request, limit):
            size += len(part)
            buf += part
            if len(buf) >= STREAM_STEP:
                spool.write(buf)
                buf.clear()
        spool.write(buf)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    st.metrics.http_in.inc(size)
    return spool
