"""HTTP routes: translate requests into store calls and results into JSON.

Every endpoint is wrapped by `api(need)`, which authenticates, checks the
token's reach, and turns any exception into the JSON error of
docs/protocol.md section 2 (so a vfs `OSError` becomes its errno code and
status, never a 500 with a traceback).
"""

from __future__ import annotations

import asyncio
import functools
import io
import mimetypes
import re
import tempfile
from email.utils import formatdate
from typing import IO, Any, AsyncIterator, Awaitable, Callable

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

import vfs
from vfs.protocol import (
    EBADMSG,
    EMSGSIZE,
    ERANGE,
    ESHUTDOWN,
    SUPPORTED_VERSIONS,
    Op,
    ProtocolError,
    _Fields,
    apply_result_to_wire,
    change_from_wire,
    change_to_wire,
    direntry_to_wire,
    error_body,
    exception_to_error,
    gcstats_to_wire,
    grepmatch_to_wire,
    parse_base,
    parse_flag,
    parse_mode,
    parse_op,
    stat_to_wire,
    valid_workspace_name,
    version_to_wire,
    MAX_CHUNK_PAYLOAD,
    MAX_PUSH_ENTRIES,
)

from server.auth import Principal, token_from
from server.state import ServerState, __version__, log

SMALL_READ = 1024 * 1024  # files up to this size are read in the same hop as their stat
STREAM_STEP = 1024 * 1024  # bytes pulled per thread hop while streaming a big file
CHANGES_LIMIT, CHANGES_MAX = 1000, 10000

Handler = Callable[[Request, ServerState, Principal], Awaitable[Response]]


# ---------------------------------------------------------------- plumbing


def json_response(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json", headers=headers)


def error_response(exc: BaseException) -> Response:
    err = exception_to_error(exc)
    if err.code == "EINTERNAL":
        log.error("internal error", exc_info=exc)
    headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
    return json_response(error_body(err.code, err.message, **err.extra), err.status, headers)


def state_of(request: Request) -> ServerState:
    return request.app.state.wsfs


def api(need: str | None) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Authenticate, require `need` on the path's workspace, map errors to JSON."""

    def wrap(fn: Handler) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(fn)
        async def endpoint(request: Request) -> Response:
            try:
                st = state_of(request)
                principal = st.tokens.authenticate(token_from(request.headers, request.query_params))
                ws = request.path_params.get("ws")
                if ws is not None and not valid_workspace_name(ws):
                    principal.require(None, "admin")  # a non-admin never learns which names are valid
                    raise ProtocolError("EINVAL", f"invalid workspace name {ws!r}")
                if need is not None:
                    principal.require(ws, need)
                if st.stopping and request.method not in ("GET", "HEAD"):
                    raise ProtocolError(ESHUTDOWN, "server is shutting down")
                return await fn(request, st, principal)
            except Exception as exc:  # noqa: BLE001 - every failure becomes a JSON error
                return error_response(exc)

        return endpoint

    return wrap


def author_of(request: Request, st: ServerState, p: Principal) -> str:
    """The author of an HTTP write: the caller's own WebSocket session's presence name when
    `X-Wsfs-Session` names a live session of this workspace opened with this same token
    (a browser writes over HTTP but is known by its session), else the token's name."""
    session = st.sessions.get(request.headers.get("x-wsfs-session", ""))
    if session is not None and session.workspace == request.path_params.get("ws") and session.token_id == p.id:
        return session.author
    return p.name


def wpath(request: Request, key: str = "path") -> str:
    """The workspace path of a `{path:path}` route parameter (normalisation is the store's)."""
    return "/" + request.path_params.get(key, "")


def q_int(request: Request, name: str, default: int | None = None, lo: int = 0, hi: int = 2**63 - 1) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ProtocolError("EINVAL", f"query {name}={raw!r}: expected an integer") from None
    if not lo <= value <= hi:
        raise ProtocolError("EINVAL", f"query {name}={raw!r}: out of range [{lo}, {hi}]")
    return value


def q_flag(request: Request, name: str, default: bool = False) -> bool:
    raw = request.query_params.get(name)
    return default if raw is None else parse_flag(raw)


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


async def read_body(request: Request, limit: int, code: str = "EFBIG") -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ProtocolError(code, f"body of {declared} bytes is larger than the limit of {limit}")
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise ProtocolError(code, f"body larger than the limit of {limit} bytes")
    return bytes(body)


async def spool_body(request: Request, st: ServerState) -> IO[bytes]:
    """Stream the request body into an unnamed temp file (bounded memory, checked size).

    Spooling first means the store's writer thread is busy only for the
    commit itself, never for the duration of a slow upload.
    """
    limit = st.config.max_upload
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ProtocolError("EFBIG", f"upload of {declared} bytes is larger than max_upload ({limit})")
    small = declared is not None and declared.isdigit() and int(declared) <= SMALL_READ
    spool: IO[bytes] = io.BytesIO() if small else tempfile.TemporaryFile(dir=st.spool_dir)
    size = 0
    try:
        buf = bytearray()
        async for part in request.stream():
            size += len(part)
            if size > limit:
                raise ProtocolError("EFBIG", f"upload larger than max_upload ({limit} bytes)")
            buf += part
            if len(buf) >= STREAM_STEP:
                spool.write(buf)
                buf.clear()
        spool.write(buf)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    st.metrics.http_bytes.labels("in").inc(size)
    return spool


def if_match_of(request: Request) -> str | None:
    """`If-Match: "<id>"` -> id; `If-None-Match: *` -> "" (vfs: must not exist)."""
    raw = request.headers.get("if-match")
    if raw is not None:
        return raw.strip().removeprefix("W/").strip('"')
    if request.headers.get("if-none-match", "").strip() == "*":
        return ""
    return None


def check_if_match(ws: vfs.Workspace, path: str, expected: str | None) -> None:
    """For ops without a native `if_match`: run inside the writer hop, so nothing can interleave."""
    if expected is None:
        return
    try:
        current = ws.stat(path).hash
    except FileNotFoundError:
        current = None
    if (current or "") != expected:
        raise vfs.PreconditionFailed(path, expected, current)


# ---------------------------------------------------------------- server routes


async def healthz(request: Request) -> Response:
    st = state_of(request)
    body = {"ok": not st.stopping, "version": __version__, "protocol": list(SUPPORTED_VERSIONS)}
    if st.stopping:
        return json_response({**error_body(ESHUTDOWN, "server is shutting down"), **body}, 503)
    return json_response(body)


@api("admin")
async def metrics(request: Request, st: ServerState, p: Principal) -> Response:
    st.metrics.subscriptions.set(sum(len(c.subs) for c in st.sessions.values()))
    return Response(st.metrics.render(), media_type=st.metrics.content_type)


@api(None)
async def whoami(request: Request, st: ServerState, p: Principal) -> Response:
    return json_response(p.to_wire())


# ---------------------------------------------------------------- workspaces


@api(None)
async def list_workspaces(request: Request, st: ServerState, p: Principal) -> Response:
    names = st.stores.names()
    if not p.is_admin:
        names = [n for n in names if n == p.workspace]
    return json_response({"workspaces": [{"name": n} for n in names]})


def _info(name: str, ws: vfs.Workspace) -> dict[str, Any]:
    return {"name": name, "rev": ws.rev, "cursor": str(ws.cursor())}


@api("read")
async def get_workspace(request: Request, st: ServerState, p: Principal) -> Response:
    name = request.path_params["ws"]
    async with st.stores.use(name) as h:
        return json_response(await h.read(lambda ws: _info(name, ws)))


@api("admin")
async def put_workspace(request: Request, st: ServerState, p: Principal) -> Response:
    name = request.path_params["ws"]
    created = await st.stores.create(name)
    async with st.stores.use(name) as h:
        info = await h.read(lambda ws: _info(name, ws))
    return json_response({**info, "created": created}, 201 if created else 200)


@api("admin")
async def delete_workspace(request: Request, st: ServerState, p: Principal) -> Response:
    from vfs.protocol import CLOSE_WORKSPACE_GONE

    name = request.path_params["ws"]
    if not st.stores.exists(name):
        raise ProtocolError("ENOENT", f"no workspace named {name!r}")
    await st.stores.delete(name, on_delete=lambda: st.hub.close_sessions(name, CLOSE_WORKSPACE_GONE, "workspace deleted"))
    st.tokens.revoke_workspace(name)
    return Response(status_code=204)


# ---------------------------------------------------------------- tokens


@api("admin")
async def list_tokens(request: Request, st: ServerState, p: Principal) -> Response:
    return json_response({"tokens": st.tokens.list()})


@api("admin")
async def create_token(request: Request, st: ServerState, p: Principal) -> Response:
    body = await read_json(request, st.config.max_json)
    if not isinstance(body, dict):
        raise ProtocolError(EBADMSG, "body must be a JSON object")
    f = _Fields(body)
    workspace = f.str("workspace", max_len=64)
    scope = f.str("scope", max_len=16)
    if scope not in ("read", "write"):
        raise ProtocolError("EPROTO", "field 'scope': must be 'read' or 'write'", field="scope")
    if not st.stores.exists(workspace):
        raise ProtocolError("ENOENT", f"no workspace named {workspace!r}")
    principal, secret = st.tokens.create(workspace, scope, f.str("name", required=False, default="", max_len=128))
    listed = next(t for t in st.tokens.list() if t["id"] == principal.id)
    return json_response({**listed, "token": secret}, 201)


@api("admin")
async def delete_token(request: Request, st: ServerState, p: Principal) -> Response:
    from vfs.protocol import CLOSE_POLICY

    tid = request.path_params["id"]
    if not st.tokens.revoke(tid):
        raise ProtocolError("ENOENT", f"no token with id {tid!r}")
    st.hub.close_sessions(None, CLOSE_POLICY, "token revoked", token_id=tid)
    return Response(status_code=204)


# ---------------------------------------------------------------- files


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One `bytes=` range -> (start, length); None: serve everything. Raises ERANGE."""
    if not header:
        return None
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not m:
        return None  # several ranges or another unit: RFC 9110 lets us ignore Range
    first, last = m.groups()
    if first == "" and last == "":
        return None
    if first == "":
        length = min(int(last), size)
        if length == 0:
            raise ProtocolError(ERANGE, f"range {header!r} not satisfiable for size {size}", size=size)
        return size - length, length
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise ProtocolError(ERANGE, f"range {header!r} not satisfiable for size {size}", size=size)
    return start, end - start + 1


def _probe(ws: vfs.Workspace, path: str, range_header: str | None, limit: int | None, offset: int) -> dict[str, Any]:
    """Stat, and for small files the bytes, in one hop (so ETag and bytes agree)."""
    st = ws.stat(path)
    if st.kind == "dir":
        return {"stat": st, "entries": ws.readdir(path, limit=limit, offset=offset)}
    rng = _parse_range(range_header, st.size)
    start, length = rng if rng is not None else (0, st.size)
    data = ws.read_range(path, start, length) if length <= SMALL_READ else None
    return {"stat": st, "range": rng, "start": start, "length": length, "data": data}


async def _stream(st: ServerState, name: str, path: str, start: int, length: int, rev: int | None) -> AsyncIterator[bytes]:
    """Stream a file in ~1 MiB thread hops, holding one reader Workspace for the duration."""
    async with st.stores.use(name) as h:
        ws = h.checkout()
        pending: asyncio.Future[bytes] | None = None
        try:
            it = ws.iter_file(path, start, length, rev=rev) if rev is not None else ws.iter_file(path, start, length)

            def step() -> bytes:
                pieces, size = [], 0
                for piece in it:
                    pieces.append(piece)
                    size += len(piece)
                    if size >= STREAM_STEP:
                        break
                return b"".join(pieces)

            # double-buffered: the next block is read in the thread while this one is sent
            pending = asyncio.ensure_future(h.read_with(ws, step))
            while True:
                block = await pending
                if not block:
                    break
                pending = asyncio.ensure_future(h.read_with(ws, step))
                st.metrics.http_bytes.labels("out").inc(len(block))
                yield block
        finally:
            if pending is not None and not pending.done():
                # the client went away mid-stream: the thread may still be reading with `ws`
                pending.add_done_callback(lambda f: (f.cancelled() or f.exception(), h.checkin(ws)))
            else:
                h.checkin(ws)


def _file_headers(stat: vfs.Stat, path: str) -> dict[str, str]:
    return {
        "ETag": f'"{stat.hash}"',
        "Accept-Ranges": "bytes",
        "Last-Modified": formatdate(stat.mtime, usegmt=True),
        "X-Wsfs-Rev": str(stat.rev),
        "X-Wsfs-Mode": str(stat.mode),
        "Content-Type": mimetypes.guess_type(path)[0] or "application/octet-stream",
    }


@api("read")
async def get_file(request: Request, st: ServerState, p: Principal) -> Response:
    name, path = request.path_params["ws"], wpath(request)
    rev = q_int(request, "rev")
    if rev is not None:
        headers = {"Content-Type": mimetypes.guess_type(path)[0] or "application/octet-stream"}
        async with st.stores.use(name) as h:
            data = await h.read(lambda ws: ws.read_file(path, rev=rev), op="read_file")
        return Response(data, headers=headers)
    async with st.stores.use(name) as h:
        info = await h.read(_probe, path, request.headers.get("range"), q_int(request, "limit"),
                            q_int(request, "offset", 0), op="get")
    stat: vfs.Stat = info["stat"]
    if stat.kind == "dir":
        entries = [direntry_to_wire(e) for e in info["entries"]]
        return json_response({"path": path, "kind": "dir", "entries": entries})
    headers = _file_headers(stat, path)
    inm = request.headers.get("if-none-match")
    if inm and stat.hash and stat.hash in [t.strip().removeprefix("W/").strip('"') for t in inm.split(",")]:
        return Response(status_code=304, headers={"ETag": headers["ETag"]})
    status = 200
    if info["range"] is not None:
        status = 206
        headers["Content-Range"] = f"bytes {info['start']}-{info['start'] + info['length'] - 1}/{stat.size}"
    headers["Content-Length"] = str(info["length"])
    if info["data"] is not None:
        st.metrics.http_bytes.labels("out").inc(len(info["data"]))
        return Response(info["data"], status_code=status, headers=headers)
    return StreamingResponse(_stream(st, name, path, info["start"], info["length"], None), status_code=status,
                             headers=headers)


def _put(ws: vfs.Workspace, path: str, spool: IO[bytes], mode: int | None, parents: bool,
         if_match: str | None, mtime: float | None) -> tuple[bool, vfs.Stat]:
    try:
        ws.lstat(path)
        existed = True
    except (FileNotFoundError, NotADirectoryError):
        existed = False
    stat = ws.write_file(path, spool, mode=mode, parents=parents, if_match=if_match, mtime=mtime)
    return not existed, stat


@api("write")
async def put_file(request: Request, st: ServerState, p: Principal) -> Response:
    name, path = request.path_params["ws"], wpath(request)
    mode = parse_mode(request.query_params.get("mode"))
    parents = q_flag(request, "parents")
    raw_mtime = request.query_params.get("mtime")
    try:
        mtime = float(raw_mtime) if raw_mtime else None
    except ValueError:
        raise ProtocolError("EINVAL", f"query mtime={raw_mtime!r}: expected seconds") from None
    if_match = if_match_of(request)
    if not st.stores.exists(name):
        raise ProtocolError("ENOENT", f"no workspace named {name!r}")
    spool = await spool_body(request, st)
    try:
        async with st.stores.use(name) as h:
            created, stat = await h.write(_put, path, spool, mode, parents, if_match, mtime,
                                          author=author_of(request, st, p), op="put")
    finally:
        spool.close()
    return json_response(stat_to_wire(stat, path), 201 if created else 200, {"ETag": f'"{stat.hash}"'})


@api("write")
async def patch_file(request: Request, st: ServerState, p: Principal) -> Response:
    name, path = request.path_params["ws"], wpath(request)
    offset = q_int(request, "offset")
    if offset is None:
        raise ProtocolError("EINVAL", "query offset is required")
    if_match = if_match_of(request)
    data = await read_body(request, st.config.max_patch)

    def job(ws: vfs.Workspace) -> vfs.Stat:
        check_if_match(ws, path, if_match)
        return ws.write_range(path, offset, data)

    async with st.stores.use(name) as h:
        stat = await h.write(job, author=author_of(request, st, p), op="write_range")
    return json_response(stat_to_wire(stat, path), 200, {"ETag": f'"{stat.hash}"'})


@api("write")
async def delete_file(request: Request, st: ServerState, p: Principal) -> Response:
    name, path = request.path_params["ws"], wpath(request)
    recursive, force = q_flag(request, "recursive"), q_flag(request, "force")

    def job(ws: vfs.Workspace) -> int:
        ws.rm(path, recursive=recursive, force=force)
        return ws.rev

    async with st.stores.use(name) as h:
        rev = await h.write(job, author=author_of(request, st, p), op="rm")
    return json_response({"rev": rev})


def _run_op(ws: vfs.Workspace, op: Op) -> tuple[int, vfs.Stat | None]:
    a = op.args
    check_if_match(ws, a.get("path") or a["src"], op.if_match)
    name = op.op
    if name == "mkdir":
        ws.mkdir(a["path"], parents=a["parents"], exist_ok=a["exist_ok"], mode=a["mode"])
    elif name in ("rename", "copy", "link"):
        getattr(ws, name)(a["src"], a["dst"])
    elif name == "symlink":
        ws.symlink(a["target"], a["path"])
    elif name == "chmod":
        ws.chmod(a["path"], a["mode"])
    elif name == "utime":
        ws.utime(a["path"], a["mtime"])
    elif name == "truncate":
        ws.truncate(a["path"], a["size"])
    elif name == "restore":
        ws.restore(a["path"], rev=a["rev"])
    elif name == "rm":
        ws.rm(a["path"], recursive=a["recursive"], force=a["force"])
    else:  # unlink, rmdir
        getattr(ws, name)(a["path"])
    try:
        stat = ws.lstat(a.get("dst") or a["path"])
    except (FileNotFoundError, NotADirectoryError):
        stat = None
    return ws.rev, stat


@api("write")
async def post_op(request: Request, st: ServerState, p: Principal) -> Response:
    name = request.path_params["ws"]
    op = parse_op(await read_json(request, st.config.max_json))
    async with st.stores.use(name) as h:
        rev, stat = await h.write(_run_op, op, author=author_of(request, st, p), op=op.op)
    target = op.args.get("dst") or op.args.get("path")
    return json_response({"rev": rev, "stat": stat_to_wire(stat, target) if stat else None})


# ---------------------------------------------------------------- metadata reads


def _read_route(fn: Callable[[Request], tuple[str, Callable[[vfs.Workspace], Any]]]) -> Handler:
    """A read-only route: `fn` parses the request and returns (op name, job for a reader)."""

    async def handler(request: Request, st: ServerState, p: Principal) -> Response:
        op, job = fn(request)
        async with st.stores.use(request.path_params["ws"]) as h:
            return json_response(await h.read(job, op=op))

    handler.__name__ = fn.__name__
    return handler


@api("read")
@_read_route
def stat_route(request: Request):
    path, follow = wpath(request), q_flag(request, "follow", True)
    return "stat", lambda ws: stat_to_wire(ws.stat(path) if follow else ws.lstat(path), path)


@api("read")
@_read_route
def readdir_route(request: Request):
    path, limit, offset = wpath(request), q_int(request, "limit"), q_int(request, "offset", 0)
    return "readdir", lambda ws: {
        "path": path,
        "entries": [direntry_to_wire(e) for e in ws.readdir(path, limit=limit, offset=offset)],
    }


@api("read")
@_read_route
def find_route(request: Request):
    qp = request.query_params
    path, pattern, kind, limit = qp.get("path", "/"), qp.get("pattern") or None, qp.get("kind") or None, q_int(request, "limit")
    if kind not in (None, "file", "dir", "symlink"):
        raise ProtocolError("EINVAL", f"kind={kind!r}: expected file, dir or symlink")
    return "find", lambda ws: {"paths": ws.find(path, pattern, kind=kind, limit=limit)}


@api("read")
@_read_route
def ls_route(request: Request):
    prefix = request.query_params.get("prefix", "/")
    return "ls", lambda ws: {"paths": ws.ls(prefix)}


@api("read")
@_read_route
def grep_route(request: Request):
    qp = request.query_params
    pattern = qp.get("pattern")
    if not pattern:
        raise ProtocolError("EINVAL", "query pattern is required")
    kwargs = {
        "regex": q_flag(request, "regex"),
        "ignore_case": q_flag(request, "ignore_case"),
        "include": qp.get("include") or None,
        "context": q_int(request, "context", 0, hi=100),
        "limit": q_int(request, "limit"),
    }
    path = qp.get("path", "/")
    return "grep", lambda ws: {"matches": [grepmatch_to_wire(m) for m in ws.grep(pattern, path, **kwargs)]}


@api("read")
@_read_route
def du_route(request: Request):
    path = request.query_params.get("path", "/")
    return "du", lambda ws: {"path": path, "bytes": ws.du(path)}


@api("read")
@_read_route
def history_route(request: Request):
    path = wpath(request)
    return "history", lambda ws: {"path": path, "versions": [version_to_wire(v) for v in ws.history(path)]}


@api("read")
async def entry_route(request: Request, st: ServerState, p: Principal) -> Response:
    path = wpath(request)
    async with st.stores.use(request.path_params["ws"]) as h:
        entry = await h.read(lambda ws: ws.entry(path), op="entry")
    if entry is None:
        raise ProtocolError("ENOENT", f"{path}: never existed", path=path)
    return json_response(change_to_wire(entry))


@api("read")
@_read_route
def changes_route(request: Request):
    qp = request.query_params
    try:
        after = vfs.Cursor.parse(qp.get("after") or None)
    except ValueError as e:
        raise ProtocolError("EINVAL", str(e)) from None
    prefix, ignore = qp.get("prefix", "/"), qp.getlist("ignore")
    limit = q_int(request, "limit", CHANGES_LIMIT, lo=1, hi=CHANGES_MAX)

    def job(ws: vfs.Workspace) -> dict[str, Any]:
        page = ws.changes_page(after, prefix=prefix, ignore=ignore, limit=limit)
        return {"entries": [change_to_wire(c) for c in page.entries], "cursor": str(page.cursor), "more": page.more}

    return "changes", job


# ---------------------------------------------------------------- objects, push, gc


def _hash_list(body: Any) -> list[str]:
    if not isinstance(body, dict):
        raise ProtocolError(EBADMSG, "body must be a JSON object")
    return _Fields(body).hashes("hashes")


@api("read")
async def objects_has(request: Request, st: ServerState, p: Principal) -> Response:
    hashes = _hash_list(await read_json(request, st.config.max_json))
    async with st.stores.use(request.path_params["ws"]) as h:
        present = await h.read(lambda ws: ws.has_objects(hashes), op="has")
    return json_response({"missing": [x for x in dict.fromkeys(hashes) if x not in present]})


_HASH_RE = re.compile(r"[0-9a-f]{64}")


@api("write")
async def objects_put(request: Request, st: ServerState, p: Principal) -> Response:
    digest = request.path_params["hash"]
    if not _HASH_RE.fullmatch(digest):
        raise ProtocolError("EINVAL", f"{digest!r} is not a 64-char lowercase hex BLAKE3 hash")
    data = await read_body(request, MAX_CHUNK_PAYLOAD, code=EMSGSIZE)
    async with st.stores.use(request.path_params["ws"]) as h:
        await h.write(lambda ws: ws.put_object(data, expected_hash=digest), op="put_object")
    return json_response({"hash": digest}, 201)


@api("read")
async def objects_get(request: Request, st: ServerState, p: Principal) -> Response:
    digest = request.path_params["hash"]
    if not _HASH_RE.fullmatch(digest):
        raise ProtocolError("EINVAL", f"{digest!r} is not a 64-char lowercase hex BLAKE3 hash")
    async with st.stores.use(request.path_params["ws"]) as h:
        found = await h.read(lambda ws: dict(ws.read_objects([digest])), op="get_object")
    if digest not in found:
        raise ProtocolError("ENOENT", f"no object {digest}")
    return Response(found[digest], media_type="application/octet-stream", headers={"ETag": f'"{digest}"'})


@api("write")
async def push_route(request: Request, st: ServerState, p: Principal) -> Response:
    body = await read_json(request, st.config.max_json)
    if not isinstance(body, dict):
        raise ProtocolError(EBADMSG, "body must be a JSON object")
    raw = body.get("changes")
    if not isinstance(raw, list) or len(raw) > MAX_PUSH_ENTRIES:
        raise ProtocolError("EPROTO", f"field 'changes': a list of at most {MAX_PUSH_ENTRIES} entries", field="changes")
    changes = [change_from_wire(c) for c in raw]
    base = parse_base(body.get("base"))
    async with st.stores.use(request.path_params["ws"]) as h:
        result = await h.write(lambda ws: ws.apply_changes(changes, base=base),
                               author=author_of(request, st, p), op="push")
    return json_response(apply_result_to_wire(result))


@api("write")
async def gc_route(request: Request, st: ServerState, p: Principal) -> Response:
    async with st.stores.use(request.path_params["ws"]) as h:
        stats = await h.write(lambda ws: ws.gc(), op="gc")
    return json_response(gcstats_to_wire(stats))


W = "/api/workspaces/{ws}"

routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/api/whoami", whoami, methods=["GET"]),
    Route("/api/workspaces", list_workspaces, methods=["GET"]),
    Route("/api/tokens", list_tokens, methods=["GET"]),
    Route("/api/tokens", create_token, methods=["POST"]),
    Route("/api/tokens/{id}", delete_token, methods=["DELETE"]),
    Route(W, get_workspace, methods=["GET"]),
    Route(W, put_workspace, methods=["PUT"]),
    Route(W, delete_workspace, methods=["DELETE"]),
    Route(W + "/files", get_file, methods=["GET"]),
    Route(W + "/files/{path:path}", get_file, methods=["GET"]),
    Route(W + "/files/{path:path}", put_file, methods=["PUT"]),
    Route(W + "/files/{path:path}", patch_file, methods=["PATCH"]),
    Route(W + "/files/{path:path}", delete_file, methods=["DELETE"]),
    Route(W + "/ops", post_op, methods=["POST"]),
    Route(W + "/stat", stat_route, methods=["GET"]),
    Route(W + "/stat/{path:path}", stat_route, methods=["GET"]),
    Route(W + "/readdir", readdir_route, methods=["GET"]),
    Route(W + "/readdir/{path:path}", readdir_route, methods=["GET"]),
    Route(W + "/find", find_route, methods=["GET"]),
    Route(W + "/ls", ls_route, methods=["GET"]),
    Route(W + "/grep", grep_route, methods=["GET"]),
    Route(W + "/du", du_route, methods=["GET"]),
    Route(W + "/history/{path:path}", history_route, methods=["GET"]),
    Route(W + "/entry", entry_route, methods=["GET"]),
    Route(W + "/entry/{path:path}", entry_route, methods=["GET"]),
    Route(W + "/changes", changes_route, methods=["GET"]),
    Route(W + "/objects/has", objects_has, methods=["POST"]),
    Route(W + "/objects/{hash}", objects_put, methods=["PUT"]),
    Route(W + "/objects/{hash}", objects_get, methods=["GET"]),
    Route(W + "/push", push_route, methods=["POST"]),
    Route(W + "/gc", gc_route, methods=["POST"]),
]
