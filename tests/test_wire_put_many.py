"""PUT_MANY frames (`vfs.wire.FRAME_PUT_MANY`, feature `put_many`) against a live server: several
chunk uploads in one binary frame, each verified and stored as if sent alone; a malformed frame
costs only itself; `Session.put_chunks` uses them where the server lists the feature."""

from __future__ import annotations

import blake3
import pytest

from client_py import Client
from server_fixtures import LiveServer, WsClient
from vfs import wire as p
from vfs.types import Change


def h(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


async def test_a_put_many_frame_stores_each_chunk_and_refuses_a_bad_one_alone(live_server: LiveServer) -> None:
    c = await WsClient.open(live_server.ws_url(token=live_server.admin))
    blobs = [bytes([i]) * (500 + i) for i in range(6)]
    hashes = [h(b) for b in blobs]
    sent = [(x, b"corrupted" if i == 2 else b) for i, (x, b) in enumerate(zip(hashes, blobs))]
    for frame in p.encode_put_many_frames(sent, max_bytes=1500):  # (two frames)
        await c.conn.send(frame)
    await c.conn.send(bytes([p.FRAME_PUT_MANY]) + bytes.fromhex(hashes[5])[:10])  # cut short: EBADMSG, nothing taken
    reply = await c.request({"type": "has", "hashes": hashes})
    assert reply["missing"] == [hashes[2]]
    errors = [(e["code"], e.get("hash")) for e in c.events if e["type"] == "error"]
    assert errors == [("EBADOBJECT", hashes[2]), ("EBADMSG", None)]
    got = await c.request({"type": "get", "hashes": hashes})
    assert got["missing"] == [hashes[2]]
    await c.close()


async def test_session_put_chunks_then_push(live_server: LiveServer) -> None:
    blobs = [f"chunk {i}\n".encode() * (i + 1) for i in range(300)]
    async with Client(live_server.url, token=live_server.admin) as client:
        async with await client.connect("demo") as session:
            assert session.speaks(p.FEATURE_PUT_MANY) and session.speaks(p.FEATURE_FILE_SET_MTIME)
            await session.put_chunks([(h(b), b) for b in blobs])
            assert await session.has([h(b) for b in blobs]) == []
            changes = [Change(path=f"/m/f{i}", kind="file", rev=0, mode=0o100644, size=len(b), hash=h(b),
                              chunks=((h(b), len(b)),)) for i, b in enumerate(blobs)]
            result = await session.push(changes)
            assert len(result.applied) == 300 and not result.conflicts
        ws = client.workspace("demo")
        assert await ws.read_file("/m/f299") == blobs[299]
