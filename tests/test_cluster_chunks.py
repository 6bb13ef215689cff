"""Chunk bytes as S3 objects in a cluster (`server/cluster/objectchunks.py`), with real engines.

A big file's bulk chunks are objects, PUT before the commit naming them; a
new owner restores the catalogue only (its store file stays small) and reads
the chunks lazily; the collector deletes objects no durable catalogue names
and never one that is named.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import blake3
import httpx
import pytest

from client_py import Client
from server.cluster.objectchunks import _doomed, key_suffix, parse_key, tag_of
from server.cluster.objectstore import ObjectStore, S3Location
from tests.cluster_fixtures import RedisServer, admin_token, get_until

pytestmark = pytest.mark.timeout(150)
MIB = 1 << 20


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _chunk_keys(location: S3Location, workspace: str) -> set[str]:
    async with ObjectStore(location) as s3:
        return set(await s3.keys(location.key("ws", workspace, "chunks")))


def _store_file(node_dir: Path, workspace: str) -> Path:
    found = list(node_dir.rglob(f"{workspace}.db"))
    assert len(found) == 1, found
    return found[0]


async def test_a_big_file_is_read_through_another_node_after_its_owner_dies(
        cluster_nodes, redis_server: RedisServer, s3_location: S3Location, tmp_path: Path) -> None:
    token = admin_token(redis_server.url)
    a, b = cluster_nodes(2)
    body = os.urandom(12 * MIB)
    async with httpx.AsyncClient(headers=_auth(token), timeout=60) as http:
        assert (await http.put(f"{a.url}/api/workspaces/big")).status_code == 201
        put = await http.put(f"{a.url}/api/workspaces/big/files/blob.bin", content=body)
        assert put.status_code in (200, 201), put.text
        keys = await _chunk_keys(s3_location, "big")
        # beyond the 1 MiB a transaction keeps inside SQLite, every chunk is an object (acknowledged => PUT)
        assert sum(1 for k in keys if parse_key(k)) >= (12 - 2) * MIB // (256 * 1024), len(keys)
        scrape = (await http.get(f"{a.url}/metrics")).text  # the node counts what it sent
        puts = next(line for line in scrape.splitlines() if line.startswith('wsfs_cluster_chunk_requests_total{op="put"}'))
        assert float(puts.split()[-1]) >= len([k for k in keys if parse_key(k)])
        a.kill()  # SIGKILL the owner's process group
        got = await get_until(http, f"{b.url}/api/workspaces/big/files/blob.bin", seconds=60)
        assert got.status_code == 200, got.text
        assert got.content == body
        # b restored the catalogue, not the bytes: its store file is far smaller than the file
        restored = _store_file(tmp_path / "node-b", "big")
        size = restored.stat().st_size + sum(p.stat().st_size for p in restored.parent.glob("big.db-wal"))
        assert size < 4 * MIB, size
        # and b can write the workspace on: a second big file, new objects of b's epoch
        second = os.urandom(3 * MIB)
        put = await http.put(f"{b.url}/api/workspaces/big/files/two.bin", content=second)
        assert put.status_code in (200, 201), put.text
        epochs = {parse_key(k)[0] >> 32 for k in await _chunk_keys(s3_location, "big") if parse_key(k)}
        assert len(epochs) == 2, epochs


async def test_the_collector_deletes_unnamed_objects_and_keeps_named_ones(
        cluster_nodes, redis_server: RedisServer, s3_location: S3Location, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WSFS_CLUSTER_CHUNK_GRACE", "0")  # the nodes inherit it: no grace in this test
    token = admin_token(redis_server.url)
    (a,) = cluster_nodes(1)
    kept = os.urandom(4 * MIB)
    async with httpx.AsyncClient(headers=_auth(token), timeout=60) as http:
        assert (await http.put(f"{a.url}/api/workspaces/g")).status_code == 201
        assert (await http.put(f"{a.url}/api/workspaces/g/files/kept.bin", content=kept)).status_code in (200, 201)
        named = await _chunk_keys(s3_location, "g")
        assert named
        # chunks uploaded over the WebSocket and never pushed (a client that gave up): one transaction
        # of 64 chunks, so most of them are objects; no file names them
        loose = [os.urandom(64 * 1024) for _ in range(64)]
        async with Client(a.url, token=token) as client, await client.connect("g") as session:
            for data in loose:
                await session.put_chunk(blake3.blake3(data).hexdigest(), data)
            await session.ping()
            assert await session.has([blake3.blake3(d).hexdigest() for d in loose]) == []  # all stored
        everything = await _chunk_keys(s3_location, "g")
        unnamed = everything - named
        loose_hashes = {blake3.blake3(d).digest() for d in loose}
        assert unnamed and {parse_key(k)[1] for k in unnamed} <= loose_hashes
        collected = await http.post(f"{a.url}/api/workspaces/g/gc?grace=0")  # the loose ones are seconds old
        assert collected.status_code == 200, collected.text
        after = await _chunk_keys(s3_location, "g")
        assert after == named  # every unnamed object gone, every named one still there
        got = await http.get(f"{a.url}/api/workspaces/g/files/kept.bin")
        assert got.status_code == 200 and got.content == kept
        # a deleted workspace's objects go with its replicas
        assert (await http.delete(f"{a.url}/api/workspaces/g")).status_code == 204
        assert await _chunk_keys(s3_location, "g") == set()


def test_the_collector_judges_only_older_unnamed_objects_past_the_grace() -> None:
    """The rule `compact` applies to a listing (its safety argument: docs/cluster.md)."""
    digest = bytes(range(32))
    now = 1_000_000.0

    def listed(epoch: int, gen: int, age: float) -> tuple[str, int, float]:
        return (f"root/ws/w/chunks/{key_suffix(tag_of(epoch, gen), digest)}", 10, now - age)

    newest = tag_of(5, 3)  # we own epoch 5 and just closed generation 2
    named = {(tag_of(5, 1), digest)}
    candidates = [
        listed(5, 1, 100),  # named by the catalogue: kept
        listed(5, 2, 100),  # unnamed, older generation, old: deleted
        listed(4, 9, 100),  # unnamed, earlier epoch: deleted
        listed(5, 3, 100),  # the generation uploads go to now: never judged
        listed(6, 1, 100),  # a later owner's upload (we are paused and do not know yet): never touched
        listed(5, 2, 5),  # younger than the grace: kept
        ("root/ws/w/chunks/not-a-chunk", 1, 0.0),
    ]
    doomed = [key for key, _ in _doomed(candidates, named, newest, now - 60)]
    assert doomed == [candidates[1][0], candidates[2][0]]
    assert parse_key(candidates[0][0]) == (tag_of(5, 1), digest)


async def test_a_fenced_owners_collector_deletes_nothing(
        redis_server: RedisServer, s3_location: S3Location, litestream, tmp_path: Path) -> None:
    """The collector's step 3: an owner that lost the workspace (here: Redis forgot the lease and another
    node bumped the epoch) finds its catalogue not fenced and deletes nothing, while the same pass by
    the owner, just before, deleted what a removed file left."""
    from server.cluster.chunkobjects import ChunkCache, ChunkObjects, ObjectClient
    from server.cluster.objectchunks import ChunkSpace, blocking_durable
    from tests.test_cluster_acks import another_node_after_redis_forgot, owned_store
    from vfs import Workspace

    db = tmp_path / "ws1.db"
    objects = ChunkObjects(ObjectClient(s3_location), ChunkCache(tmp_path / "cache"))
    prefix = s3_location.key("ws", "ws1", "chunks")
    try:
        async with owned_store(redis_server, s3_location, litestream, db) as (ownership, held, acks):
            loop = asyncio.get_running_loop()
            space = ChunkSpace("ws1", prefix, objects, lambda: held.number if "ws1" in ownership.held else None,
                               blocking_durable(loop, lambda: acks.wait_durable("ws1", db), 30), grace=0)

            def write_remove_collect(name: str) -> int:
                with Workspace(db, history_keep=0, history_days=0, chunk_backend=space) as ws:
                    ws.write_file(f"/w/{name}", os.urandom(2 * MIB))
                    ws.unlink(f"/w/{name}")
                    return ws.gc().chunks_removed

            async def keys() -> set[str]:
                return await _chunk_keys(s3_location, "ws1")

            assert await asyncio.to_thread(write_remove_collect, "one") > 0
            assert await keys() == set()  # the owner collected every object of the removed file
            def write_remove(name: str) -> None:  # on a thread: the loop must keep renewing the lease
                with Workspace(db, history_keep=0, history_days=0, chunk_backend=space) as ws:
                    ws.write_file(f"/w/{name}", os.urandom(2 * MIB))
                    ws.unlink(f"/w/{name}")

            await asyncio.to_thread(write_remove, "two")
            left = await keys()
            assert left
            ownership.stop_renewal()
            async with another_node_after_redis_forgot(redis_server, s3_location) as other:
                await other.acquire("ws1")

                def collect() -> None:
                    with Workspace(db, history_keep=0, history_days=0, chunk_backend=space) as ws:
                        ws.gc()

                await asyncio.to_thread(collect)
                assert await keys() == left  # fenced: nothing deleted
    finally:
        await asyncio.to_thread(objects.close)
