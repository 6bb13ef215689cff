"""The fan-out task (server/fanout.py) serving many parked subscriptions at once.

It serves runs of subscriptions that stand at the same place with one page and one frame, found by
identity (the same spec object, interned at `park`; the same cursor object; the same id): these
tests mix ids and filters among more subscribers than one slice (`SLICE`), so a frame or page kept
for the wrong group, or a group kept across a yield, shows as a wrong `sub` or wrong entries.
"""

from __future__ import annotations

import asyncio

from server.fanout import SLICE
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
