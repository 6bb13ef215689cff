"""`client_py.watch.messages`: the one reconnect loop under `watch` and the remote mount,
against a real server restarted on the same port (no mocks)."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

import vfs
from client_py import Backoff, Client, ServerUnreachable
from client_py.watch import Lost, Resumed, messages
from vfs.wire import CaughtUp, Changes


async def test_a_restart_mid_stream_misses_nothing_and_repeats_nothing(server):
    """Changes made while the stream is down (written into the store with the server stopped)
    arrive after the reconnect, each once; the outage is said once each way, in order.
    Resuming from "now" would miss f5..f9, from the first cursor repeat f0..f4."""
    async with Client(server.url, token=server.admin, backoff=Backoff(base=0.05, cap=0.5, retries=60)) as c:
        ws = c.workspace("demo")
        start = await ws.cursor()
        items: list[object] = []
        paths: list[str] = []
        caught_up = asyncio.Event()

        async def consume() -> None:
            async with contextlib.aclosing(messages(c, "demo", str(start))) as stream:
                async for msg in stream:
                    items.append(msg)
                    if isinstance(msg, Changes):
                        paths.extend(entry["path"] for entry in msg.entries)
                    if len(paths) >= 5:
                        caught_up.set()
                    if len(paths) >= 10:
                        return

        task = asyncio.ensure_future(consume())
        for i in range(5):
            await ws.write_file(f"/f{i}", b"x")
        await asyncio.wait_for(caught_up.wait(), 30)
        await server.astop()
        with vfs.Workspace(str(server.data_dir / "workspaces" / "demo.db")) as store:
            for i in range(5, 10):
                store.write_file(f"/f{i}", b"y")
        await asyncio.to_thread(server.start)
        await asyncio.wait_for(task, 30)
    assert paths == [f"/f{i}" for i in range(10)]
    markers = [type(m) for m in items if isinstance(m, (Lost, Resumed))]
    assert markers == [Lost, Resumed]
    lost_at = next(i for i, m in enumerate(items) if isinstance(m, Lost))
    assert any(isinstance(m, CaughtUp) for m in items[:lost_at])  # the first five came in before the loss
    assert all(isinstance(m, (Changes, CaughtUp, Lost, Resumed)) for m in items)


async def test_past_the_backoff_it_raises_server_unreachable(server):
    """A server that stays away: `Lost` once, then `ServerUnreachable` when the budget is spent."""
    async with Client(server.url, token=server.admin, backoff=Backoff(base=0.01, cap=0.05, retries=2)) as c:
        items: list[object] = []

        async def consume() -> None:
            async with contextlib.aclosing(messages(c, "demo", None)) as stream:
                async for msg in stream:
                    items.append(msg)
                    if isinstance(msg, CaughtUp):
                        await server.astop()

        with pytest.raises(ServerUnreachable):
            await asyncio.wait_for(consume(), 60)
    assert [type(m) for m in items if isinstance(m, (Lost, Resumed))] == [Lost]


async def test_leaving_watch_closes_its_connection_at_once(server):
    """`aclosing(ws.watch(...))` closes the WebSocket as the block ends, not when the stream loop
    under it is collected: checked with this event loop blocked, so nothing scheduled for later runs."""
    async with Client(server.url, token=server.admin) as c:
        ws = c.workspace("demo")
        await ws.write_file("/a", b"x")
        async with contextlib.aclosing(ws.watch("/", after=None)) as stream:
            async for _ in stream:
                assert server.metric("wsfs_ws_connections") == 1
                break
        open_connections = 1.0
        for _ in range(50):  # (blocking: the server runs in its own thread, this loop waits)
            open_connections = server.metric("wsfs_ws_connections")
            if open_connections == 0:
                break
            time.sleep(0.1)
        assert open_connections == 0
