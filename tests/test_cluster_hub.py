"""`RedisHub` and `SharedTokens` across two real nodes on one real Redis.

Each node is the real app on real uvicorn with its own data dir
(`tests/cluster_hub_fixtures.py`); they share only Redis, so whatever one
node's clients learn about the other's came through Redis.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from cluster_hub_fixtures import HubNode, RestartableRedis
from server_fixtures import WsClient, wait_for

from server.cluster.redis_hub import PRESENCE_TTL_MS
from vfs.wire import CLOSE_POLICY


class Recorder:
    """A bare hub listener on one node: records what the hub calls it with."""

    def __init__(self, session: str):
        self.session = session
        self.token_id = "none"
        self.commits: list[int] = []
        self.presence: list[tuple[str, dict[str, Any]]] = []
        self.closed: list[tuple[int, str]] = []

    def on_commit(self, rev: int) -> None:
        self.commits.append(rev)

    def on_presence(self, op: str, peer: dict[str, Any]) -> None:
        self.presence.append((op, peer))

    def on_close(self, code: int, reason: str) -> None:
        self.closed.append((code, reason))


async def peer_named(client: WsClient, name: str, timeout: float = 10) -> dict[str, Any]:
    """Wait (bounded) until `client` has been told of a peer called `name`, by sync, join or update."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        for i, ev in enumerate(client.events):
            if ev.get("type") != "presence":
                continue
            peers = ev.get("peers", []) if ev["op"] == "sync" else [ev["peer"]] if ev["op"] != "leave" else []
            found = [p for p in peers if p.get("name") == name]
            if found:
                del client.events[i]
                return found[0]
        assert loop.time() < deadline, f"no presence of {name!r}"
        try:
            client.events.append(await client.recv(max(0.01, deadline - loop.time())))
        except TimeoutError:
            pass


async def test_presence_crosses_nodes(hub_nodes: tuple[HubNode, HubNode]) -> None:
    a, b = hub_nodes
    alice = await WsClient.open(a.ws_url(token=a.admin), hello={"presence": {"name": "alice"}})
    bob = await WsClient.open(b.ws_url(token=a.admin))  # a token made on A works on B
    seen = await peer_named(bob, "alice")
    assert seen["session"].startswith("a-")
    await bob.send({"type": "presence", "op": "join", "name": "bob"})
    joined = await peer_named(alice, "bob")
    assert joined["session"].startswith("b-")
    assert any(p.get("name") == "alice" for p in b.hub.presence("demo"))
    assert any(p.get("name") == "bob" for p in a.hub.presence("demo"))
    bob.conn.transport.abort()
    left = await alice.next_event("presence", op="leave")
    assert left["peer"]["session"] == joined["session"]
    await wait_for(lambda: not any(p.get("name") == "bob" for p in a.hub.presence("demo")))
    await alice.close()


async def head_after(node: HubNode, before: int) -> int:
    """The node's head once it passed `before`: the hub hears of a commit just after the
    writer's reply (server/stores.py), so reading it right after a PUT may be one behind."""
    await wait_for(lambda: node.hub.head("demo") > before)
    return node.hub.head("demo")


async def test_commit_doorbell_reaches_a_listener_on_the_other_node(hub_nodes: tuple[HubNode, HubNode]) -> None:
    a, b = hub_nodes
    rec = Recorder("b-recorder")
    b.on_loop(b.hub.listen, "demo", rec)
    before = a.hub.head("demo")
    async with a.ahttp() as http:
        assert (await http.put("/api/workspaces/demo/files/x.txt", content=b"hello")).status_code in (200, 201)
    rev = await head_after(a, before)
    await wait_for(lambda: rev in rec.commits)
    assert b.hub.head("demo") >= rev
    assert rec.commits == sorted(rec.commits)


async def test_revoking_on_one_node_closes_the_socket_on_the_other(hub_nodes: tuple[HubNode, HubNode]) -> None:
    a, b = hub_nodes
    with a.http() as admin:
        made = admin.post("/api/tokens", json={"workspace": "demo", "scope": "read", "name": "temp"})
        assert made.status_code == 201
        tok = made.json()
    c = await WsClient.open(b.ws_url(token=tok["token"]))
    with b.http() as admin_b:
        assert tok["id"] in [t["id"] for t in admin_b.get("/api/tokens").json()["tokens"]]
    with a.http() as admin:
        assert admin.delete(f"/api/tokens/{tok['id']}").status_code == 204
    assert await c.close_code(timeout=5) == CLOSE_POLICY
    with b.http(tok["token"]) as gone:
        assert gone.get("/api/workspaces/demo").status_code == 401


