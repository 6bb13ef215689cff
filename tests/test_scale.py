"""A node that holds many workspaces (issue 18): descriptor limits, writer threads, outside commits.

Real `python -m server serve` processes on 127.0.0.1; no timed asserts
(timings are in bench/bench_scale.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

import vfs
from server_fixtures import ROOT, WsClient

START_TIMEOUT = 30.0


class LimitedServer:
    """`python -m server serve` with a chosen hard open-file limit (set in the child before exec)."""

    def __init__(self, data: Path, nofile: int | None = None, *extra: str):
        def limit() -> None:
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        cmd = [sys.executable, "-m", "server", "serve", "--data", str(data), "--port", "0", "--no-seed", *extra]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     preexec_fn=limit, start_new_session=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        self.pumps = [threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines.put), daemon=True),
                      threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr.append), daemon=True)]
        for p in self.pumps:
            p.start()
        self.admin = ""
        self.url = ""
        deadline = time.monotonic() + START_TIMEOUT
        while not self.url and time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if "admin token" in line:
                self.admin = line.rsplit(" ", 1)[1].strip()
            if "open the demo:" in line:
                self.url = line.split("open the demo:", 1)[1].strip().split("/?token=")[0]
        if not self.url:
            self.stop()
            raise RuntimeError("server did not start: " + "".join(self.stderr))
        self.port = int(self.url.rsplit(":", 1)[1])
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("server never became healthy")

    @staticmethod
    def _pump(stream: Any, sink: Any) -> None:
        for line in stream:
            sink(line)

    def ws_url(self, workspace: str = "demo") -> str:
        return f"ws://127.0.0.1:{self.port}/api/workspaces/{workspace}/ws?token={self.admin}"

    def threads(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
        raise RuntimeError("no Threads line")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(START_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(START_TIMEOUT)
        for p in self.pumps:
            p.join(START_TIMEOUT)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None and not stream.closed:
                stream.close()


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[LimitedServer]:
    server = LimitedServer(tmp_path / "data", 160)
    try:
        yield server
    finally:
        server.stop()


async def _subscribe(client: WsClient, sub: str = "s") -> None:
    reply = await client.request({"type": "subscribe", "id": sub, "after": "now"})
    assert reply["type"] == "ok", reply
    while (await client.recv())["type"] != "caught_up":
        pass


async def _wait_for_path(client: WsClient, path: str, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = await client.recv(timeout=max(0.01, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            return False
        if msg.get("type") == "changes" and any(e["path"] == path for e in msg["entries"]):
            return True
    return False


async def test_near_the_fd_limit_new_connections_are_refused_cleanly_existing_ones_work(
        limited: LimitedServer, tmp_path: Path) -> None:
    witness = await WsClient.open(limited.ws_url())
    await _subscribe(witness)
    extra: list[WsClient] = []
    refused = 0
    try:
        for _ in range(400):  # bounded: the limit is 160 descriptors
            if refused >= 60:
                break
            try:
                extra.append(await WsClient.open(limited.ws_url()))
            except (ConnectionClosed, AssertionError) as e:
                code = getattr(getattr(e, "rcvd", None), "code", None)
                assert code == 1013, repr(e)
                refused += 1
        assert refused >= 60, f"never refused after {len(extra)} connections"
        with httpx.Client(timeout=10) as http:
            # Under pressure the sweep puts quiet stores to sleep (server/sleep.py), which frees a few
            # descriptors: new connections may then take them again before plain requests are refused.
            for _ in range(100):  # bounded
                r = http.get(limited.url + "/healthz")
                if r.status_code != 200:
                    break
                with contextlib.suppress(ConnectionClosed, AssertionError):
                    extra.append(await WsClient.open(limited.ws_url()))
            assert r.status_code == 503 and r.json()["error"]["code"] == "EAGAIN"
        # existing clients keep working: a round trip, and a commit by another process reaches the subscriber
        assert (await witness.request({"type": "ping"}))["type"] == "ok"
        ws = vfs.Workspace(tmp_path / "data" / "workspaces" / "demo.db")
        try:
            ws.write_file("/outside.txt", b"seen")
        finally:
            ws.close()
        assert await _wait_for_path(witness, "/outside.txt")
    finally:
        for c in extra:
            await c.conn.close()
    # descriptors free again: new connections are served
    for _ in range(100):
        with httpx.Client(timeout=10) as http:
            if http.get(limited.url + "/healthz").status_code == 200:
                break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("never served again")
    await witness.conn.close()
    limited.stop()
    lines = [ln for ln in limited.stderr if "open-file limit" in ln]
    assert 1 <= len(lines) <= 5, limited.stderr[-20:]
    assert sum(len(ln) for ln in limited.stderr) < 20_000, limited.stderr[-20:]


@pytest.fixture
def plain(tmp_path: Path) -> Iterator[LimitedServer]:
    server = LimitedServer(tmp_path / "data", None)
    try:
        yield server
    finally:
        server.stop()


async def test_fifty_open_subscribed_workspaces_use_a_bounded_number_of_threads(plain: LimitedServer) -> None:
    names = [f"t{i}" for i in range(50)]
    clients: list[WsClient] = []
    with httpx.Client(base_url=plain.url, headers={"Authorization": f"Bearer {plain.admin}"}, timeout=30) as http:
        for name in names:
            assert http.put(f"/api/workspaces/{name}").status_code in (200, 201)
            assert http.put(f"/api/workspaces/{name}/files/a", content=b"x").status_code < 300
    try:
        for name in names:
            client = await WsClient.open(plain.ws_url(name))
            await _subscribe(client)
            clients.append(client)
        with httpx.Client(base_url=plain.url, headers={"Authorization": f"Bearer {plain.admin}"}, timeout=30) as http:
            for name in names:  # every workspace's writer ran again
                assert http.put(f"/api/workspaces/{name}/files/b", content=b"y").status_code < 300
        for client in clients:
            assert await _wait_for_path(client, "/b")
        # 4 writers + 2 readers (the defaults) + the main thread and asyncio's default executor (to_thread)
        assert plain.threads() < 25, plain.threads()
    finally:
        for client in clients:
            await client.conn.close()


async def test_pipelined_pushes_commit_in_order_in_each_workspace_under_concurrency(plain: LimitedServer) -> None:
    import blake3

    names = [f"o{i}" for i in range(12)]
    contents = [b"first content", b"second content!"]
    hashes = [blake3.blake3(c).hexdigest() for c in contents]
    with httpx.Client(base_url=plain.url, headers={"Authorization": f"Bearer {plain.admin}"}, timeout=30) as http:
        for name in names:
            assert http.put(f"/api/workspaces/{name}").status_code in (200, 201)
            for k, c in enumerate(contents):  # both contents stored, so a push needs no upload
                assert http.put(f"/api/workspaces/{name}/files/seed{k}", content=c).status_code < 300

    async def pipeline(name: str) -> list[dict[str, Any]]:
        client = await WsClient.open(plain.ws_url(name))
        try:
            for i in range(40):
                k = i % 2
                entry = {"path": "/x", "kind": "file", "mode": 0o100644, "mtime": 1.0 + i, "size": len(contents[k]),
                         "hash": hashes[k], "chunks": [[hashes[k], len(contents[k])]]}
                await client.send({"type": "push", "id": i, "base": None, "changes": [entry]})
            replies = []
            while len(replies) < 40:
                msg = await client.recv(timeout=30)
                if msg.get("type") in ("ok", "error"):
                    replies.append(msg)
            return replies
        finally:
            await client.conn.close()

    results = await asyncio.gather(*(pipeline(n) for n in names))
    with httpx.Client(base_url=plain.url, headers={"Authorization": f"Bearer {plain.admin}"}, timeout=30) as http:
        for name, replies in zip(names, results):
            assert [r["id"] for r in replies] == list(range(40)), [(r["id"], r.get("rev"), r.get("code")) for r in replies][:8]
            assert all(r["type"] == "ok" for r in replies), replies[:3]
            revs = [r["rev"] for r in replies]
            assert revs == sorted(revs) and len(set(revs)) == 40, revs  # one commit each, in push order
            assert http.get(f"/api/workspaces/{name}/files/x").content == contents[39 % 2]


def _store_ops(http: httpx.Client) -> float:
    """Store operations the server ran so far (every thread hop is counted in wsfs_op_seconds)."""
    text = http.get("/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("wsfs_op_seconds_count"))


async def test_outside_commits_reach_subscribers_without_a_poll_per_workspace(plain: LimitedServer,
                                                                              tmp_path: Path) -> None:
    names = [f"e{i}" for i in range(30)]
    clients: dict[str, WsClient] = {}
    with httpx.Client(base_url=plain.url, headers={"Authorization": f"Bearer {plain.admin}"}, timeout=30) as http:
        for name in names:
            assert http.put(f"/api/workspaces/{name}").status_code in (200, 201)
        try:
            for name in names:
                clients[name] = await WsClient.open(plain.ws_url(name))
                await _subscribe(clients[name])
            before = _store_ops(http)
            await asyncio.sleep(1.5)  # idle: an old-style poll would run 30 x 4 x 1.5 = 180 store reads here
            idle_ops = _store_ops(http) - before
            assert idle_ops <= 2, idle_ops
            for k, name in enumerate(names[::10]):  # a script commits to the store files directly
                if k == 0:  # after a commit of the server's own (whose files' stamp the watch then skips)
                    assert http.put(f"/api/workspaces/{name}/files/own.txt", content=b"ours").status_code < 300
                    assert await _wait_for_path(clients[name], "/own.txt"), name
                ws = vfs.Workspace(tmp_path / "data" / "workspaces" / f"{name}.db")
                try:
                    ws.write_file(f"/outside{k}.txt", b"from another process")
                finally:
                    ws.close()
                assert await _wait_for_path(clients[name], f"/outside{k}.txt"), name
        finally:
            for client in clients.values():
                await client.conn.close()


async def test_a_push_is_answered_before_its_fan_out(plain: LimitedServer) -> None:
    """The pusher's own subscription (parked with the fan-out) gets the commit after the push's `ok`."""
    import blake3

    data = b"fan-out after the reply"
    digest = blake3.blake3(data).hexdigest()
    with httpx.Client(base_url=plain.url, headers={"Authorization": f"Bearer {plain.admin}"}, timeout=30) as http:
        assert http.put("/api/workspaces/demo/files/seed", content=data).status_code < 300
    others = [await WsClient.open(plain.ws_url()) for _ in range(20)]
    client = await WsClient.open(plain.ws_url())
    try:
        for other in others:
            await _subscribe(other)
        await _subscribe(client)
        for i in range(10):
            entry = {"path": f"/p{i}", "kind": "file", "mode": 0o100644, "mtime": 1.0, "size": len(data),
                     "hash": digest, "chunks": [[digest, len(data)]]}
            await client.send({"type": "push", "id": i, "base": None, "changes": [entry]})
            order = []
            while len(order) < 2:
                msg = await client.recv(timeout=10)
                if msg["type"] == "ok":
                    order.append("ok")
                elif msg["type"] == "changes" and any(e["path"] == f"/p{i}" for e in msg["entries"]):
                    order.append("changes")
            assert order == ["ok", "changes"], (i, order)
    finally:
        for c in [*others, client]:
            await c.conn.close()


def _store_fds(store: Path) -> list[str]:
    """The files of `store` (db, -wal, -shm, -lock) this process holds descriptors on."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(store)):
            found.append(target[len(str(store)):] or "db")
    return sorted(found)


