"""`client_py.Replica` against a real server on loopback, with real directories."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat

import pytest

from client_fixtures import eventually, remote_tree, tree_of
from client_py import Backoff, Client, Replica


def make_replica(server, path, **kw) -> Replica:
    kw.setdefault("backoff", Backoff(base=0.05, cap=0.3, retries=None))
    kw.setdefault("reconcile_interval", 1.0)
    return Replica(server.url, "demo", path, token=server.admin, **kw)


@pytest.fixture
def local(tmp_path):
    """The replica's directory."""
    return tmp_path / "rep"


@contextlib.asynccontextmanager
async def synced(server, path, **kw):
    """A replica of `path` that has made its first sync: the test goes on with what the next one does."""
    async with make_replica(server, path, **kw) as r:
        await r.sync_once()
        yield r


@contextlib.asynccontextmanager
async def running(replica: Replica):
    """`replica.run()` in the background, ready (first catch-up and rescan done) on entry."""
    task = asyncio.ensure_future(replica.run())
    try:
        await asyncio.wait_for(replica.ready.wait(), 30)
        yield replica
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await replica.close()


def read(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def write(path, data: bytes | str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


async def test_sync_once_both_ways(server, ws, local):
    await ws.write_file("/docs/readme.md", b"# hi\n", parents=True, mode=0o640, mtime=1_700_000_000.25)
    await ws.write_file("/big.bin", os.urandom(1_500_000))
    await ws.symlink("docs/readme.md", "/link")
    await ws.mkdir("/empty")
    write(local / "mine.txt", "local file")
    async with make_replica(server, local) as r:
        summary = await r.sync_once()
    assert summary.downloaded >= 4 and summary.uploaded == 1 and not summary.conflicts
    assert read(local / "docs/readme.md") == b"# hi\n"
    st = os.stat(local / "docs/readme.md")
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_mtime == pytest.approx(1_700_000_000.25)
    assert os.readlink(local / "link") == "docs/readme.md"
    assert (local / "empty").is_dir()
    assert await ws.read_file("/mine.txt") == b"local file"
    assert tree_of(local) == await remote_tree(ws)
    assert (local / ".wsfs" / "state.db").exists()
    assert not await ws.exists("/.wsfs")


async def test_second_sync_transfers_nothing_and_resumes_from_watermark(server, ws, local):
    await ws.write_file("/a.bin", os.urandom(400_000))
    async with make_replica(server, local) as r:
        first = await r.sync_once()
    assert first.bytes_received >= 400_000
    await ws.write_file("/b.txt", b"new")
    async with make_replica(server, local) as r:
        second = await r.sync_once()
    assert second.downloaded == 1 and second.bytes_received == 3 and second.uploaded == 0
    async with make_replica(server, local) as r:
        third = await r.sync_once()
    assert (third.downloaded, third.uploaded, third.bytes_received, third.bytes_sent) == (0, 0, 0, 0)


async def test_a_local_file_dated_past_the_wire_limit_is_pushed_with_the_nearest_time(server, ws, local):
    """The wire refuses mtimes past MTIME_MAX (year 2242); a replica clamps rather than failing forever."""
    from vfs.wire import MTIME_MAX

    write(local / "future.txt", "from the future")
    os.utime(local / "future.txt", (MTIME_MAX + 1e8, MTIME_MAX + 1e8))
    async with make_replica(server, local) as r:
        summary = await r.sync_once()
    assert summary.uploaded == 1 and not summary.refused
    assert await ws.read_file("/future.txt") == b"from the future"
    assert (await ws.stat("/future.txt")).mtime == pytest.approx(MTIME_MAX)


async def test_small_edit_of_a_big_file_moves_few_chunks(server, ws, local):
    data = bytearray(os.urandom(4 * 1024 * 1024))
    await ws.write_file("/big", bytes(data))
    async with synced(server, local) as r:
        data[100:100] = b"inserted near the start"
        await ws.write_file("/big", bytes(data))
        summary = await r.sync_once()
    assert read(local / "big") == bytes(data)
    assert summary.bytes_received < 3 * 256 * 1024  # a few chunks, not 4 MiB


async def test_conflict_keeps_both_versions(server, ws, local):
    await ws.write_file("/notes.md", b"base\n")
    async with synced(server, local, host="laptop") as r:
        write(local / "notes.md", "local edit\n")
        await ws.write_file("/notes.md", b"server edit\n")
        summary = await r.sync_once()
    assert read(local / "notes.md") == b"server edit\n"
    assert len(summary.conflicts) == 1
    copy = summary.conflicts[0]
    assert copy.startswith("/notes.conflict-laptop-") and copy.endswith(".md")
    assert read(str(local) + copy) == b"local edit\n"
    assert await ws.read_file(copy) == b"local edit\n"  # the conflict copy is synced too
    assert await ws.read_file("/notes.md") == b"server edit\n"


async def test_delete_against_edit_the_edit_wins(server, ws, local):
    await ws.write_file("/x.txt", b"x0")
    await ws.write_file("/y.txt", b"y0")
    async with synced(server, local) as r:
        os.unlink(local / "x.txt")  # deleted here ...
        await ws.write_file("/x.txt", b"x1")  # ... edited there
        write(local / "y.txt", "y1")  # edited here ...
        await ws.unlink("/y.txt")  # ... deleted there
        summary = await r.sync_once()
    assert read(local / "x.txt") == b"x1" and await ws.read_file("/x.txt") == b"x1"
    assert read(local / "y.txt") == b"y1" and await ws.read_file("/y.txt") == b"y1"
    assert not summary.conflicts


async def test_remote_directory_delete_keeps_unsynced_local_files(server, ws, local):
    await ws.write_file("/d/old.txt", b"old", parents=True)
    async with synced(server, local) as r:
        write(local / "d" / "fresh.txt", "made here")
        await ws.rm("/d", recursive=True)
        await r.sync_once()
    assert not (local / "d" / "old.txt").exists()
    assert read(local / "d" / "fresh.txt") == b"made here"
    assert await ws.read_file("/d/fresh.txt") == b"made here"


async def test_ignore_patterns_both_ways(server, ws, local):
    write(local / ".wsfsignore", "*.tmp\nbuild/\n")
    write(local / "keep.txt", "k")
    write(local / "scratch.tmp", "t")
    write(local / "build" / "out.o", "o")
    await ws.write_file("/remote.tmp", b"r")
    await ws.write_file("/remote.txt", b"r")
    async with make_replica(server, local, ignore=["secret*"]) as r:
        write(local / "secret.key", "s")
        await r.sync_once()
    assert await ws.read_file("/keep.txt") == b"k"
    assert await ws.read_file("/.wsfsignore") == b"*.tmp\nbuild/\n"
    for p in ("/scratch.tmp", "/build", "/secret.key"):
        assert not await ws.exists(p)
    assert read(local / "remote.txt") == b"r"
    assert not (local / "remote.tmp").exists()


async def test_live_remote_changes_land_and_local_edits_go_up(server, ws, local):
    async with running(make_replica(server, local)):
        await ws.write_file("/live.txt", b"from the server")
        await eventually(lambda: (local / "live.txt").exists() and read(local / "live.txt") == b"from the server")
        write(local / "up.txt", "from the replica")

        async def arrived():
            return await ws.exists("/up.txt") and await ws.read_file("/up.txt") == b"from the replica"

        await eventually_async(arrived)
        # 20 files created inside a brand-new directory: inotify reports few of them
        for i in range(20):
            write(local / "newdir" / "deep" / f"f{i}.txt", f"file {i}")

        async def all_up():
            return len(await ws.ls("/newdir")) == 20

        await eventually_async(all_up)
        os.unlink(local / "up.txt")

        async def gone():
            return not await ws.exists("/up.txt")

        await eventually_async(gone)
        await ws.rename("/newdir", "/renamed")
        await eventually(lambda: (local / "renamed" / "deep" / "f7.txt").exists() and not (local / "newdir").exists())
    assert tree_of(local) == await remote_tree(ws)


async def test_offline_edits_are_pushed_when_the_server_returns(server, ws, local):
    await ws.write_file("/shared.txt", b"v1")
    async with running(make_replica(server, local)) as r:
        await eventually(lambda: (local / "shared.txt").exists())
        await server.astop()
        write(local / "offline.txt", "written while the server was down")
        write(local / "shared.txt", "v2 offline")
        await asyncio.sleep(0.5)
        await asyncio.to_thread(server.start)
        async with Client(server.url, token=server.admin) as c:
            ws2 = c.workspace("demo")

            async def pushed():
                return (await ws2.exists("/offline.txt")) and await ws2.read_file("/shared.txt") == b"v2 offline"

            await eventually_async(pushed)
            await ws2.write_file("/after.txt", b"server is back")
            await eventually(lambda: (local / "after.txt").exists())
        assert r.connected.is_set()


async def test_symlinks_are_created_as_symlinks_and_never_followed(server, ws, local, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    await ws.mkdir("/real")
    await ws.symlink("real", "/alias")
    async with synced(server, local) as r:
        assert os.path.islink(local / "alias") and os.readlink(local / "alias") == "real"
        # a local symlink to a directory outside the replica is pushed as a link, not followed
        os.symlink(str(outside), local / "escape")
        write(outside / "secret.txt", "do not upload")
        await r.sync_once()
    assert (await ws.lstat("/escape")).kind == "symlink"
    assert not await ws.exists("/escape/secret.txt") or (await ws.lstat("/escape")).kind == "symlink"
    assert os.listdir(outside) == ["secret.txt"]


async def eventually_async(predicate, timeout: float = 20.0, interval: float = 0.05):
    import time

    deadline = time.monotonic() + timeout
    while True:
        if await predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout}s")
        await asyncio.sleep(interval)


async def test_live_start_with_a_big_local_tree(server, ws, local):
    """Going live after pushing many files (many echo batches queued) must not stall."""
    for i in range(1500):
        write(local / f"d{i % 7}" / f"f{i}.txt", f"file {i}")
    async with running(make_replica(server, local, batch_max=64)):
        assert len(await ws.ls("/")) == 1500
        await ws.write_file("/late.txt", b"after going live")
        await eventually(lambda: (local / "late.txt").exists())


async def test_remote_dir_replaced_by_file_keeps_local_unsynced_files(server, ws, local):
    await ws.write_file("/d/synced.txt", b"s", parents=True)
    async with synced(server, local, host="h") as r:
        write(local / "d" / "mine.txt", "only here")
        await ws.rm("/d", recursive=True)
        await ws.write_file("/d", b"now a file")
        summary = await r.sync_once()
    assert read(local / "d") == b"now a file"
    kept = [p for p in summary.conflicts if p.startswith("/d.conflict-h-")]
    assert len(kept) == 1
    assert read(str(local) + kept[0] + "/mine.txt") == b"only here"
    assert not os.path.exists(str(local) + kept[0] + "/synced.txt")
    assert await ws.read_file(kept[0] + "/mine.txt") == b"only here"


async def test_cursor_older_than_the_horizon_resyncs_from_a_snapshot(server, ws, local):
    """Tombstones compacted past the watermark: the replica resyncs and still applies the deletion."""
    import vfs

    await ws.write_file("/keep.txt", b"k")
    await ws.write_file("/gone.txt", b"g")
    async with make_replica(server, local) as r:
        await r.sync_once()
    await ws.unlink("/gone.txt")
    await ws.write_file("/new.txt", b"n")
    write(local / "local-only.txt", "made offline")
    await server.astop()
    with vfs.Workspace(str(server.data_dir / "workspaces" / "demo.db")) as store:
        assert store.compact_tombstones(store.rev) >= 1
    await asyncio.to_thread(server.start)
    async with make_replica(server, local) as r:
        summary = await r.sync_once()
    assert not (local / "gone.txt").exists()
    assert read(local / "new.txt") == b"n" and read(local / "keep.txt") == b"k"
    assert read(local / "local-only.txt") == b"made offline"
    async with Client(server.url, token=server.admin) as c:
        assert await c.workspace("demo").read_file("/local-only.txt") == b"made offline"
    assert summary.deleted_local == 1


class _CutShort(Exception):
    """Raised from a progress callback: the sync stops right after a committed batch."""


async def test_a_snapshot_resync_cut_short_still_sweeps_when_it_resumes(server, ws, local):
    """A snapshot listing interrupted after its first batch resumes from its watermark and still
    removes what the server deleted while the tombstones were out of reach."""
    import vfs

    await ws.mkdir("/f")
    for i in range(12):
        await ws.write_file(f"/f/{i:02}.txt", f"file {i}".encode())
    await ws.write_file("/gone.txt", b"g")
    async with make_replica(server, local) as r:
        await r.sync_once()
    await ws.unlink("/gone.txt")
    await server.astop()
    with vfs.Workspace(str(server.data_dir / "workspaces" / "demo.db")) as store:
        assert store.compact_tombstones(store.rev) >= 1
    await asyncio.to_thread(server.start)

    def cut_short(summary) -> None:
        raise _CutShort

    async with make_replica(server, local, batch_max=2, on_progress=cut_short) as r:
        with pytest.raises(_CutShort):
            await r.sync_once()
    assert (local / "gone.txt").exists()  # the listing had not reached its end
    async with make_replica(server, local, batch_max=2) as r:
        summary = await r.sync_once()
    assert not (local / "gone.txt").exists()
    assert summary.deleted_local == 1
    assert sorted(os.listdir(local / "f")) == [f"{i:02}.txt" for i in range(12)]
    async with make_replica(server, local) as r:  # and a later ordinary catch-up sweeps nothing
        again = await r.sync_once()
    assert again.deleted_local == 0 and len(os.listdir(local / "f")) == 12


async def test_live_replica_stops_with_a_clear_error_when_its_token_is_revoked(server, ws, local):
    from vfs.wire import ProtocolError

    async with Client(server.url, token=server.admin) as admin:
        minted = await admin.create_token("demo", "write", name="replica")
        replica = Replica(server.url, "demo", local, token=minted["token"],
                          backoff=Backoff(base=0.05, cap=0.2, retries=None))
        task = asyncio.ensure_future(replica.run())
        try:
            await asyncio.wait_for(replica.ready.wait(), 30)
            await admin.revoke_token(minted["id"])
            with pytest.raises((PermissionError, ProtocolError)):
                await asyncio.wait_for(task, 30)
        finally:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            await replica.close()


async def test_sync_once_waits_for_a_restarting_server(server, ws, local):
    await ws.write_file("/f.bin", os.urandom(2_000_000))
    await server.astop()
    async with make_replica(server, local) as r:
        task = asyncio.ensure_future(r.sync_once())
        await asyncio.sleep(0.5)
        assert not task.done()  # still trying
        await asyncio.to_thread(server.start)
        summary = await asyncio.wait_for(task, 60)
    assert summary.downloaded == 1 and (local / "f.bin").stat().st_size == 2_000_000


async def test_the_next_batch_is_fetched_ahead_without_the_chunks_already_here(server, ws, local):
    """Batches of 4: while one is written the next one's chunks are asked for (prefetch), but never
    those a local file already holds, so a small edit of a big file still moves a few chunks."""
    data = bytearray(os.urandom(4 * 1024 * 1024))
    await ws.write_file("/big", bytes(data))
    async with synced(server, local, batch_max=4) as r:
        others = {f"/new/f{i}": os.urandom(70_000 + i) for i in range(7)}  # above the catch-up inline size: fetched
        for path, content in others.items():
            await ws.write_file(path, content, parents=True)
        data[100:100] = b"inserted near the start"
        await ws.write_file("/big", bytes(data))
        summary = await r.sync_once()
    assert read(local / "big") == bytes(data)
    assert all(read(str(local) + path) == content for path, content in others.items())
    assert summary.bytes_received < sum(map(len, others.values())) + 3 * 256 * 1024
