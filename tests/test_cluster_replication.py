"""The node's supervised Litestream (`server.cluster.replication`) with real workspace stores and real S3.

Writes go through `vfs.Workspace` (the store the server keeps), Litestream
replicates the file to SeaweedFS, and a restore into a new path must hold
every write that was synced, byte for byte.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from cluster_fixtures import acquire_eventually
from server.cluster.children import kill_group
from server.cluster.lease import Leases
from server.cluster.manifest import Manifests
from server.cluster.objectstore import ObjectStore, S3Location
from server.cluster.ownership import Ownership
from server.cluster.replication import Litestream, ReplicationError, compaction_settings
from vfs import Workspace

if TYPE_CHECKING:
    from cluster_fixtures import RedisServer

# the engines (redis_server, seaweed, s3_location, litestream); registering the module once for the
# whole session keeps one SeaweedFS for every cluster test
pytest_plugins = ["cluster_fixtures"]


def write_files(store: Path, start: int, count: int) -> dict[str, bytes]:
    """Write `count` files through the store's public API; return what was written."""
    written = {}
    with Workspace(store) as ws:
        ws.mkdir("/docs", parents=True, exist_ok=True)
        for i in range(start, start + count):
            data = (f"file {i}\n" * (1 + i % 50)).encode() + os.urandom(i % 300)
            ws.write_file(f"/docs/f{i:04d}.txt", data)
            written[f"/docs/f{i:04d}.txt"] = data
    return written


def read_all(store: Path) -> dict[str, bytes]:
    with Workspace(store, readonly=True) as ws:
        return {path: ws.read_file(path) for path in ws.find("/docs", kind="file")}


async def test_a_restore_holds_every_synced_write(litestream: Litestream, tmp_path: Path) -> None:
    store = tmp_path / "node-a" / "ws1.db"
    store.parent.mkdir()
    written = write_files(store, 0, 20)
    await litestream.register(store, "ws/ws1/e1")
    await litestream.sync(store)
    for batch in range(1, 4):  # more writes after registration, one sync per batch
        written |= write_files(store, batch * 100, 15)
        await litestream.sync(store)

    restored = tmp_path / "node-b" / "ws1.db"
    restored.parent.mkdir()
    assert await litestream.restore("ws/ws1/e1", restored) is True
    assert read_all(restored) == written
    assert len(written) == 65


async def test_short_compaction_drops_l0_files_and_a_restore_still_holds_every_write(
        s3_location: S3Location, tmp_path: Path) -> None:
    """With the node's compaction settings (here L1 every second), Litestream's local L0 files (one
    per sync, listed by every waited sync) go once L1 holds them, instead of piling up for 5
    minutes; a restore (L1 files plus the L0 files after them) still holds every synced write."""
    daemon = await Litestream(s3_location, log_path=tmp_path / "litestream.log",
                              settings=compaction_settings(1.0)).start()
    try:
        store = tmp_path / "ws1.db"
        written = write_files(store, 0, 1)
        await daemon.register(store, "ws/ws1/e1")
        for i in range(1, 31):
            written |= write_files(store, i, 1)
            await daemon.sync(store)
        level0 = tmp_path / ".ws1.db-litestream" / "ltx" / "0"
        deadline = time.monotonic() + 30
        while len(list(level0.iterdir())) > 3:  # bounded: the checks run every 0.5 s
            assert time.monotonic() < deadline, f"L0 files still there: {sorted(p.name for p in level0.iterdir())}"
            await asyncio.sleep(0.2)
        newest = max(int(p.name.split("-")[1].split(".")[0], 16) for p in level0.iterdir())
        assert newest >= 30  # one L0 file per sync (MINTXID-MAXTXID.ltx): 30 written, at most 3 left
        written |= write_files(store, 100, 3)  # after the compaction: L0 files again, on top of L1
        await daemon.sync(store)
        restored = tmp_path / "restored.db"
        assert await daemon.restore("ws/ws1/e1", restored) is True
        assert read_all(restored) == written
    finally:
        await daemon.stop()


async def test_a_takeover_chain_keeps_every_epoch_s_writes(litestream: Litestream, tmp_path: Path) -> None:
    """Epoch 1 on node A; node B restores it, replicates epoch 2 to a new prefix and writes more;
    a third restore from epoch 2 alone holds both epochs' writes."""
    a_store = tmp_path / "a.db"
    written = write_files(a_store, 0, 10)
    await litestream.register(a_store, "ws/ws1/e1")
    await litestream.sync(a_store)
    await litestream.unregister(a_store)

    b_store = tmp_path / "b.db"
    assert await litestream.restore("ws/ws1/e1", b_store) is True
    await litestream.register(b_store, "ws/ws1/e2")
    written |= write_files(b_store, 500, 10)
    await litestream.sync(b_store)

    c_store = tmp_path / "c.db"
    assert await litestream.restore("ws/ws1/e2", c_store) is True
    assert read_all(c_store) == written


