"""A replica's first sync of a tree with shared content, empty files and multi-chunk files:
byte-exact, modes and mtimes kept, no temp file left behind, and nothing to do the next time."""

from __future__ import annotations

import asyncio
import os
import random
import stat

from client_fixtures import remote_tree, tree_of
from client_py import Backoff, Replica


def make_replica(server, path, **kw) -> Replica:
    return Replica(server.url, "demo", path, token=server.admin, backoff=Backoff(base=0.05, cap=0.3, retries=None),
                   **kw)


async def test_first_sync_is_byte_exact_and_leaves_nothing_behind(server, ws, tmp_path):
    rng = random.Random(11)
    shared = [rng.randbytes(rng.randint(1, 5000)) for _ in range(5)]
    expected_meta = {}
    for i in range(300):  # more than one batch (256 entries), with content shared within a batch
        path = f"/d{i % 30:02d}/f{i:03d}.bin"
        if i % 7 == 0:
            data = rng.choice(shared)
        elif i % 50 == 1:
            data = rng.randbytes(300_000)  # several chunks
        elif i % 25 == 2:
            data = b""
        else:
            data = rng.randbytes(rng.randint(1, 3000))
        mode, mtime = (0o600 if i % 2 else 0o644), 1_600_000_000 + i
        await ws.write_file(path, data, parents=True, mode=mode, mtime=mtime)
        expected_meta[path] = (mode, mtime)
    local = tmp_path / "rep"
    async with make_replica(server, local) as r:
        summary = await asyncio.wait_for(r.sync_once(), 120)
    assert summary.downloaded == 330 and summary.uploaded == 0  # 300 files and 30 directories
    assert tree_of(local) == await remote_tree(ws)
    for path, (mode, mtime) in expected_meta.items():
        st = os.lstat(str(local) + path)
        assert stat.S_IMODE(st.st_mode) == mode and st.st_mtime == mtime, path
    leftovers = [name for _top, _dirs, files in os.walk(local) for name in files if name.startswith(".wsfs-")]
    assert leftovers == []
    async with make_replica(server, local) as r:
        again = await asyncio.wait_for(r.sync_once(), 120)
    assert (again.downloaded, again.uploaded, again.bytes_received) == (0, 0, 0)


async def test_first_sync_under_a_narrow_umask_keeps_the_servers_modes(server, ws, tmp_path):
    """Files and directories are made with their final mode; where the umask takes bits away they are put back,
    so the state records what is on disk and the next sync finds nothing to push."""
    for i, mode in enumerate((0o644, 0o755, 0o600, 0o666)):
        await ws.write_file(f"/m/f{i}", b"x" * (i + 1), parents=True, mode=mode)
    local = tmp_path / "rep"
    old = os.umask(0o077)
    try:
        async with make_replica(server, local) as r:
            await asyncio.wait_for(r.sync_once(), 60)
    finally:
        os.umask(old)
    modes = [stat.S_IMODE(os.lstat(local / "m" / f"f{i}").st_mode) for i in range(4)]
    assert modes == [0o644, 0o755, 0o600, 0o666]
    assert stat.S_IMODE(os.lstat(local / "m").st_mode) == 0o755  # the directory too
    async with make_replica(server, local) as r:
        again = await asyncio.wait_for(r.sync_once(), 60)
    assert (again.downloaded, again.uploaded) == (0, 0)


async def test_rescan_after_a_pull_skips_only_files_still_at_the_inode_it_installed(server, ws, tmp_path):
    """`sync_once` ends with a rescan that takes the files its own pull installed (same inode, row naming
    that inode) as installed; anything else is looked at: a file replaced by a new inode, a file the pull did
    not install, a new file. An in-place edit of a skipped file goes up with the next sync."""
    for name in ("a", "b", "c"):
        await ws.write_file(f"/d/{name}.txt", name.encode(), parents=True)
    local = tmp_path / "rep"
    async with make_replica(server, local) as r:
        await asyncio.wait_for(r.sync_once(), 60)
        installed = {f"/d/{n}.txt": os.lstat(f"{local}/d/{n}.txt").st_ino for n in ("a", "b")}
        (local / "d" / "a.txt").write_bytes(b"edited in place")  # same inode: taken as installed
        os.rename(local / "d" / "b.txt", local / "d" / "b.old")
        (local / "d" / "b.txt").write_bytes(b"a new inode")  # replaced: looked at
        (local / "d" / "c.txt").write_bytes(b"not installed by this run")  # looked at
        (local / "d" / "new.txt").write_bytes(b"new")
        found = set(r.pusher.scan("/", installed))
        assert found == {"/d/b.txt", "/d/b.old", "/d/c.txt", "/d/new.txt"}
        assert set(r.pusher.scan("/")) == found | {"/d/a.txt"}  # without `installed`, every file is looked at
    async with make_replica(server, local) as r:
        await asyncio.wait_for(r.sync_once(), 60)  # a new run installed nothing: the in-place edit goes up
    assert await ws.read_file("/d/a.txt") == b"edited in place"
    assert await ws.read_file("/d/b.txt") == b"a new inode"


async def test_a_first_upload_sends_several_chunks_per_frame(server, ws, tmp_path):
    """A replica's first sync of many small local files uploads their chunks several to a
    WebSocket frame (PUT_MANY, where the server lists it): one frame per file before."""
    local = tmp_path / "rep"
    files = {f"/up/f{i:03d}": os.urandom(200 + i) for i in range(120)}
    for path, data in files.items():
        (local / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (local / path.lstrip("/")).write_bytes(data)
    before = server.metric("wsfs_ws_messages_total", direction="in")
    async with make_replica(server, local) as r:
        summary = await asyncio.wait_for(r.sync_once(), 120)
    messages = server.metric("wsfs_ws_messages_total", direction="in") - before
    assert summary.uploaded == 121  # 120 files and their directory
    assert summary.bytes_sent == sum(len(data) for data in files.values())
    assert 0 < messages < 40, messages  # hello, has, uploads, ping, push: not 120 upload frames
    for path, data in files.items():
        assert await ws.read_file(path) == data