async def test_redis_restart_local_goes_on_then_cross_node_resumes(
        hub_nodes: tuple[HubNode, HubNode], hub_redis: RestartableRedis) -> None:
    a, b = hub_nodes
    rec = Recorder("b-recorder")
    b.on_loop(b.hub.listen, "demo", rec)
    alice = await WsClient.open(a.ws_url(token=a.admin), hello={"presence": {"name": "alice"}})
    sub = await WsClient.open(a.ws_url(token=a.admin))
    await sub.request({"type": "subscribe", "id": "s", "after": "now"})
    await sub.next_event("caught_up", sub="s")
    bob = await WsClient.open(b.ws_url(token=a.admin))
    await peer_named(bob, "alice")

    hub_redis.kill()
    await wait_for(lambda: not a.hub.connected and not b.hub.connected)
    # local work goes on: a write on A reaches A's subscriber, presence on A reaches A's clients
    async with a.ahttp() as http:
        assert (await http.put("/api/workspaces/demo/files/during.txt", content=b"x")).status_code in (200, 201)
    changes = await sub.collect_changes("s", count=1)
    assert changes[0]["path"] == "/during.txt"
    carol = await WsClient.open(a.ws_url(token=a.admin), hello={"presence": {"name": "carol"}})
    await peer_named(alice, "carol")
    await alice.send({"type": "presence", "name": "alice-2"})

    hub_redis.restart()  # its append-only file brings the tokens back; what was published meanwhile is lost
    await wait_for(lambda: a.hub.connected and b.hub.connected, timeout=15)
    # cross-node resumes: what changed meanwhile reaches B (queued message or presence re-read)
    await peer_named(bob, "carol", timeout=15)
    await peer_named(bob, "alice-2", timeout=15)
    before = a.hub.head("demo")
    async with a.ahttp() as http:
        assert (await http.put("/api/workspaces/demo/files/after.txt", content=b"y")).status_code in (200, 201)
    rev = await head_after(a, before)
    await wait_for(lambda: rev in rec.commits, timeout=15)
    for c in (alice, sub, bob, carol):
        await c.close()


async def test_a_dead_nodes_presence_expires_on_the_others(hub_nodes: tuple[HubNode, HubNode]) -> None:
    a, b = hub_nodes
    alice = await WsClient.open(a.ws_url(token=a.admin), hello={"presence": {"name": "alice"}})
    bob = await WsClient.open(b.ws_url(token=a.admin), hello={"presence": {"name": "bob"}})
    bob_peer = await peer_named(alice, "bob")
    # B's hub goes silent without withdrawing anything (as if its process died): no renewals
    b.on_loop(lambda: [t.cancel() for t in b.hub._tasks])
    left = await alice.next_event("presence", op="leave", timeout=PRESENCE_TTL_MS / 1000 + 10)
    assert left["peer"]["session"] == bob_peer["session"]
    assert not any(p.get("name") == "bob" for p in a.hub.presence("demo"))
    await alice.close()
    await bob.close()


async def test_deleting_a_workspace_closes_its_sockets_on_every_node(hub_nodes: tuple[HubNode, HubNode]) -> None:
    a, b = hub_nodes
    for node in (a, b):  # separate disks here; in a cluster the owner's store is the one
        with node.http() as admin:
            assert admin.put("/api/workspaces/w").status_code in (200, 201)
    with a.http() as admin:
        tok = admin.post("/api/tokens", json={"workspace": "w", "scope": "read"}).json()
    c = await WsClient.open(b.ws_url("w", tok["token"]))
    other = await WsClient.open(b.ws_url("demo", a.admin))
    with a.http() as admin:
        assert admin.delete("/api/workspaces/w").status_code == 204
    assert await c.close_code(timeout=5) == 4404
    assert (await other.request({"type": "ping"}))["type"] == "ok"  # other workspaces untouched
    await wait_for(lambda: tok["id"] not in b.tokens.ids())  # its tokens are gone on B too
    await other.close()


async def test_tokens_lost_by_redis_fail_closed(hub_nodes: tuple[HubNode, HubNode],
                                                hub_redis: RestartableRedis) -> None:
    """Redis is the tokens' only copy: if it loses them, nothing authenticates (never the reverse)."""
    a, b = hub_nodes
    c = await WsClient.open(b.ws_url(token=a.admin))
    client = hub_redis.client()
    try:
        await client.flushall()
    finally:
        await client.aclose()
    assert await c.close_code(timeout=5) == CLOSE_POLICY  # B's revocation watch: the token is gone
    for node in (a, b):
        with node.http() as admin:
            assert admin.get("/api/workspaces").status_code == 401


async def test_a_paused_redis_never_stalls_local_delivery(hub_nodes: tuple[HubNode, HubNode],
                                                          hub_redis: RestartableRedis) -> None:
    """A paused Redis accepts connections and never answers: nothing local may wait for it."""
    a, b = hub_nodes
    rec = Recorder("b-recorder")
    b.on_loop(b.hub.listen, "demo", rec)
    sub = await WsClient.open(a.ws_url(token=a.admin))
    await sub.request({"type": "subscribe", "id": "s", "after": "now"})
    await sub.next_event("caught_up", sub="s")
    alice = await WsClient.open(a.ws_url(token=a.admin), hello={"presence": {"name": "alice"}})
    hub_redis.signal(signal.SIGSTOP)
    try:
        for i in range(3):
            async with a.ahttp() as http:
                assert (await http.put(f"/api/workspaces/demo/files/p{i}", content=b"x")).status_code in (200, 201)
            assert (await sub.collect_changes("s", count=1))[0]["path"] == f"/p{i}"
        carol = await WsClient.open(a.ws_url(token=a.admin), hello={"presence": {"name": "carol"}})
        await peer_named(alice, "carol")
    finally:
        hub_redis.signal(signal.SIGCONT)
    rev = a.hub.head("demo")
    await wait_for(lambda: rev in rec.commits, timeout=15)  # the queued doorbell goes out afterwards
    for c in (sub, alice, carol):
        await c.close()
