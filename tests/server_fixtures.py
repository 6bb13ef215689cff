"""Live-server fixtures and a small WebSocket test client.

Fixtures reach every test module through `pytest_plugins` in conftest.py; helpers
(`LiveServer`, `WsClient`, ...) are imported by name.

Two ways to run the real server:

- `LiveServer`: the app on real uvicorn in a background thread of the test
  process, on a free loopback port. Fast to start; the test can reach the
  server's state (mint tokens, read metrics).
- `ServerProcess`: `python -m server serve` in a subprocess, for what needs a
  real process: signals (SIGTERM, SIGKILL), memory measured from outside.
"""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from server import create_app
from server.runner import WsfsServer, bind, make_config

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 20.0


class _Stoppable(Protocol):
    def stop(self) -> None: ...


S = TypeVar("S", bound=_Stoppable)


def serving(server: S) -> Iterator[S]:
    """A server fixture's body (`yield from serving(...)`): the test gets `server`, stopped whatever the test did."""
    try:
        yield server
    finally:
        server.stop()


class LiveServer:
    """The real app on real uvicorn, in a thread, on 127.0.0.1:<free port>."""

    def __init__(self, data_dir: Path, uvicorn_options: dict[str, Any] | None = None, **app_kwargs: Any):
        """`uvicorn_options`: settings for `make_config` (e.g. `http`, `loop`, `ws_ping_interval`)."""
        self.data_dir = Path(data_dir)
        # an empty demo workspace unless a test asks for the seed: tests count what they wrote
        self.app = create_app(self.data_dir, **{"seed_demo": False, **app_kwargs})
        self.state = self.app.state.wsfs
        self._sock = bind("127.0.0.1", 0)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = WsfsServer(make_config(self.app, **(uvicorn_options or {})))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True)
        self.admin = self.token(None, "admin", "test-admin")

    def token(self, workspace: str | None, scope: str, name: str = "") -> str:
        return self.state.tokens.create(workspace, scope, name)[1]

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(START_TIMEOUT)
        if self.thread.is_alive():  # said, not failed: under heavy load a stop may just be slow
            print(f"\nLiveServer at {self.data_dir} still running {START_TIMEOUT:g} s after its stop "
                  f"(connections left open?)", file=sys.__stderr__)

    def ws_url(self, workspace: str = "demo", token: str | None = None) -> str:
        url = f"ws://127.0.0.1:{self.port}/api/workspaces/{workspace}/ws"
        return f"{url}?token={token}" if token else url

    def http(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.admin}"} if token != "" else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)

    def ahttp(self, token: str | None = None, **kwargs: Any) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token or self.admin}"} if token != "" else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30, **kwargs)


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    yield from serving(LiveServer(tmp_path / "data").start())


