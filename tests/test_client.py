"""`client_py.Client` against a real server on loopback: the vfs API mirrored, errors, streaming, watch."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import os

import blake3
import pytest

import vfs
from vfs import wire as P
from client_fixtures import free_port
from client_py import Backoff, Client, ServerUnreachable
from vfs.wire import ProtocolError


async def test_files_round_trip(ws):
    st = await ws.write_file("/notes/todo.md", b"- [ ] ship it\n", parents=True)
    assert st.kind == "file" and st.size == 14
    assert st.hash == blake3.blake3(b"- [ ] ship it\n").hexdigest()
    assert await ws.read_file("/notes/todo.md") == b"- [ ] ship it\n"
    await ws.write_file("/notes/a b%.txt", "unicode é")
    assert await ws.read_file("/notes/a b%.txt") == "unicode é".encode()
    assert [e.name for e in await ws.readdir("/notes")] == ["a b%.txt", "todo.md"]
    assert await ws.exists("/notes/todo.md") and not await ws.exists("/nope")
    assert await ws.read_range("/notes/todo.md", 2, 3) == b"[ ]"
    assert await ws.read_range("/notes/todo.md", 11, 100) == b"it\n"  # short read at EOF
    assert await ws.read_range("/notes/todo.md", 100, 5) == b""
    await ws.write_range("/notes/todo.md", 3, b"x")
    assert await ws.read_file("/notes/todo.md") == b"- [x] ship it\n"
    await ws.truncate("/notes/todo.md", 5)
    assert await ws.read_file("/notes/todo.md") == b"- [x]"


async def test_namespace_ops(ws):
    await ws.mkdir("/a/b/c", parents=True)
    await ws.write_file("/a/b/c/f.txt", b"data")
    await ws.symlink("c/f.txt", "/a/b/link")
    assert await ws.readlink("/a/b/link") == "c/f.txt"
    assert (await ws.lstat("/a/b/link")).kind == "symlink"
    assert (await ws.stat("/a/b/link")).kind == "file"
    await ws.link("/a/b/c/f.txt", "/a/hard")
    assert (await ws.stat("/a/hard")).nlink == 2
    await ws.copy("/a/b/c/f.txt", "/copy.txt")
    await ws.rename("/a/b", "/moved")
    assert await ws.read_file("/moved/c/f.txt") == b"data"
    assert "/moved/c/f.txt" in await ws.ls("/moved")
    assert "/moved/c/f.txt" in await ws.find("/", "**/*.txt")
    matches = await ws.grep("dat", "/")
    assert {m.path for m in matches} >= {"/moved/c/f.txt", "/copy.txt"}
    assert await ws.du("/moved") >= 4
    walked = [top async for top, _dirs, _files in ws.walk("/")]
    assert walked[0] == "/" and "/moved/c" in walked
    await ws.chmod("/copy.txt", 0o600)
    assert (await ws.stat("/copy.txt")).mode & 0o7777 == 0o600
    await ws.utime("/copy.txt", 1_000_000.5)
    assert (await ws.stat("/copy.txt")).mtime == pytest.approx(1_000_000.5)
    await ws.unlink("/copy.txt")
    await ws.rm("/moved", recursive=True)
    assert not await ws.exists("/moved")


async def test_errors_match_the_local_store(ws, tmp_path):
    """The same calls raise the same exception class with the same errno, local or remote."""
    local = vfs.Workspace(str(tmp_path / "local.db"))

    async def both(fn):
        outcomes = []
        for target, is_async in ((local, False), (ws, True)):
            try:
                result = fn(target)
                if is_async:
                    await result
                outcomes.append(None)
            except OSError as e:
                outcomes.append((type(e), e.errno))
        return outcomes

    steps = [
        lambda w: w.write_file("/f", b"1"),
        lambda w: w.mkdir("/d"),
        lambda w: w.write_file("/d/x", b"2"),
        lambda w: w.read_file("/missing"),
        lambda w: w.mkdir("/d"),
        lambda w: w.rmdir("/d"),
        lambda w: w.read_file("/d"),
        lambda w: w.write_file("/f/x", b""),
        lambda w: w.unlink("/d"),
        lambda w: w.rename("/d", "/d/sub"),
        lambda w: w.rm("/"),
        lambda w: w.mkdir("/no/parent"),
        lambda w: w.write_file("/" + "n" * 256, b""),
        lambda w: w.readlink("/f"),
        lambda w: w.rm("/d"),
    ]
    results = [await both(step) for step in steps]
    for i, (lo, re) in enumerate(results):
        assert lo == re, f"step {i}: local {lo} vs remote {re}"
    assert any(r[0] is not None for r in results)  # the table did exercise errors
    assert (FileNotFoundError, errno.ENOENT) in [r[0] for r in results]
    local.close()


async def test_relative_path_is_einval(ws):
    with pytest.raises(OSError) as info:
        await ws.read_file("relative.txt")
    assert info.value.errno == errno.EINVAL


async def test_if_match(ws):
    st = await ws.write_file("/doc", b"v1")
    await ws.write_file("/doc", b"v2", if_match=st.hash)
    with pytest.raises(vfs.PreconditionFailed) as info:
        await ws.write_file("/doc", b"v3", if_match=st.hash)
    assert info.value.current == blake3.blake3(b"v2").hexdigest()
    with pytest.raises(vfs.PreconditionFailed):
        await ws.write_file("/doc", b"v3", if_match="")
    await ws.write_file("/new", b"x", if_match="")


async def test_streaming_upload_and_download(ws):
    data = os.urandom(5 * 1024 * 1024 + 17)
    st = await ws.write_file("/big.bin", io.BytesIO(data))
    assert st.size == len(data) and st.hash == blake3.blake3(data).hexdigest()

    async def pieces():
        for i in range(0, len(data), 700_000):
            yield data[i : i + 700_000]

    st2 = await ws.write_file("/big2.bin", pieces())
    assert st2.hash == st.hash
    got = bytearray()
    async for piece in ws.iter_file("/big2.bin"):
        got += piece
    assert bytes(got) == data
    tail = b"".join([p async for p in ws.iter_file("/big.bin", offset=len(data) - 100)])
    assert tail == data[-100:]


async def test_history_and_restore(ws):
    await ws.write_file("/h.txt", b"one")
    await ws.write_file("/h.txt", b"two")
    versions = await ws.history("/h.txt")
    assert len(versions) >= 2 and versions[0].rev > versions[1].rev
    old = versions[1].rev
    assert await ws.read_file("/h.txt", rev=old) == b"one"
    await ws.restore("/h.txt", old)
    assert await ws.read_file("/h.txt") == b"one"


async def test_change_log_objects_and_push(ws):
    start = await ws.cursor()
    await ws.write_file("/c1", b"hello")
    page = await ws.changes_page(start)
    assert [c.path for c in page.entries] == ["/c1"]
    assert (await ws.entry("/c1")).hash == blake3.blake3(b"hello").hexdigest()
    assert await ws.entry("/never") is None
    chunk = os.urandom(1000)
    h = await ws.put_object(chunk)
    assert await ws.has_objects([h, "0" * 64]) == {h}
    assert dict([x async for x in ws.read_objects([h])]) == {h: chunk}
    result = await ws.apply_changes(
        [vfs.Change("/pushed", "file", 0, mode=0o100644, size=1000, hash=h, chunks=((h, 1000),))], base={}
    )
    assert result.applied == ["/pushed"]
    assert await ws.read_file("/pushed") == chunk
    conflict = await ws.apply_changes([vfs.Change("/pushed", "delete", 0)], base={"/pushed": 0})
    assert [c.path for c in conflict.conflicts] == ["/pushed"]


async def test_unreachable_server_names_the_url():
    url = f"http://127.0.0.1:{free_port()}"
    async with Client(url, token="x", backoff=Backoff(base=0.01, cap=0.02, retries=2)) as c:
        with pytest.raises(ServerUnreachable) as info:
            await c.workspace("demo").read_file("/a")
        assert url in str(info.value)
        with pytest.raises(ServerUnreachable) as info:
            await c.connect("demo")
        assert url in str(info.value)


async def test_an_upgrade_refused_with_503_is_retried_and_a_401_is_not():
    """A node handing a workspace over, or a proxy whose upstream is away, answers the upgrade 503:
    passing, so `connect` tries again with backoff; an auth refusal is final at once."""
    attempts: list[bytes] = []
    answers = {b"/busy": (503, b'{"error":{"code":"EAGAIN","message":"workspace moving"}}'),
               b"/auth": (401, b'{"error":{"code":"EAUTH","message":"bad token"}}')}

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        attempts.append(head)
        status, body = next(v for k, v in answers.items() if k in head.split(b"\r\n", 1)[0])
        writer.write(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n%s" % (status, len(body), body))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with Client(f"http://127.0.0.1:{port}/busy", token="x",
                          backoff=Backoff(base=0.01, cap=0.02, retries=2)) as c:
            with pytest.raises(ServerUnreachable) as info:
                await c.connect("demo")
            assert "workspace moving" in str(info.value)
        assert len(attempts) == 3  # the first try and two retries
        attempts.clear()
        async with Client(f"http://127.0.0.1:{port}/auth", token="x",
                          backoff=Backoff(base=0.01, cap=0.02, retries=2)) as c:
            with pytest.raises(ProtocolError) as refused:
                await c.connect("demo")
            assert refused.value.code == "EAUTH"
        assert len(attempts) == 1
    finally:
        server.close()
        await server.wait_closed()


async def test_a_read_whose_bytes_do_not_match_their_etag_fails(server, ws):
    """A relay in between (a broken proxy or cache) changes one byte of the body: the whole-file read
    raises EIO naming the path, instead of handing back bytes the server never sent under that ETag."""
    data = os.urandom(200_000)
    await ws.write_file("/big.bin", data)
    upstream_port = int(server.url.rsplit(":", 1)[1].split("/")[0])

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, corrupt: bool) -> None:
        seen = b""
        flipped = not corrupt
        with contextlib.suppress(ConnectionError):
            while piece := await reader.read(65536):
                if not flipped:
                    at = (seen + piece).find(b"\r\n\r\n")  # the first response's body starts after it
                    if at >= 0 and at + 4 - len(seen) < len(piece):
                        i = at + 4 - len(seen)
                        piece = piece[:i] + bytes([piece[i] ^ 1]) + piece[i + 1:]
                        flipped = True
                    else:
                        seen = (seen + piece)[-3:]
                writer.write(piece)
                await writer.drain()
        writer.close()

    async def relay(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", upstream_port)
        await asyncio.gather(pipe(client_r, up_w, False), pipe(up_r, client_w, True))

    relay_server = await asyncio.start_server(relay, "127.0.0.1", 0)
    port = relay_server.sockets[0].getsockname()[1]
    try:
        async with Client(f"http://127.0.0.1:{port}", token=server.admin) as c:
            with pytest.raises(OSError) as info:
                await c.workspace("demo").read_file("/big.bin")
        assert info.value.errno == errno.EIO and "/big.bin" in str(info.value)
        assert await ws.read_file("/big.bin") == data  # straight from the server: whole and right
    finally:
        relay_server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(relay_server.wait_closed(), 5)


async def test_auth_and_scopes(server):
    async with Client(server.url, token="wsfs_wrong") as c:
        with pytest.raises(ProtocolError) as info:
            await c.workspace("demo").read_file("/x")
        assert info.value.code == "EAUTH"
        with pytest.raises(ProtocolError):
            await c.connect("demo")
    read = server.token("demo", "read")
    async with Client(server.url, token=read) as c:
        with pytest.raises(PermissionError):
            await c.workspace("demo").write_file("/x", b"no")
        assert await c.workspaces() == ["demo"]


async def test_admin_workspaces_and_tokens(server):
    async with Client(server.url, token=server.admin) as c:
        assert (await c.create_workspace("team"))["created"] is True
        assert "team" in await c.workspaces()
        minted = await c.create_token("team", "write", name="bot")
        assert minted["token"].startswith("wsfs_")
        assert any(t["id"] == minted["id"] for t in await c.tokens())
        async with Client(server.url, token=minted["token"]) as bot:
            await bot.workspace("team").write_file("/hi", b"hi")
            with pytest.raises(PermissionError):
                await bot.workspace("demo").read_file("/hi")
        await c.revoke_token(minted["id"])
        async with Client(server.url, token=minted["token"]) as bot:
            with pytest.raises(ProtocolError):
                await bot.workspace("team").read_file("/hi")
        await c.delete_workspace("team")
        assert "team" not in await c.workspaces()
        assert (await c.whoami())["kind"] == "admin"


async def test_watch_events_with_cursors(ws):
    events = []

    async def consume():
        # aclosing: leaving the loop early closes the stream's connection now, not at GC time
        async with contextlib.aclosing(ws.watch("/w", after="now", inline_max=1024)) as stream:
            async for ev in stream:
                events.append(ev)
                if len(events) == 3:
                    return

    task = asyncio.ensure_future(consume())
    await asyncio.sleep(0.3)  # let the subscription start; "now" is resolved by the server
    await ws.write_file("/w/a", b"1", parents=True)
    await ws.write_file("/other", b"not watched")
    await ws.write_file("/w/b", b"2")
    await asyncio.wait_for(task, 20)
    assert [(e.path, e.kind) for e in events] == [("/w", "dir"), ("/w/a", "file"), ("/w/b", "file")]
    assert events[1].data == b"1"
    cursors = [vfs.Cursor.parse(e.cursor) for e in events]
    assert cursors == sorted(cursors)


async def test_watch_resumes_across_server_restart_without_gap_or_duplicate(server):
    """The iterator reconnects by itself; every change arrives exactly once."""
    async with Client(server.url, token=server.admin, backoff=Backoff(base=0.05, cap=0.5, retries=60)) as c:
        ws = c.workspace("demo")
        start = await ws.cursor()
        seen: list[str] = []

        async def consume():
            async with contextlib.aclosing(ws.watch("/", after=str(start))) as stream:
                async for ev in stream:
                    seen.append(ev.path)
                    if len(seen) == 10:
                        return

        task = asyncio.ensure_future(consume())
        for i in range(5):
            await ws.write_file(f"/f{i}", b"x")
        await asyncio.sleep(0.3)
        await server.arestart()
        for i in range(5, 10):
            await ws.write_file(f"/f{i}", b"y")
        await asyncio.wait_for(task, 30)
        assert seen == [f"/f{i}" for i in range(10)]


async def test_watch_from_the_start_of_a_compacted_log_resumes_from_an_event_cursor(server):
    """A listing below the tombstone horizon spans pages; an event's cursor carries the page's
    floor, so a watcher that stops mid-listing and resumes from it goes on without a resync."""
    files = P.DEFAULT_BATCH + 40  # more than one page
    await server.astop()
    with vfs.Workspace(str(server.data_dir / "workspaces" / "demo.db")) as store:
        with store.transaction():
            store.mkdir("/d")
            for i in range(files):
                store.write_file(f"/d/{i:04}", b"x")
        store.write_file("/gone", b"g")
        store.unlink("/gone")
        assert store.compact_tombstones(store.rev) == 1
    await asyncio.to_thread(server.start)
    async with Client(server.url, token=server.admin) as c:
        ws = c.workspace("demo")

        async def take(after, n):
            got = []
            async with contextlib.aclosing(ws.watch("/d", after=after)) as stream:
                async for ev in stream:
                    got.append(ev)
                    if len(got) == n:
                        return got

        first = await asyncio.wait_for(take(None, P.DEFAULT_BATCH + 5), 30)
        assert "~" in first[-1].cursor
        rest = await asyncio.wait_for(take(first[-1].cursor, files + 1 - len(first)), 30)
    assert [e.path for e in first + rest] == ["/d"] + [f"/d/{i:04}" for i in range(files)]


async def test_open_file_objects(ws):
    async with ws.open("/fo.bin", "wb") as f:
        await f.write(b"hello ")
        await f.write(b"world")
    async with ws.open("/fo.bin", "rb") as f:
        assert await f.read(5) == b"hello"
        f.seek(1, 1)
        assert await f.read() == b"world"
    async with ws.open("/fo.bin", "ab") as f:
        await f.write(b"!")
    async with ws.open("/fo.bin", "r+b") as f:
        f.seek(0)
        await f.write(b"J")
    assert await ws.read_file("/fo.bin") == b"Jello world!"
    with pytest.raises(FileExistsError):
        async with ws.open("/fo.bin", "xb") as f:
            await f.write(b"no")
    with pytest.raises(FileNotFoundError):
        async with ws.open("/missing", "rb"):
            pass
