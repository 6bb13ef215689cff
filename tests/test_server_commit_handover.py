"""A commit's entries handed over by its writer (`vfs.commit_handover`) instead of read back.

The server gives these entries to every caught-up subscriber (`server/feed.py`
`read_delta`), so each one must be exactly what the change log says for that
commit (`Workspace.commit_changes`), or None ("read the store").
"""

from __future__ import annotations

import asyncio
import base64
import random
import time

import pytest

import vfs
from server import stores
from server_fixtures import LiveServer, WsClient
from vfs.commit_handover import CommitCapture

LIMIT = 256


def _captured(ws: vfs.Workspace) -> tuple[CommitCapture, list[tuple[int, list[vfs.Change] | None]]]:
    capture = CommitCapture.install(ws)
    assert capture is not None
    taken: list[tuple[int, list[vfs.Change] | None]] = []
    ws.on_commit(lambda rev: taken.append((rev, capture.take(rev, limit=LIMIT))))
    return capture, taken


def _one_operation(ws: vfs.Workspace, rng: random.Random, names: list[str]) -> None:
    path = rng.choice(names)
    op = rng.randrange(9)
    if op <= 2:
        ws.put_file(path, rng.randbytes(rng.randrange(0, 3000)), parents=rng.random() < 0.5,
                    mode=rng.choice((None, 0o600, 0o755)))
    elif op == 3 and ws.exists(path):
        ws.link(path, rng.choice(names))
    elif op == 4 and ws.exists(path):
        ws.unlink(path)
    elif op == 5 and ws.exists(path):
        ws.rename(path, rng.choice(names))
    elif op == 6 and ws.exists(path):
        ws.chmod(path, rng.choice((0o600, 0o644)))
    elif op == 7 and ws.exists(path):
        ws.write_range(path, rng.randrange(0, 50), b"edit")  # a content id left to derive
    elif op == 8:
        ws.rm("/e", recursive=True, force=True)


def test_each_captured_commit_is_what_the_log_says(tmp_path) -> None:
    rng = random.Random(11)
    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        capture, taken = _captured(ws)
        ws.mkdir("/d")
        ws.symlink("/d", "/ln")  # a write through it logs the real path, not the one asked for
        names = [f"/d/f{i}" for i in range(8)] + ["/ln/x", "/ln/y", "/e/f/g", "/e/h", "/top"]
        handed = 0
        for _ in range(400):  # bounded: one operation, then its commits compared with the log
            taken.clear()
            capture.arm()
            try:
                _one_operation(ws, rng, names)
            except (FileExistsError, IsADirectoryError, NotADirectoryError, FileNotFoundError, OSError):
                pass
            finally:
                capture.disarm()
            for rev, entries in taken:
                if entries is not None:
                    assert entries == ws.commit_changes(rev, limit=LIMIT)
                    handed += 1
        assert handed > 150  # puts, links, renames, removals: handed over, not left to a read


def test_a_content_id_left_to_derive_is_left_to_the_read(tmp_path) -> None:
    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        capture, taken = _captured(ws)
        ws.write_file("/f", b"a" * 5000)
        capture.arm()
        with ws.transaction():
            ws.write_file("/g", b"b")
            ws._db.conn.execute("UPDATE nodes SET hash = NULL WHERE ino = ?", (ws.stat("/f").ino,))
            ws.chmod("/f", 0o600)  # logs /f, whose node row now has no content id
        capture.disarm()
        assert taken[-1][1] is None
        assert [c.path for c in ws.commit_changes(taken[-1][0], limit=LIMIT)] == ["/f", "/g"]


def test_nothing_is_handed_over_unarmed_and_each_take_is_its_own_commit(tmp_path) -> None:
    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        capture, taken = _captured(ws)
        ws.write_file("/a", b"1")
        capture.arm()
        ws.write_file("/b", b"2")
        ws.write_file("/c", b"3")  # the first take consumed /b: this commit is /c alone
        capture.disarm()
        ws.write_file("/d", b"4")
        assert [None if e is None else [c.path for c in e] for _rev, e in taken] == [None, ["/b"], ["/c"], None]


def test_a_rolled_back_savepoint_is_never_handed_over(tmp_path) -> None:
    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        capture, taken = _captured(ws)
        capture.arm()
        with ws.transaction():
            ws.write_file("/kept", b"1")
            with pytest.raises(FileNotFoundError):
                with ws.transaction():  # a savepoint: its rows are logged, then rolled back
                    ws.write_file("/gone", b"2")
                    ws.unlink("/missing")
        capture.disarm()
        assert [c.path for c in ws.commit_changes(taken[0][0], limit=LIMIT)] == ["/kept"]
        assert taken[0][1] is None  # the capture saw /gone: it must not vouch for the commit


