"""The fan-out task (server/fanout.py) serving many parked subscriptions at once.

It serves runs of subscriptions that stand at the same place with one page and one frame, found by
identity (the same spec object, interned at `park`; the same cursor object; the same id): these
tests mix ids and filters among more subscribers than one slice (`SLICE`), so a frame or page kept
for the wrong group, or a group kept across a yield, shows as a wrong `sub` or wrong entries.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import orjson

from server.fanout import SLICE
from server.rawsocket import text_frame
from server_fixtures import LiveServer, WsClient, wait_for

IDS = ("a", "b", 7)  # a str twice and an int: frames differ by id (and 7 is not "7")
GLOBS = (None, ["*.txt"])


async def test_mixed_ids_and_filters_each_get_their_own_frame(live_server: LiveServer) -> None:
    n = SLICE + 12  # more than one slice: the task yields once mid-way
    url = live_server.ws_url(token=live_server.admin)
    clients: list[tuple[WsClient, object, list[str] | None]] = []
    try:
        for i in range(n):
            sid, globs = IDS[i % len(IDS)], GLOBS[(i // len(IDS)) % len(GLOBS)]
            c = await WsClient.open(url)
            msg = {"type": "subscribe", "id": sid, "after": "now", **({"globs": globs} if globs else {})}
            await c.send(msg)
            await c.next_event("caught_up", sub=sid)
            clients.append((c, sid, globs))
        handle = live_server.state.stores._handles["demo"]
        await wait_for(lambda: len(handle.fanout.parked) == n)  # every one waits on the fan-out task
        sent0, out0 = handle.fanout.sent, live_server.state.metrics.ws.messages_out
        async with live_server.ahttp() as http:
            for path in ("/x.txt", "/y.bin"):
                assert (await http.put(f"/api/workspaces/demo/files{path}", content=b"1")).status_code == 201
            end = (await http.get("/api/workspaces/demo")).json()["cursor"]

        async def check(c: WsClient, sid: object, globs: list[str] | None) -> None:
            got = await c.collect_changes(sid, end, timeout=30)
            assert [e["path"] for e in got if e.get("kind") == "file"] == (
                ["/x.txt"] if globs else ["/x.txt", "/y.bin"])
            assert not [e for e in c.events if e.get("type") == "changes"]  # none under another id

        await asyncio.gather(*(check(c, sid, globs) for c, sid, globs in clients))
        served = handle.fanout.sent - sent0
        assert served >= n  # the fan-out task sent live pages itself (at least one per subscriber)
        assert live_server.state.metrics.ws.messages_out - out0 >= served  # and counted them
    finally:
        for c, _, _ in clients:
            await c.close()


async def test_sessions_all_parked_are_kicked_by_the_hub_once_and_miss_nothing(live_server: LiveServer) -> None:
    """A session whose subscriptions all wait on the fan-out hands its commits to the fan-out's
    `kick` (`Hub.stand_in`: one call per commit, not one per session); one of them leaving makes
    it loud again, a new one parking hushes it again, and every subscription gets every change
    of its filter in order throughout."""
    url = live_server.ws_url(token=live_server.admin)
    handle = live_server.state.stores._handles["demo"]
    two, one = await WsClient.open(url), await WsClient.open(url)
    try:
        for c, sid, globs in ((two, "a", ["*.a"]), (two, "b", ["*.b"]), (one, "s", None)):
            await c.request({"type": "subscribe", "id": sid, "after": "now", **({"globs": globs} if globs else {})})
            await c.next_event("caught_up", sub=sid)
        sessions = live_server.state.sessions
        s_two, s_one = sessions[two.hello["session"]], sessions[one.hello["session"]]
        await wait_for(lambda: len(handle.fanout.parked) == 3 and handle.fanout.hushed == {s_two, s_one})

        async def put(*paths: str) -> str:
            async with live_server.ahttp() as http:
                for path in paths:
                    assert (await http.put(f"/api/workspaces/demo/files{path}", content=b"1")).status_code == 201
                return (await http.get("/api/workspaces/demo")).json()["cursor"]

        async def got(c: WsClient, sid: str, end: str) -> list[str]:
            return [e["path"] for e in await c.collect_changes(sid, end, timeout=30) if e.get("kind") == "file"]

        end = await put("/1.a", "/1.b")
        assert await got(two, "a", end) == ["/1.a"] and await got(two, "b", end) == ["/1.b"]
        assert await got(one, "s", end) == ["/1.a", "/1.b"]
        await wait_for(lambda: handle.fanout.hushed == {s_two, s_one})  # served by the fan-out, still hushed
        assert (await two.request({"type": "unsubscribe", "id": 9, "sub": "b"}))["type"] == "ok"
        assert s_two not in handle.fanout.hushed and s_one in handle.fanout.hushed
        end = await put("/2.a", "/2.b")
        assert await got(two, "a", end) == ["/2.a"] and await got(one, "s", end) == ["/2.a", "/2.b"]
        await two.request({"type": "subscribe", "id": "c", "after": end})
        await two.next_event("caught_up", sub="c")
        await wait_for(lambda: len(handle.fanout.parked) == 3 and handle.fanout.hushed == {s_two, s_one})
        end = await put("/3.b", "/3.a")
        assert await got(two, "a", end) == ["/3.a"] and await got(two, "c", end) == ["/3.b", "/3.a"]
        assert await got(one, "s", end) == ["/3.b", "/3.a"]
        assert not [e for e in two.events + one.events if e.get("type") == "changes"]  # nothing twice
    finally:
        await two.close()
        await one.close()
    await wait_for(lambda: not handle.fanout.hushed and not handle.fanout.parked)  # gone: nothing held


async def test_frames_written_past_a_full_socket_arrive_whole_and_in_order(live_server: LiveServer) -> None:
    """`RawSocket.write` (the fan-out's and a reply's path) to a client that stops reading, until the
    transport pauses: frames sent at once, one cut by a partial write, then frames queued in the
    transport. The client then reads every accepted frame whole, in order, once. (Kept from a
    variant that wrote straight to the descriptor while the transport held nothing, leaving a
    partial write's rest to the transport: it failed when that rest was dropped.)"""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)  # small and fixed: the socket fills soon
    sock.connect(("127.0.0.1", live_server.port))
    c = await WsClient.open(live_server.ws_url(token=live_server.admin), sock=sock, max_queue=1, ping_interval=None)
    try:
        raw = live_server.state.sessions[c.hello["session"]].write_frame.__self__
        pad = "p" * 30_001  # odd-sized frames: partial writes fall mid-frame

        def write_until_paused() -> tuple[int, int]:
            accepted = queued = 0
            while accepted < 2000 and raw.write(text_frame(orjson.dumps({"type": "n", "n": accepted, "pad": pad}))):
                accepted += 1
                queued += raw.transport.get_write_buffer_size() > 0
            return accepted, queued

        loop = raw.protocol.loop  # the server's loop (another thread): the write runs there, as the fan-out's
        done = asyncio.run_coroutine_threadsafe(_call(write_until_paused), loop)
        accepted, queued = await asyncio.wrap_future(done)
        assert 0 < accepted < 2000 and queued > 0  # some frames went straight, some after bytes were queued
        got: list[dict[str, Any]] = []
        for _ in range(accepted + 10):  # (the session's own messages, such as presence, may come first)
            m = await c.recv(timeout=30)
            if m["type"] == "n":
                got.append(m)
            if len(got) == accepted:
                break
        assert [m["n"] for m in got] == list(range(accepted)) and all(m["pad"] == pad for m in got)
    finally:
        await c.close()


async def _call(fn: Any) -> Any:
    return fn()
