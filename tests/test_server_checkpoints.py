"""WAL checkpoints as jobs on the server's writer pool (`vfs.checkpointer.Deferred`,
`WorkspaceHandle._checkpoint_job`), not inside the COMMIT that fills the WAL.

A small write's COMMIT runs on the event loop; SQLite's own checkpoint inside
it made every connection wait for the copy and its two `fsync`s. Here the
committing connection checkpoints only past the backstop (4x SQLite's
threshold), and the server copies the WAL as a job among the store's writes.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import vfs
from server.state import ServerConfig
from server.store_options import StoreOptions
from server_fixtures import LiveServer, WsClient
from vfs import checkpointer

async def test_a_busy_store_is_checkpointed_by_the_pool_and_its_wal_stays_bounded(live_server: LiveServer) -> None:
    async with live_server.ahttp() as http:
        r = await http.put("/api/workspaces/demo/files/first", content=b"x")
        assert r.status_code == 201
        handle = live_server.state.stores.open_handle("demo")
        assert handle._checkpoints is not None
        conn = handle._writer_ws._db.conn
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == checkpointer.LIMIT  # the backstop only
        most = 0
        for i in range(600):  # bounded: ~7 WAL frames each, ~4,000 in all (4x SQLite's threshold)
            r = await http.put(f"/api/workspaces/demo/files/d{i % 5}/f{i}?parents=1", content=b"y" * 100)
            assert r.status_code == 201
            most = max(most, handle._checkpoints.progress.backlog())
        assert handle.checkpoints >= 2
        assert handle._checkpoints.progress.copied >= checkpointer.PAGES
        # copied as the frames came: never near the backstop, where a COMMIT would copy them itself
        assert most < checkpointer.PAGES + 200
    with vfs.Workspace(live_server.data_dir / "workspaces" / "demo.db", readonly=True) as ws:
        assert ws.read_file("/d4/f599") == b"y" * 100
        assert len(ws.find("/", kind="file")) == 601


async def test_a_store_that_sleeps_lets_go_of_its_checkpoints_and_takes_them_again(tmp_path: Path) -> None:
    config = ServerConfig(data_dir=tmp_path / "data", seed_demo=False, store=StoreOptions(idle_readers=0.4))
    server = LiveServer(tmp_path / "data", config=config).start()
    client = None
    try:
        with server.http() as http:
            assert http.put("/api/workspaces/demo/files/a", content=b"x").status_code == 201
        handle = server.state.stores.open_handle("demo")
        assert handle._checkpoints is not None
        client = await WsClient.open(server.ws_url("demo", server.admin))  # keeps it open while it sleeps
        assert (await client.request({"type": "subscribe", "id": "s", "after": "now"}))["type"] == "ok"
        for _ in range(100):  # bounded: the sweep runs every 0.2 s here
            if handle.asleep:
                break
            await asyncio.sleep(0.1)
        assert handle.asleep and handle._checkpoints is None
        with server.http() as http:
            assert http.put("/api/workspaces/demo/files/b", content=b"y").status_code == 201
        assert handle._checkpoints is not None  # the writer reopened, and its checkpoints with it
    finally:
        if client is not None:
            await client.close()
        server.stop()


async def test_a_write_that_makes_a_checkpoint_due_while_its_queue_closes_keeps_its_result(
        live_server: LiveServer) -> None:
    """The job's own answer stands: a checkpoint it can no longer queue is left to the writer's close."""
    async with live_server.ahttp() as http:
        assert (await http.put("/api/workspaces/demo/files/a", content=b"1")).status_code == 201
    handle = live_server.state.stores.open_handle("demo")
    handle._checkpoints.pages = 1  # due after any write
    handle._writer.shutdown(wait=False)  # closing: no job may be queued any more

    def job(ws: vfs.Workspace) -> str:
        ws.write_file("/b", b"2")
        return "stored"

    result, rev, _pending = handle._write_job(job, (), None)
    assert result == "stored" and rev is not None


async def test_a_reader_holding_the_frames_does_not_make_every_write_queue_a_checkpoint(
        live_server: LiveServer) -> None:
    async with live_server.ahttp() as http:
        assert (await http.put("/api/workspaces/demo/files/a", content=b"1")).status_code == 201
        handle = live_server.state.stores.open_handle("demo")
        reader = sqlite3.connect(live_server.data_dir / "workspaces" / "demo.db", isolation_level=None)
        try:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM nodes").fetchone()  # a snapshot: no frame after it is copied
            for i in range(300):  # bounded: ~2,000 frames, twice the threshold
                r = await http.put(f"/api/workspaces/demo/files/f{i}", content=b"y" * 100)
                assert r.status_code == 201
            assert handle._checkpoints.progress.backlog() >= checkpointer.PAGES  # held by the reader
            assert 1 <= handle.checkpoints <= 5  # tried, then left alone for STALLED seconds
        finally:
            reader.close()
