"""The HTTP API: every route of the wire's table (`vfs.wire.routes`) mounted on its handler.

The handlers live by what they serve: `http_admin` (health, workspaces,
tokens), `http_files` (file content), `http_ops` (`POST .../ops`),
`http_queries` (metadata reads) and `http_sync` (changes, objects, push, gc);
`http_base` holds what they share. `HANDLERS` names each handler after its
wire route; the two must match, which is checked when this module is imported.
"""

from __future__ import annotations

from starlette.routing import Route

from vfs.wire.routes import ROUTES

from server import http_admin, http_files, http_ops, http_queries, http_sync
from server.http_base import Endpoint

HANDLERS: dict[str, Endpoint] = {
    "healthz": http_admin.healthz,
    "metrics": http_admin.metrics,
    "whoami": http_admin.whoami,
    "list_workspaces": http_admin.list_workspaces,
    "list_tokens": http_admin.list_tokens,
    "create_token": http_admin.create_token,
    "delete_token": http_admin.delete_token,
    "get_workspace": http_admin.get_workspace,
    "put_workspace": http_admin.put_workspace,
    "delete_workspace": http_admin.delete_workspace,
    "get_file": http_files.get_file,
    "put_file": http_files.put_file,
    "patch_file": http_files.patch_file,
    "delete_file": http_files.delete_file,
    "post_op": http_ops.post_op,
    "stat": http_queries.stat_route,
    "readdir": http_queries.readdir_route,
    "find": http_queries.find_route,
    "ls": http_queries.ls_route,
    "grep": http_queries.grep_route,
    "du": http_queries.du_route,
    "history": http_queries.history_route,
    "entry": http_sync.entry_route,
    "changes": http_sync.changes_route,
    "objects_has": http_sync.objects_has,
    "put_object": http_sync.objects_put,
    "get_object": http_sync.objects_get,
    "push": http_sync.push_route,
    "gc": http_sync.gc_route,
}


def _mount() -> list[Route]:
    """One Starlette route per template of every wire route, in the wire's order."""
    names = [r.name for r in ROUTES]
    if sorted(names) != sorted(HANDLERS):
        raise RuntimeError(f"server handlers {sorted(HANDLERS)} differ from the wire's routes {sorted(names)}")
    return [Route(template, HANDLERS[r.name], methods=[r.method]) for r in ROUTES for template in r.templates()]


routes = _mount()

__all__ = ["HANDLERS", "routes"]
