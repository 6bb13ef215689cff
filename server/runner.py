"""Run the app on uvicorn with the settings wsfs needs, and a graceful shutdown.

- `ws="websockets-sansio"`: the fastest non-deprecated uvicorn WebSocket
  implementation (the legacy one warns and is ~2x slower);
- `http` and `loop`: httptools and uvloop unless asked otherwise
  (`server/httpstack.py`), never uvicorn's "auto";
- `ws_per_message_deflate=False`: compression would cut chunk transfer from
  GB/s to ~40 MB/s and cost fan-out throughput;
- on SIGTERM/SIGINT, before uvicorn closes connections itself (it would send
  1012), `WsfsServer` closes every WebSocket with 1001 ("going away") and
  lets queued writes finish;
- descriptors: the soft `RLIMIT_NOFILE` is raised to the hard limit at start,
  and near the limit new requests are refused cleanly by `FdGuard` (HTTP 503,
  WebSocket close 1013), logged once per interval, never per attempt.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import signal
import socket
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette

from vfs.wire import TRANSPORT_MAX_FRAME, error_body

from server.app import begin_shutdown
from server.httpstack import http_protocol, server_stack
from server.keepalive import INTERVAL as PING_INTERVAL
from server.keepalive import TIMEOUT as PING_TIMEOUT
from server.keepalive import Keepalive


log = logging.getLogger("wsfs.server")
LOG_EVERY = 10.0  # seconds between two log lines about descriptor exhaustion
CLOSE_TRY_AGAIN_LATER = 1013


def raise_nofile_limit() -> tuple[int, int]:
    """Raise the soft open-file limit to the hard one (each subscriber is a socket); returns (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft, hard


class QuietLog:
    """Counts events and logs at most one line per `every` seconds (with how many were not logged)."""

    def __init__(self, message: str, every: float = LOG_EVERY):
        self.message, self.every = message, every
        self.last = -every
        self.count = 0

    def event(self) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self.last >= self.every:
            log.warning("%s (%d times since the last report)", self.message, self.count)
            self.last, self.count = now, 0


LISTING_SHARE = 20  # FdGuard: seconds between recounts per second a recount took
PER_REQUEST = 8  # FdGuard: descriptors a request may open, at most (a store opening: ~7), for the headroom
FD_DIR = "/proc/self/fd"


def count_fds() -> int:
    """How many descriptors this process has open. Since Linux 6.2 `stat` of /proc/self/fd says it in
    `st_size` (the kernel counts the bits of its descriptor table: ~2 us of CPU at 9,000 descriptors,
    against ~3.8 ms to list the directory); older kernels say 0 there, and the directory is listed
    (~0.4 us per descriptor, one more for the listing's own)."""
    try:
        n = os.stat(FD_DIR).st_size
        return n if n > 0 else len(os.listdir(FD_DIR))
    except OSError:
        return 0


class FdGuard:
    """Pure ASGI middleware: near the open-file limit, new requests get 503 and WebSockets close 1013.

    The count of open descriptors (`count_fds`: one `stat`, ~2 us, on Linux
    6.2 and later) is read at most every `refresh` seconds (longer where
    the kernel makes us list /proc/self/fd and that grows costly), and far
    from the limit only every `max_age` seconds or once the requests
    admitted since could have used the headroom; between recounts it is
    raised by one per request admitted (a burst is counted), so the check
    costs nothing per request. Refusing at `limit - reserve` keeps
    descriptors for the stores and the connections already open: existing
    clients keep working, and `accept()` never meets EMFILE.
    """

    def __init__(self, app: Any, limit: int | None = None, reserve: int | None = None, refresh: float = 0.25,
                 max_age: float = 5.0):
        self.app = app
        self.limit = limit if limit is not None else resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self.reserve = reserve if reserve is not None else max(32, self.limit // 10)
        self.refresh, self.max_age = refresh, max_age
        self._count = self._admitted = 0
        self._at = -refresh
        self._every = refresh
        self.refused = QuietLog(f"near the open-file limit ({self.limit}): refusing new requests "
                                "(503, WebSocket 1013); raise `ulimit -n` (the hard limit)")
        self._body = json.dumps(error_body("EAGAIN", "the server is out of descriptors; retry later")).encode()

    def _pressed(self) -> bool:
        now = time.monotonic()
        self._count += 1
        self._admitted += 1
        # Far from the line a recount is rarely needed: one is due once the requests admitted since
        # could have opened the headroom (each counted as a store opening, `PER_REQUEST`), or
        # `max_age` passed; near the line, every `refresh` seconds as before.
        due = self._count + PER_REQUEST * self._admitted >= self.limit - self.reserve or now - self._at >= self.max_age
        if due and now - self._at >= self._every:
            self._count = count_fds()
            self._admitted = 0
            self._at = time.monotonic()
            # Where /proc/self/fd must be listed (before Linux 6.2: ~0.4 us per descriptor, ~4 ms at
            # 9,000), recount no more often than keeps that under ~5 % of a core under a steady stream.
            self._every = max(self.refresh, (self._at - now) * LISTING_SHARE)
        return self._count >= self.limit - self.reserve

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket") or not self._pressed():
            await self.app(scope, receive, send)
            return
        self.refused.event()
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 503,
                        "headers": [(b"content-type", b"application/json"), (b"retry-after", b"1"),
                                    (b"connection", b"close")]})
            await send({"type": "http.response.body", "body": self._body})
        else:
            await receive()  # websocket.connect
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": CLOSE_TRY_AGAIN_LATER, "reason": "out of descriptors"})


def quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """asyncio reports every failed `accept()` (EMFILE) through the loop's exception handler: one line
    per interval instead (the rest counted), other errors as before."""
    previous = loop.get_exception_handler()
    quiet = QuietLog("socket.accept() out of system resource (open-file limit reached)")

    def handler(lp: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if str(context.get("message", "")).startswith("socket.accept() out of system resource"):
            quiet.event()
        elif previous is not None:
            previous(lp, context)
        else:
            lp.default_exception_handler(context)

    loop.set_exception_handler(handler)


class WsfsServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config):
        raise_nofile_limit()
        super().__init__(config)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        quiet_accept_errors(asyncio.get_running_loop())
        await super().startup(sockets)

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        if sig == signal.SIGTERM and sig in self._captured_signals:
            # uvicorn re-raises captured signals after its shutdown, so the process
            # would die "by SIGTERM"; a graceful stop is a normal exit (status 0).
            self._captured_signals.remove(sig)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # stop accepting first
        app = self.config.loaded_app
        state = getattr(getattr(_unwrap(app), "state", None), "wsfs", None)
        if state is not None:
            await begin_shutdown(state)
        await super().shutdown(sockets)


def _unwrap(app: Any) -> Any:
    # uvicorn wraps the app in middleware proxies; find the Starlette app inside.
    seen = 0
    while not isinstance(app, Starlette) and hasattr(app, "app") and seen < 10:
        app = app.app
        seen += 1
    return app


def make_config(app: Starlette, **kwargs: Any) -> uvicorn.Config:
    options: dict[str, Any] = {
        "ws": "websockets-sansio",
        "ws_per_message_deflate": False,
        "ws_max_size": TRANSPORT_MAX_FRAME,
        "lifespan": "on",
        "log_level": "warning",
        "timeout_graceful_shutdown": 30,
        "ws_ping_interval": PING_INTERVAL,  # 30 + 15 s (server/keepalive.py), not uvicorn's 20 + 20
        "ws_ping_timeout": PING_TIMEOUT,
    }
    stack = server_stack(kwargs.pop("http", None), kwargs.pop("loop", None))
    options.update(kwargs)
    options["http"], options["loop"] = http_protocol(stack["http"]), stack["loop"]
    _server_pings(app, options)
    raise_nofile_limit()
    return uvicorn.Config(FdGuard(app), **options)


def _server_pings(app: Any, options: dict[str, Any]) -> None:
    """One timer pings every WebSocket (`server/keepalive.py`) instead of uvicorn's two timers per
    socket: same interval and timeout. `WSFS_SERVER_PINGS=0` leaves uvicorn's own (A/B runs), and so
    does a cluster node (the sockets its proxy relays to another node never reach `ws_endpoint`)."""
    state = getattr(getattr(_unwrap(app), "state", None), "wsfs", None)
    interval = options.get("ws_ping_interval", PING_INTERVAL)
    if state is None:
        return
    timeout = options.get("ws_ping_timeout", PING_TIMEOUT)
    if (state.cluster is not None or options.get("ws") != "websockets-sansio" or not interval
            or os.environ.get("WSFS_SERVER_PINGS", "1") == "0"):
        # uvicorn pings; ours still aborts closing sockets whose peer reads nothing (`linger`)
        state.keepalive = Keepalive(interval or PING_INTERVAL, timeout, pinging=False)
        return
    state.keepalive = Keepalive(interval, timeout)
    options["ws_ping_interval"] = None


def bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket ourselves, so port 0 works and the real port is known."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP (not 0): asyncio only sets TCP_NODELAY on accepted
    # sockets whose proto says TCP, and without it every keep-alive response
    # waits ~40 ms for a delayed ACK (Nagle holds the body behind the headers).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock
