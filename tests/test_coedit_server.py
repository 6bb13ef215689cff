"""The server's co-editing over raw WebSocket frames, with pycrdt as a bare Yjs client
(what any Yjs binding does: y-protocols messages, base64 in `coedit` frames)."""

from __future__ import annotations

import asyncio
import base64
import time

from pycrdt import Doc, Text

from server_fixtures import LiveServer, WsClient
from vfs.wire import (
    COEDIT_TEXT,
    AwarenessEntry,
    awareness_message,
    decode_awareness,
    encode_awareness,
    read_y_message,
    sync_step1,
    sync_update,
)
from vfs.wire.coedit import SYNC_STEP1, SYNC_STEP2, SYNC_UPDATE, YAwareness


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class YClient:
    """A WebSocket session editing one document with a local pycrdt Doc."""

    def __init__(self, ws: WsClient, path: str):
        self.ws = ws
        self.path = path
        self.doc = Doc()
        self.text = self.doc.get(COEDIT_TEXT, type=Text)
        self.awareness: dict[int, dict | None] = {}

    @classmethod
    async def join(cls, server: LiveServer, path: str, *, token: str | None = None, name: str | None = "zoe",
                   **connect):
        hello = {"presence": {"name": name}} if name else {}
        ws = await WsClient.open(server.ws_url(token=token or server.admin), hello=hello, **connect)
        client = cls(ws, path)
        reply = await ws.request({"type": "coedit_open", "path": path, "y": b64(sync_step1(client.doc.get_state()))})
        assert reply["type"] == "ok", reply
        await client.pump(step=SYNC_STEP2)
        return client

    async def pump(self, step: int | None = None, timeout: float = 10) -> None:
        """Apply incoming coedit messages until one of sync step `step` (None: an awareness message) was applied."""
        deadline = time.monotonic() + timeout
        while True:
            ev = await self.ws.next_event("coedit", max(0.01, deadline - time.monotonic()), path=self.path)
            msg = read_y_message(base64.b64decode(ev["y"]))
            if isinstance(msg, YAwareness):
                for entry in decode_awareness(msg.data):
                    self.awareness[entry.client] = entry.state
                if step is None:
                    return
                continue
            if msg.step != SYNC_STEP1 and msg.data != b"\x00\x00":
                self.doc.apply_update(msg.data)
            if msg.step == step:
                return

    async def edit(self, fn) -> dict:
        """Make a local edit and send it; the server's reply (ok once stored)."""
        before = self.doc.get_state()
        fn(self.text)
        update = self.doc.get_update(before)
        return await self.ws.request({"type": "coedit", "path": self.path, "y": b64(sync_update(update))})


async def http_text(server: LiveServer, path: str) -> str:
    async with server.ahttp() as h:
        r = await h.get(f"/api/workspaces/demo/files{path}")
        return r.text if r.status_code == 200 else f"<{r.status_code}>"


async def until_file(server: LiveServer, path: str, expected: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while (got := await http_text(server, path)) != expected:
        assert time.monotonic() < deadline, (got, expected)
        await asyncio.sleep(0.05)


async def put(server: LiveServer, path: str, body: bytes) -> None:
    async with server.ahttp() as h:
        assert (await h.put(f"/api/workspaces/demo/files{path}", content=body)).status_code in (200, 201)


async def test_a_bare_yjs_client_joins_edits_and_the_revision_names_its_author(live_server):
    await put(live_server, "/a.md", b"hello\n")
    watcher = await WsClient.open(live_server.ws_url(token=live_server.admin))
    sub = await watcher.request({"type": "subscribe", "after": "now"})
    zoe = await YClient.join(live_server, "/a.md", name="zoe")
    assert str(zoe.text) == "hello\n"
    reply = await zoe.edit(lambda t: t.insert(len(t), "world\n"))
    assert reply["type"] == "ok"
    await until_file(live_server, "/a.md", "hello\nworld\n")
    entries = await watcher.collect_changes(sub["id"], count=1)
    assert entries[-1]["path"] == "/a.md" and entries[-1]["author"] == "zoe"
    await zoe.ws.close()
    await watcher.close()


async def test_edits_reach_the_other_editor_and_a_read_only_editor_cannot_write(live_server):
    await put(live_server, "/b.md", b"base\n")
    writer = await YClient.join(live_server, "/b.md")
    reader_token = live_server.token("demo", "read", "ro")
    reader = await YClient.join(live_server, "/b.md", token=reader_token, name="ro")
    assert (await writer.edit(lambda t: t.insert(0, "W "))).get("type") == "ok"
    await reader.pump(step=SYNC_UPDATE)  # the live update
    assert str(reader.text) == "W base\n"
    refused = await reader.edit(lambda t: t.insert(0, "R "))
    assert refused["type"] == "error" and refused["code"] == "EACCES"
    await until_file(live_server, "/b.md", "W base\n")
    for c in (writer, reader):
        await c.ws.close()


async def test_bad_coedit_frames_get_errors_and_the_connection_stays(live_server):
    await put(live_server, "/c.md", b"x")
    c = await YClient.join(live_server, "/c.md")
    not_open = await c.ws.request({"type": "coedit", "path": "/other.md", "y": b64(sync_update(b"\x00\x00"))})
    assert not_open["code"] == "EPROTO" and "not open" in not_open["message"]
    garbage = await c.ws.request({"type": "coedit", "path": "/c.md", "y": b64(sync_update(b"\x01\x02\x03"))})
    assert garbage["code"] == "EBADMSG"
    twice = await c.ws.request({"type": "coedit_open", "path": "/c.md"})
    assert twice["code"] == "EPROTO" and "already open" in twice["message"]
    assert (await c.ws.request({"type": "ping"}))["type"] == "ok"
    assert (await c.edit(lambda t: t.insert(1, "y")))["type"] == "ok"
    await until_file(live_server, "/c.md", "xy")
    await c.ws.close()


async def test_awareness_is_relayed_feeds_presence_and_is_removed_when_the_editor_leaves(live_server):
    await put(live_server, "/d.md", b"text")
    ann = await YClient.join(live_server, "/d.md", name=None)  # a bare Yjs binding: awareness names it
    bob = await YClient.join(live_server, "/d.md", name="bob")
    onlooker = await WsClient.open(live_server.ws_url(token=live_server.admin))
    state = {"user": {"name": "Ann", "color": "#e91e63"}, "cursor": {"anchor": 1, "head": 3}}
    aw = awareness_message(encode_awareness([AwarenessEntry(ann.doc.client_id, 1, state)]))
    await ann.ws.send({"type": "coedit", "path": "/d.md", "y": b64(aw)})
    await bob.pump()  # the awareness message
    assert bob.awareness[ann.doc.client_id] == state
    ev = await onlooker.next_event("presence", op="join")  # its first presence: from awareness
    assert ev["peer"]["name"] == "Ann" and ev["peer"]["file"] == "/d.md" and ev["peer"]["cursor"] == state["cursor"]
    # a connection that named itself keeps its name: awareness gives only the cursor and the file
    bob_state = {"user": {"name": "stale name"}, "cursor": {"anchor": 0, "head": 0}}
    aw = awareness_message(encode_awareness([AwarenessEntry(bob.doc.client_id, 1, bob_state)]))
    await bob.ws.send({"type": "coedit", "path": "/d.md", "y": b64(aw)})
    ev = await onlooker.next_event("presence", op="update")
    while ev["peer"].get("cursor") != bob_state["cursor"]:
        ev = await onlooker.next_event("presence", op="update")
    assert ev["peer"]["name"] == "bob" and ev["peer"]["file"] == "/d.md"
    await ann.ws.close()
    await bob.pump()
    assert bob.awareness[ann.doc.client_id] is None  # gone with its connection
    await bob.ws.close()
    await onlooker.close()


async def test_a_deleted_file_ends_the_document_and_the_last_editor_leaving_closes_it(live_server):
    await put(live_server, "/e.md", b"soon gone")
    c = await YClient.join(live_server, "/e.md")
    async with live_server.ahttp() as h:
        assert (await h.delete("/api/workspaces/demo/files/e.md")).status_code in (200, 204)
    ended = await c.ws.next_event("coedit_closed", path="/e.md")
    assert ended["code"] == "ENOENT"
    await c.ws.close()

    await put(live_server, "/f.md", b"f")
    f = await YClient.join(live_server, "/f.md")
    [handle] = [h for h in live_server.state.stores.open_handles() if h.name == "demo"]  # the server's thread owns it
    registry = handle.coedit
    assert "/f.md" in registry.docs
    assert (await f.ws.request({"type": "coedit_close", "path": "/f.md"}))["type"] == "ok"
    deadline = time.monotonic() + 5
    while "/f.md" in registry.docs:
        assert time.monotonic() < deadline, "the document stayed open without editors"
        await asyncio.sleep(0.02)
    await f.ws.close()


async def test_a_burst_of_awareness_changes_is_relayed_merged_ending_with_the_newest_state(live_server):
    """A browser sends an awareness update per cursor move; the server gathers them briefly and
    relays the newest state per client, so a burst costs the others a few messages, not one each."""
    await put(live_server, "/burst.md", b"text")
    ann = await YClient.join(live_server, "/burst.md", name="ann")
    bob = await YClient.join(live_server, "/burst.md", name="bob")
    states = [{"user": {"name": "ann"}, "cursor": {"anchor": i, "head": i}} for i in range(30)]
    for clock, state in enumerate(states, 1):
        aw = awareness_message(encode_awareness([AwarenessEntry(ann.doc.client_id, clock, state)]))
        await ann.ws.send({"type": "coedit", "path": "/burst.md", "y": b64(aw)})
    received = 0
    while bob.awareness.get(ann.doc.client_id) != states[-1]:
        assert received < len(states), "the newest state never arrived"
        await bob.pump()
        received += 1
    assert received < len(states)  # merged: fewer messages than changes
    assert bob.awareness[ann.doc.client_id] == states[-1]
    await ann.ws.close()
    await bob.ws.close()


async def test_a_reader_that_stops_reading_gets_the_backlog_merged_and_converges(live_server):
    """An editor whose socket fills up (it stops reading) is sent to by its own task, its queued updates
    merged into one; the others are served meanwhile, and once it reads again it has every edit."""
    path = "/slow.md"
    typist = await YClient.join(live_server, path, name="fast")
    slow = await YClient.join(live_server, path, name="slow", max_queue=1)  # stops reading when 1 frame waits
    try:
        big = "x" * 65536
        sent = 0
        for _ in range(150):  # ~19 MB of updates: more than loopback's socket buffers hold
            assert (await typist.edit(lambda t: t.insert(0, big)))["type"] == "ok"
            assert (await typist.edit(lambda t: t.__delitem__(slice(0, len(big)))))["type"] == "ok"
            sent += 2
        assert (await typist.edit(lambda t: t.insert(0, "the end\n")))["type"] == "ok"
        sent += 1
        received = 0
        deadline = time.monotonic() + 60
        while str(slow.text) != "the end\n":
            assert time.monotonic() < deadline, "the slow reader never caught up"
            ev = await slow.ws.next_event("coedit", max(0.01, deadline - time.monotonic()), path=path)
            msg = read_y_message(base64.b64decode(ev["y"]))
            if not isinstance(msg, YAwareness) and msg.step == SYNC_UPDATE:
                slow.doc.apply_update(msg.data)
                received += 1
        assert received < sent, "its backlog was never merged"
        assert str(typist.text) == "the end\n"
    finally:
        await typist.ws.close()
        await slow.ws.close()
