"""Garbage collection spares chunks whose naming write is still on its way.

A chunk is stored before the write that names it commits: a big PUT stores
its body in batches as it arrives, a replica uploads chunks and pushes later.
A collection in between must not take them (`POST .../gc` keeps what was
stored, or uploaded again, in the last `?grace=` seconds).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time

import blake3
import pytest

import vfs
from client_py import Client
from vfs.types import Change

from tests.server_fixtures import LiveServer

MiB = 1024 * 1024


def _backdate(store: str, digest: str, seconds: float) -> None:
    """Make one stored chunk look `seconds` old (the test's clock, not the store's code)."""
    with sqlite3.connect(store) as conn:
        changed = conn.execute("UPDATE chunks SET created = ? WHERE hash = ?",
                               (time.time() - seconds, bytes.fromhex(digest))).rowcount
    assert changed == 1


def test_an_old_unnamed_chunk_uploaded_again_counts_as_just_stored(tmp_path):
    store = str(tmp_path / "s.db")
    data = os.urandom(64 * 1024)
    with vfs.Workspace(store) as ws:
        digest = ws.put_object(data)
    _backdate(store, digest, 7200)
    with vfs.Workspace(store) as ws:
        ws.put_object(data)  # a client uploads it again before pushing a file that names it
        assert ws.gc(grace=60).chunks_removed == 0
        assert set(ws.has_objects([digest])) == {digest}
    _backdate(store, digest, 7200)  # and with no new upload, the same chunk is collected
    with vfs.Workspace(store) as ws:
        assert ws.gc(grace=60).chunks_removed == 1
        assert not ws.has_objects([digest])


@pytest.mark.asyncio
async def test_gc_keeps_uploaded_chunks_until_their_push_and_grace_0_takes_them(live_server: LiveServer):
    named, loose = os.urandom(200 * 1024), os.urandom(200 * 1024)
    named_hash, loose_hash = blake3.blake3(named).hexdigest(), blake3.blake3(loose).hexdigest()
    async with Client(live_server.url, token=live_server.admin) as client:
        ws = client.workspace("demo")
        async with await client.connect("demo") as session:
            await session.put_chunk(named_hash, named)
            await session.put_chunk(loose_hash, loose)
            await session.ping()
            stats = await ws.gc()  # the server's default grace
            assert stats.chunks_removed == 0
            assert await session.has([named_hash, loose_hash]) == []  # both still there
            result = await session.push([Change(path="/up.bin", kind="file", rev=0, size=len(named),
                                                hash=named_hash, chunks=((named_hash, len(named)),), mode=0o644)])
            assert result.applied == ["/up.bin"] and not result.conflicts
            assert (await ws.gc(grace=0)).chunks_removed == 1  # the loose one: nothing names it
            assert await session.has([named_hash, loose_hash]) == [loose_hash]
        assert await ws.read_file("/up.bin") == named


@pytest.mark.asyncio
async def test_a_big_put_survives_a_gc_while_its_body_is_arriving(live_server: LiveServer):
    body = os.urandom(20 * MiB)
    rest_may_come = asyncio.Event()

    async def pieces():
        yield body[: 12 * MiB]
        await rest_may_come.wait()
        yield body[12 * MiB:]

    async with live_server.ahttp() as http:
        put = asyncio.create_task(http.put("/api/workspaces/demo/files/big.bin", content=pieces(),
                                           headers={"Content-Length": str(len(body))}))
        packs = live_server.data_dir / "workspaces" / "demo.db-packs"
        deadline = time.monotonic() + 30
        while not _staged_bytes(packs):  # until the first batches are on disk, in the upload's staged pack
            assert time.monotonic() < deadline and not put.done(), "no batch of the big PUT was staged"
            await asyncio.sleep(0.05)
        collected = await http.post("/api/workspaces/demo/gc")  # the default grace, mid-upload (compaction too)
        assert collected.status_code == 200 and collected.json()["chunks_removed"] == 0
        assert _staged_bytes(packs), "the gc's compaction took the staged pack of an upload still arriving"
        rest_may_come.set()
        answer = await asyncio.wait_for(put, 60)
        assert answer.status_code in (200, 201), answer.text
        got = await http.get("/api/workspaces/demo/files/big.bin")
        assert got.status_code == 200 and got.content == body


def _staged_bytes(packs) -> int:
    """Bytes in the store's staged packs (an upload's chunks before the commit that adopts them)."""
    return sum(f.stat().st_size for f in packs.glob("staged-*.tmp")) if packs.is_dir() else 0


@pytest.mark.parametrize("grace", ["-1", "soon", "1.5", str(10**12)])
def test_a_bad_grace_is_refused_by_name(live_server: LiveServer, grace: str):
    with live_server.http() as http:
        answer = http.post("/api/workspaces/demo/gc", params={"grace": grace})
    assert answer.status_code == 400
    error = answer.json()
    assert error["error"]["code"] == "EINVAL" and error["error"].get("field") == "grace", error