class ServerProcess:
    """`python -m server serve` on a free port; stdout parsed for the URL and tokens."""

    def __init__(self, data_dir: Path, *extra: str, env: dict[str, str] | None = None, seed: bool = False):
        self.data_dir = Path(data_dir)
        cmd = [sys.executable, "-m", "server", "serve", "--data", str(self.data_dir), "--port", "0", *extra]
        if not seed:
            cmd.append("--no-seed")  # an empty demo workspace: tests count what they wrote
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr_lines: list[str] = []
        self._pumps = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines.put), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr_lines.append), daemon=True),
        ]
        for pump in self._pumps:
            pump.start()
        self.admin: str | None = None
        self.demo_url = ""
        deadline = time.monotonic() + START_TIMEOUT
        while not self.demo_url:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                raise RuntimeError("server did not print its URL: " + "".join(self.stderr_lines)) from None
            if "admin token" in line:
                self.admin = line.rsplit(" ", 1)[1].strip()
            if "open the demo:" in line:
                self.demo_url = line.split("open the demo:", 1)[1].strip()
        self.url = self.demo_url.split("/?token=")[0]
        self.demo_token = self.demo_url.split("token=", 1)[1]
        self.port = int(self.url.rsplit(":", 1)[1])
        self._wait_healthy(deadline)

    @staticmethod
    def _pump(stream: Any, sink: Any) -> None:
        for line in stream:
            sink(line)

    def _wait_healthy(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError("server never became healthy")

    def ws_url(self, workspace: str = "demo", token: str | None = None) -> str:
        url = f"ws://127.0.0.1:{self.port}/api/workspaces/{workspace}/ws"
        return f"{url}?token={token}" if token else url

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = START_TIMEOUT) -> int:
        code = self.proc.wait(timeout)
        self._finish()
        return code

    def _finish(self) -> None:
        """The process has exited: drain and close its pipes."""
        for pump in self._pumps:
            pump.join(START_TIMEOUT)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None and not stream.closed:
                stream.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(START_TIMEOUT)
        self._finish()

    def rss(self) -> int:
        """Resident set size in bytes (Linux /proc)."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(START_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        self.kill()


class WsClient:
    """A thin protocol-v1 client over a real `websockets` connection, for tests.

    `request` sends a message with an id and returns its `ok`/`error` reply;
    every other frame received meanwhile is kept in `events` (in order), and
    binary frames in `chunks`.
    """

    def __init__(self, conn: ClientConnection):
        self.conn = conn
        self.events: list[dict[str, Any]] = []
        self.chunks: list[bytes] = []
        self.hello: dict[str, Any] = {}
        self._next_id = 0

    @classmethod
    async def open(cls, url: str, *, hello: dict[str, Any] | None = None, **kwargs: Any) -> WsClient:
        conn = await connect(url, compression=None, max_size=32 * 1024 * 1024, open_timeout=10, **kwargs)
        client = cls(conn)
        if hello is not False:
            await client.send({"type": "hello", "protocol": 1, **(hello or {})})
            client.hello = await client.recv()
            assert client.hello["type"] == "hello", client.hello
        return client

    async def send(self, msg: dict[str, Any]) -> None:
        await self.conn.send(orjson.dumps(msg).decode())

    async def recv(self, timeout: float = 10) -> dict[str, Any]:
        """The next text frame (binary frames go to `chunks`)."""
        while True:
            frame = await asyncio.wait_for(self.conn.recv(), timeout)
            if isinstance(frame, bytes):
                self.chunks.append(frame)
                continue
            return orjson.loads(frame)

    async def request(self, msg: dict[str, Any], timeout: float = 10) -> dict[str, Any]:
        if "id" not in msg:
            self._next_id += 1
            msg = {**msg, "id": f"r{self._next_id}"}
        await self.send(msg)
        while True:
            reply = await self.recv(timeout)
            if reply.get("type") in ("ok", "error") and reply.get("id") == msg["id"]:
                return reply
            self.events.append(reply)

    async def next_event(self, type_: str, timeout: float = 10, **match: Any) -> dict[str, Any]:
        """The first kept or incoming event of this type (matching `match` fields), removed from `events`."""
        for i, ev in enumerate(self.events):
            if ev.get("type") == type_ and all(ev.get(k) == v for k, v in match.items()):
                return self.events.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            ev = await self.recv(max(0.01, deadline - time.monotonic()))
            if ev.get("type") == type_ and all(ev.get(k) == v for k, v in match.items()):
                return ev
            self.events.append(ev)

    async def collect_changes(self, sub: Any, until_cursor: str | None = None, *, count: int | None = None,
                              timeout: float = 20) -> list[dict[str, Any]]:
        """Change entries of `sub` until its cursor reaches `until_cursor` (or `count` entries arrived)."""
        import vfs

        entries: list[dict[str, Any]] = []
        target = vfs.Cursor.parse(until_cursor) if until_cursor is not None else None
        deadline = time.monotonic() + timeout
        while True:
            ev = await self.next_event("changes", max(0.01, deadline - time.monotonic()), sub=sub)
            entries.extend(ev["entries"])
            if target is not None and vfs.Cursor.parse(ev["cursor"]) >= target:
                return entries
            if count is not None and len(entries) >= count:
                return entries

    async def close_code(self, timeout: float = 10) -> int:
        """Read on until the server closes the socket (each frame within `timeout`); the code it closed with."""
        with pytest.raises(ConnectionClosed) as info:
            while True:
                await self.recv(timeout)
        assert info.value.rcvd is not None, "closed without a close frame"
        return info.value.rcvd.code

    async def close(self) -> None:
        await self.conn.close()


async def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.02) -> None:
    """Poll a condition (bounded), for states that have no event to await."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(interval)