async def _until_asleep(handle: Any) -> bool:
    for _ in range(100):  # bounded: the sweep runs every 0.2 s here
        if handle.asleep:
            return True
        await asyncio.sleep(0.1)
    return False


async def test_a_quiet_subscribed_workspace_sleeps_on_one_descriptor_and_wakes_for_every_kind_of_use(
        tmp_path: Path) -> None:
    """Asleep: no SQLite connection, only the shared store lock (so a local mount is still refused);
    the subscription stays, and a write through the server, an outside commit and a read wake it."""
    from server.state import ServerConfig
    from server.store_options import StoreOptions
    from server_fixtures import LiveServer
    from vfs import storelock

    config = ServerConfig(data_dir=tmp_path / "data", seed_demo=False, store=StoreOptions(idle_readers=0.4))
    server = LiveServer(tmp_path / "data", config=config).start()
    store = tmp_path / "data" / "workspaces" / "demo.db"
    client = None
    try:
        with server.http() as http:
            assert http.put("/api/workspaces/demo/files/a", content=b"x").status_code < 300
            assert http.get("/api/workspaces/demo/files/a").content == b"x"  # a reader opened
        client = await WsClient.open(server.ws_url("demo", server.admin))
        await _subscribe(client)
        handle = server.state.stores.open_handle("demo")
        assert handle is not None and "db" in _store_fds(store)
        assert await _until_asleep(handle), "never went to sleep"
        assert _store_fds(store) == ["-lock"]
        with pytest.raises(vfs.StoreBusy):  # a local mount is refused while the server sleeps on it
            storelock.release(storelock.acquire(str(store), exclusive=True))
        assert server.state.stores.open_handle("demo") is handle  # the store itself stays open

        with server.http() as http:  # a write through the server wakes it and reaches the subscriber
            assert http.put("/api/workspaces/demo/files/b", content=b"y").status_code < 300
        assert await _wait_for_path(client, "/b")
        assert "db" in _store_fds(store)

        assert await _until_asleep(handle), "never went back to sleep"
        ws = vfs.Workspace(store)  # an outside commit while asleep is still noticed
        try:
            ws.write_file("/outside.txt", b"later")
        finally:
            ws.close()
        assert await _wait_for_path(client, "/outside.txt")

        assert await _until_asleep(handle), "never went back to sleep"
        with server.http() as http:  # a read reopens a reader
            assert http.get("/api/workspaces/demo/files/outside.txt").content == b"later"
            assert http.get("/api/workspaces/demo/files/b").content == b"y"
    finally:
        if client is not None:
            await client.conn.close()
        server.stop()


