"""Group-commit acknowledgements (`server.cluster.acks`) on real Redis, SeaweedFS and Litestream.

Every acknowledged write must be in the replica (checked by restoring it),
one round must serve many writers, and a node that lost the workspace, or
whose replication fails, must acknowledge nothing.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from server.cluster.acks import DurableAcks, NotAcknowledged
from server.cluster.lease import Leases
from server.cluster.manifest import Manifests
from server.cluster.objectstore import ObjectStore, S3Location
from server.cluster.ownership import Held, Ownership
from server.cluster.replication import Litestream
from vfs import Workspace

if TYPE_CHECKING:
    from cluster_fixtures import RedisServer

pytest_plugins = ["cluster_fixtures"]


@asynccontextmanager
async def owned_store(redis_server: RedisServer, location: S3Location, litestream: Litestream, db: Path,
                      node: str = "node-a") -> AsyncIterator[tuple[Ownership, Held, DurableAcks]]:
    """A node that owns ws1, with its store registered under the epoch's prefix."""
    async with AsyncExitStack() as stack:
        redis = redis_server.client()
        stack.push_async_callback(redis.aclose)
        store = await stack.enter_async_context(ObjectStore(location))
        ownership = Ownership(Leases(redis, node, ttl_ms=3000), Manifests(store))
        stack.push_async_callback(ownership.close)
        held = await ownership.acquire("ws1")
        with Workspace(db) as ws:
            ws.mkdir("/w", parents=True, exist_ok=True)
        await litestream.register(db, held.prefix)
        yield ownership, held, DurableAcks(litestream, ownership)


@asynccontextmanager
async def another_node_after_redis_forgot(redis_server: RedisServer, location: S3Location) -> AsyncIterator[Ownership]:
    """Node B's ownership, after Redis lost every lease (as on a Redis failover): B may take the workspace."""
    redis = redis_server.client()
    try:
        await redis.flushall()
        async with ObjectStore(location) as store:
            other = Ownership(Leases(redis, "node-b"), Manifests(store))
            try:
                yield other
            finally:
                await other.close()
    finally:
        await redis.aclose()


def write_one(db: Path, name: str, data: bytes) -> None:
    with Workspace(db) as ws:
        ws.write_file(f"/w/{name}", data)


def read_all(db: Path) -> dict[str, bytes]:
    with Workspace(db, readonly=True) as ws:
        return {path: ws.read_file(path) for path in ws.find("/w", kind="file")}


async def test_one_round_acknowledges_every_write_committed_before_it(
    redis_server: RedisServer, s3_location: S3Location, litestream: Litestream, tmp_path: Path
) -> None:
    db = tmp_path / "ws1.db"
    async with owned_store(redis_server, s3_location, litestream, db) as (_, held, acks):
        written = {f"/w/f{i}": os.urandom(100 + i) for i in range(30)}
        for path, data in written.items():
            write_one(db, path.rsplit("/", 1)[1], data)
        await asyncio.gather(*(acks.wait_durable("ws1", db) for _ in written))
        assert acks.rounds == 1  # thirty writers, one sync, one fence check
        restored = tmp_path / "restored.db"
        assert await litestream.restore(held.prefix, restored) is True
        assert read_all(restored) == written


async def test_concurrent_writers_share_rounds_and_every_acknowledged_write_is_replicated(
    redis_server: RedisServer, s3_location: S3Location, litestream: Litestream, tmp_path: Path
) -> None:
    db = tmp_path / "ws1.db"
    async with owned_store(redis_server, s3_location, litestream, db) as (_, held, acks):
        acknowledged: dict[str, bytes] = {}

        async def writer(n: int) -> None:
            for i in range(5):
                name, data = f"w{n}-{i}", os.urandom(64)
                await asyncio.to_thread(write_one, db, name, data)
                await acks.wait_durable("ws1", db)
                acknowledged[f"/w/{name}"] = data  # only now may the client hear "done"

        await asyncio.gather(*(writer(n) for n in range(12)))
        assert len(acknowledged) == 60
        restored = tmp_path / "restored.db"
        assert await litestream.restore(held.prefix, restored) is True
        assert read_all(restored) == acknowledged


