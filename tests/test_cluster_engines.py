"""What cluster mode relies on from its engines, proved against the real ones on loopback.

- Redis: `SET NX PX` gives a lease to one node; compare-and-extend and
  compare-and-delete never touch another node's lease; a lease expires.
- S3 (SeaweedFS): `If-None-Match: *` refuses an existing key, `If-Match`
  refuses a stale ETag (PUT and HEAD), and a refused write changes nothing.
- Litestream: a live SQLite file registered through the control socket is
  in S3 once `sync` with `wait` returns, and `restore` gives back every
  committed transaction.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from server.cluster.lease import Leases
from server.cluster.objectstore import ObjectStore, ObjectStoreError, S3Location
from server.cluster.replication import Litestream

if TYPE_CHECKING:
    from cluster_fixtures import RedisServer

# the engines (redis_server, seaweed, s3_location, litestream); registering the module once for the
# whole session keeps one SeaweedFS for every cluster test
pytest_plugins = ["cluster_fixtures"]


async def wait_for(predicate, what: str, timeout: float = 10.0):
    """Poll an async predicate until it is truthy (bounded in time)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        await asyncio.sleep(0.05)


# -- Redis ----------------------------------------------------------------------------


async def test_redis_set_nx_px_gives_the_lease_to_one_node(redis_server: RedisServer) -> None:
    redis = redis_server.client()
    try:
        a, b = Leases(redis, "node-a", ttl_ms=3000), Leases(redis, "node-b", ttl_ms=3000)
        results = await asyncio.gather(*(n.take("ws1") for n in (a, b, a, b)))
        winners = {("node-a", "node-b")[i % 2] for i, r in enumerate(results) if r is None}
        assert len(winners) == 1
        (winner,) = winners
        loser = "node-b" if winner == "node-a" else "node-a"
        assert all(r in (None, winner) for r in results)
        assert await redis.get("owner:ws1") == winner.encode()
        assert await (a if loser == "node-a" else b).owner("ws1") == winner
    finally:
        await redis.aclose()


async def test_redis_compare_and_extend_and_delete_touch_only_our_own_lease(redis_server: RedisServer) -> None:
    redis = redis_server.client()
    try:
        a, b = Leases(redis, "node-a", ttl_ms=2000), Leases(redis, "node-b", ttl_ms=60_000)
        assert await a.take("ws1") is None
        assert await b.take("ws1") == "node-a"
        assert await b.extend("ws1") is False
        assert 0 < await redis.pttl("owner:ws1") <= 2000  # b's 60 s did not stretch a's lease
        assert await b.release("ws1") is False
        assert await redis.get("owner:ws1") == b"node-a"

        await redis.pexpire("owner:ws1", 300)
        assert await a.extend("ws1") is True
        assert 300 < await redis.pttl("owner:ws1") <= 2000  # extended to a full time to live again
        assert await a.release("ws1") is True
        assert await redis.exists("owner:ws1") == 0
        assert await b.take("ws1") is None  # free at once after the release
    finally:
        await redis.aclose()


async def test_redis_lease_expires_when_not_extended(redis_server: RedisServer) -> None:
    redis = redis_server.client()
    try:
        a, b = Leases(redis, "node-a", ttl_ms=300), Leases(redis, "node-b", ttl_ms=300)
        assert await a.take("ws1") is None
        assert await b.take("ws1") == "node-a"
        await wait_for(lambda: _exists_not(redis, "owner:ws1"), "lease expiry", timeout=5)
        assert await a.extend("ws1") is False  # an expired lease cannot be revived by its old owner
        assert await b.take("ws1") is None
        assert await a.owner("ws1") == "node-b"
    finally:
        await redis.aclose()


async def _exists_not(redis, key: str) -> bool:
    return await redis.exists(key) == 0


# -- S3 -------------------------------------------------------------------------------


async def test_s3_if_none_match_refuses_an_existing_key(s3_location: S3Location) -> None:
    async with ObjectStore(s3_location) as store:
        assert await store.get("k") is None
        first = await store.put_new("k", b'{"v": 1}')
        assert first
        assert await store.put_new("k", b'{"v": 2}') is None
        stored = await store.get("k")
        assert stored is not None and stored.body == b'{"v": 1}' and stored.etag == first


