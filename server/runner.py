"""Run the app on uvicorn with the settings wsfs needs, and a graceful shutdown.

- `ws="websockets-sansio"`: the fastest non-deprecated uvicorn WebSocket
  implementation (the legacy one warns and is ~2x slower);
- `ws_per_message_deflate=False`: compression would cut chunk transfer from
  GB/s to ~40 MB/s and cost fan-out throughput;
- on SIGTERM/SIGINT, before uvicorn closes connections itself (it would send
  1012), `WsfsServer` closes every WebSocket with 1001 ("going away") and
  lets queued writes finish.
"""

from __future__ import annotations

import signal
import socket
from typing import Any

import uvicorn
from starlette.applications import Starlette

from vfs.wire import TRANSPORT_MAX_FRAME

from server.app import begin_shutdown


class WsfsServer(uvicorn.Server):
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
    }
    options.update(kwargs)
    return uvicorn.Config(app, **options)


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
