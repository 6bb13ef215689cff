"""Read-only metadata queries: stat, readdir, find, ls, grep, du, history.

Each route parses its request into a job for a reader Workspace
(`read_route`), so it runs in the reader pool beside the writer.
"""

from __future__ import annotations

from starlette.requests import Request

from vfs.wire import ProtocolError, direntry_to_wire, grepmatch_to_wire, stat_to_wire, version_to_wire
from vfs.wire.http import parse_glob_query, parse_grep_query

from server.http_base import Job, api, q_flag, q_int, read_route, wpath


@api("read")
@read_route
def stat_route(request: Request) -> tuple[str, Job]:
    path, follow = wpath(request), q_flag(request, "follow", True)
    return "stat", lambda ws: stat_to_wire(ws.stat(path) if follow else ws.lstat(path), path)


@api("read")
@read_route
def readdir_route(request: Request) -> tuple[str, Job]:
    path, limit, offset = wpath(request), q_int(request, "limit"), q_int(request, "offset", 0)
    return "readdir", lambda ws: {
        "path": path,
        "entries": [direntry_to_wire(e) for e in ws.readdir(path, limit=limit, offset=offset)],
    }


FIND_KINDS = ("file", "dir", "symlink", "fifo", "socket", "char", "block")


@api("read")
@read_route
def find_route(request: Request) -> tuple[str, Job]:
    qp = request.query_params
    path, kind, limit = qp.get("path", "/"), qp.get("kind") or None, q_int(request, "limit")
    pattern = parse_glob_query("pattern", qp.get("pattern"))
    if kind not in (None, *FIND_KINDS):
        raise ProtocolError("EINVAL", f"kind={kind!r}: expected one of {', '.join(FIND_KINDS)}")
    return "find", lambda ws: {"paths": ws.find(path, pattern, kind=kind, limit=limit)}


@api("read")
@read_route
def ls_route(request: Request) -> tuple[str, Job]:
    prefix = request.query_params.get("prefix", "/")
    return "ls", lambda ws: {"paths": ws.ls(prefix)}


@api("read")
@read_route
def grep_route(request: Request) -> tuple[str, Job]:
    q = parse_grep_query(request.query_params)
    return "grep", lambda ws: {"matches": [grepmatch_to_wire(m) for m in ws.grep(q.pattern, q.path, **q.kwargs)]}


@api("read")
@read_route
def du_route(request: Request) -> tuple[str, Job]:
    path = request.query_params.get("path", "/")
    return "du", lambda ws: {"path": path, "bytes": ws.du(path)}


@api("read")
@read_route
def history_route(request: Request) -> tuple[str, Job]:
    path = wpath(request)
    return "history", lambda ws: {"path": path, "versions": [version_to_wire(v) for v in ws.history(path)]}
