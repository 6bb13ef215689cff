"""The API's HTTP requests without Starlette's middleware stack: `WsfsApp`.

A small write's request used to pass eight ASGI layers before its handler
(uvicorn's proxy headers, `FdGuard`, Starlette's `ServerErrorMiddleware`,
`RawSend`, `HttpMetrics` with a `send` wrapper, `ExceptionMiddleware`, the
router's linear walk over ~35 routes building a child scope for each
candidate, `request_response` with its exception wrapper) and its reply the
same layers back: a profile at 1,000 workspaces x 1 write/s put a sixth of
the server's samples there. Every API handler is wrapped by
`http_base.api`, which already turns any exception into its JSON error, so
those layers add nothing to it. `WsfsApp` matches the wire's routes itself
(by method, in the router's order, with the router's own compiled patterns
and converters), calls the handler, sends its response and counts it in
`wsfs_http_requests`. Under uvicorn's h11 and httptools protocols (both
write the head, then the body, each with its own `transport.write`, through
a `RequestResponseCycle` holding `transport`) a plain response's head and
body leave in one write (`Corked`). Anything else (the WebSocket, the static demo, a path
no API route matches: 404/405) goes through the full stack as before. On a
cluster node (`direct_first = False`) every request enters the stack, whose
outermost middleware, the proxy, must route by ownership first; the requests
it then serves here itself (but a workspace's creation or deletion, which
it wraps) it hands to `dispatch`, skipping the layers below it. Its `send`
is then Starlette's error layer's wrapper, so `__call__` keeps the server's
own `send` in the scope (`wsfs.http_send`) for `Corked` to find the cycle.
"""

from __future__ import annotations

from typing import Any, Callable

from starlette._utils import get_route_path
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

Matcher = tuple[Callable[[str], Any], dict[str, Any], Callable[..., Any]]
_PLAIN_SEND = Response.__call__  # a response sent as a head and one body (not a stream or a file)


def route_table(routes: list[Route]) -> dict[str, list[Matcher]]:
    """method -> [(pattern.match, converters, endpoint)], in the routes' order (the router's first
    full match is the first of these that matches)."""
    table: dict[str, list[Matcher]] = {}
    for route in routes:
        for method in route.methods or ():
            table.setdefault(method, []).append((route.path_regex.match, route.param_convertors, route.endpoint))
    return table


class Corked:
    """A transport that gathers a whole response's writes into one (uvicorn writes the head, the body
    and the end of a response separately: two `send` calls, two TCP segments; one was ~10 % of a
    small write's server CPU). Anything but `write` and `close` is the real transport's."""

    __slots__ = ("real", "parts")

    def __init__(self, real: Any):
        self.real = real
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        if data:
            self.parts.append(data)

    def flush(self) -> None:
        if self.parts:
            self.real.write(b"".join(self.parts))
            self.parts.clear()

    def close(self) -> None:
        self.flush()
        self.real.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


class WsfsApp(Starlette):
    """Starlette, with the API's requests dispatched straight to their handlers (module docstring)."""

    fast: dict[str, list[Matcher]] = {}
    counted: Any = None  # the `wsfs_http_requests` counter (server/metrics.py)
    wsfs_state: Any = None  # `state.wsfs` (the `ServerState`), read once: `http_base.state_of`
    corked = 0  # responses sent head and body in one write (`Corked`)
    direct_first = True  # False on a cluster node: its proxy routes first, then calls `dispatch`

    def serve_directly(self, routes: list[Route], counted: Any) -> None:
        """Dispatch `routes` (handlers that answer every error themselves) without the middleware stack."""
        self.fast = route_table(routes)
        self.counted = counted
        self.wsfs_state = getattr(self.state, "wsfs", None)
        self._children: dict[tuple[str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.direct_first and await self.dispatch(scope, receive, send):
            return
        if scope["type"] == "http":  # the server's own `send`: `dispatch` below the stack corks its cycle
            scope["wsfs.http_send"] = send
        await super().__call__(scope, receive, send)

    async def dispatch(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Serve an HTTP request whose method and path an API route matches, straight to its handler;
        False (nothing sent, nothing received) when none does. A cluster node's proxy calls this for
        the requests it serves itself, after routing them (`server/cluster/proxy.py`)."""
        if scope["type"] == "http" and self.fast:
            candidates = self.fast.get(scope["method"])
            if candidates:
                path = get_route_path(scope)
                for match, convertors, endpoint in candidates:
                    found = match(path)
                    if found is not None:
                        params = {k: convertors[k].convert(v) for k, v in found.groupdict().items()}
                        await self._direct(scope, receive, send, params, endpoint)
                        return True
        return False

    async def _direct(self, scope: Scope, receive: Receive, send: Send, params: dict[str, Any],
                      endpoint: Callable[..., Any]) -> None:
        scope["app"] = self
        scope["path_params"] = params
        scope["endpoint"] = endpoint
        status = 500
        try:
            response = await endpoint(Request(scope, receive, send))
            status = response.status_code
            cycle = getattr(scope.get("wsfs.http_send", send), "__self__", None)  # `send` may be a layer's wrapper
            if type(response).__call__ is _PLAIN_SEND and type(cycle).__name__ == "RequestResponseCycle":
                corked = Corked(cycle.transport)  # uvicorn's h11 or httptools cycle: one write
                cycle.transport = corked
                self.corked += 1
                try:
                    await response(scope, receive, send)
                finally:
                    cycle.transport = corked.real
                    corked.flush()
            else:
                await response(scope, receive, send)
        finally:
            key = (scope["method"], status)
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = self.counted.labels(scope["method"], str(status))
            child.inc()
