"""`wsfs serve --cluster`: three real nodes on one real Redis, SeaweedFS and Litestream each.

Any node serves any workspace (HTTP proxied, WebSocket bridged to the
owner); ownership moves on death, pause and clean shutdown with nothing
acknowledged lost.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from client_py import Client
from tests.cluster_fixtures import RedisServer, ServeNode, admin_token, get_until

pytestmark = pytest.mark.timeout(120)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_write_on_a_read_on_b_and_c_subscriber_on_c(cluster_nodes, redis_server: RedisServer) -> None:
    token = admin_token(redis_server.url)
    a, b, c = cluster_nodes(3)
    async with httpx.AsyncClient(headers=_auth(token), timeout=30) as http:
        assert (await http.put(f"{a.url}/api/workspaces/w1")).status_code == 201
        health = (await http.get(f"{a.url}/healthz")).json()
        assert health["node"] == "a" and "w1" in health["owns"]
        async with Client(c.url, token=token) as client:
            events = client.workspace("w1").watch("/", after="now")
            first = asyncio.ensure_future(anext(events))
            # written again until the subscription (asynchronous, `after="now"`) reports it: bounded
            for _ in range(20):
                put = await http.put(f"{a.url}/api/workspaces/w1/files/hello.txt", content=b"hello from a")
                assert put.status_code in (200, 201), put.text
                done, _ = await asyncio.wait([first], timeout=1.0)
                if done:
                    break
            event = await asyncio.wait_for(first, 1)
            assert event.path == "/hello.txt" and event.kind == "file"
            await events.aclose()
        for node in (b, c):
            got = await http.get(f"{node.url}/api/workspaces/w1/files/hello.txt")
            assert got.status_code == 200 and got.content == b"hello from a"
        # a write through C lands on the owner A
        put = await http.put(f"{c.url}/api/workspaces/w1/files/from-c.txt", content=b"via c")
        assert put.status_code in (200, 201), put.text
        assert (await http.get(f"{a.url}/api/workspaces/w1/files/from-c.txt")).content == b"via c"
        listed = (await http.get(f"{b.url}/api/workspaces")).json()["workspaces"]
        assert "w1" in {w["name"] for w in listed}
        metrics = (await http.get(f"{a.url}/metrics")).text
        owned = next(line for line in metrics.splitlines() if line.startswith("wsfs_cluster_owned_workspaces "))
        assert float(owned.split()[1]) >= 1
        acks = next(line for line in metrics.splitlines() if line.startswith("wsfs_cluster_ack_seconds_count "))
        assert float(acks.split()[1]) >= 2
        assert (await http.get(f"{b.url}/healthz")).json()["owns"] == [] or "w1" not in \
            (await http.get(f"{b.url}/healthz")).json()["owns"]


async def test_concurrent_proxied_requests_each_get_their_own_answer(cluster_nodes, redis_server: RedisServer
                                                                    ) -> None:
    """Forty writes, then forty reads, all in flight at once through B, which does not own the workspace
    (on B's one aiohttp session): every write is acknowledged and stored on the owner with its own
    bytes, every read answered with its own file's bytes (bodies of up to ~120 KB, streamed both
    ways), a chunked upload of unknown length arrives whole, and B counted every request it proxied."""
    token = admin_token(redis_server.url)
    a, b = cluster_nodes(2)
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(headers=_auth(token), timeout=60, limits=limits) as http:
        assert (await http.put(f"{a.url}/api/workspaces/wp")).status_code == 201
        bodies = [os.urandom(1000 + i * 3000) for i in range(40)]
        puts = await asyncio.gather(*(http.put(f"{b.url}/api/workspaces/wp/files/f{i}.bin", content=body)
                                      for i, body in enumerate(bodies)))
        assert [r.status_code for r in puts if r.status_code not in (200, 201)] == [], puts[0].text
        gets = await asyncio.gather(*(http.get(f"{b.url}/api/workspaces/wp/files/f{i}.bin") for i in range(40)))
        assert [g.content for g in gets] == bodies
        for i in (0, 17, 39):  # stored on the owner itself, not only answered by B
            assert (await http.get(f"{a.url}/api/workspaces/wp/files/f{i}.bin")).content == bodies[i]
        pieces = [os.urandom(256 * 1024) for _ in range(12)]

        async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: Transfer-Encoding chunked
            for piece in pieces:
                yield piece

        put = await http.put(f"{b.url}/api/workspaces/wp/files/chunked.bin", content=chunked())
        assert put.status_code in (200, 201), put.text
        assert (await http.get(f"{a.url}/api/workspaces/wp/files/chunked.bin")).content == b"".join(pieces)
        metrics = (await http.get(f"{b.url}/metrics")).text
        proxied = next(line for line in metrics.splitlines() if line.startswith("wsfs_cluster_proxied "))
        assert float(proxied.split()[1]) >= 80


async def _write_until_acked(http: httpx.AsyncClient, url: str, path: str, body: bytes, deadline: float) -> float:
    """PUT until a 2xx (the acknowledgement); returns when it was acknowledged. Bounded by `deadline`."""
    last = ""
    while time.monotonic() < deadline:
        try:
            reply = await http.put(url + path, content=body)
            if reply.status_code in (200, 201):
                return time.monotonic()
            last = f"{reply.status_code} {reply.text[:200]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never acknowledged: {last}")


async def _collect(events, into: list) -> None:
    async for event in events:
        into.append(event)


async def _until_watching(http: httpx.AsyncClient, url: str, seen: list, seconds: float = 20.0) -> None:
    """Write `url` until the watcher (subscribed `after="now"`, asynchronously) reports it: from then
    on every write is after its "now". Without this, a loaded machine let the first acknowledged
    write land before the subscription and the test counted it as missed."""
    deadline = time.monotonic() + seconds
    for attempt in itertools.count():
        assert time.monotonic() < deadline, "the watcher never reported a write"
        assert (await http.put(url, content=f"ready {attempt}".encode())).status_code in (200, 201)
        for _ in range(10):
            if any(e.path == "/ready.txt" for e in seen):
                return
            await asyncio.sleep(0.05)


async def test_owner_killed_during_acknowledged_writes(cluster_nodes, redis_server: RedisServer) -> None:
    token = admin_token(redis_server.url)
    a, b, c = cluster_nodes(3)
    async with httpx.AsyncClient(headers=_auth(token), timeout=30) as http:
        assert (await http.put(f"{a.url}/api/workspaces/k")).status_code == 201
        async with Client(c.url, token=token) as client:
            seen: list = []
            watcher = asyncio.ensure_future(_collect(client.workspace("k").watch("/", after="now"), seen))
            try:
                await _until_watching(http, f"{a.url}/api/workspaces/k/files/ready.txt", seen)
                acked: dict[str, bytes] = {}
                base = f"{b.url}/api/workspaces/k/files"
                killed_at = None
                first_after_kill = None
                for i in range(60):
                    path, body = f"/f{i:03d}.txt", f"write {i} ".encode() * (i + 1)
                    when = await _write_until_acked(http, base, path, body, time.monotonic() + 20)
                    acked[path] = body
                    if killed_at is not None and first_after_kill is None:
                        first_after_kill = when - killed_at
                    if i == 20:
                        a.kill()  # SIGKILL the owner's whole process group mid-stream
                        killed_at = time.monotonic()
                assert first_after_kill is not None and first_after_kill < 10.0, first_after_kill
                owners = [n.healthz() for n in (b, c)]
                assert any(h and "k" in h["owns"] for h in owners), owners
                for path, body in acked.items():
                    got = await http.get(f"{c.url}/api/workspaces/k/files{path}")
                    assert got.status_code == 200 and got.content == body, (path, got.status_code)
                deadline = time.monotonic() + 20
                while {e.path for e in seen} < set(acked) and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
            finally:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
        assert {e.path for e in seen} >= set(acked), sorted(set(acked) - {e.path for e in seen})
        revs = [e.rev for e in seen]
        assert revs == sorted(revs) and len({(e.path, e.rev) for e in seen}) == len(seen), revs


async def _owner(nodes: list[ServeNode], workspace: str) -> ServeNode | None:
    for node in nodes:
        health = node.healthz()
        if health and workspace in health["owns"]:
            return node
    return None


async def test_paused_owner_is_fenced(cluster_nodes, redis_server: RedisServer) -> None:
    token = admin_token(redis_server.url)
    a, b, c = cluster_nodes(3)
    async with httpx.AsyncClient(headers=_auth(token), timeout=30) as http:
        assert (await http.put(f"{a.url}/api/workspaces/p")).status_code == 201
        acked: dict[str, bytes] = {}
        for i in range(5):
            path, body = f"/before{i}.txt", f"before {i}".encode()
            await _write_until_acked(http, f"{b.url}/api/workspaces/p/files", path, body, time.monotonic() + 20)
            acked[path] = body
        a.signal(signal.SIGSTOP)  # past its lease: another node takes over
        try:
            await _write_until_acked(http, f"{b.url}/api/workspaces/p/files", "/during.txt", b"during",
                                     time.monotonic() + 20)
            acked["/during.txt"] = b"during"
            assert await _owner([b, c], "p") is not None
        finally:
            a.signal(signal.SIGCONT)
        # the resumed ex-owner, asked directly (as if it were still the owner): acknowledges nothing
        # that the new owner does not have
        refused = 0
        for i in range(5):
            path, body = f"/after{i}.txt", f"after {i}".encode()
            reply = await http.put(f"{a.url}/api/workspaces/p/files{path}", content=body,
                                   headers={"x-wsfs-proxied": "test"})
            if reply.status_code in (200, 201):
                acked[path] = body
            else:
                assert reply.status_code == 503 and reply.json()["error"]["code"] == "EAGAIN", reply.text
                refused += 1
        for path, body in acked.items():
            got = await http.get(f"{c.url}/api/workspaces/p/files{path}")
            assert got.status_code == 200 and got.content == body, (path, got.status_code, got.text[:200])
        health = a.healthz()
        assert health is not None and "p" not in health["owns"]


async def test_redis_down_refuses_writes_then_recovers(cluster_nodes, redis_server: RedisServer) -> None:
    token = admin_token(redis_server.url)
    (a,) = cluster_nodes(1)
    async with httpx.AsyncClient(headers=_auth(token), timeout=30) as http:
        assert (await http.put(f"{a.url}/api/workspaces/r")).status_code == 201
        base = f"{a.url}/api/workspaces/r/files"
        acked = {"/one.txt": b"one"}
        await _write_until_acked(http, base, "/one.txt", b"one", time.monotonic() + 20)
        redis_server.kill()
        refusal = None
        deadline = time.monotonic() + 20
        i = 0
        while refusal is None and time.monotonic() < deadline:  # acknowledged until the lease runs out
            i += 1
            reply = await http.put(f"{base}/down{i}.txt", content=b"x")
            if reply.status_code in (200, 201):
                acked[f"/down{i}.txt"] = b"x"
            else:
                refusal = reply
            await asyncio.sleep(0.1)
        assert refusal is not None and refusal.status_code == 503, refusal
        assert refusal.json()["error"]["code"] == "EAGAIN", refusal.text
        redis_server.restart()  # empty: the tokens are gone too (fail closed); mint one again
        token = admin_token(redis_server.url)
        http.headers.update(_auth(token))
        await _write_until_acked(http, base, "/back.txt", b"back", time.monotonic() + 30)
        acked["/back.txt"] = b"back"
        for path, body in acked.items():
            got = await http.get(f"{base}{path}")
            assert got.status_code == 200 and got.content == body, (path, got.status_code, got.text[:200])


async def test_clean_shutdown_hands_over_at_once(cluster_nodes, redis_server: RedisServer) -> None:
    token = admin_token(redis_server.url)
    a, b = cluster_nodes(2)
    async with httpx.AsyncClient(headers=_auth(token), timeout=30) as http:
        assert (await http.put(f"{a.url}/api/workspaces/h")).status_code == 201
        await _write_until_acked(http, f"{b.url}/api/workspaces/h/files", "/x.txt", b"kept", time.monotonic() + 20)
        redis = redis_server.client()
        try:
            assert await redis.get("owner:h") == b"a"
            a.stop()  # SIGTERM: last sync, unregister, release the lease
            assert a.proc.returncode == 0
            assert await redis.get("owner:h") is None  # released, not left to expire
        finally:
            await redis.aclose()
        got = await http.get(f"{b.url}/api/workspaces/h/files/x.txt")
        assert got.status_code == 200 and got.content == b"kept"
        assert "h" in (await http.get(f"{b.url}/healthz")).json()["owns"]


async def test_token_made_on_a_works_on_b_and_revocation_cuts_c(cluster_nodes, redis_server: RedisServer) -> None:
    admin = admin_token(redis_server.url)
    a, b, c = cluster_nodes(3)
    async with httpx.AsyncClient(headers=_auth(admin), timeout=30) as http:
        assert (await http.put(f"{c.url}/api/workspaces/t")).status_code == 201  # C owns it: sockets live on C
        made = await http.post(f"{a.url}/api/tokens", json={"workspace": "t", "scope": "write", "name": "w"})
        assert made.status_code == 201, made.text
        secret, token_id = made.json()["token"], made.json()["id"]
        put = await http.put(f"{b.url}/api/workspaces/t/files/by-token.txt", content=b"ok", headers=_auth(secret))
        assert put.status_code in (200, 201), put.text
        async with Client(c.url, token=secret) as client:
            events = client.workspace("t").watch("/", after=None)
            first = await asyncio.wait_for(anext(events), 20)  # the socket is up and subscribed
            assert first.path == "/by-token.txt"
            assert (await http.delete(f"{a.url}/api/tokens/{token_id}")).status_code == 204
            with pytest.raises(PermissionError):
                await asyncio.wait_for(anext(events), 10)  # closed with 1008 on C by a revocation on A
        denied = await http.get(f"{b.url}/api/workspaces/t/files/by-token.txt", headers=_auth(secret))
        assert denied.status_code == 401


async def _until(check, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


async def test_replica_keeps_working_across_a_failover(cluster_nodes, redis_server: RedisServer, tmp_path) -> None:
    from client_py.replica import Replica

    token = admin_token(redis_server.url)
    a, b, c = cluster_nodes(3)
    async with httpx.AsyncClient(headers=_auth(token), timeout=30) as http:
        assert (await http.put(f"{a.url}/api/workspaces/rep")).status_code == 201
        await _write_until_acked(http, f"{b.url}/api/workspaces/rep/files", "/one.txt", b"one", time.monotonic() + 20)
        local = tmp_path / "replica"
        local.mkdir()
        async with Replica(c.url, "rep", local, token=token, watch=False, reconcile_interval=0.5) as replica:
            runner = asyncio.ensure_future(replica.run())
            try:
                await _until(lambda: (local / "one.txt").exists(), "the replica never got one.txt")
                a.kill()
                await _write_until_acked(http, f"{b.url}/api/workspaces/rep/files", "/two.txt", b"two",
                                         time.monotonic() + 20)
                await _until(lambda: (local / "two.txt").exists(), "the replica never got two.txt after failover")
                assert (local / "two.txt").read_bytes() == b"two"
                (local / "three.txt").write_bytes(b"three")  # a local edit reaches the new owner
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    got = await http.get(f"{b.url}/api/workspaces/rep/files/three.txt")
                    if got.status_code == 200:
                        break
                    await asyncio.sleep(0.2)
                assert got.status_code == 200 and got.content == b"three"
                assert runner.done() is False
            finally:
                runner.cancel()
                await asyncio.gather(runner, return_exceptions=True)


async def test_s3_unreachable_refuses_acks_then_recovers(redis_server: RedisServer, s3_location, tmp_path) -> None:
    import dataclasses
    from urllib.parse import urlsplit

    from tests.cluster_fixtures import TcpRelay, free_ports

    relay = TcpRelay(urlsplit(s3_location.endpoint).port)
    location = dataclasses.replace(s3_location, endpoint=f"http://127.0.0.1:{relay.port}")
    node = ServeNode("a", tmp_path / "node-a", redis_server.url, location, free_ports(1)[0])
    try:
        node.wait_ready()
        token = admin_token(redis_server.url)
        async with httpx.AsyncClient(headers=_auth(token), timeout=30) as http:
            assert (await http.put(f"{node.url}/api/workspaces/s")).status_code == 201
            base = f"{node.url}/api/workspaces/s/files"
            acked = {"/one.txt": b"one"}
            await _write_until_acked(http, base, "/one.txt", b"one", time.monotonic() + 20)
            changes = f"{node.url}/api/workspaces/s/changes"
            cursor = (await http.get(changes)).json()["cursor"]
            relay.cut()
            reply = await http.put(f"{base}/cut.txt", content=b"cut")
            assert reply.status_code == 503 and reply.json()["error"]["code"] == "EAGAIN", reply.text
            # committed here but not acknowledged: no reader is told of it (its revision could die
            # with this node, and the next owner would reuse the number for something else)
            pending = asyncio.ensure_future(http.get(changes, params={"after": cursor}))
            done, _ = await asyncio.wait({pending}, timeout=1.5)
            assert not done, pending.result().text
            relay.restore()
            await _write_until_acked(http, base, "/back.txt", b"back", time.monotonic() + 30)
            acked["/back.txt"] = b"back"
            page = (await pending).json()  # shown once a later round acknowledged it with the rest
            assert "/cut.txt" in [e["path"] for e in page["entries"]]
            for path, body in acked.items():
                got = await http.get(f"{base}{path}")
                assert got.status_code == 200 and got.content == body, (path, got.status_code)
    finally:
        node.kill()
        relay.close()


async def test_created_workspace_survives_its_node(cluster_nodes, redis_server: RedisServer) -> None:
    token = admin_token(redis_server.url)
    a, b = cluster_nodes(2)
    async with httpx.AsyncClient(headers=_auth(token), timeout=30) as http:
        assert (await http.put(f"{a.url}/api/workspaces/empty")).status_code == 201
        a.kill()  # before any write: the 201 alone was an acknowledgement
        got = await get_until(http, f"{b.url}/api/workspaces/empty")
        assert got.status_code == 200, got.text
        assert got.json()["name"] == "empty"


async def test_a_big_file_survives_its_node(cluster_nodes, redis_server: RedisServer) -> None:
    """A file past the size a local store would put in pack files: a cluster keeps its bulk chunks as
    S3 objects written before the commit naming them, so the next owner reads all of its bytes."""
    token = admin_token(redis_server.url)
    a, b = cluster_nodes(2)
    body = os.urandom(6 * 1024 * 1024)
    async with httpx.AsyncClient(headers=_auth(token), timeout=60) as http:
        assert (await http.put(f"{a.url}/api/workspaces/big")).status_code == 201
        assert (await http.put(f"{a.url}/api/workspaces/big/files/blob.bin", content=body)).status_code in (200, 201)
        a.kill()
        got = await get_until(http, f"{b.url}/api/workspaces/big/files/blob.bin")
        assert got.status_code == 200, got.text
        assert got.content == body


async def test_deleted_workspace_stays_deleted(cluster_nodes, redis_server: RedisServer, s3_location) -> None:
    from server.cluster.manifest import Manifests
    from server.cluster.objectstore import ObjectStore

    token = admin_token(redis_server.url)
    a, b, c = cluster_nodes(3)
    async with httpx.AsyncClient(headers=_auth(token), timeout=30) as http, ObjectStore(s3_location) as s3:
        manifests = Manifests(s3)
        assert (await http.put(f"{a.url}/api/workspaces/gone")).status_code == 201
        await _write_until_acked(http, f"{a.url}/api/workspaces/gone/files", "/old.txt", b"old", time.monotonic() + 20)
        assert (await http.delete(f"{b.url}/api/workspaces/gone")).status_code == 204
        marker = await manifests.read("gone")  # the marker, written by the owner before it let go
        assert marker is not None and marker.manifest.deleted and marker.manifest.owner == "a"
        assert await s3.keys(s3_location.key("ws", "gone")) == [manifests.key("gone")]  # old replicas erased
        for node in (a, b, c):  # not restored from its replicas by whichever node is asked next
            assert (await http.get(f"{node.url}/api/workspaces/gone/files/old.txt")).status_code == 404
            listed = (await http.get(f"{node.url}/api/workspaces")).json()["workspaces"]
            assert "gone" not in {w["name"] for w in listed}
        assert (await manifests.read("gone")) == marker  # asking for it changed nothing
        assert (await http.get(f"{b.url}/api/workspaces/never/files/x.txt")).status_code == 404
        assert await manifests.read("never") is None  # nor does asking for a name never created
        assert (await http.put(f"{c.url}/api/workspaces/gone")).status_code == 201
        assert (await http.get(f"{a.url}/api/workspaces/gone/files/old.txt")).status_code == 404
        reborn = await manifests.read("gone")
        assert reborn is not None and not reborn.manifest.deleted
        assert reborn.manifest.since == reborn.manifest.epoch > marker.manifest.epoch


async def test_graceful_stop_is_bounded_when_s3_hangs(redis_server: RedisServer, s3_location, tmp_path) -> None:
    """SIGTERM while S3 accepts connections but never answers: the node still stops by itself (exit
    status 0) before `ServeNode.stop` gives up at 30 s, twice the documented bound (the last syncs
    share 10 s; before the bound each workspace could take 15 s to sync, 15 s to unregister, and
    Litestream 10 s more), and its lease is released, not left to expire."""
    import dataclasses
    from urllib.parse import urlsplit

    from tests.cluster_fixtures import TcpRelay, free_ports

    relay = TcpRelay(urlsplit(s3_location.endpoint).port)
    location = dataclasses.replace(s3_location, endpoint=f"http://127.0.0.1:{relay.port}")
    node = ServeNode("a", tmp_path / "node-a", redis_server.url, location, free_ports(1)[0])
    redis = redis_server.client()
    try:
        node.wait_ready()
        token = admin_token(redis_server.url)
        async with httpx.AsyncClient(headers=_auth(token), timeout=30) as http:
            for name in ("s1", "s2"):
                assert (await http.put(f"{node.url}/api/workspaces/{name}")).status_code == 201
                await _write_until_acked(http, f"{node.url}/api/workspaces/{name}/files", "/one.txt", b"one",
                                         time.monotonic() + 20)
            relay.stall()
            reply = await http.put(f"{node.url}/api/workspaces/s1/files/stalled.txt", content=b"x")
            assert reply.status_code == 503, reply.text  # committed, not acknowledged: its sync hangs
        node.stop()
        assert node.proc.returncode == 0, node.log.read_text()[-3000:]
        assert await redis.get("owner:s1") is None and await redis.get("owner:s2") is None
    finally:
        await redis.aclose()
        node.kill()
        relay.close()
