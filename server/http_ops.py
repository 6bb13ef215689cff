"""`POST .../ops`: one metadata operation per request, dispatched by name.

The wire declares each op's fields (`vfs.wire.http.OPS`); `OP_HANDLERS` says
which store call each op is. The two tables must name the same ops, which is
checked when this module is imported, so an op cannot be accepted by the
parser and then missing here (or the reverse).
"""

from __future__ import annotations

from typing import Any, Callable

from starlette.requests import Request
from starlette.responses import Response

import vfs
from vfs.wire import stat_to_wire
from vfs.wire.http import OPS, Op, parse_op

from server.auth import Principal
from server.http_base import api, author_of, check_if_match, json_response, read_json
from server.state import ServerState
from server.store_options import StoreOptions, file_size_at

OpHandler = Callable[[vfs.Workspace, dict[str, Any]], object]

OP_HANDLERS: dict[str, OpHandler] = {
    # op -> the store call, given the op's validated fields
    "mkdir": lambda ws, a: ws.mkdir(a["path"], parents=a["parents"], exist_ok=a["exist_ok"], mode=a["mode"]),
    "rename": lambda ws, a: ws.rename(a["src"], a["dst"]),
    "copy": lambda ws, a: ws.copy(a["src"], a["dst"]),
    "symlink": lambda ws, a: ws.symlink(a["target"], a["path"]),
    "link": lambda ws, a: ws.link(a["src"], a["dst"]),
    "chmod": lambda ws, a: ws.chmod(a["path"], a["mode"]),
    "utime": lambda ws, a: ws.utime(a["path"], a["mtime"]),
    "truncate": lambda ws, a: ws.truncate(a["path"], a["size"]),
    "restore": lambda ws, a: ws.restore(a["path"], rev=a["rev"]),
    "rm": lambda ws, a: ws.rm(a["path"], recursive=a["recursive"], force=a["force"]),
    "unlink": lambda ws, a: ws.unlink(a["path"]),
    "rmdir": lambda ws, a: ws.rmdir(a["path"]),
}


def _check_tables() -> None:
    """Every op the wire accepts has a handler here, and nothing else does."""
    if set(OP_HANDLERS) != set(OPS):
        raise RuntimeError(f"server ops {sorted(OP_HANDLERS)} differ from the wire's {sorted(OPS)}")


_check_tables()


OP_GROWTH: dict[str, Callable[[vfs.Workspace, dict[str, Any]], int]] = {
    # op -> how many bytes it adds to the workspace (`du /`); the others add none worth counting
    "truncate": lambda ws, a: a["size"] - file_size_at(ws, a["path"]),
    "copy": lambda ws, a: _tree_size(ws, a["src"]) - file_size_at(ws, a["dst"]),
    "restore": lambda ws, a: _version_size(ws, a["path"], a["rev"]) - file_size_at(ws, a["path"]),
}


def _tree_size(ws: vfs.Workspace, path: str) -> int:
    try:
        return ws.du(path)
    except (OSError, ValueError):
        return 0  # the op itself reports the bad path


def _version_size(ws: vfs.Workspace, path: str, rev: int) -> int:
    try:
        return next((v.size for v in ws.history(path) if v.rev == rev), 0)
    except (OSError, ValueError):
        return 0


def check_limits(options: StoreOptions, op: Op) -> None:
    """What can be refused before any work: a truncate past the maximum file size."""
    if op.op == "truncate":
        options.check_file_size(op.args["size"], "size")


# ops whose store call returns the `Stat` an lstat of `result_path` would read next: neither follows a
# final symlink (chmod, utime, truncate and copy do: their Stat is the target's, not the link's)
STAT_RETURNED = frozenset({"mkdir", "link"})


def _run_op(ws: vfs.Workspace, op: Op, options: StoreOptions) -> tuple[int, vfs.Stat | None]:
    """One op in the writer's hop: its precondition, the quota, the call, then the stat of what it left
    (the call's own where it is that: one lookup less)."""
    check_if_match(ws, op.subject, op.if_match)
    growth = OP_GROWTH.get(op.op)
    if growth is not None:
        options.check_growth(ws, lambda ws: growth(ws, op.args))
    result = OP_HANDLERS[op.op](ws, op.args)
    if op.op in STAT_RETURNED and isinstance(result, vfs.Stat):
        return ws.rev, result
    try:
        stat = ws.lstat(op.result_path)
    except (FileNotFoundError, NotADirectoryError):
        stat = None
    return ws.rev, stat


@api("write")
async def post_op(request: Request, st: ServerState, p: Principal) -> Response:
    name = request.path_params["ws"]
    op = parse_op(await read_json(request, st.config.max_json))
    check_limits(st.stores.options, op)
    async with st.stores.use(name) as h:
        rev, stat = await h.write(_run_op, op, st.stores.options, author=author_of(request, st, p), op=op.op)
    return json_response({"rev": rev, "stat": stat_to_wire(stat, op.result_path) if stat else None})
