"""Every HTTP route and the WebSocket path, declared once.

The server mounts its handlers on these templates and the clients build
their URLs from them, so a path cannot be spelled two ways.

Template syntax (the one Starlette mounts directly): `{name}` is one path
segment, percent-encoded whole (`/` included); `{path:path}` is a workspace
path, the rest of the URL: each of its segments percent-encoded, empty ones
dropped, so the root `/` gives an empty tail (`.../files/`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

# ---------------------------------------------------------------- path templates

HEALTHZ = "/healthz"
METRICS = "/metrics"
WHOAMI = "/api/whoami"
WORKSPACES = "/api/workspaces"
TOKENS = "/api/tokens"
TOKEN = "/api/tokens/{id}"
WORKSPACE = "/api/workspaces/{ws}"
FILES = WORKSPACE + "/files/{path:path}"
OPS = WORKSPACE + "/ops"
STAT = WORKSPACE + "/stat/{path:path}"
READDIR = WORKSPACE + "/readdir/{path:path}"
FIND = WORKSPACE + "/find"
LS = WORKSPACE + "/ls"
GREP = WORKSPACE + "/grep"
DU = WORKSPACE + "/du"
HISTORY = WORKSPACE + "/history/{path:path}"
ENTRY = WORKSPACE + "/entry/{path:path}"
CHANGES = WORKSPACE + "/changes"
OBJECTS_HAS = WORKSPACE + "/objects/has"
OBJECT = WORKSPACE + "/objects/{hash}"
PUSH = WORKSPACE + "/push"
GC = WORKSPACE + "/gc"
WEBSOCKET = WORKSPACE + "/ws"

_PATH_TAIL = "/{path:path}"


@dataclass(frozen=True, slots=True)
class Route:
    """One HTTP endpoint: a method on a template, served by the handler called `name`.

    `at_root`: the endpoint also answers at the template without its
    `/{path:path}` tail (`GET .../files` lists the workspace root).
    """

    name: str
    method: str
    template: str
    at_root: bool = False

    def templates(self) -> tuple[str, ...]:
        """The templates to mount, the bare root form first."""
        if self.at_root:
            return (self.template.removesuffix(_PATH_TAIL), self.template)
        return (self.template,)


ROUTES: tuple[Route, ...] = (
    Route("healthz", "GET", HEALTHZ),
    Route("metrics", "GET", METRICS),
    Route("whoami", "GET", WHOAMI),
    Route("list_workspaces", "GET", WORKSPACES),
    Route("list_tokens", "GET", TOKENS),
    Route("create_token", "POST", TOKENS),
    Route("delete_token", "DELETE", TOKEN),
    Route("get_workspace", "GET", WORKSPACE),
    Route("put_workspace", "PUT", WORKSPACE),
    Route("delete_workspace", "DELETE", WORKSPACE),
    Route("get_file", "GET", FILES, at_root=True),
    Route("put_file", "PUT", FILES),
    Route("patch_file", "PATCH", FILES),
    Route("delete_file", "DELETE", FILES),
    Route("post_op", "POST", OPS),
    Route("stat", "GET", STAT, at_root=True),
    Route("readdir", "GET", READDIR, at_root=True),
    Route("find", "GET", FIND),
    Route("ls", "GET", LS),
    Route("grep", "GET", GREP),
    Route("du", "GET", DU),
    Route("history", "GET", HISTORY),
    Route("entry", "GET", ENTRY, at_root=True),
    Route("changes", "GET", CHANGES),
    Route("objects_has", "POST", OBJECTS_HAS),
    Route("put_object", "PUT", OBJECT),
    Route("get_object", "GET", OBJECT),
    Route("push", "POST", PUSH),
    Route("gc", "POST", GC),
)
"""Every HTTP endpoint, in the order the server matches them. The WebSocket
endpoint is `WEBSOCKET` (`GET` with an upgrade)."""


# ---------------------------------------------------------------- building paths

_PARAM = re.compile(r"\{(\w+)(:path)?\}")


def quote_segment(text: str) -> str:
    """One path segment, percent-encoded whole (`a/b c` -> `a%2Fb%20c`)."""
    return quote(text, safe="")


def quote_path(path: str) -> str:
    """A workspace path as a URL tail: `/notes/a b.md` -> `notes/a%20b.md` (each segment
    percent-encoded, empty segments dropped). Normalising it first is the caller's job."""
    return "/".join(quote(seg, safe="") for seg in path.split("/") if seg)


def build(template: str, **params: str) -> str:
    """The path of `template` with its parameters filled in.

    `build(FILES, ws="demo", path="/a b")` -> `/api/workspaces/demo/files/a%20b`.
    """

    def fill(m: re.Match[str]) -> str:
        value = params[m.group(1)]
        return quote_path(value) if m.group(2) else quote_segment(value)

    return _PARAM.sub(fill, template)