# ---------------------------------------------------------------- server-driven keepalive pings

async def _raw_ws(port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket opened by hand (no library answering pings for us)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def _frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One server frame (unmasked): (opcode, payload)."""
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n >= 126:
        n = int.from_bytes(await reader.readexactly(2 if n == 126 else 8), "big")
    return b0 & 0x0F, await reader.readexactly(n)


def _masked(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    assert len(payload) < 126
    return bytes((0x80 | opcode, 0x80 | len(payload))) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


@pytest.fixture
def pinging(tmp_path: Path) -> Iterator[LimitedServer]:
    server = LimitedServer(tmp_path / "data", None, "--ws-ping-interval", "0.4", "--ws-ping-timeout", "0.4")
    try:
        yield server
    finally:
        server.stop()


async def test_one_timer_pings_every_socket_and_drops_one_that_never_answers(pinging: LimitedServer) -> None:
    """The server's own keepalive (server/keepalive.py): a client answering pings stays; a silent one is
    closed with 1011, as uvicorn's pings would."""
    path = f"/api/workspaces/demo/ws?token={pinging.admin}"
    answering, silent = await _raw_ws(pinging.port, path), await _raw_ws(pinging.port, path)
    pings = 0
    silent_close: int | None = None
    try:
        async def read_silent() -> None:
            nonlocal silent_close
            while True:
                opcode, payload = await _frame(silent[0])
                if opcode == 0x8:  # close
                    silent_close = int.from_bytes(payload[:2], "big")
                    return

        silent_task = asyncio.ensure_future(read_silent())
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (silent_task.done() and pings >= 3):
            try:
                opcode, payload = await asyncio.wait_for(_frame(answering[0]), 1.0)
            except asyncio.TimeoutError:
                continue
            assert opcode == 0x9, (opcode, payload)  # nothing but pings on an idle socket
            pings += 1
            answering[1].write(_masked(0xA, payload))
        assert silent_task.done(), "the silent client was never dropped"
        silent_task.result()
        assert silent_close == 1011, silent_close
        assert pings >= 3, pings
        answering[1].write(_masked(0x1, b'{"type":"hello","protocol":1}'))  # and it is still served
        while True:
            opcode, payload = await asyncio.wait_for(_frame(answering[0]), 10)
            if opcode == 0x9:
                answering[1].write(_masked(0xA, payload))
                continue
            assert opcode == 0x1 and b'"hello"' in payload, (opcode, payload)
            break
    finally:
        for _, writer in (answering, silent):
            writer.close()
