"""`wsfs serve --cluster`: three real nodes on one real Redis, SeaweedFS and Litestream each.

Any node serves any workspace (HTTP proxied, WebSocket bridged to the
owner); ownership moves on death, pause and clean shutdown with nothing
acknowledged lost.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from client_py import Client
from tests.cluster_fixtures import RedisServer, ServeNode, admin_token, cluster_nodes  # noqa: F401
from tests.cluster_fixtures import redis_server, s3_location, seaweed  # noqa: F401

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
            await asyncio.sleep(0.5)  # the subscription is up (bounded wait below either way)
            put = await http.put(f"{a.url}/api/workspaces/w1/files/hello.txt", content=b"hello from a")
            assert put.status_code in (200, 201), put.text
            event = await asyncio.wait_for(first, 20)
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
        assert (await http.get(f"{b.url}/healthz")).json()["owns"] == [] or "w1" not in \
            (await http.get(f"{b.url}/healthz")).json()["owns"]
