"""What a replica syncs with: the change stream, entries, content objects, push, gc.

`GET .../changes` pages the change log by cursor; objects are chunks by
hash (`has`, `get`, `put`); `POST .../push` applies another store's entries
as one revision, reporting conflicts instead of overwriting.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

import vfs
from vfs.wire import (
    EMSGSIZE,
    GC_GRACE,
    MAX_GC_GRACE,
    MAX_CHUNK_PAYLOAD,
    ProtocolError,
    apply_result_to_wire,
    change_to_wire,
    gcstats_to_wire,
)
from vfs.wire.http import check_object_hash, parse_changes_query, parse_hashes, parse_push

from server.auth import Principal
from server.http_base import api, author_of, json_response, q_int, read_body, read_json, wpath
from server.state import ServerState
from server.store_options import check_push

CHANGES_LIMIT, CHANGES_MAX = 1000, 10000

# ---------------------------------------------------------------- the change stream


@api("read")
async def entry_route(request: Request, st: ServerState, p: Principal) -> Response:
    path = wpath(request)
    async with st.stores.use(request.path_params["ws"]) as h:
        entry = await h.read(lambda ws: ws.entry(path), op="entry")
    if entry is None:
        raise ProtocolError("ENOENT", f"{path}: never existed", path=path)
    return json_response(change_to_wire(entry))


@api("read")
async def changes_route(request: Request, st: ServerState, p: Principal) -> Response:
    """One page of the change stream; answered once every revision it tells of may be shown
    (`WorkspaceHandle.until_durable`); 410 for a cursor this store never gave out."""
    qp = request.query_params
    after, ignore = parse_changes_query(qp.get("after"), qp.getlist("ignore"))
    prefix = qp.get("prefix", "/")
    limit = q_int(request, "limit", CHANGES_LIMIT, lo=1, hi=CHANGES_MAX)

    def job(ws: vfs.Workspace) -> tuple[dict[str, Any], int]:
        page = ws.changes_page(after, prefix=prefix, ignore=ignore, limit=limit)
        if after.rev > ws.rev:
            raise vfs.CursorTooOld(after, 0)
        newest = max([page.cursor.rev, *(c.rev for c in page.entries)])
        return {"entries": [change_to_wire(c) for c in page.entries], "cursor": str(page.cursor),
                "more": page.more}, newest

    async with st.stores.use(request.path_params["ws"]) as h:
        body, newest = await h.read(job, op="changes")
        await h.until_durable(newest)
    return json_response(body)


# ---------------------------------------------------------------- objects


@api("read")
async def objects_has(request: Request, st: ServerState, p: Principal) -> Response:
    hashes = parse_hashes(await read_json(request, st.config.max_json))
    async with st.stores.use(request.path_params["ws"]) as h:
        present = await h.read(lambda ws: ws.has_objects(hashes), op="has")
    return json_response({"missing": [x for x in dict.fromkeys(hashes) if x not in present]})


@api("write")
async def objects_put(request: Request, st: ServerState, p: Principal) -> Response:
    digest = check_object_hash(request.path_params["hash"])
    data = await read_body(request, MAX_CHUNK_PAYLOAD, code=EMSGSIZE)
    async with st.stores.use(request.path_params["ws"]) as h:
        await h.write(lambda ws: ws.put_object(data, expected_hash=digest), op="put_object")
    return json_response({"hash": digest}, 201)


@api("read")
async def objects_get(request: Request, st: ServerState, p: Principal) -> Response:
    digest = check_object_hash(request.path_params["hash"])
    async with st.stores.use(request.path_params["ws"]) as h:
        found = await h.read(lambda ws: dict(ws.read_objects([digest])), op="get_object")
    if digest not in found:
        raise ProtocolError("ENOENT", f"no object {digest}")
    return Response(found[digest], media_type="application/octet-stream", headers={"ETag": f'"{digest}"'})


# ---------------------------------------------------------------- push, gc


@api("write")
async def push_route(request: Request, st: ServerState, p: Principal) -> Response:
    changes, base = parse_push(await read_json(request, st.config.max_json))
    check_quota = check_push(st.stores.options, changes)

    def job(ws: vfs.Workspace) -> vfs.ApplyResult:
        check_quota(ws)
        return ws.apply_changes(changes, base=base)

    async with st.stores.use(request.path_params["ws"]) as h:
        result = await h.write(job, author=author_of(request, st, p), op="push")
    return json_response(apply_result_to_wire(result))


@api("write")
async def gc_route(request: Request, st: ServerState, p: Principal) -> Response:
    """Collect what nothing names. Chunks stored in the last `?grace=` seconds (default
    `GC_GRACE`) stay: they may belong to a big PUT still arriving or to an upload whose
    push has not come yet; `?grace=0` collects them too, for a caller that knows."""
    grace = q_int(request, "grace", GC_GRACE, lo=0, hi=MAX_GC_GRACE)
    async with st.stores.use(request.path_params["ws"]) as h:
        stats = await h.write(lambda ws: ws.gc(grace=grace), op="gc")
    return json_response(gcstats_to_wire(stats))
