"""WebSocket protocol against a live server: hello, subscriptions, objects, push, presence."""

from __future__ import annotations

import asyncio
import base64
import os
import socket

import blake3
import pytest
from websockets.exceptions import ConnectionClosed

import vfs
from server_fixtures import LiveServer, WsClient
from vfs.wire import FRAME_CHUNK, FRAME_PUT, decode_chunk_frame, encode_chunk_frame


def h(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def final_states(entries: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for e in entries:
        out[e["path"]] = e
    return out


def assert_cursor_order(entries: list[dict]) -> None:
    cursors = [vfs.Cursor.parse(e["cursor"]) for e in entries]
    assert cursors == sorted(cursors)
    assert len(set(cursors)) == len(cursors), "an entry was delivered twice"


async def test_hello_negotiates_version(live_server: LiveServer) -> None:
    c = await WsClient.open(live_server.ws_url(token=live_server.admin))
    assert c.hello["protocol"] == 1
    assert c.hello["workspace"] == "demo"
    assert c.hello["scope"] == "admin"
    assert c.hello["limits"]["max_batch"] >= 1
    sync = await c.next_event("presence")
    assert sync["op"] == "sync" and sync["peers"] == []
    assert (await c.request({"type": "ping"}))["type"] == "ok"
    await c.close()


async def test_unknown_version_is_refused_naming_supported(live_server: LiveServer) -> None:
    c = await WsClient.open(live_server.ws_url(token=live_server.admin), hello=False)
    await c.send({"type": "hello", "protocol": 99})
    err = await c.recv()
    assert err["type"] == "error" and err["code"] == "EPROTONOSUPPORT"
    assert err["supported"] == [1]
    assert "99" in err["message"]
    with pytest.raises(ConnectionClosed) as info:
        await c.recv()
    assert info.value.rcvd.code == 4000


async def test_first_frame_must_be_hello(live_server: LiveServer) -> None:
    c = await WsClient.open(live_server.ws_url(token=live_server.admin), hello=False)
    await c.send({"type": "ping", "id": 1})
    err = await c.recv()
    assert err["code"] == "EPROTO" and "hello" in err["message"]
    with pytest.raises(ConnectionClosed) as info:
        await c.recv()
    assert info.value.rcvd.code == 4000


async def test_two_subscribers_see_every_change_in_order_once(live_server: LiveServer) -> None:
    url = live_server.ws_url(token=live_server.admin)
    a, b = await WsClient.open(url), await WsClient.open(url)
    for c in (a, b):
        ok = await c.request({"type": "subscribe", "id": "s", "after": "now"})
        assert ok["type"] == "ok"
        await c.next_event("caught_up", sub="s")
    start = vfs.Cursor.parse(a.hello["cursor"])
    async with live_server.ahttp() as http:
        for i in range(30):
            r = await http.put(f"/api/workspaces/demo/files/d{i % 3}/f{i}.txt?parents=1", content=f"v{i}".encode())
            assert r.status_code == 201
        r = await http.post("/api/workspaces/demo/ops", json={"op": "rename", "src": "/d0", "dst": "/e0"})
        assert r.status_code == 200
        r = await http.delete("/api/workspaces/demo/files/d1?recursive=1")
        assert r.status_code == 200
        end = (await http.get("/api/workspaces/demo")).json()["cursor"]
        truth = (await http.get("/api/workspaces/demo/changes", params={"after": str(start)})).json()
    assert not truth["more"]
    expected = final_states(truth["entries"])
    for c in (a, b):
        got = await c.collect_changes("s", end)
        assert_cursor_order(got)
        assert {p: (e["kind"], e["hash"]) for p, e in final_states(got).items()} == {
            p: (e["kind"], e["hash"]) for p, e in expected.items()
        }
    await a.close()
    await b.close()


async def test_reconnect_with_cursor_misses_nothing_gets_nothing_twice(live_server: LiveServer) -> None:
    url = live_server.ws_url(token=live_server.admin)
    async with live_server.ahttp() as http:
        for i in range(10):
            await http.put(f"/api/workspaces/demo/files/a{i}", content=b"x" * i)
        c = await WsClient.open(url)
        await c.request({"type": "subscribe", "id": 1, "after": None, "batch_max": 4})
        first = await c.next_event("changes", sub=1)
        cursor = first["cursor"]
        seen = list(first["entries"])
        await c.close()  # drop mid-catch-up
        for i in range(10, 20):
            await http.put(f"/api/workspaces/demo/files/a{i}", content=b"y" * i)
        await http.delete("/api/workspaces/demo/files/a0")
        end = (await http.get("/api/workspaces/demo")).json()["cursor"]
        truth = (await http.get("/api/workspaces/demo/changes")).json()
    c = await WsClient.open(url)
    await c.request({"type": "subscribe", "id": 1, "after": cursor})
    seen += await c.collect_changes(1, end)
    assert_cursor_order(seen)
    assert {p: e["hash"] for p, e in final_states(seen).items() if e["kind"] != "delete"} == {
        e["path"]: e["hash"] for e in truth["entries"] if e["kind"] != "delete"
    }
    assert final_states(seen)["/a0"]["kind"] == "delete"
    await c.close()


async def test_snapshot_globs_inline_and_caught_up(live_server: LiveServer) -> None:
    async with live_server.ahttp() as http:
        await http.put("/api/workspaces/demo/files/docs/a.md?parents=1", content=b"# A\n")
        await http.put("/api/workspaces/demo/files/docs/sub/b.md?parents=1", content=b"# B\n")
        await http.put("/api/workspaces/demo/files/docs/c.txt", content=b"c")
        await http.put("/api/workspaces/demo/files/other.md", content=b"o")
        await http.put("/api/workspaces/demo/files/docs/big.md", content=b"z" * 5000)
    c = await WsClient.open(live_server.ws_url(token=live_server.admin))
    ok = await c.request({"type": "subscribe", "id": "md", "after": None, "prefix": "/docs",
                          "globs": ["**/*.md"], "inline_max": 100})
    assert ok["cursor"] == "0"
    got = await c.collect_changes("md", count=3)
    caught = await c.next_event("caught_up", sub="md")
    assert {e["path"] for e in got} == {"/docs/a.md", "/docs/sub/b.md", "/docs/big.md"}
    by_path = final_states(got)
    assert base64.b64decode(by_path["/docs/a.md"]["data"]) == b"# A\n"
    assert "data" not in by_path["/docs/big.md"]  # above inline_max
    assert vfs.Cursor.parse(caught["cursor"]) >= vfs.Cursor.parse(got[-1]["cursor"])
    # live: a matching write arrives, a non-matching one does not
    async with live_server.ahttp() as http:
        await http.put("/api/workspaces/demo/files/docs/c.txt", content=b"cc")
        await http.put("/api/workspaces/demo/files/docs/a.md", content=b"# A2\n")
    live = await c.collect_changes("md", count=1)
    assert [e["path"] for e in live] == ["/docs/a.md"]
    assert base64.b64decode(live[0]["data"]) == b"# A2\n"
    assert live[0]["author"] == "test-admin"
    await c.close()


async def test_unsubscribe_stops_changes(live_server: LiveServer) -> None:
    c = await WsClient.open(live_server.ws_url(token=live_server.admin))
    await c.request({"type": "subscribe", "id": "x", "after": "now"})
    assert (await c.request({"type": "unsubscribe", "sub": "x"}))["type"] == "ok"
    err = await c.request({"type": "unsubscribe", "sub": "x"})
    assert err["code"] == "ENOENT"
    async with live_server.ahttp() as http:
        await http.put("/api/workspaces/demo/files/q", content=b"q")
    await c.request({"type": "ping"})
    assert not [e for e in c.events if e["type"] == "changes"]
    await c.close()


async def test_cursor_too_old_is_an_error_not_a_silent_gap(live_server: LiveServer) -> None:
    async with live_server.ahttp() as http:
        for i in range(3):
            await http.put(f"/api/workspaces/demo/files/t{i}", content=b"t")
            await http.delete(f"/api/workspaces/demo/files/t{i}")
    # compact through the store file directly (another connection, like an admin tool)
    with vfs.Workspace(live_server.data_dir / "workspaces" / "demo.db") as ws:
        ws.compact_tombstones(ws.rev)
    c = await WsClient.open(live_server.ws_url(token=live_server.admin))
    err = await c.request({"type": "subscribe", "id": 1, "after": "2"})
    assert err["type"] == "error" and err["code"] == "ECURSORTOOOLD"
    assert err["horizon"] >= 2
    async with live_server.ahttp() as http:
        r = await http.get("/api/workspaces/demo/changes", params={"after": "2"})
    assert r.status_code == 410 and r.json()["error"]["code"] == "ECURSORTOOOLD"
    await c.close()


async def test_a_cursor_beyond_the_store_is_an_error_not_a_silent_wait(live_server: LiveServer) -> None:
    """A cursor this store never gave out (it was replaced, or another node's lost revisions) gets the
    same resync answer: staying at it would skip every change the store makes up to that number."""
    async with live_server.ahttp() as http:
        await http.put("/api/workspaces/demo/files/here.txt", content=b"here")
        head = int((await http.get("/api/workspaces/demo/changes")).json()["cursor"].split(":")[0])
        beyond = str(head + 1000)
        r = await http.get("/api/workspaces/demo/changes", params={"after": beyond})
        assert r.status_code == 410 and r.json()["error"]["code"] == "ECURSORTOOOLD"
        ok = await http.get("/api/workspaces/demo/changes", params={"after": str(head)})
        assert ok.status_code == 200
    c = await WsClient.open(live_server.ws_url(token=live_server.admin))
    err = await c.request({"type": "subscribe", "id": 1, "after": beyond})
    assert err["type"] == "error" and err["code"] == "ECURSORTOOOLD"
    await c.close()


async def test_objects_has_put_get_and_verification(live_server: LiveServer) -> None:
    c = await WsClient.open(live_server.ws_url(token=live_server.admin))
    blobs = [bytes([i]) * (1000 + i) for i in range(5)]
    hashes = [h(b) for b in blobs]
    missing = (await c.request({"type": "has", "hashes": hashes}))["missing"]
    assert missing == hashes
    for b, x in zip(blobs[:3], hashes[:3]):
        await c.conn.send(encode_chunk_frame(FRAME_PUT, x, b))
    await c.conn.send(encode_chunk_frame(FRAME_PUT, hashes[3], b"not the right bytes"))
    reply = await c.request({"type": "has", "hashes": hashes})
    assert reply["missing"] == hashes[3:]
    bad = [e for e in c.events if e["type"] == "error"]
    assert len(bad) == 1 and bad[0]["code"] == "EBADOBJECT" and bad[0]["hash"] == hashes[3]
    got = await c.request({"type": "get", "hashes": hashes})
    assert got["missing"] == hashes[3:]
    frames = [decode_chunk_frame(f, expect=FRAME_CHUNK) for f in c.chunks]
    assert [(f.hash, bytes(f.data)) for f in frames] == list(zip(hashes[:3], blobs[:3]))
    await c.close()


async def test_uploads_are_stored_in_batches_and_a_bad_one_costs_only_itself(live_server: LiveServer) -> None:
    """Uploads are verified as they arrive and stored a batch per transaction; a bad frame in the
    middle of a batch is refused alone, and a message after uploads sees all of them stored."""
    from server.ws_api import UPLOAD_BATCH

    c = await WsClient.open(live_server.ws_url(token=live_server.admin))
    blobs = [i.to_bytes(4, "big") * 300 for i in range(2 * UPLOAD_BATCH + 7)]  # two full batches and a tail
    hashes = [h(b) for b in blobs]
    bad_at = UPLOAD_BATCH + 3
    for i, (b, x) in enumerate(zip(blobs, hashes)):
        await c.conn.send(encode_chunk_frame(FRAME_PUT, x, b"corrupted" if i == bad_at else b))
    reply = await c.request({"type": "has", "hashes": hashes})
    assert reply["missing"] == [hashes[bad_at]]
    errors = [e for e in c.events if e["type"] == "error"]
    assert [(e["code"], e["hash"]) for e in errors] == [("EBADOBJECT", hashes[bad_at])]
    await c.close()
    # a client that leaves right after uploading keeps what it sent
    c = await WsClient.open(live_server.ws_url(token=live_server.admin))
    extra = b"sent just before leaving"
    await c.conn.send(encode_chunk_frame(FRAME_PUT, h(extra), extra))
    await c.close()
    with live_server.http() as http:
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            missing = http.post("/api/workspaces/demo/objects/has", json={"hashes": [h(extra)]}).json()["missing"]
            if not missing or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.05)
    assert missing == []


async def test_push_applies_atomically_and_reports_conflicts(live_server: LiveServer) -> None:
    c = await WsClient.open(live_server.ws_url(token=live_server.admin))
    await c.request({"type": "subscribe", "id": "all", "after": "now"})
    base = c.hello["cursor"]
    data = b"pushed content\n"
    entry = {"path": "/p/x.txt", "kind": "file", "rev": 1, "mode": 0o100644, "mtime": 1.0e9, "size": len(data),
             "hash": h(data), "chunks": [[h(data), len(data)]]}
    err = await c.request({"type": "push", "base": base, "changes": [entry]})
    assert err["code"] == "EMISSINGOBJECTS" and err["missing"] == [h(data)]
    await c.conn.send(encode_chunk_frame(FRAME_PUT, h(data), data))
    ok = await c.request({"type": "push", "base": base, "changes": [entry]})
    assert ok["type"] == "ok" and ok["applied"] == ["/p/x.txt"] and ok["conflicts"] == []
    live = await c.collect_changes("all", count=1)
    assert "/p/x.txt" in {e["path"] for e in live}
    # someone else changes the file; a push based on the old cursor is a conflict, not an overwrite
    async with live_server.ahttp() as http:
        r = await http.put("/api/workspaces/demo/files/p/x.txt", content=b"server side\n")
        server_hash = r.json()["hash"]
    stale = {**entry, "kind": "delete", "hash": None, "chunks": [], "size": 0}
    reply = await c.request({"type": "push", "base": base, "changes": [stale]})
    assert reply["applied"] == [] and len(reply["conflicts"]) == 1
    conflict = reply["conflicts"][0]
    assert conflict["path"] == "/p/x.txt" and conflict["local_hash"] == server_hash
    async with live_server.ahttp() as http:
        assert (await http.get("/api/workspaces/demo/files/p/x.txt")).content == b"server side\n"
    await c.close()


async def test_presence_join_update_leave(live_server: LiveServer) -> None:
    url = live_server.ws_url(token=live_server.admin)
    alice = await WsClient.open(url, hello={"presence": {"name": "alice", "color": "#f00"}})
    bob = await WsClient.open(url)
    sync = await bob.next_event("presence", op="sync")
    assert [p["name"] for p in sync["peers"]] == ["alice"]
    await bob.send({"type": "presence", "op": "join", "name": "bob", "color": "#00f"})
    joined = await alice.next_event("presence", op="join")
    assert joined["peer"]["name"] == "bob"
    await bob.send({"type": "presence", "file": "/a.md", "cursor": {"anchor": 3, "head": 5}})
    upd = await alice.next_event("presence", op="update")
    assert upd["peer"]["file"] == "/a.md" and upd["peer"]["cursor"] == {"anchor": 3, "head": 5}
    assert upd["peer"]["name"] == "bob"  # fields not given keep their value
    bob_session = upd["peer"]["session"]
    bob.conn.transport.abort()  # a dropped connection, not a clean close
    left = await alice.next_event("presence", op="leave")
    assert left["peer"]["session"] == bob_session
    # nobody receives their own presence
    await alice.request({"type": "ping"})
    assert not [e for e in alice.events if e.get("type") == "presence" and e.get("peer", {}).get("name") == "alice"]
    await alice.close()


async def test_subscribers_at_the_same_place_share_one_store_read(live_server: LiveServer) -> None:
    url = live_server.ws_url(token=live_server.admin)
    subs = [await WsClient.open(url) for _ in range(20)]
    for c in subs:
        await c.request({"type": "subscribe", "id": "s", "after": "now", "inline_max": 1024})
        await c.next_event("caught_up", sub="s")
    feed = live_server.state.stores._handles["demo"].feed
    reads_before = feed.reads
    async with live_server.ahttp() as http:
        for i in range(5):
            await http.put(f"/api/workspaces/demo/files/shared{i}", content=f"{i}".encode())
            for c in subs:
                got = await c.collect_changes("s", count=1)
                assert got[-1]["path"] == f"/shared{i}"
    reads = feed.reads - reads_before
    assert reads <= 5 * 3, f"{reads} store reads for 5 commits x 20 subscribers"
    for c in subs:
        await c.close()


async def test_pipelined_pushes_reply_in_order_and_ping_is_a_barrier(live_server: LiveServer) -> None:
    c = await WsClient.open(live_server.ws_url(token=live_server.admin))
    data = b"same content"
    await c.conn.send(encode_chunk_frame(FRAME_PUT, h(data), data))
    for i in range(50):
        entry = {"path": f"/pipe/{i}", "kind": "file", "mode": 0o100644, "mtime": 1.0, "size": len(data),
                 "hash": h(data), "chunks": [[h(data), len(data)]]}
        await c.send({"type": "push", "id": i, "changes": [entry]})
    await c.send({"type": "push", "id": "bad", "changes": [{"path": "/pipe/x", "kind": "file", "size": 2,
                                                          "hash": h(b"zz"), "chunks": [[h(b"zz"), 2]]}]})
    await c.send({"type": "ping", "id": "barrier"})
    replies = []
    while not replies or replies[-1].get("id") != "barrier":
        msg = await c.recv()
        if msg["type"] in ("ok", "error"):
            replies.append(msg)
    assert [r["id"] for r in replies] == list(range(50)) + ["bad", "barrier"]
    assert all(r["type"] == "ok" and r["applied"] == [f"/pipe/{r['id']}"] for r in replies[:50])
    assert replies[50]["type"] == "error" and replies[50]["code"] == "EMISSINGOBJECTS"
    async with live_server.ahttp() as http:
        assert len((await http.get("/api/workspaces/demo/ls", params={"prefix": "/pipe"})).json()["paths"]) == 50
    await c.close()


async def test_a_push_run_on_the_loop_is_not_answered_before_an_earlier_one(live_server: LiveServer) -> None:
    """A push the writer runs at once on the loop is answered right away, without a finisher task,
    only when every earlier reply was sent: here push 0 waits behind a chunk upload (a pool job) and
    its reply behind the upload's, while push 1 may find the writer idle and run at once. Without the
    check push 1's `ok` overtook push 0's about one round in six; 30 rounds."""
    c = await WsClient.open(live_server.ws_url(token=live_server.admin))
    for r in range(30):
        data = os.urandom(64)
        await c.conn.send(encode_chunk_frame(FRAME_PUT, h(data), data))
        for i in range(3):
            entry = {"path": f"/order/{r}/{i}", "kind": "file", "mode": 0o100644, "mtime": 1.0,
                     "size": len(data), "hash": h(data), "chunks": [[h(data), len(data)]]}
            await c.send({"type": "push", "id": f"{r}.{i}", "changes": [entry]})
        await c.send({"type": "ping", "id": f"{r}.ping"})
        replies = []
        while not replies or replies[-1].get("id") != f"{r}.ping":
            msg = await c.recv()
            if msg["type"] in ("ok", "error"):
                replies.append(msg)
        assert [m["id"] for m in replies] == [f"{r}.0", f"{r}.1", f"{r}.2", f"{r}.ping"], r
        assert all(m["type"] == "ok" for m in replies), replies
    await c.close()


async def test_live_pages_come_from_the_commit_delta_or_the_store_identically(live_server: LiveServer) -> None:
    url = live_server.ws_url(token=live_server.admin)
    small, big = b"s" * 100, bytes(range(256)) * 400  # 100 KiB: above what the writer hands over
    specs = {"all": {}, "md": {"globs": ["**/*.md"]}, "inl": {"inline_max": 200_000}, "sub": {"prefix": "/d"}}
    clients = {}
    for sid, extra in specs.items():
        c = await WsClient.open(url)
        await c.request({"type": "subscribe", "id": sid, "after": "now", **extra})
        await c.next_event("caught_up", sub=sid)
        clients[sid] = c
    feed = live_server.state.stores._handles["demo"].feed
    reads0, deltas0 = feed.reads, feed.delta_pages
    async with live_server.ahttp() as http:
        await http.put("/api/workspaces/demo/files/d/a.md?parents=1", content=small)
        await http.put("/api/workspaces/demo/files/d/b.bin", content=big)
        await http.put("/api/workspaces/demo/files/top.txt", content=small)
        truth = (await http.get("/api/workspaces/demo/changes")).json()["entries"]
    state = {e["path"]: e for e in truth}
    expect = {"all": ["/d", "/d/a.md", "/d/b.bin", "/top.txt"], "md": ["/d/a.md"],
              "inl": ["/d", "/d/a.md", "/d/b.bin", "/top.txt"], "sub": ["/d", "/d/a.md", "/d/b.bin"]}
    for sid, c in clients.items():
        got = final_states(await c.collect_changes(sid, str(max(e["rev"] for e in truth))))
        assert sorted(got) == expect[sid], sid
        for path, e in got.items():
            assert e["hash"] == state[path]["hash"] and e["cursor"] == state[path]["cursor"]
            if sid == "inl" and e["kind"] == "file":
                assert base64.b64decode(e["data"]) == (big if path == "/d/b.bin" else small)
            elif sid != "inl":
                assert "data" not in e
        await c.close()
    assert feed.delta_pages - deltas0 >= 3  # live pages were served from the commits' deltas ...
    assert feed.reads - reads0 >= 1  # ... except the one needing the 100 KiB content, read from the store


async def test_several_subscriptions_on_one_connection(live_server: LiveServer) -> None:
    c = await WsClient.open(live_server.ws_url(token=live_server.admin))
    await c.request({"type": "subscribe", "id": "a", "after": "now", "prefix": "/a"})
    await c.request({"type": "subscribe", "id": 2, "after": "now", "prefix": "/b"})
    dup = await c.request({"type": "subscribe", "id": "a", "after": "now"})
    assert dup["type"] == "error" and dup["field"] == "id"
    async with live_server.ahttp() as http:
        await http.put("/api/workspaces/demo/files/a/x?parents=1", content=b"a")
        await http.put("/api/workspaces/demo/files/b/y?parents=1", content=b"b")
    assert {e["path"] for e in await c.collect_changes("a", count=2)} == {"/a", "/a/x"}
    assert {e["path"] for e in await c.collect_changes(2, count=2)} == {"/b", "/b/y"}
    await c.close()


async def test_commits_by_another_process_reach_subscribers(live_server: LiveServer) -> None:
    c = await WsClient.open(live_server.ws_url(token=live_server.admin))
    await c.request({"type": "subscribe", "id": "s", "after": "now"})
    await c.next_event("caught_up", sub="s")
    with vfs.Workspace(live_server.data_dir / "workspaces" / "demo.db") as ws:  # bypasses the server
        ws.write_file("/from-outside.txt", b"hello from another process")
        got = await c.collect_changes("s", count=1)
        assert got[0]["path"] == "/from-outside.txt"
        # interleaved with the server's own commits, nothing is lost or reordered
        async with live_server.ahttp() as http:
            await http.put("/api/workspaces/demo/files/from-server.txt", content=b"s")
        ws.write_file("/from-outside.txt", b"again")
        ws.rename("/from-outside.txt", "/moved.txt")
        end = ws.cursor()
    got = await c.collect_changes("s", str(end))
    assert_cursor_order(got)
    assert {p: e["kind"] for p, e in final_states(got).items()} == {
        "/from-server.txt": "file", "/from-outside.txt": "delete", "/moved.txt": "file"}
    await c.close()


async def test_a_later_subscriber_never_gets_a_stale_cached_snapshot(live_server: LiveServer) -> None:
    """Regression: a second subscriber with the same spec got the first one's cached page and a
    `caught_up` at that old cursor, missing what was committed in between."""
    spec = {"type": "subscribe", "id": "s", "after": None, "inline_max": 0, "batch_max": 256, "ignore": [".wsfs/"]}
    url = live_server.ws_url(token=live_server.admin)
    async with live_server.ahttp() as http:
        await http.put("/api/workspaces/demo/files/a.txt", content=b"#1")
        a = await WsClient.open(url)
        await a.request(spec)
        first = await a.next_event("caught_up", sub="s")
        await a.close()
        await http.put("/api/workspaces/demo/files/copy.txt", content=b"#2")
        last = (await http.put("/api/workspaces/demo/files/a.txt", content=b"#3")).json()["rev"]
    b = await WsClient.open(url)
    await b.request(spec)
    caught_up = await b.next_event("caught_up", sub="s")
    assert vfs.Cursor.parse(caught_up["cursor"]).rev >= last > vfs.Cursor.parse(first["cursor"]).rev
    # everything up to caught_up was delivered before it, in its latest state
    states = final_states([e for ev in b.events if ev["type"] == "changes" for e in ev["entries"]])
    assert {p: e["rev"] for p, e in states.items() if p != "/"} == {"/a.txt": last, "/copy.txt": last - 1}
    await b.close()


async def test_http_writes_are_authored_by_the_callers_own_session(live_server: LiveServer) -> None:
    """X-Wsfs-Session: the presence name of that session, only for the same token and workspace."""
    alice_token = live_server.token("demo", "write", "shared-link")
    other_token = live_server.token("demo", "write", "other-link")
    alice = await WsClient.open(live_server.ws_url(token=alice_token), hello={"presence": {"name": "Alice"}})
    watcher = await WsClient.open(live_server.ws_url(token=live_server.admin))
    await watcher.request({"type": "subscribe", "id": "s", "after": "now"})
    await watcher.next_event("caught_up", sub="s")
    session = {"X-Wsfs-Session": alice.hello["session"]}
    base = "/api/workspaces/demo"
    async with live_server.ahttp(alice_token) as http:
        assert (await http.put(f"{base}/files/mine.txt", content=b"1", headers=session)).status_code == 201
        r = await http.post(f"{base}/ops", json={"op": "rename", "src": "/mine.txt", "dst": "/moved.txt"},
                            headers=session)
        assert r.status_code == 200
        await http.put(f"{base}/files/anon.txt", content=b"2", headers={"X-Wsfs-Session": "s999999"})
    async with live_server.ahttp(other_token) as http:
        await http.put(f"{base}/files/theirs.txt", content=b"3", headers=session)  # not their session
        end = (await http.get(base)).json()["cursor"]
    # Until the head, not a count: a slow fan-out may merge the PUT and the rename into
    # one page, where /mine.txt appears once (deleted), so 5 entries never come.
    got = final_states(await watcher.collect_changes("s", end))
    assert {p: e.get("author") for p, e in got.items()} == {
        "/mine.txt": "Alice", "/moved.txt": "Alice", "/anon.txt": "shared-link", "/theirs.txt": "other-link"}
    await alice.close()
    await watcher.close()


async def test_one_fanout_task_serves_caught_up_subscribers_a_stalled_one_waits_alone(live_server: LiveServer) -> None:
    """Live pages go out from the workspace's fan-out task while sockets keep up; a subscriber that
    stops reading is handed back to its own task (nothing queued for it), and the others are not held up."""
    url = live_server.ws_url(token=live_server.admin)
    spec = {"type": "subscribe", "id": "s", "after": "now", "inline_max": 65536}
    readers = [await WsClient.open(url) for _ in range(3)]
    for c in readers:
        await c.request(spec)
        await c.next_event("caught_up", sub="s")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)  # small and fixed: the server's buffer fills soon
    sock.connect(("127.0.0.1", live_server.port))
    stalled = await WsClient.open(url, sock=sock, max_queue=1, ping_interval=None)
    await stalled.request(spec)
    await stalled.next_event("caught_up", sub="s")
    handle = live_server.state.stores._handles["demo"]
    sent0 = handle.fanout.sent
    n, size = 200, 48 * 1024  # ~9.4 MiB per subscriber (12.5 MiB as base64): more than the stalled socket holds
    blob = os.urandom(size)
    async with live_server.ahttp() as http:
        for start in range(0, n, 10):
            rs = [http.put(f"/api/workspaces/demo/files/f/{i}?parents=1", content=blob[:-4] + i.to_bytes(4, "big"))
                  for i in range(start, start + 10)]
            for r in await asyncio.gather(*rs):
                assert r.status_code == 201
        info = (await http.get("/api/workspaces/demo")).json()
        truth = {e["path"]: e["hash"] for e in (await http.get("/api/workspaces/demo/changes")).json()["entries"]}
    for c in readers:
        got = await c.collect_changes("s", info["cursor"], timeout=60)
        assert_cursor_order(got)
        assert {e["path"]: e["hash"] for e in got} == truth
        # A reader that fell behind (a loaded machine) gets pages read back from the store, whose
        # inline budget (4 MiB of content per message, docs/protocol.md) leaves later entries without
        # `data`; whatever is inlined must be the right content, and live pages do inline.
        inlined = [e for e in got if e["kind"] == "file" and "data" in e]
        assert inlined
        assert all(base64.b64decode(e["data"])[-4:] == int(e["path"].rsplit("/", 1)[1]).to_bytes(4, "big")
                   for e in inlined)
    assert handle.fanout.sent - sent0 >= len(readers)  # the fan-out task delivered live pages itself
    behind = live_server.state.sessions[stalled.hello["session"]].subs["s"]
    assert behind.cursor.rev < info["rev"] and behind not in handle.fanout.parked  # waiting alone, not queued
    got = await stalled.collect_changes("s", info["cursor"], timeout=60)
    assert {e["path"]: e["hash"] for e in got} == truth  # and it converges once it reads again
    for c in (*readers, stalled):
        await c.close()
