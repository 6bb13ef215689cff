"""Litestream killed (-9) in the middle of a burst of commits and waited syncs, then a restore.

Found while measuring failover: a node's death kills its Litestream
mid-upload, and the next owner's restore of that replica came back damaged
(`PRAGMA quick_check` failed on the last transaction; every earlier one,
restored with `-txid`, was sound) in about half of the runs, although the
owner's own store file was sound. The cause: SQLite's automatic checkpoint,
run by our writer's commits, restarted the WAL while Litestream 0.5.17 read
it. A cluster node therefore opens its stores with `checkpoints=False`
(`ClusterPlacement.store_checkpoints`) and leaves checkpoints to Litestream;
this test writes as such a store does and fails when the writer checkpoints
(measured here: 9 damaged restores of 19 with checkpoints, 0 of 16 without).
Reproduced without the server: one writer committing 64 KiB files, waited
syncs, SIGKILL to Litestream after 1.5-3.5 s, a restore by a fresh one.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import threading
from pathlib import Path

import pytest

from server.cluster.objectstore import S3Location
from server.cluster.replication import Litestream
from vfs import Workspace

pytestmark = [pytest.mark.timeout(300)]


async def _one_run(location: S3Location, work: Path, kill_after: float, files: int = 2000) -> str:
    """One burst, a kill of Litestream, a restore; the restored file's quick_check verdict."""
    work.mkdir()
    daemon = await Litestream(location, log_path=work / "litestream.log").start()
    db = work / "ws.db"
    prefix = location.key("ws", work.name, "e1")
    with Workspace(db, chunk_backend="sqlite", checkpoints=False) as ws:
        ws.mkdir("/w")
    await daemon.register(db, prefix)
    done = threading.Event()

    def writer() -> None:
        with Workspace(db, chunk_backend="sqlite", checkpoints=False) as ws:  # as a cluster node opens it
            for i in range(files):
                ws.write_file(f"/w/f{i}", os.urandom(64 * 1024))
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()

    synced = asyncio.Event()

    async def syncer() -> None:
        while not done.is_set():
            await daemon.sync(db, timeout=30)
            synced.set()

    tasks = [asyncio.ensure_future(syncer()) for _ in range(2)]
    await asyncio.wait_for(synced.wait(), 60)  # a replica exists: the kill lands mid-burst, not before it
    await asyncio.sleep(kill_after)
    pid = daemon.pid
    assert pid is not None
    daemon._stopping = True  # noqa: SLF001 - no restart: this Litestream died with its node
    os.killpg(pid, signal.SIGKILL)
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.to_thread(thread.join, 120)
    await daemon.stop()
    other = await Litestream(location, log_path=work / "restore.log").start()
    try:
        restored = work / "restored.db"
        assert await other.restore(prefix, restored)
    finally:
        await other.stop()
    conn = sqlite3.connect(f"file:{restored}?mode=ro", uri=True)
    try:
        return str(conn.execute("PRAGMA quick_check(3)").fetchall()[0][0])
    finally:
        conn.close()


async def test_a_replica_killed_mid_burst_restores_sound(s3_location: S3Location, tmp_path: Path) -> None:
    verdicts = [await _one_run(s3_location, tmp_path / f"run{i}", kill_after) for i, kill_after in
                enumerate((0.5, 1.0, 1.5, 2.0))]
    assert verdicts == ["ok"] * len(verdicts), verdicts
