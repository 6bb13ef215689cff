"""Co-editing survives kill -9: what `synced()` acknowledged is in the store, the reopened document and the file."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time

import httpx
from client_py import Client
from pycrdt import Doc, Text
from server_fixtures import ServerProcess
from vfs.wire import COEDIT_TEXT

PATH = "/crash.md"


def stored_text(db_path) -> str:
    """The document as the store holds it right now (snapshot + log), read straight from SQLite.

    Both reads share one transaction: read apart, a compaction committing between them (snapshot
    replaced, its log rows dropped) gave the old snapshot and the new, empty log."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, isolation_level=None)
    try:
        conn.execute("BEGIN")  # one read snapshot for the two statements
        doc = Doc()
        row = conn.execute("SELECT snapshot FROM coedit_docs WHERE path = ?", (PATH,)).fetchone()
        if row is not None:
            doc.apply_update(bytes(row[0]))
        for (data,) in conn.execute("SELECT data FROM coedit_log WHERE path = ? ORDER BY seq", (PATH,)):
            doc.apply_update(bytes(data))
        return str(doc.get(COEDIT_TEXT, type=Text))
    finally:
        conn.close()


async def test_kill_9_after_synced_loses_nothing_acknowledged(tmp_path):
    data = tmp_path / "d"
    first = ServerProcess(data)
    admin = first.admin
    try:
        async with Client(first.url, token=admin, name="carol") as c:
            ws = c.workspace("demo")
            await ws.write_file(PATH, b"before the crash\n")
            doc = await ws.coedit(PATH)
            for i in range(5):
                doc.text.insert(len(doc.text), f"typed {i}\n")
            await doc.synced()
            first.signal(signal.SIGKILL)  # at once: the 0.25 s write of the file has most likely not run
            first.wait()
            await doc.close()
    finally:
        first.kill()
    expected = "before the crash\n" + "".join(f"typed {i}\n" for i in range(5))
    assert stored_text(data / "workspaces" / "demo.db") == expected

    second = ServerProcess(data)
    try:
        async with Client(second.url, token=admin) as c:
            ws = c.workspace("demo")
            # no editor and no WebSocket: opening the store writes what only the log held, so the
            # first plain HTTP read already has it
            async with httpx.AsyncClient(base_url=second.url, headers={"Authorization": f"Bearer {admin}"}) as h:
                got = await h.get("/api/workspaces/demo/files" + PATH)
                assert got.status_code == 200
                assert got.text == expected
            assert stored_text(data / "workspaces" / "demo.db") == expected  # the log was folded, not dropped
            with sqlite3.connect(f"file:{data / 'workspaces' / 'demo.db'}?mode=ro", uri=True) as conn:
                assert conn.execute("SELECT count(*) FROM coedit_log").fetchone()[0] == 0
            async with await ws.coedit(PATH) as doc:
                assert str(doc.text) == expected
                doc.text.insert(0, "after the restart\n")  # the same document goes on
                await doc.synced()
            deadline = time.monotonic() + 10
            while (await ws.read_file(PATH)).decode() != "after the restart\n" + expected:
                assert time.monotonic() < deadline, "the file never got the edit made after the restart"
                await asyncio.sleep(0.05)
    finally:
        second.stop()


async def test_an_update_typed_while_another_writer_holds_the_store_is_acknowledged_once_stored(tmp_path):
    """The log's own connection never waits for the store's write lock: while someone else holds it,
    the update goes through the writer thread, and its `ok` still waits until it is stored."""
    data = tmp_path / "d"
    db = data / "workspaces" / "demo.db"
    server = ServerProcess(data)
    try:
        async with Client(server.url, token=server.admin, name="dave") as c:
            ws = c.workspace("demo")
            await ws.write_file(PATH, b"start\n")
            async with await ws.coedit(PATH) as doc:
                doc.text.insert(len(doc.text), "first\n")
                await doc.synced()
                holder = sqlite3.connect(db, timeout=30, isolation_level=None)
                try:
                    holder.execute("BEGIN IMMEDIATE")  # another process's write in progress
                    doc.text.insert(len(doc.text), "while held\n")
                    synced = asyncio.ensure_future(doc.synced())
                    await asyncio.sleep(0.5)
                    assert not synced.done(), "acknowledged while the store could not have stored it"
                    holder.execute("COMMIT")
                finally:
                    holder.close()
                await asyncio.wait_for(synced, 30)
                assert stored_text(db) == "start\nfirst\nwhile held\n"
    finally:
        server.stop()