async def test_s3_if_match_refuses_a_stale_etag(s3_location: S3Location) -> None:
    async with ObjectStore(s3_location) as store:
        one = await store.put_new("m", b"one")
        assert one
        two = await store.put_replacing("m", b"two", one)
        assert two and two != one
        assert await store.put_replacing("m", b"three", one) is None  # one is stale now
        stored = await store.get("m")
        assert stored is not None and stored.body == b"two" and stored.etag == two
        assert await store.matches("m", two) is True
        assert await store.matches("m", one) is False
        assert await store.put_replacing("absent", b"x", two) is None  # If-Match on no object fails
        assert await store.get("absent") is None
        assert await store.matches("absent", two) is False


async def test_s3_the_fences_signed_head_answers_as_aiobotocore_does(s3_location: S3Location) -> None:
    """The fence's HEAD goes out signed by hand over aiohttp (cheaper): same answers as aiobotocore's,
    for the current ETag, a stale one, a missing key, a key with characters to escape; and refused
    credentials are an error (a 503 upstream), never a plain "not ours"."""
    async with ObjectStore(s3_location) as fast, ObjectStore(s3_location, signed_head=False) as slow:
        assert fast._fence_head is not None and slow._fence_head is None  # each path really taken
        one = await fast.put_new("fence/ws a+b", b"one")
        assert one
        two = await fast.put_replacing("fence/ws a+b", b"two", one)
        assert two
        for store in (fast, slow):
            assert await store.matches("fence/ws a+b", two) is True
            assert await store.matches("fence/ws a+b", one) is False
            assert await store.matches("fence/absent", two) is False
    wrong = dataclasses.replace(s3_location, secret_key="not-the-secret")
    async with ObjectStore(wrong) as store:
        with pytest.raises(ObjectStoreError, match="403"):
            await store.matches("fence/ws a+b", two)


async def test_s3_concurrent_conditional_puts_let_exactly_one_through(s3_location: S3Location) -> None:
    async with ObjectStore(s3_location) as store:
        base = await store.put_new("race", b"base")
        assert base
        results = await asyncio.gather(*(store.put_replacing("race", f"w{i}".encode(), base) for i in range(8)))
        won = [i for i, etag in enumerate(results) if etag]
        assert len(won) == 1
        stored = await store.get("race")
        assert stored is not None and stored.body == f"w{won[0]}".encode()


# -- Litestream -----------------------------------------------------------------------


def _open_wal(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    conn.commit()
    return conn


def _rows(path: Path) -> dict[int, str]:
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return dict(conn.execute("SELECT id, body FROM t"))
    finally:
        conn.close()


async def test_litestream_restores_every_transaction_committed_before_a_sync(
    litestream: Litestream, tmp_path: Path
) -> None:
    db = tmp_path / "live.db"
    conn = _open_wal(db)
    await litestream.register(db, "engines/live")
    committed: dict[int, str] = {}
    stop = threading.Event()

    def writer() -> None:  # a live writer committing one row per transaction while Litestream replicates
        for i in range(1, 2001):
            if stop.is_set():
                return
            body = f"row {i} " + "x" * (i % 97)
            conn.execute("INSERT INTO t VALUES (?, ?)", (i, body))
            conn.commit()
            committed[i] = body
            time.sleep(0.001)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        await wait_for(_true_after(lambda: len(committed) >= 100), "the writer's first rows")
        mid_run = dict(committed)  # committed before the sync below started
        await litestream.sync(db)
        snapshot = tmp_path / "mid-run.db"
        assert await litestream.restore("engines/live", snapshot) is True
        restored = _rows(snapshot)
        assert len(restored) >= len(mid_run) >= 100
        assert {i: restored[i] for i in mid_run} == mid_run  # every commit before the sync, exactly
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive()
    result = await litestream.sync(db)
    assert result.replicated_txid >= result.txid >= 1
    conn.close()

    final = tmp_path / "restored.db"
    assert await litestream.restore("engines/live", final) is True
    assert _rows(final) == committed
    assert len(committed) > len(mid_run)


def _true_after(check):
    async def predicate() -> bool:
        return bool(check())

    return predicate


async def test_litestream_restore_of_an_empty_prefix_says_so_and_touches_nothing(
    litestream: Litestream, tmp_path: Path
) -> None:
    target = tmp_path / "keep.db"
    conn = _open_wal(target)
    conn.execute("INSERT INTO t VALUES (1, 'mine')")
    conn.commit()
    conn.close()
    assert await litestream.restore("engines/nothing-here", target) is False
    assert _rows(target) == {1: "mine"}
