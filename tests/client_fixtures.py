"""Fixtures for the client, replica and CLI tests.

`RestartableServer` is the real app on real uvicorn (the server helper's
`LiveServer`) that keeps its loopback port across restarts, so a replica or
a watcher configured with one URL sees the server go away and come back.
Stopping runs in a worker thread: uvicorn's graceful shutdown waits for
WebSocket clients to answer the close, and those clients live on the test's
event loop.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator

import httpx
import pytest

from client_py import Client
from server_fixtures import LiveServer, serving


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _PortServer(LiveServer):
    """LiveServer bound to a given port instead of a fresh one."""

    def __init__(self, data_dir: Path, port: int, **app_kwargs: Any):
        import server_fixtures

        real_bind = server_fixtures.bind
        server_fixtures.bind = lambda host, _port: real_bind(host, port)  # type: ignore[assignment]
        try:
            super().__init__(data_dir, **app_kwargs)
        finally:
            server_fixtures.bind = real_bind  # type: ignore[assignment]


class RestartableServer:
    def __init__(self, data_dir: Path, **app_kwargs: Any):
        self.data_dir = Path(data_dir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app_kwargs = app_kwargs
        self.live: LiveServer | None = None
        self.admin = ""
        self.start()

    def start(self) -> None:
        for attempt in range(50):  # the port may linger briefly after a stop
            try:
                live = _PortServer(self.data_dir, self.port, **self.app_kwargs)
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"port {self.port} stayed busy")
        self.live = live.start()
        if not self.admin:
            self.admin = live.admin  # tokens persist in the data dir: the first one stays valid

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

    async def arestart(self) -> None:
        await asyncio.to_thread(self.stop)
        await asyncio.to_thread(self.start)

    def token(self, workspace: str | None, scope: str, name: str = "") -> str:
        assert self.live is not None
        return self.live.token(workspace, scope, name)

    def metric(self, name: str, **labels: str) -> float:
        """One sample of the server's /metrics (0 if absent)."""
        response = httpx.get(self.url + "/metrics", headers={"Authorization": f"Bearer {self.admin}"}, timeout=10)
        assert response.status_code == 200, f"/metrics answered {response.status_code}: {response.text[:200]}"
        text = response.text
        want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
        for line in text.splitlines():
            if line.startswith(want + " "):
                return float(line.split()[-1])
        return 0.0


async def eventually(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Poll until `predicate()` is truthy (bounded); returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout}s")
        await asyncio.sleep(interval)


def tree_of(root: str | os.PathLike[str]) -> dict[str, Any]:
    """A local directory as {relative path: bytes | ("dir",) | ("link", target)} (without .wsfs)."""
    out: dict[str, Any] = {}
    root = os.fspath(root)
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir == ".":
            dirnames[:] = [d for d in dirnames if d != ".wsfs"]
        for d in list(dirnames):
            full = os.path.join(dirpath, d)
            rel = os.path.normpath(os.path.join(rel_dir, d))
            if os.path.islink(full):
                out[rel] = ("link", os.readlink(full))
                dirnames.remove(d)
            else:
                out[rel] = ("dir",)
        for f in filenames:
            full = os.path.join(dirpath, f)
            rel = os.path.normpath(os.path.join(rel_dir, f))
            if os.path.islink(full):
                out[rel] = ("link", os.readlink(full))
            else:
                with open(full, "rb") as fh:
                    out[rel] = fh.read()
    return out


async def remote_tree(ws: Any) -> dict[str, Any]:
    """A workspace as the same kind of dict as `tree_of`."""
    out: dict[str, Any] = {}
    async for top, dirs, files in ws.walk("/"):
        rel_top = top.lstrip("/")
        for d in dirs:
            out[os.path.join(rel_top, d)] = ("dir",)
        for f in files:
            path = (top.rstrip("/") + "/" + f)
            st = await ws.lstat(path)
            rel = os.path.join(rel_top, f)
            out[rel] = ("link", st.target) if st.kind == "symlink" else await ws.read_file(path)
    return out


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RestartableServer]:
    """A real server on a loopback port that keeps its port across restarts."""
    yield from serving(RestartableServer(tmp_path / "data"))


@pytest.fixture
async def ws(server: RestartableServer) -> AsyncIterator[Any]:
    """The `demo` workspace through an admin `Client`."""
    async with Client(server.url, token=server.admin) as c:
        yield c.workspace("demo")
