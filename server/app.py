"""`create_app`: the Starlette application of one data dir."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import logging
import os
from pathlib import Path
from typing import Any, AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import vfs
from vfs.wire import error_body
from vfs.wire.routes import WEBSOCKET

from server.auth import ensure_admin, ensure_demo_token
from server.background import start_background
from server.fastroutes import WsfsApp
from server.http_api import routes
from server.http_base import json_response
from server.seed import seed
from server.state import ServerConfig, ServerState, log
from server.store_options import StoreOptions
from server.ws_api import going_away, ws_endpoint



class HttpMetrics:
    """Pure ASGI middleware counting requests by method and status (no body buffering)."""

    def __init__(self, app: ASGIApp, state: ServerState):
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            self.state.metrics.http_requests.labels(scope["method"], str(status)).inc()


class RawSend:
    """Pure ASGI middleware keeping a WebSocket's server-level `send` in its scope (`wsfs.send`).

    A session sends through it directly (Starlette's per-message wrapper only
    tracks HTTP response state), and with uvicorn it can ask whether the
    socket is writable, which the live fan-out (`server/fanout.py`) needs.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope["wsfs.send"] = send
        await self.app(scope, receive, send)


class QuietBadUtf8(logging.Filter):
    """uvicorn answers a text frame that is not UTF-8 correctly (close 1007) but logs it as an ERROR with a
    traceback: a client's mistake, not the server's. This filter (on `uvicorn.error`) makes it one line."""

    MESSAGE = "Invalid UTF-8 sequence received from client."

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == self.MESSAGE:
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg = "closed a WebSocket with 1007: a text frame was not valid UTF-8"
            record.exc_info, record.exc_text = None, None
        return True


def _install_log_filters() -> None:
    uvicorn_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, QuietBadUtf8) for f in uvicorn_log.filters):
        uvicorn_log.addFilter(QuietBadUtf8())


async def _not_found(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "ENOENT", 405: "EINVAL"}.get(exc.status_code, "EINVAL")
    return json_response(error_body(code, f"{request.method} {request.url.path}: {exc.detail}"), exc.status_code)


def _static_dir() -> str | None:
    """The browser demo's files (`web_demo` package), whatever is there."""
    try:
        root = importlib.resources.files("web_demo")
    except ModuleNotFoundError:
        return None
    path = Path(str(root))
    return str(path) if path.is_dir() else None


def init_data_dir(state: ServerState) -> tuple[str | None, str]:
    """First-start set-up: admin token (secret returned once) and the demo token."""
    admin = ensure_admin(state.tokens)
    demo = ensure_demo_token(state.tokens, state.data_dir, state.config.demo_workspace)
    return admin, demo


def create_app(
    data_dir: str | os.PathLike[str],
    *,
    max_upload: int | None = None,
    max_json: int | None = None,
    max_big_uploads: int | None = None,
    readers: int = 2,
    writers: int = 4,
    idle_close: float = 60.0,
    history_keep: int = 20,
    history_days: float = 7.0,
    seed_demo: bool = True,
    max_file_size: int | None = None,
    quota: int | None = None,
    config: ServerConfig | None = None,
    cluster: Any = None,
) -> Starlette:
    """The wsfs Starlette app serving every workspace under `data_dir`.

    It creates the data dir, the `demo` workspace and the demo token on
    startup, and seeds a never-written `demo` with a few example files
    (`server/seed.py`; `seed_demo=False` leaves it empty). `max_file_size`
    (bytes, 413 EFBIG past it) and `quota` (bytes per workspace, 507 EDQUOT)
    are checked before any work. `max_big_uploads`: PUTs of 8 MiB or more stored at
    once (16; one more is answered 503 with Retry-After). `cluster` (a `server.cluster.serve.ClusterSetup`, from
    `wsfs serve --cluster`) makes it a cluster node: its hub, tokens, placement and proxy. Run it with
    uvicorn (`ws="websockets-sansio"`, `ws_per_message_deflate=False`); `server.runner.serve` does that and adds
    the graceful 1001 shutdown. `app.state.wsfs` is the `ServerState`.
    """
    if config is None:
        config = ServerConfig(
            data_dir=Path(data_dir),
            store=StoreOptions(readers=readers, writers=writers, idle_close=idle_close,
                               history_keep=history_keep, history_days=history_days, quota=quota),
            seed_demo=seed_demo,
        )
        if max_upload is not None:
            config.max_upload = max_upload
        if max_json is not None:
            config.max_json = max_json
        if max_big_uploads is not None:
            config.max_big_uploads = max_big_uploads
        if max_file_size is not None:
            config.store.max_file_size = max_file_size
    if cluster is None:
        state = ServerState(config)
    else:
        state = ServerState(config, hub=cluster.hub, placement=cluster.placement, tokens=cluster.tokens,
                            node=cluster.node.node)
        state.cluster = cluster
    init_data_dir(state)
    _install_log_filters()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        if cluster is not None:
            await cluster.start(state)
        try:
            await _open_demo(state)
        except Exception:
            if cluster is None:
                raise
            log.warning("demo workspace not opened here at start (another node owns it?)", exc_info=True)
        background = start_background(state)
        try:
            yield {}
        finally:
            for task in background:
                task.cancel()
            await shutdown(state)
            if cluster is not None:
                await cluster.stop()

    all_routes: list[Any] = [*routes, WebSocketRoute(WEBSOCKET, ws_endpoint)]
    static = _static_dir()
    if static is not None:
        all_routes.append(Mount("/", app=StaticFiles(directory=static, html=True), name="web_demo"))
    app = WsfsApp(routes=all_routes, lifespan=lifespan, exception_handlers={HTTPException: _not_found})
    app.state.wsfs = state
    app.serve_directly(routes, state.metrics.http_requests)  # server/fastroutes.py
    app.direct_first = cluster is None  # a cluster node's proxy routes first, then calls `app.dispatch`
    app.add_middleware(HttpMetrics, state=state)
    app.add_middleware(RawSend)
    if cluster is not None:
        from server.cluster.proxy import ClusterProxy

        app.add_middleware(ClusterProxy, node=cluster.node, setup=cluster)  # outermost: route first
    return app


async def _open_demo(state: ServerState) -> None:
    """Create the demo workspace, and seed it if it was never written."""
    config = state.config
    if state.cluster is not None and await state.cluster.owned_elsewhere(config.demo_workspace):
        return
    await state.stores.create(config.demo_workspace)
    if config.seed_demo:
        handle = await state.stores.get(config.demo_workspace)
        try:
            await handle.write(seed, author="wsfs", op="seed")
        except vfs.StoreBusy as exc:  # a local `wsfs mount` holds it: serve it read-only meanwhile
            log.warning("not seeding %s: %s (writes to it get 409 EBUSY until it is unmounted)",
                        config.demo_workspace, exc.strerror)


async def begin_shutdown(state: ServerState) -> None:
    """First step of a graceful stop: refuse new writes and tell WebSocket clients (1001)."""
    state.stopping = True
    try:
        await going_away(state)
    except asyncio.TimeoutError:
        log.warning("some WebSocket clients did not acknowledge the close")


async def shutdown(state: ServerState) -> None:
    """Last step (lifespan end): finish every queued write, then close the stores."""
    if not state.stopping:
        await begin_shutdown(state)
    await state.stores.close_all()
    state.tokens.close()
