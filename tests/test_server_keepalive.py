"""The server's own WebSocket keepalive (server/keepalive.py), against a real `wsfs serve` with short
settings (1 s interval, 1 s timeout) and hand-made sockets (no library answering pings for us):

- a client that sends nothing and never answers pings is closed with 1011 after interval + timeout;
- a client that never answers pings but sends other frames stays: bytes after a ping prove it alive
  (a pong queued behind an upload on a slow link), and one heard from within the interval is not
  pinged at all;
- a client that answers pings stays.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Iterator

import pytest

from server_fixtures import ROOT, ServerProcess

INTERVAL, TIMEOUT = 1.0, 1.0
SPAN = 8  # client rounds: at 0.25 s each, well past interval + timeout twice over


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("keepalive") / "data",
                         "--ws-ping-interval", str(INTERVAL), "--ws-ping-timeout", str(TIMEOUT))
    try:
        yield proc
    finally:
        proc.stop()


class Raw:
    """A WebSocket opened by hand: frames cut and masked here."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, server: ServerProcess) -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write((f"GET /api/workspaces/demo/ws?token={server.admin} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    async def frame(self, timeout: float) -> tuple[int, bytes] | None:
        """The next server frame (opcode, payload), or None if none came within `timeout`."""
        try:
            b0, b1 = await asyncio.wait_for(self.reader.readexactly(2), timeout)
        except asyncio.TimeoutError:
            return None
        n = b1 & 0x7F
        if n >= 126:
            n = int.from_bytes(await self.reader.readexactly(2 if n == 126 else 8), "big")
        return b0 & 0x0F, await asyncio.wait_for(self.reader.readexactly(n), 10)

    def send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        assert len(payload) < 126
        self.writer.write(bytes((0x80 | opcode, 0x80 | len(payload))) + mask
                          + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def close(self) -> None:
        self.writer.close()


async def _answer(ws: Raw, frame: bytes, expect: bytes) -> None:
    """Send `frame`, wait for a text reply holding `expect` (pings on the way answered, no close)."""
    ws.send(0x1, frame)
    for _ in range(50):
        got = await ws.frame(10)
        assert got is not None, ("no answer", frame)
        opcode, payload = got
        assert opcode != 0x8, ("closed", payload)
        if opcode == 0x9:
            ws.send(0xA, payload)
            continue
        if opcode == 0x1 and expect in payload:
            return
    raise AssertionError(("no answer", frame))


async def _hello(ws: Raw) -> None:
    await _answer(ws, b'{"type":"hello","protocol":1}', b'"hello"')


async def _served(ws: Raw) -> None:
    """The socket still works as a WebSocket: a `ping` request is answered."""
    await _answer(ws, b'{"type":"ping","id":99999}', b'"id":99999')


async def test_a_client_that_never_answers_is_dropped_with_1011(server: ServerProcess) -> None:
    ws = await Raw.open(server)
    try:
        pings, close = 0, None
        for _ in range(100):  # at most 100 x 1 s; the drop comes after about interval + timeout
            got = await ws.frame(1.0)
            if got is None:
                continue
            opcode, payload = got
            if opcode == 0x9:
                pings += 1  # and never answered
            elif opcode == 0x8:
                close = int.from_bytes(payload[:2], "big")
                break
        assert close == 1011, close
        assert pings == 1, pings  # one ping, unanswered, then the drop at its deadline (no second ping)
    finally:
        ws.close()


async def test_a_client_sending_data_but_no_pongs_stays(server: ServerProcess) -> None:
    """Never a pong; a `ping` request (an application frame) every 0.25 s: never dropped, never pinged
    past the first interval or so (heard from within every interval), and served throughout."""
    ws = await Raw.open(server)
    try:
        await _hello(ws)
        oks = pings = 0
        for i in range(SPAN * 4):  # 8 s in all: four times interval + timeout
            ws.send(0x1, b'{"type":"ping","id":%d}' % i)
            while (got := await ws.frame(0.25)) is not None:
                opcode, payload = got
                assert opcode != 0x8, ("dropped", payload)
                if opcode == 0x9:
                    pings += 1  # not answered
                elif opcode == 0x1 and b'"ok"' in payload:
                    oks += 1
        assert oks >= SPAN * 4 - 1, oks  # every request answered (the last one may be in flight)
        await _served(ws)
    finally:
        ws.close()


async def test_a_client_answering_pings_with_other_frames_stays(server: ServerProcess) -> None:
    """A ping answered only by an application frame (its pong stuck behind data on a slow link, as
    far as the server can tell): the bytes after the ping keep the socket, pings keep coming."""
    ws = await Raw.open(server)
    try:
        await _hello(ws)
        pings = 0
        for i in range(200):  # bounded: at most 200 x 1 s
            got = await ws.frame(1.0)
            if got is None:
                continue
            opcode, payload = got
            assert opcode != 0x8, ("dropped", payload, pings)
            if opcode == 0x9:
                pings += 1
                ws.send(0x1, b'{"type":"ping","id":%d}' % i)  # data instead of the pong
                if pings == 3:
                    break
        assert pings == 3, pings
        await _served(ws)
    finally:
        ws.close()


async def test_a_client_answering_pings_stays(server: ServerProcess) -> None:
    ws = await Raw.open(server)
    try:
        pings = 0
        for _ in range(200):  # bounded: at most 200 x 1 s
            got = await ws.frame(1.0)
            if got is None:
                continue
            opcode, payload = got
            assert opcode == 0x9, (opcode, payload)  # nothing but pings on an idle socket, never a close
            pings += 1
            ws.send(0xA, payload)
            if pings == 4:
                break
        assert pings == 4, pings
        await _hello(ws)
        await _served(ws)
    finally:
        ws.close()


def test_serve_defaults_are_30_s_pings_and_a_15_s_deadline() -> None:
    out = subprocess.run([sys.executable, "-m", "server", "serve", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, env={**os.environ, "COLUMNS": "200"}).stdout
    assert "(default: 30.0;" in out and "(default: 15.0)" in out, out
    from server.keepalive import INTERVAL as PING_INTERVAL, TIMEOUT as PING_TIMEOUT
    assert (PING_INTERVAL, PING_TIMEOUT) == (30.0, 15.0)

