"""The replica and what it does not sync: FIFOs, sockets and device nodes on either side,
and local edits found by the stat-only rescan when no watcher saw them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import threading

from client_fixtures import tree_of
from client_py import Backoff, Replica

ONCE_TIMEOUT = 60.0  # a FIFO opened for reading would block for ever: every sync here is bounded


@contextlib.contextmanager
def fifo_watchdog(*fifos, after: float = 20.0):
    """Bound a test that might block in open(2) on a FIFO (no asyncio timeout can interrupt that):
    after `after` seconds, keep opening each FIFO for writing, which releases a reader stuck in open.
    Yields the list of FIFOs it had to release: the test asserts it stays empty."""
    released: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        if stop.wait(after):
            return
        for _ in range(1000):  # a stuck reader may open again: keep releasing until the test ends
            for fifo in fifos:
                try:  # succeeds only when someone has the FIFO open for reading
                    os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
                    released.append(str(fifo))
                except OSError:
                    pass
            if stop.wait(0.1):
                return

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield released
    finally:
        stop.set()
        thread.join(5)


def make_replica(server, path, **kw) -> Replica:
    kw.setdefault("backoff", Backoff(base=0.05, cap=0.3, retries=None))
    return Replica(server.url, "demo", path, token=server.admin, **kw)


async def sync_once(server, path, **kw):
    async with make_replica(server, path, **kw) as r:
        return await asyncio.wait_for(r.sync_once(), ONCE_TIMEOUT)


def write(path, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


async def test_a_local_fifo_is_skipped_and_never_opened(server, ws, tmp_path):
    local = tmp_path / "rep"
    os.makedirs(local / "sub")
    os.mkfifo(local / "pipe")
    os.mkfifo(local / "sub" / "pipe2")
    os.mkfifo(local / ".wsfsignore")  # the ignore file is read at start: a FIFO there must not block it
    write(local / "sub" / "real.txt", b"real")
    with fifo_watchdog(local / "pipe", local / "sub" / "pipe2", local / ".wsfsignore") as released:
        summary = await sync_once(server, local)
    assert not released, f"the replica blocked opening {released}"
    assert summary.uploaded >= 2  # /sub and /sub/real.txt
    assert await ws.read_file("/sub/real.txt") == b"real"
    assert not await ws.exists("/pipe") and not await ws.exists("/sub/pipe2")
    assert not await ws.exists("/.wsfsignore")
    assert stat.S_ISFIFO(os.lstat(local / "pipe").st_mode)  # left alone here too


async def test_a_synced_file_replaced_by_a_fifo_does_not_hang_a_download_of_the_same_bytes(server, ws, tmp_path):
    """The chunk index points at the synced file; a FIFO now at its path must not be opened for reading."""
    local = tmp_path / "rep"
    data = os.urandom(300_000)
    await ws.write_file("/a.bin", data)
    await sync_once(server, local)
    os.unlink(local / "a.bin")
    os.mkfifo(local / "a.bin")
    await ws.write_file("/b.bin", data)  # same chunks: the replica looks for them locally first
    with fifo_watchdog(local / "a.bin") as released:
        await sync_once(server, local)
    assert not released, "the replica blocked opening the FIFO where a.bin was"
    with open(local / "b.bin", "rb") as f:
        assert f.read() == data


async def test_special_files_on_the_server_are_skipped_and_counted(server, ws, tmp_path):
    local = tmp_path / "rep"
    await ws.mkdir("/dev")
    await ws.mknod("/dev/fifo", stat.S_IFIFO | 0o644)
    await ws.mknod("/dev/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    await ws.write_file("/dev/real.txt", b"kept")
    summary = await sync_once(server, local)
    assert summary.skipped == 2
    assert "2 skipped" in str(summary)
    assert tree_of(local) == {"dev": ("dir",), "dev/real.txt": b"kept"}
    summary = await sync_once(server, local)  # nothing new: nothing counted again
    assert summary.skipped == 0


async def test_the_rescan_finds_an_edit_no_watcher_saw_by_stat_alone(server, ws, tmp_path):
    """With no watcher, the periodic rescan finds a changed size or mtime; an edit that keeps
    size, mtime and inode is invisible to it (it reads nothing), which shows it is stat-only."""
    local = tmp_path / "rep"
    old = 1_700_000_000
    await ws.write_file("/same.txt", b"aaaa", mtime=old)
    await ws.write_file("/grows.txt", b"bb", mtime=old)
    replica = make_replica(server, local, watch=False, reconcile_interval=0.3)
    task = asyncio.ensure_future(replica.run())
    try:
        await asyncio.wait_for(replica.ready.wait(), 30)
        with open(local / "same.txt", "r+b") as f:  # same size, same inode...
            f.write(b"AAAA")
        os.utime(local / "same.txt", (old, old))  # ...and the mtime put back
        write(local / "grows.txt", b"bbbbbb")

        async def pushed() -> bool:
            return await ws.read_file("/grows.txt") == b"bbbbbb"

        deadline = asyncio.get_running_loop().time() + 30
        while not await pushed():
            assert asyncio.get_running_loop().time() < deadline, "the rescan did not push grows.txt"
            await asyncio.sleep(0.1)
        assert await ws.read_file("/same.txt") == b"aaaa"
        os.utime(local / "same.txt", (old + 5, old + 5))  # now the stat differs: found and pushed
        deadline = asyncio.get_running_loop().time() + 30
        while await ws.read_file("/same.txt") != b"AAAA":
            assert asyncio.get_running_loop().time() < deadline, "the rescan did not push same.txt"
            await asyncio.sleep(0.1)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await replica.close()
