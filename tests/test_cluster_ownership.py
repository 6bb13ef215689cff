"""Ownership and fencing (`server.cluster.ownership`) against real Redis and real S3 (SeaweedFS).

Two "nodes" are two `Ownership` objects with different node ids in this
process, sharing one Redis and one bucket, as two servers would.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from typing import TYPE_CHECKING

import pytest

from cluster_fixtures import acquire_eventually
from server.cluster.lease import Leases, LeaseUnavailable
from server.cluster.manifest import Manifest, ManifestError, Manifests
from server.cluster.objectstore import ObjectStore, ObjectStoreError, S3Location
from server.cluster.ownership import Held, NoSuchWorkspace, OwnedElsewhere, Ownership

TTL_MS = 800  # short leases keep the tests quick; the protocol is the same at 3000
RENEW = 0.2

if TYPE_CHECKING:
    from cluster_fixtures import RedisServer

# the engines (redis_server, seaweed, s3_location, litestream); registering the module once for the
# whole session keeps one SeaweedFS for every cluster test
pytest_plugins = ["cluster_fixtures"]


@asynccontextmanager
async def nodes(redis_server: RedisServer, location: S3Location, *names: str,
                ttl_ms: int = TTL_MS) -> AsyncIterator[tuple[list[Ownership], list[list[str]]]]:
    """One Ownership per name (its own Redis and S3 clients); yields them and each one's lost-workspace list."""
    async with AsyncExitStack() as stack:
        result, lost = [], []
        for name in names:
            redis = redis_server.client()
            stack.push_async_callback(redis.aclose)
            store = await stack.enter_async_context(ObjectStore(location))
            lost_here: list[str] = []
            node = Ownership(Leases(redis, name, ttl_ms=ttl_ms), Manifests(store), renew_every=RENEW,
                             on_lost=lost_here.append)
            stack.push_async_callback(node.close)
            result.append(node)
            lost.append(lost_here)
        yield result, lost



async def test_two_nodes_racing_for_a_workspace_exactly_one_wins(redis_server: RedisServer,
                                                               s3_location: S3Location) -> None:
    async with nodes(redis_server, s3_location, "node-a", "node-b") as ((a, b), _):
        results = await asyncio.gather(a.acquire("ws1"), b.acquire("ws1"), return_exceptions=True)
        held = [r for r in results if isinstance(r, Held)]
        refused = [r for r in results if isinstance(r, OwnedElsewhere)]
        assert len(held) == 1 and len(refused) == 1, results
        winner, loser = (a, b) if isinstance(results[0], Held) else (b, a)
        assert refused[0].owner == winner.node
        assert await loser.owner_of("ws1") == winner.node
        assert await winner.owner_of("ws1") == winner.node
        assert held[0].number == 1
        assert held[0].prefix == s3_location.key("ws", "ws1", "e1")
        assert held[0].restore_from is None  # nothing was ever replicated
        current = await winner.manifests.read("ws1")
        assert current is not None and current.manifest == Manifest(1, winner.node, held[0].prefix)
        assert await winner.still_owner("ws1") is True
        assert await loser.still_owner("ws1") is False
        with pytest.raises(OwnedElsewhere):
            await loser.acquire("ws1")


async def test_a_held_lease_is_renewed_past_its_time_to_live(redis_server: RedisServer,
                                                            s3_location: S3Location) -> None:
    async with nodes(redis_server, s3_location, "node-a", "node-b") as ((a, b), (lost_a, _)):
        await a.acquire("ws1")
        for _ in range(3):  # three full times to live: only renewal keeps it
            await asyncio.sleep(TTL_MS / 1000)
            with pytest.raises(OwnedElsewhere):
                await b.acquire("ws1")
        assert await a.still_owner("ws1") is True
        assert lost_a == []


async def test_after_the_lease_lapses_another_node_takes_over_and_the_old_owner_is_fenced(
    redis_server: RedisServer, s3_location: S3Location
) -> None:
    async with nodes(redis_server, s3_location, "node-a", "node-b") as ((a, b), (lost_a, _)):
        first = await a.acquire("ws1")
        # epoch 1 replicated something: the next owner must restore from it
        async with ObjectStore(s3_location) as store:
            assert await store.put_new(f"{first.prefix}/0000/snapshot.ltx", b"replica bytes")

        a.stop_renewal()  # node-a pauses: its lease lapses
        second = await acquire_eventually(b, "ws1")
        assert second.number == 2
        assert second.prefix == s3_location.key("ws", "ws1", "e2")
        assert second.restore_from == first.prefix
        assert await b.still_owner("ws1") is True

        # node-a wakes up still holding its epoch-1 state: the manifest says no, whatever its timer says
        assert await a.manifests.still_current("ws1", first.epoch) is False
        assert await a.still_owner("ws1") is False
        assert await a.leases.owner("ws1") == "node-b"


