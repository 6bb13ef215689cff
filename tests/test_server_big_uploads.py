"""Big PUTs (8 MiB or more, stored as they arrive) are capped by `max_big_uploads`: one more waits
up to `big_upload_wait` seconds for a slot, then is answered 503 EAGAIN with Retry-After before its
body is read; a slot frees when an upload ends, and a waiter takes it."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from server.http_files import STORE_AS_IT_ARRIVES
from server_fixtures import LiveServer, serving

W = "/api/workspaces/demo"
SIZE = STORE_AS_IT_ARRIVES + 1024


@pytest.fixture
def capped(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path / "data", max_big_uploads=1)
    server.state.config.big_upload_wait = 0.3  # refused soon: these tests hold the one slot
    yield from serving(server.start())


@pytest.fixture
def queued(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path / "data", max_big_uploads=1)
    server.state.config.big_upload_wait = 30.0
    yield from serving(server.start())


def _open_upload(server: LiveServer, path: str) -> socket.socket:
    """A big PUT whose head and first MiB are sent, the rest held back: it holds a slot meanwhile."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=20)
    sock.sendall((f"PUT {W}/files/{path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {server.admin}\r\n"
                  f"Content-Length: {SIZE}\r\n\r\n").encode() + b"a" * (1 << 20))
    return sock


def _response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one response (head and Content-Length body) off `sock`."""
    data = b""
    while b"\r\n\r\n" not in data:
        got = sock.recv(65536)
        assert got, data
        data += got
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    while len(body) < int(headers["content-length"]):
        got = sock.recv(65536)
        assert got
        body += got
    return int(lines[0].split()[1]), headers, body


def _wait_busy(server: LiveServer, n: int) -> None:
    deadline = time.monotonic() + 20
    while server.state.big_uploads != n:
        assert time.monotonic() < deadline, server.state.big_uploads
        time.sleep(0.02)


def test_a_big_put_past_the_cap_is_refused_with_retry_after_and_the_slot_comes_back(capped: LiveServer) -> None:
    first = _open_upload(capped, "one.bin")
    try:
        _wait_busy(capped, 1)
        with capped.http() as c:
            r = c.put(f"{W}/files/two.bin", content=b"b" * SIZE)
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"] == "1"
            err = r.json()["error"]
            assert err["code"] == "EAGAIN" and err["limit"] == 1 and "--max-big-uploads" in err["message"]
            assert c.get(f"{W}/files/two.bin").status_code == 404
            # small writes are not capped
            assert c.put(f"{W}/files/small.txt", content=b"s" * 1000).status_code == 201
            first.sendall(b"a" * (SIZE - (1 << 20)))  # the held upload finishes and gives its slot back
            status, _, body = _response(first)
            assert status == 201, body
            _wait_busy(capped, 0)
            r = c.put(f"{W}/files/two.bin", content=b"b" * SIZE)
            assert r.status_code == 201, r.text
            assert c.get(f"{W}/files/two.bin").content == b"b" * SIZE
    finally:
        first.close()


def test_a_big_put_cut_off_midway_gives_its_slot_back(capped: LiveServer) -> None:
    sock = _open_upload(capped, "cut.bin")
    _wait_busy(capped, 1)
    sock.close()  # gone mid-body
    _wait_busy(capped, 0)
    with capped.http() as c:
        assert c.put(f"{W}/files/after.bin", content=os.urandom(SIZE)).status_code == 201
        assert c.get(f"{W}/files/cut.bin").status_code == 404


def test_the_refusal_reaches_a_client_still_sending_its_body(capped: LiveServer) -> None:
    """The 503 is written before the body is read; a client streaming its body still gets it
    (uvicorn reads and drops the rest, or closes the connection after the answer)."""
    first = _open_upload(capped, "one.bin")
    try:
        _wait_busy(capped, 1)
        second = _open_upload(capped, "two.bin")
        try:
            status, headers, body = _response(second)
            assert status == 503 and headers["retry-after"] == "1"
            assert orjson.loads(body)["error"]["code"] == "EAGAIN"
        finally:
            second.close()
        with httpx.Client(base_url=capped.url, headers={"Authorization": f"Bearer {capped.admin}"}) as c:
            assert c.get("/healthz").status_code == 200
    finally:
        first.close()


def test_one_more_big_put_waits_for_a_slot_and_is_stored_when_one_frees(queued: LiveServer) -> None:
    """A client that cannot send its body twice (a mount's close, a pipe) gets its upload stored,
    not a 503, when a slot frees within the wait (old code: refused at once)."""
    first = _open_upload(queued, "one.bin")
    try:
        _wait_busy(queued, 1)
        second = _open_upload(queued, "two.bin")  # waits: head and first MiB sent, body unread
        try:
            time.sleep(0.5)
            assert queued.state.big_uploads == 1  # still the first one's slot alone
            first.sendall(b"a" * (SIZE - (1 << 20)))
            status, _, body = _response(first)
            assert status == 201, body
            _wait_busy(queued, 1)  # the waiter took the slot
            second.sendall(b"a" * (SIZE - (1 << 20)))
            status, _, body = _response(second)
            assert status == 201, body
        finally:
            second.close()
        with queued.http() as c:
            assert c.get(f"{W}/files/two.bin").content == b"a" * SIZE
    finally:
        first.close()