def test_two_transactions_in_one_window_are_never_handed_over(tmp_path) -> None:
    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        capture, taken = _captured(ws)
        capture.arm()
        with pytest.raises(ZeroDivisionError):
            with ws.transaction():
                ws.write_file("/failed", b"1")
                _ = 1 / 0
        ws.write_file("/made", b"2")
        capture.disarm()
        assert [c.path for c in ws.commit_changes(taken[0][0], limit=LIMIT)] == ["/made"]
        assert taken[0][1] is None


async def test_a_subscriber_gets_each_put_as_the_log_says(live_server: LiveServer, monkeypatch) -> None:
    """Through the real server: once the writer's capture is installed, every PUT's delta comes
    from it, and every delivered page is the store's log for that commit (the real path behind a
    symlink, created parents)."""
    monkeypatch.setattr(stores, "CAPTURE_AFTER", 2)
    async with live_server.ahttp() as http:
        assert (await http.post("/api/workspaces/demo/ops", json={"op": "mkdir", "path": "/d"})).status_code == 200
        r = await http.post("/api/workspaces/demo/ops", json={"op": "symlink", "target": "/d", "path": "/ln"})
        assert r.status_code == 200
        c = await WsClient.open(live_server.ws_url(token=live_server.admin))
        ok = await c.request({"type": "subscribe", "id": "s", "after": "now", "inline_max": 4096})
        assert ok["type"] == "ok"
        await c.next_event("caught_up", sub="s")
        handle = live_server.state.stores.open_handle("demo")
        for i in range(10):  # bounded: the first 2-6 PUTs (by the name) are read back, then it installs
            assert (await http.put(f"/api/workspaces/demo/files/warm{i}", content=b"w")).status_code == 201
            await c.next_event("changes", sub="s")
            for _ in range(200):  # the installation is a job of the writer pool, after the PUT's: let it
                if handle._writer.idle:  # run before the next PUT, which would otherwise be handed over
                    break
                await asyncio.sleep(0.01)
            if handle._capture is not None:
                break
        assert handle._capture is not None and handle.handed_over == 0
        # (the PUT that creates its parents makes them in a savepoint: that commit is read back)
        puts = [("/a.txt", 1), ("/ln/b.txt", 1), ("/e/f/g.txt?parents=1", 0), ("/a.txt", 1), ("/d/b.txt", 1)]
        for path, handed in puts:
            before = handle.handed_over
            r = await http.put(f"/api/workspaces/demo/files{path}", content=path.encode())
            assert r.status_code in (200, 201)
            rev = r.json()["rev"]
            got = await c.next_event("changes", sub="s")
            truth = (await http.get("/api/workspaces/demo/changes", params={"after": str(rev - 1)})).json()
            fields = ("path", "kind", "hash", "size", "mode", "mtime", "cursor", "target", "chunks")
            assert [{k: e.get(k) for k in fields} for e in got["entries"]] == [
                {k: e.get(k) for k in fields} for e in truth["entries"]]
            assert [base64.b64decode(e["data"]) for e in got["entries"] if e["kind"] == "file"] == [path.encode()]
            assert handle.handed_over - before == handed
        await c.close()


async def test_the_capture_is_installed_between_jobs_never_beside_one(live_server: LiveServer, monkeypatch) -> None:
    """The capture's installation is a job of its own, queued once the job that reached `CAPTURE_AFTER`
    is done with the connection. Queued from inside that job, it ran on a pool thread while the job
    itself ran inline on the loop: two threads on one connection (PUTs failed "abort due to ROLLBACK"
    under load). Each job here holds the connection a while after its write (`time.sleep` lets the
    GIL go) and checks that the capture did not change under it."""
    monkeypatch.setattr(stores, "CAPTURE_AFTER", 2)
    async with live_server.ahttp() as http:
        c = await WsClient.open(live_server.ws_url(token=live_server.admin))
        ok = await c.request({"type": "subscribe", "id": "s", "after": "now", "inline_max": 4096})
        assert ok["type"] == "ok"
        await c.next_event("caught_up", sub="s")
        assert (await http.put("/api/workspaces/demo/files/first", content=b"w")).status_code == 201
        handle = live_server.state.stores.open_handle("demo")
        changed_under: list[int] = []

        def job(ws: vfs.Workspace, i: int) -> vfs.Stat:
            before = handle._capture
            stat, _ = ws.put_file(f"/j{i}", b"x")
            time.sleep(0.05)  # the connection still ours: nothing else may run on it meanwhile
            if handle._capture is not before:
                changed_under.append(i)
            return stat

        for i in range(12):  # bounded: the install is due after 2-6 jobs (by the name)
            fut = asyncio.run_coroutine_threadsafe(
                handle.write(job, i, small=True, handover=True, known=(f"/j{i}", b"x")), handle._loop)
            await asyncio.wrap_future(fut)
            for _ in range(200):  # let a queued install run before the next job
                if handle._writer.idle:
                    break
                await asyncio.sleep(0.01)
        assert handle._capture is not None  # it was installed ...
        assert changed_under == []  # ... never while a job held the connection
        await c.close()