async def test_the_fence_holds_even_when_redis_forgets_the_lease(redis_server: RedisServer,
                                                                 s3_location: S3Location) -> None:
    """Redis can lose keys on failover: a second node then gets the lease while the first
    still believes (by its own clock) that it holds it. Only the S3 manifest stops the first."""
    async with nodes(redis_server, s3_location, "node-a", "node-b", ttl_ms=60_000) as ((a, b), (lost_a, _)):
        first = await a.acquire("ws1")
        assert await a.still_owner("ws1") is True
        a.stop_renewal()  # node-a is cut off from Redis: its renewals would not arrive anyway
        redis = redis_server.client()
        try:
            await redis.flushall()  # the lease is gone; node-a's local lease has ~60 s left
        finally:
            await redis.aclose()
        second = await b.acquire("ws1")
        assert second.number == 2
        assert a.held["ws1"].valid_until > time.monotonic()  # node-a's timer still says "yours"
        assert await a.still_owner("ws1") is False  # ... and the conditional HEAD says no
        assert lost_a == ["ws1"]
        assert await a.manifests.still_current("ws1", first.epoch) is False
        assert await b.still_owner("ws1") is True


async def test_the_old_owner_renewing_again_finds_the_lease_taken_and_lets_go(
    redis_server: RedisServer, s3_location: S3Location
) -> None:
    async with nodes(redis_server, s3_location, "node-a", "node-b") as ((a, b), (lost_a, lost_b)):
        await a.acquire("ws1")
        a.stop_renewal()
        await acquire_eventually(b, "ws1")
        await a.renew_once()  # node-a resumes its renewal loop
        assert "ws1" not in a.held and lost_a == ["ws1"]
        assert await a.owner_of("ws1") == "node-b"  # its compare-and-extend did not touch b's lease
        assert lost_b == [] and await b.still_owner("ws1") is True


async def test_a_clean_release_hands_over_without_waiting_for_expiry(redis_server: RedisServer,
                                                                     s3_location: S3Location) -> None:
    async with nodes(redis_server, s3_location, "node-a", "node-b", ttl_ms=60_000) as ((a, b), _):
        first = await a.acquire("ws1")
        with pytest.raises(OwnedElsewhere):
            await b.acquire("ws1")
        await a.release("ws1")
        assert await a.still_owner("ws1") is False
        second = await b.acquire("ws1")  # at once: a 60 s lease would otherwise block it
        assert second.number == first.number + 1
        assert await b.owner_of("ws1") == "node-b"
        assert await b.still_owner("ws1") is True


async def test_losing_redis_stops_acknowledgements_within_one_lease(redis_server: RedisServer,
                                                                    s3_location: S3Location) -> None:
    async with nodes(redis_server, s3_location, "node-a") as ((a,), (lost_a,)):
        await a.acquire("ws1")
        assert await a.still_owner("ws1") is True
        redis_server.kill()
        deadline = time.monotonic() + 10
        while await a.still_owner("ws1"):
            assert time.monotonic() < deadline, "still acknowledging long after the lease ran out"
            await asyncio.sleep(0.05)
        await _wait_until(lambda: lost_a == ["ws1"], "on_lost after the lease ran out")


async def test_still_owner_raises_when_s3_cannot_answer(redis_server: RedisServer, s3_location: S3Location) -> None:
    unreachable = S3Location(bucket=s3_location.bucket, prefix=s3_location.prefix,
                             endpoint="http://127.0.0.1:9", access_key="x", secret_key="y")
    # opened first: building a botocore client blocks the event loop for a while (its service model)
    async with ObjectStore(unreachable, timeout=1.0) as gone, \
            nodes(redis_server, s3_location, "node-a", ttl_ms=5000) as ((a,), _):
        await a.acquire("ws1")
        assert await a.still_owner("ws1") is True
        a.manifests = Manifests(gone)  # the node's S3 goes away
        with pytest.raises(ObjectStoreError):
            await a.still_owner("ws1")


async def test_workspaces_are_owned_independently(redis_server: RedisServer, s3_location: S3Location) -> None:
    async with nodes(redis_server, s3_location, "node-a", "node-b") as ((a, b), _):
        await a.acquire("ws1")
        await b.acquire("ws2")
        assert set(a.held) == {"ws1"} and set(b.held) == {"ws2"}
        assert await a.owner_of("ws2") == "node-b" and await b.owner_of("ws1") == "node-a"


