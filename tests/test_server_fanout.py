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
