"""`/metrics` of a real server: pushes are timed as PUTs are (`wsfs_op_seconds`), and the per-write
counters kept as plain attributes export as Prometheus counters and histograms."""

from __future__ import annotations

import re

import blake3
import httpx

from server_fixtures import LiveServer, WsClient
from vfs.wire import FRAME_PUT, encode_chunk_frame


def h(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def samples(server: LiveServer) -> dict[str, float]:
    text = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {server.admin}"}, timeout=10).text
    found = {}
    for line in text.splitlines():
        m = re.match(r"^(\S+?)(\{.*\})? (\S+)$", line)
        if m and not line.startswith("#"):
            found[m[1] + (m[2] or "")] = float(m[3])
    return found


async def test_pushes_and_puts_are_timed_and_counted(live_server: LiveServer) -> None:
    c = await WsClient.open(live_server.ws_url(token=live_server.admin))
    data = b"pushed\n"
    await c.conn.send(encode_chunk_frame(FRAME_PUT, h(data), data))
    for i in range(3):
        entry = {"path": f"/m/{i}", "kind": "file", "mode": 0o100644, "mtime": 1.0, "size": len(data),
                 "hash": h(data), "chunks": [[h(data), len(data)]]}
        ok = await c.request({"type": "push", "changes": [entry]})
        assert ok["type"] == "ok" and ok["applied"] == [f"/m/{i}"]
    await c.close()
    with live_server.http() as http:
        assert http.put("/api/workspaces/demo/files/a.txt", content=b"x" * 100).status_code == 201
        assert http.put("/api/workspaces/demo/files/a.txt", content=b"y" * 10).status_code == 200
    m = samples(live_server)
    assert m['wsfs_op_seconds_count{op="push"}'] == 3
    assert m['wsfs_op_seconds_bucket{le="+Inf",op="push"}'] == 3
    assert m['wsfs_op_seconds_sum{op="push"}'] > 0
    assert m['wsfs_op_seconds_count{op="put"}'] == 2
    assert m['wsfs_op_seconds_count{op="put_chunks"}'] == 1  # the uploaded chunk's batch
    buckets = sorted((float(k.split('le="')[1].split('"')[0]), v) for k, v in m.items()
                     if k.startswith("wsfs_op_seconds_bucket") and 'op="put"' in k)
    assert [v for _, v in buckets] == sorted(v for _, v in buckets) and buckets[-1][1] == 2  # cumulative
    assert m['wsfs_http_requests_total{method="PUT",status="201"}'] == 1
    assert m['wsfs_http_requests_total{method="PUT",status="200"}'] == 1
    assert m["wsfs_commits_total"] == 5
    assert m['wsfs_http_bytes_total{direction="in"}'] == 110
