"""The server and its workspaces: health, metrics, who am I, workspaces, tokens."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

import vfs
from vfs.wire import CLOSE_POLICY, CLOSE_WORKSPACE_GONE, ESHUTDOWN, SUPPORTED_VERSIONS, ProtocolError, error_body
from vfs.wire.http import parse_token_grant, parse_token_name

from server.auth import Principal
from server.http_base import api, json_response, read_json, state_of
from server.state import ServerState, __version__

# ---------------------------------------------------------------- the server


async def healthz(request: Request) -> Response:
    st = state_of(request)
    body: dict[str, Any] = {"ok": not st.stopping, "version": __version__, "protocol": list(SUPPORTED_VERSIONS)}
    if st.cluster is not None:  # cluster mode: which node this is and what it owns
        body |= {"node": st.node, "advertise": st.cluster.node.advertise, "owns": st.cluster.owned()}
    if st.stopping:
        return json_response({**error_body(ESHUTDOWN, "server is shutting down"), **body}, 503)
    return json_response(body)


@api("admin")
async def metrics(request: Request, st: ServerState, p: Principal) -> Response:
    st.metrics.subscriptions.set(sum(len(c.subs) for c in st.sessions.values()))
    if st.cluster is not None:
        st.metrics.cluster_owned.set(len(st.cluster.owned()))
        st.metrics.cluster_proxied.set(st.cluster.proxy.proxied if st.cluster.proxy is not None else 0)
        chunks = st.cluster.chunk_stats()
        if chunks is not None:
            st.metrics.chunk_objects.counts, st.metrics.chunk_objects.cache_bytes = chunks
    return Response(st.metrics.render(), media_type=st.metrics.content_type)


@api(None)
async def whoami(request: Request, st: ServerState, p: Principal) -> Response:
    return json_response(p.to_wire())


# ---------------------------------------------------------------- workspaces


@api(None)
async def list_workspaces(request: Request, st: ServerState, p: Principal) -> Response:
    names = st.stores.names()
    if st.cluster is not None:  # every node's workspaces, not only the stores on this disk
        names = sorted(set(names) | await st.cluster.workspace_names())
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
    name = request.path_params["ws"]
    if not st.stores.exists(name):
        raise ProtocolError("ENOENT", f"no workspace named {name!r}")
    await st.stores.delete(name, on_delete=lambda: st.hub.close_sessions(name, CLOSE_WORKSPACE_GONE, "workspace deleted"))
    st.tokens.revoke_workspace(name)
    if st.cluster is not None:
        await st.cluster.forget(name)
    return Response(status_code=204)


# ---------------------------------------------------------------- tokens


@api("admin")
async def list_tokens(request: Request, st: ServerState, p: Principal) -> Response:
    return json_response({"tokens": st.tokens.list()})


@api("admin")
async def create_token(request: Request, st: ServerState, p: Principal) -> Response:
    body = await read_json(request, st.config.max_json)
    workspace, scope = parse_token_grant(body)
    if not st.stores.exists(workspace) and (
            st.cluster is None or workspace not in await st.cluster.workspace_names()):
        raise ProtocolError("ENOENT", f"no workspace named {workspace!r}")
    principal, secret = st.tokens.create(workspace, scope, parse_token_name(body))
    listed = next(t for t in st.tokens.list() if t["id"] == principal.id)
    return json_response({**listed, "token": secret}, 201)


@api("admin")
async def delete_token(request: Request, st: ServerState, p: Principal) -> Response:
    tid = request.path_params["id"]
    if not st.tokens.revoke(tid):
        raise ProtocolError("ENOENT", f"no token with id {tid!r}")
    st.hub.close_sessions(None, CLOSE_POLICY, "token revoked", token_id=tid)
    return Response(status_code=204)
