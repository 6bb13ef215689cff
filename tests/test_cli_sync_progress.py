"""`wsfs sync` knows what a run will move: `SyncSummary.bytes_expected` counts, before moving them, the bytes
each batch downloads and uploads, so the terminal bar shows a total (and so a rate-based ETA) instead of `0/?`.

A real server, a real replica; the bar is read from a real `wsfs sync` process on a pseudo-terminal.
"""

from __future__ import annotations

import asyncio
import os
import pty
import random
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from client_fixtures import RestartableServer
from client_py import Client
from client_py.replica import Replica
from server_fixtures import serving

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
WAIT = 60.0


@pytest.fixture
def server(tmp_path):
    yield from serving(RestartableServer(tmp_path / "data"))


def seed(server, files: dict[str, bytes]) -> None:
    async def go():
        async with Client(server.url, token=server.admin) as c:
            for path, data in files.items():
                await c.workspace("demo").write_file(path, data, parents=True)
    asyncio.run(go())


def test_expected_bytes_match_what_moved_both_ways(server, tmp_path):
    rnd = random.Random(7)
    big = rnd.randbytes(3 * MiB)
    seed(server, {"/a.bin": big, "/copy.bin": big, "/small.txt": b"inline"})  # /copy.bin shares every chunk

    async def go():
        replica = Replica(server.url, "demo", str(tmp_path / "rep"), token=server.admin)
        try:
            down = await replica.sync_once()
            assert down.bytes_received >= 3 * MiB
            assert down.bytes_expected == down.bytes_received  # the copy's chunks counted (and fetched) once
            (tmp_path / "rep" / "mine.bin").write_bytes(rnd.randbytes(2 * MiB))
            up = await replica.sync_once()
            assert up.bytes_sent >= 2 * MiB and up.bytes_expected == up.bytes_sent + up.bytes_received
        finally:
            await replica.close()
    asyncio.run(go())


def test_the_terminal_bar_shows_the_total(server, tmp_path):
    seed(server, {"/big.bin": random.Random(8).randbytes(4 * MiB)})
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "wsfs", "sync", server.url, "demo", str(tmp_path / "rep"), "--once"],
        cwd=ROOT, env={**os.environ, "WSFS_TOKEN": server.admin, "COLUMNS": "160", "TERM": "xterm"},
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=follower,
    )
    os.close(follower)
    shown = b""
    deadline = time.monotonic() + WAIT
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the process closed its end
                    break
                if not chunk:
                    break
                shown += chunk
            elif proc.poll() is not None:
                break
        out, _ = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(leader)
    assert proc.returncode == 0 and b"synced demo" in out
    assert b"/ 4.0 MiB" in shown, shown[-2000:]  # "N MiB / 4.0 MiB": the total the run set out to move