async def test_restore_replaces_a_stale_local_store(litestream: Litestream, tmp_path: Path) -> None:
    """A node taking a workspace back holds an old copy of its store (and Litestream's state for it):
    the restore replaces all of it."""
    current = tmp_path / "current.db"
    written = write_files(current, 0, 8)
    await litestream.register(current, "ws/ws1/e3")
    await litestream.sync(current)

    stale = tmp_path / "stale.db"
    write_files(stale, 900, 3)
    (tmp_path / ".stale.db-litestream").mkdir()
    assert await litestream.restore("ws/ws1/e3", stale) is True
    assert read_all(stale) == written
    assert not (tmp_path / ".stale.db-litestream").exists()


async def test_litestream_is_restarted_when_it_dies_and_keeps_replicating(litestream: Litestream,
                                                                         tmp_path: Path) -> None:
    store = tmp_path / "ws1.db"
    written = write_files(store, 0, 5)
    await litestream.register(store, "ws/ws1/e1")
    await litestream.sync(store)

    first_pid = litestream.pid
    assert first_pid is not None
    os.killpg(first_pid, signal.SIGKILL)  # the daemon this test's fixture started
    deadline = time.monotonic() + 20
    while litestream.restarts < 1 or litestream.pid in (None, first_pid):
        assert time.monotonic() < deadline, "litestream was not restarted"
        await asyncio.sleep(0.05)

    written |= write_files(store, 100, 5)
    await litestream.sync(store)  # the store was registered again after the restart
    restored = tmp_path / "restored.db"
    assert await litestream.restore("ws/ws1/e1", restored) is True
    assert read_all(restored) == written


async def test_sync_of_an_unregistered_store_is_an_error(litestream: Litestream, tmp_path: Path) -> None:
    store = tmp_path / "never.db"
    write_files(store, 0, 1)
    with pytest.raises(ReplicationError, match="not found"):
        await litestream.sync(store)


async def test_sync_fails_while_litestream_is_down(litestream: Litestream, tmp_path: Path) -> None:
    store = tmp_path / "ws1.db"
    write_files(store, 0, 1)
    await litestream.register(store, "ws/ws1/e1")
    await litestream.stop()
    with pytest.raises(ReplicationError):
        await litestream.sync(store)


async def test_ownership_and_replication_together_take_over_a_workspace(
    redis_server: RedisServer, s3_location: S3Location, litestream: Litestream, tmp_path: Path
) -> None:
    """The takeover order end to end: lease, manifest bump, restore from the previous epoch,
    register the new one; the old owner's later sync lands in its own epoch and is refused.
    Store writes run in a thread, as the server's do: a node whose event loop is blocked past
    its lease rightly refuses to acknowledge."""
    async with ObjectStore(s3_location) as store_a, ObjectStore(s3_location) as store_b:
        redis_a, redis_b = redis_server.client(), redis_server.client()
        a = Ownership(Leases(redis_a, "node-a", ttl_ms=2000), Manifests(store_a), renew_every=0.3)
        b = Ownership(Leases(redis_b, "node-b", ttl_ms=2000), Manifests(store_b), renew_every=0.3)
        try:
            held_a = await a.acquire("ws1")
            a_store = tmp_path / "a" / "ws1.db"
            a_store.parent.mkdir()
            written = await asyncio.to_thread(write_files, a_store, 0, 10)
            await litestream.register(a_store, held_a.prefix)
            await litestream.sync(a_store)
            assert await a.still_owner("ws1") is True  # these 10 writes may be acknowledged

            a.stop_renewal()  # node-a pauses
            held_b = await acquire_eventually(b, "ws1")
            assert held_b.restore_from == held_a.prefix
            b_store = tmp_path / "b" / "ws1.db"
            b_store.parent.mkdir()
            assert await litestream.restore(held_b.restore_from, b_store) is True
            await litestream.register(b_store, held_b.prefix)
            assert read_all(b_store) == written

            # node-a wakes up and commits: its replica takes the write, its acknowledgement does not
            await asyncio.to_thread(write_files, a_store, 700, 1)
            await litestream.sync(a_store)
            assert await a.still_owner("ws1") is False
            written |= await asyncio.to_thread(write_files, b_store, 800, 3)
            await litestream.sync(b_store)
            assert await b.still_owner("ws1") is True
            check = tmp_path / "check.db"
            assert await litestream.restore(held_b.prefix, check) is True
            assert read_all(check) == written  # epoch 2 holds epoch 1's acknowledged writes and its own
        finally:
            await a.close()
            await b.close()
            await redis_a.aclose()
            await redis_b.aclose()


NODE_SCRIPT = """
import asyncio, sys
from server.cluster.objectstore import S3Location
from server.cluster.replication import Litestream

async def main():
    location = S3Location(bucket=sys.argv[1], prefix="p", endpoint=sys.argv[2],
                          access_key=sys.argv[3], secret_key=sys.argv[4])
    daemon = await Litestream(location, run_dir=sys.argv[5]).start()
    print(daemon.pid, flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return any(line.split()[1:2] == ["Z"] for line in status if line.startswith("State:"))
    except FileNotFoundError:
        return True


async def test_a_node_killed_with_sigkill_takes_its_litestream_with_it(s3_location: S3Location) -> None:
    """Litestream runs in its own process group (the node stops it in order), yet a node killed
    with SIGKILL must not leave it replicating: the kernel kills it with its parent."""
    run_dir = tempfile.mkdtemp(prefix="wsfs-test-ls-")  # the killed node cannot remove it: we do
    node = await asyncio.create_subprocess_exec(
        sys.executable, "-c", NODE_SCRIPT, s3_location.bucket, str(s3_location.endpoint),
        str(s3_location.access_key), str(s3_location.secret_key), run_dir,
        stdout=asyncio.subprocess.PIPE, cwd=Path(__file__).resolve().parent.parent, start_new_session=True)
    try:
        line = await asyncio.wait_for(node.stdout.readline(), 30)
        child = int(line)
        assert not _gone(child)
        assert os.getpgid(child) == child  # its own group: a Ctrl-C to the node's group does not reach it
    finally:
        os.killpg(node.pid, signal.SIGKILL)  # the node (the process this test started) dies at once
        await node.wait()
    deadline = time.monotonic() + 10
    try:
        while not _gone(child):
            assert time.monotonic() < deadline, "litestream outlived its node"
            await asyncio.sleep(0.05)
    finally:
        if not _gone(child):
            kill_group(child)  # the test's own grandchild: never leave it behind
        shutil.rmtree(run_dir, ignore_errors=True)


async def test_sync_fails_within_its_timeout_when_s3_is_unreachable(tmp_path: Path) -> None:
    """S3 gone: the wait for the replica ends in an error, so the write is refused, not acknowledged."""
    gone = S3Location(bucket="nowhere", prefix="p", endpoint="http://127.0.0.1:9", access_key="k", secret_key="s")
    daemon = await Litestream(gone, log_path=tmp_path / "litestream.log").start()
    try:
        store = tmp_path / "ws1.db"
        write_files(store, 0, 2)
        await daemon.register(store, "ws/ws1/e1")
        with pytest.raises(ReplicationError):
            await asyncio.wait_for(daemon.sync(store, timeout=2), 30)
    finally:
        await daemon.stop()


async def test_an_epoch_that_died_before_its_first_sync_is_skipped_by_the_next_restore(
    redis_server: RedisServer, s3_location: S3Location, litestream: Litestream, tmp_path: Path
) -> None:
    """e1 replicated and acknowledged writes; e2's owner died before replicating anything (and so
    acknowledged nothing); e3 must restore from e1, not from e2's empty prefix."""
    async with AsyncExitStack() as stack:
        owners = []
        for name in ("node-a", "node-b", "node-c"):
            redis = redis_server.client()
            stack.push_async_callback(redis.aclose)
            store = await stack.enter_async_context(ObjectStore(s3_location))
            owner = Ownership(Leases(redis, name, ttl_ms=500), Manifests(store), renew_every=0.1)
            stack.push_async_callback(owner.close)
            owners.append(owner)
        a, b, c = owners

        e1 = await a.acquire("ws1")
        a_store = tmp_path / "a.db"
        written = await asyncio.to_thread(write_files, a_store, 0, 12)
        await litestream.register(a_store, e1.prefix)
        await litestream.sync(a_store)
        await litestream.unregister(a_store)
        a.stop_renewal()  # node-a dies

        e2 = await acquire_eventually(b, "ws1")
        assert e2.restore_from == e1.prefix
        b.stop_renewal()  # node-b dies before restoring or registering anything

        e3 = await acquire_eventually(c, "ws1")
        assert e3.number == 3
        assert e3.restore_from == e1.prefix
        c_store = tmp_path / "c.db"
        assert await litestream.restore(e3.restore_from, c_store) is True
        assert read_all(c_store) == written


def test_a_damaged_restore_is_refused_not_served(tmp_path: Path) -> None:
    """`ClusterPlacement` checks a restored store before opening it (Litestream 0.5.17 once restored a
    corrupt 256 MiB store here): a damaged file is a ReplicationError (a 503), a sound one passes."""
    import sqlite3

    from server.cluster.placement import _check_restored

    db = tmp_path / "restored.db"
    with Workspace(db, chunk_backend="sqlite") as ws:
        for i in range(40):
            ws.write_file(f"/f{i}", os.urandom(20_000))
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
    _check_restored(db)
    with open(db, "r+b") as f:  # scribble over interior pages, as a bad restore leaves them
        for page in (3, 5, 8):
            f.seek(page * 4096)
            f.write(b"\xa5" * 4096)
    with pytest.raises(ReplicationError, match="damaged"):
        _check_restored(db)