async def _wait_until(check, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        await asyncio.sleep(0.05)


async def test_one_node_acquiring_twice_at_once_takes_one_epoch(redis_server: RedisServer,
                                                                s3_location: S3Location) -> None:
    async with nodes(redis_server, s3_location, "node-a") as ((a,), _):
        first, second = await asyncio.gather(a.acquire("ws1"), a.acquire("ws1"))
        assert first is second and first.number == 1
        current = await a.manifests.read("ws1")
        assert current is not None and current.manifest.epoch == 1


async def test_a_damaged_manifest_refuses_the_takeover_and_frees_the_lease(redis_server: RedisServer,
                                                                          s3_location: S3Location) -> None:
    async with nodes(redis_server, s3_location, "node-a", "node-b") as ((a, b), _):
        async with ObjectStore(s3_location) as store:
            assert await store.put_new(a.manifests.key("ws1"), b"{not a manifest")
        with pytest.raises(ManifestError, match="not JSON"):
            await a.acquire("ws1")
        assert "ws1" not in a.held
        assert await b.leases.owner("ws1") is None  # nobody is left holding a lease it cannot use


async def test_a_paused_redis_stops_acknowledgements_and_nothing_hangs(redis_server: RedisServer,
                                                                       s3_location: S3Location) -> None:
    """A paused (or cut-off) Redis does not refuse connections, it never answers: every lease call is
    bounded, the owner stops acknowledging within one lease, and all recovers when Redis returns."""
    async with nodes(redis_server, s3_location, "node-a", "node-b") as ((a, b), (lost_a, _)):
        await a.acquire("ws1")
        redis_server.signal(signal.SIGSTOP)
        try:
            await _wait_until_async(lambda: _not(a.still_owner("ws1")), "acks to stop")
            await _wait_until(lambda: lost_a == ["ws1"], "on_lost when renewals time out")
            with pytest.raises(LeaseUnavailable):
                await asyncio.wait_for(b.acquire("ws2"), 30)  # bounded by the lease timeout, not 30 s
        finally:
            redis_server.signal(signal.SIGCONT)
        held = await acquire_eventually(b, "ws1")  # Redis is back: the lapsed lease goes to node-b
        assert held.number == 2 and await b.still_owner("ws1") is True


async def _not(check) -> bool:
    return not await check


async def _wait_until_async(make_check, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await make_check():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        await asyncio.sleep(0.05)


async def test_the_deletion_marker_keeps_every_node_from_restoring_a_deleted_workspace(
        redis_server: RedisServer, s3_location: S3Location) -> None:
    """The owner writes the marker over its own epoch; afterwards no node restores the old replicas
    (still in the bucket here, as in the moment between the marker and their erasure, or after an
    erasure that failed): an open is refused, a creation starts an empty life. Nothing here waits
    for a lease to expire, so the leases are the production length: at 0.8 s one lapsed once while
    the test process was starved (load 11) and node-a's release found nothing to release."""
    async with nodes(redis_server, s3_location, "node-a", "node-b", ttl_ms=3000) as ((a, b), _):
        first = await a.acquire("ws1")
        async with ObjectStore(s3_location) as store:
            assert await store.put_new(f"{first.prefix}/0000/snapshot.ltx", b"the old life's replica")
        marked = await a.manifests.mark_deleted("ws1", first.epoch)
        assert marked is not None and marked.manifest.deleted and marked.manifest.epoch == first.number
        assert await a.still_owner("ws1") is False  # the marker ends our epoch too: nothing more acknowledged
        assert await a.leases.release("ws1")
        with pytest.raises(NoSuchWorkspace, match="deleted"):
            await b.acquire("ws1", revive=False)  # an open (not a creation) of a deleted workspace
        current = await b.manifests.read("ws1")
        assert current is not None and current.manifest.deleted  # left as it was
        assert await b.leases.owner("ws1") is None
        reborn = await b.acquire("ws1", revive=True)
        assert reborn.number == first.number + 1 and reborn.epoch.manifest.since == reborn.number
        assert reborn.restore_from is None  # without the marker: first.prefix, the deleted data
        assert await b.manifests.erase_before("ws1", first.number) == 1
        assert await b.manifests.restore_source("ws1", reborn.number + 1, reborn.epoch.manifest.since) is None


async def test_only_the_current_owner_can_mark_a_workspace_deleted(redis_server: RedisServer,
                                                                  s3_location: S3Location) -> None:
    async with nodes(redis_server, s3_location, "node-a", "node-b") as ((a, b), _):
        first = await a.acquire("ws1")
        a.stop_renewal()
        redis = redis_server.client()
        try:
            await redis.flushall()  # Redis forgets the lease: node-b takes the workspace
        finally:
            await redis.aclose()
        second = await b.acquire("ws1")
        assert await a.manifests.mark_deleted("ws1", first.epoch) is None  # a paused ex-owner's delete
        current = await b.manifests.read("ws1")
        assert current is not None and not current.manifest.deleted and current.etag == second.epoch.etag


async def test_an_open_of_a_name_never_created_writes_nothing(redis_server: RedisServer,
                                                             s3_location: S3Location) -> None:
    async with nodes(redis_server, s3_location, "node-a") as ((a,), _):
        with pytest.raises(NoSuchWorkspace, match="never created"):
            await a.acquire("typo", revive=False)
        assert await a.manifests.read("typo") is None and await a.leases.owner("typo") is None
        assert (await a.acquire("typo", revive=True)).number == 1  # a creation does write it