@pytest.mark.parametrize("in_flight", [1, 2])
async def test_a_commit_during_a_round_s_sync_gets_a_round_of_its_own(
    redis_server: RedisServer, s3_location: S3Location, litestream: Litestream, tmp_path: Path, in_flight: int
) -> None:
    """A commit made while a round's sync is running may have missed it, so it waits for a later
    round: with one round in flight that round starts when the first ends, with two (`in_flight`)
    at once. Litestream is paused (SIGSTOP) so that the first sync is surely still waiting."""
    db = tmp_path / "ws1.db"
    async with owned_store(redis_server, s3_location, litestream, db) as (_, held, acks):
        acks.in_flight = in_flight
        assert litestream.pid is not None
        os.killpg(litestream.pid, signal.SIGSTOP)  # the syncs' requests wait in the socket unanswered
        try:
            write_one(db, "first", b"1")
            first = asyncio.ensure_future(acks.wait_durable("ws1", db))
            await asyncio.sleep(0.05)  # its round has begun: its sync request is sent
            assert acks.rounds == 1
            write_one(db, "second", b"2")
            second = asyncio.ensure_future(acks.wait_durable("ws1", db))
            await asyncio.sleep(0.2)
            assert not first.done() and not second.done()
            assert acks.rounds == in_flight  # the second round started beside the first, or waits
        finally:
            os.killpg(litestream.pid, signal.SIGCONT)
        await asyncio.gather(first, second)
        assert acks.rounds == 2
        restored = tmp_path / "restored.db"
        assert await litestream.restore(held.prefix, restored) is True
        assert read_all(restored) == {"/w/first": b"1", "/w/second": b"2"}


async def test_a_fenced_node_acknowledges_nothing(
    redis_server: RedisServer, s3_location: S3Location, litestream: Litestream, tmp_path: Path
) -> None:
    db = tmp_path / "ws1.db"
    async with owned_store(redis_server, s3_location, litestream, db) as (ownership, held, acks):
        write_one(db, "before", b"acknowledged")
        await acks.wait_durable("ws1", db)
        ownership.stop_renewal()
        async with another_node_after_redis_forgot(redis_server, s3_location) as other:
            assert (await other.acquire("ws1")).number == held.number + 1
            write_one(db, "after", b"must not be acknowledged")
            with pytest.raises(NotAcknowledged, match="no longer owned"):
                await acks.wait_durable("ws1", db)


async def test_a_replication_failure_acknowledges_nothing(
    redis_server: RedisServer, s3_location: S3Location, litestream: Litestream, tmp_path: Path
) -> None:
    db = tmp_path / "ws1.db"
    async with owned_store(redis_server, s3_location, litestream, db) as (_, _held, acks):
        await litestream.unregister(db)  # its syncs now fail, as when Litestream lost the store
        write_one(db, "x", b"committed locally only")
        results = await asyncio.gather(*(acks.wait_durable("ws1", db) for _ in range(5)), return_exceptions=True)
        assert all(isinstance(r, NotAcknowledged) and "not replicated" in str(r) for r in results), results


async def test_a_takeover_closes_the_old_owners_fence_window(
    redis_server: RedisServer, s3_location: S3Location, litestream: Litestream, tmp_path: Path
) -> None:
    """The rule that makes the fence window safe: a new owner's `acquire` returns (and its restore may
    read the old epoch) only after every HEAD the old owner sent before the bump is older than the
    window. So an old owner whose last HEAD was fresh when the bump landed acknowledges nothing
    after the takeover returned (without the takeover wait it would: its window would still be open,
    and its sync could land after the new owner's restore)."""
    db = tmp_path / "ws1.db"
    async with owned_store(redis_server, s3_location, litestream, db) as (ownership, held, acks):
        assert ownership.fence_window > 0
        write_one(db, "before", b"acknowledged")
        await acks.wait_durable("ws1", db)
        ownership.stop_renewal()
        async with another_node_after_redis_forgot(redis_server, s3_location) as other:
            assert await ownership.still_owner("ws1")  # a fresh HEAD, just before the bump
            taken = await other.acquire("ws1")
            assert taken.number == held.number + 1 and taken.restore_from == held.prefix
            write_one(db, "after", b"must not be acknowledged")
            with pytest.raises(NotAcknowledged, match="no longer owned"):
                await acks.wait_durable("ws1", db)


@pytest.mark.parametrize("window", [0.0, 30.0])
async def test_the_fence_window_takes_the_head_off_the_acknowledgement(
    redis_server: RedisServer, s3_location: S3Location, litestream: Litestream, tmp_path: Path, window: float
) -> None:
    """Window 0 is the plain rule: one HEAD per round, sent after its sync. A window lets a HEAD cover
    the rounds after it (here a long one, so that none has to refresh it)."""
    db = tmp_path / "ws1.db"
    async with owned_store(redis_server, s3_location, litestream, db) as (ownership, held, acks):
        ownership.fence_window = window
        for i in range(10):
            write_one(db, f"f{i}", b"x")
            await acks.wait_durable("ws1", db)
        assert acks.rounds == 10
        assert ownership.fence_checks == (10 if window == 0 else 1)
        restored = tmp_path / "restored.db"
        assert await litestream.restore(held.prefix, restored) is True
        assert len(read_all(restored)) == 10
