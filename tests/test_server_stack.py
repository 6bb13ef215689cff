"""uvicorn's HTTP parser and event loop (`server.runner.server_stack`), and the fast paths under each.

The fast paths read uvicorn's internals: `fastroutes` corks a response's head
and body into one write through the request cycle's `transport`, and
`keepalive.take_pongs` replaces the WebSocket protocol's `data_received`
(uvloop's transports keep the bound method they saw at `set_protocol`, so
the replacement must be handed back to the transport). These tests run a
real server on each stack and check the path was really taken.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.httpstack import server_stack
from tests.server_fixtures import ROOT, LiveServer, ServerProcess

STACKS = [("h11", "asyncio"), ("httptools", "uvloop"), ("httptools", "asyncio"), ("h11", "uvloop")]
STEPS = 400  # bounded waits: at most STEPS reads of 0.05 s


def test_stack_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WSFS_HTTP", raising=False)
    monkeypatch.delenv("WSFS_LOOP", raising=False)
    assert server_stack() == {"http": "httptools", "loop": "uvloop"}  # both are dependencies
    assert server_stack("h11", "asyncio") == {"http": "h11", "loop": "asyncio"}
    monkeypatch.setenv("WSFS_HTTP", "h11")
    monkeypatch.setenv("WSFS_LOOP", "asyncio")
    assert server_stack() == {"http": "h11", "loop": "asyncio"}
    assert server_stack(loop="uvloop") == {"http": "h11", "loop": "uvloop"}  # asked beats the environment
    monkeypatch.setenv("WSFS_LOOP", "auto")
    with pytest.raises(ValueError, match="unknown loop"):
        server_stack()


def _recv_until(sock: socket.socket, marker: bytes, buf: bytearray) -> None:
    for _ in range(STEPS):
        if marker in buf:
            return
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        assert data, f"closed before {marker!r}: {bytes(buf)!r}"
        buf += data
    raise AssertionError(f"no {marker!r} in {bytes(buf)!r}")


def _masked(opcode: int, payload: bytes) -> bytes:
    """A client frame masked with a zero key (short payloads only)."""
    return bytes((0x80 | opcode, 0x80 | len(payload))) + b"\0\0\0\0" + payload


def _next_frame(sock: socket.socket, buf: bytearray) -> tuple[int, bytes]:
    """One unmasked server frame (payload < 126 bytes, or a 16-bit length) from `buf`/`sock`."""
    for _ in range(STEPS):
        short = len(buf) >= 2 and buf[1] & 0x7F
        if short and short < 127 and len(buf) >= (4 if short == 126 else 2):
            n, head = (int.from_bytes(buf[2:4], "big"), 4) if short == 126 else (short, 2)
            if len(buf) >= head + n:
                frame = (buf[0] & 0x0F, bytes(buf[head:head + n]))
                del buf[:head + n]
                return frame
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        assert data, "closed"
        buf += data
    raise AssertionError("no frame")


@pytest.fixture(params=STACKS, ids=[f"{h}-{lp}" for h, lp in STACKS])
def stack_server(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    http, loop = request.param
    server = LiveServer(tmp_path / "data", uvicorn_options={"http": http, "loop": loop, "ws_ping_interval": 0.4,
                                                    "ws_ping_timeout": 30.0}).start()
    try:
        yield server, http, loop
    finally:
        server.stop()


def test_stack_runs_and_fast_paths_hold(stack_server: Any) -> None:
    server, http, loop = stack_server
    protocol = server.server.config.http_protocol_class
    assert protocol.__name__ == {"h11": "UpgradeH11", "httptools": "BoundedHttpTools"}[http]
    server_loop = server.server.servers[0].get_loop()
    assert type(server_loop).__module__.split(".")[0] == loop
    app = server.app

    # a small write through fastroutes: head and body corked into one write, the reply intact
    with server.http() as client:
        before = app.corked
        r = client.put("/api/workspaces/demo/files/a.txt", content=b"x" * 100)
        assert r.status_code in (200, 201), r.text
        assert r.json()["size"] == 100
        assert client.get("/api/workspaces/demo/files/a.txt").content == b"x" * 100
        assert app.corked >= before + 2
        # the access log's arguments are not even formatted while its logger would drop them
        connections = [c for c in server.server.server_state.connections if hasattr(c, "access_log")]
        assert connections and all(c.access_log is False for c in connections)
    access = logging.getLogger("uvicorn.access")
    level = access.level
    access.setLevel(logging.INFO)
    try:
        with server.http() as client:
            assert client.get("/api/workspaces/demo/files/a.txt").status_code == 200
            opened = [c for c in server.server.server_state.connections if hasattr(c, "access_log")]
            assert opened and all(c.access_log is True for c in opened)
    finally:
        access.setLevel(level)

    # a WebSocket answering the server's pings: the pongs are taken before websockets' parser
    keepalive = server.state.keepalive
    assert keepalive is not None
    with socket.create_connection(("127.0.0.1", server.port), timeout=0.05) as sock:
        sock.settimeout(0.05)
        sock.sendall((f"GET /api/workspaces/demo/ws?token={server.admin} HTTP/1.1\r\nHost: x\r\n"
                      "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        buf = bytearray()
        _recv_until(sock, b"\r\n\r\n", buf)
        assert buf.startswith(b"HTTP/1.1 101"), bytes(buf)
        del buf[:buf.index(b"\r\n\r\n") + 4]
        taken0, pongs = keepalive.pongs_taken, 0
        for _ in range(STEPS):
            opcode, payload = _next_frame(sock, buf)
            if opcode == 0x9:  # a ping: answer it in a segment of its own
                sock.sendall(_masked(0xA, payload))
                pongs += 1
                if pongs == 3:
                    break
        assert pongs == 3
        # the third pong may still be in flight; the first two were answered before the next ping went out
        assert keepalive.pongs_taken - taken0 >= 2
        # and the socket still works as a WebSocket (the shortcut let everything else through)
        sock.sendall(_masked(0x1, b'{"type":"hello","protocol":1}'))
        for _ in range(STEPS):
            opcode, payload = _next_frame(sock, buf)
            if opcode == 0x1:
                assert payload.startswith(b'{"type":"hello"'), payload
                break
        else:
            raise AssertionError("no answer to hello")


def test_hello_in_the_upgrade_segment_is_read(stack_server: Any) -> None:
    """A client that sends its hello frame in the same segment as the upgrade request (without waiting
    for the 101) gets the server's hello: uvicorn's HTTP protocols passed only the rebuilt head on,
    and the frame was lost (4000 "no hello" after the hello timeout); a second frame in the same
    segment is answered too, in order."""
    server, _, _ = stack_server
    head = (f"GET /api/workspaces/demo/ws?token={server.admin} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=0.05) as sock:
        sock.settimeout(0.05)
        sock.sendall(head + _masked(0x1, b'{"type":"hello","protocol":1}') + _masked(0x1, b'{"type":"ping","id":7}'))
        buf = bytearray()
        _recv_until(sock, b"\r\n\r\n", buf)
        assert buf.startswith(b"HTTP/1.1 101"), bytes(buf)
        del buf[:buf.index(b"\r\n\r\n") + 4]
        texts: list[bytes] = []
        for _ in range(STEPS):
            opcode, payload = _next_frame(sock, buf)
            if opcode == 0x1:
                texts.append(payload)
                if b'"id":7' in payload:
                    break
        assert texts and texts[0].startswith(b'{"type":"hello"'), texts
        assert texts[-1].startswith(b'{"type":"ok"') and b'"id":7' in texts[-1], texts


def test_request_head_is_bounded(stack_server: Any) -> None:
    """A client sending header lines without end gets 400 and is closed, on either parser (httptools
    alone keeps them all); the server keeps answering others."""
    server, _, _ = stack_server
    line = b"X-Filler: " + b"a" * 1000 + b"\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        refused = False
        for _ in range(64 * 1024):  # at most 64 MiB: far past the bound
            try:
                sock.sendall(line)
            except (BrokenPipeError, ConnectionResetError):
                refused = True
                break
        assert refused, "the server read 64 MiB of a request head"
        try:
            reply = sock.recv(4096)
        except ConnectionResetError:
            reply = b""
        assert reply == b"" or reply.startswith(b"HTTP/1.1 400"), reply
    with server.http() as client:
        assert client.get("/healthz").status_code == 200


def test_serve_flags_choose_the_stack(tmp_path: Path) -> None:
    """`wsfs serve --http h11 --loop asyncio` serves (the flags reach uvicorn); an unknown name is refused."""
    server = ServerProcess(tmp_path / "data", "--http", "h11", "--loop", "asyncio")
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.admin}"}) as client:
            assert client.put("/api/workspaces/demo/files/f", content=b"hi").status_code in (200, 201)
            assert client.get("/api/workspaces/demo/files/f").content == b"hi"
    finally:
        server.stop()
    bad = subprocess.run([sys.executable, "-m", "server", "serve", "--data", str(tmp_path / "d2"), "--port", "0",
                          "--http", "auto"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--http" in bad.stderr
