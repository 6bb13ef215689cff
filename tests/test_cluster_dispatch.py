"""A cluster node's proxy hands the requests it serves itself to the direct dispatch (`WsfsApp.dispatch`).

On a cluster node every request enters Starlette's middleware stack, because
the proxy (its outermost layer) must route by ownership first; a request it
serves here then skips the layers below it. Here the node's engines are not
started (no ownership table: nobody owns anything, so everything is served
here), which is all the routing this needs; the cluster tests
(`test_cluster_serve.py`, `test_cluster_acks.py`) run the same path on real
nodes with Redis, SeaweedFS and Litestream.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from server.cluster.node import ClusterConfig, ClusterNode
from server.cluster.proxy import ClusterProxy
from tests.server_fixtures import LiveServer


def _count(metrics: str, method: str, status: str) -> float:
    key = f'wsfs_http_requests_total{{method="{method}",status="{status}"}}'
    return sum(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith(key))


@pytest.fixture
def proxied_server(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path / "data")
    app = server.app
    app.direct_first = False  # as `create_app` sets it on a cluster node
    config = ClusterConfig(redis_url="redis://127.0.0.1:9", replicate="s3://bucket/prefix",
                           advertise=server.url, node_id="solo")
    app.add_middleware(ClusterProxy, node=ClusterNode(config, tmp_path / "logs"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_proxy_serves_its_own_requests_through_the_direct_dispatch(proxied_server: LiveServer) -> None:
    server, app = proxied_server, proxied_server.app
    with server.http() as client:
        assert client.get("/healthz").status_code == 200  # not a workspace's path: the full stack
        before_corked = app.corked
        before_puts = _count(client.get("/metrics").text, "PUT", "201")
        r = client.put("/api/workspaces/demo/files/a.txt", content=b"x" * 100)
        assert r.status_code == 201, r.text
        assert r.json()["size"] == 100
        assert client.get("/api/workspaces/demo/files/a.txt").content == b"x" * 100
        assert app.corked >= before_corked + 2  # only `dispatch` corks: both went through it
        assert _count(client.get("/metrics").text, "PUT", "201") == before_puts + 1  # counted once
        # a path no route matches still gets the stack's JSON 404
        missing = client.get("/api/workspaces/demo/nothing-here")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "ENOENT"
