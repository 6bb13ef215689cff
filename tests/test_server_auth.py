"""Auth: 401 without a valid token, 403 outside the token's workspace or scope, over HTTP and WebSocket."""

from __future__ import annotations

import pytest
from websockets.exceptions import InvalidStatus

from server_fixtures import LiveServer, WsClient
from vfs.wire import FRAME_PUT, encode_chunk_frame


@pytest.fixture
def two_workspaces(live_server: LiveServer) -> dict[str, str]:
    with live_server.http() as c:
        for ws in ("alpha", "beta"):
            assert c.put(f"/api/workspaces/{ws}").status_code == 201
            assert c.put(f"/api/workspaces/{ws}/files/secret.txt", content=f"{ws} secret".encode()).status_code == 201
    return {
        "a_read": live_server.token("alpha", "read", "a-reader"),
        "a_write": live_server.token("alpha", "write", "a-writer"),
    }


B = "/api/workspaces/beta"


def b_requests(c):
    """Every kind of access to workspace beta."""
    return [
        c.get(B),
        c.get(f"{B}/files/secret.txt"),
        c.get(f"{B}/files/"),
        c.put(f"{B}/files/secret.txt", content=b"pwned"),
        c.patch(f"{B}/files/secret.txt?offset=0", content=b"p"),
        c.delete(f"{B}/files/secret.txt"),
        c.post(f"{B}/ops", json={"op": "mkdir", "path": "/x"}),
        c.get(f"{B}/stat/secret.txt"),
        c.get(f"{B}/readdir/"),
        c.get(f"{B}/find"),
        c.get(f"{B}/ls"),
        c.get(f"{B}/grep", params={"pattern": "secret"}),
        c.get(f"{B}/du"),
        c.get(f"{B}/history/secret.txt"),
        c.get(f"{B}/entry/secret.txt"),
        c.get(f"{B}/changes"),
        c.post(f"{B}/objects/has", json={"hashes": []}),
        c.post(f"{B}/push", json={"changes": []}),
        c.post(f"{B}/gc"),
        c.put(B),
        c.delete(B),
        c.get("/api/workspaces/nonexistent"),
    ]


def test_token_for_a_cannot_touch_b_over_http(live_server: LiveServer, two_workspaces: dict[str, str]) -> None:
    for token in two_workspaces.values():
        with live_server.http(token) as c:
            for r in b_requests(c):
                assert r.status_code == 403, (r.request.method, r.request.url, r.status_code)
                assert r.json()["error"]["code"] == "EACCES"
                assert b"beta secret" not in r.content
            listed = [w["name"] for w in c.get("/api/workspaces").json()["workspaces"]]
            assert listed == ["alpha"]
            for admin_only in (c.get("/api/tokens"), c.post("/api/tokens", json={"workspace": "beta", "scope": "write"}),
                               c.get("/metrics")):
                assert admin_only.status_code == 403
    with live_server.http() as admin:
        assert admin.get(f"{B}/files/secret.txt").content == b"beta secret"


def test_missing_or_wrong_token_is_401(live_server: LiveServer, two_workspaces: dict[str, str]) -> None:
    for token in ("", "wsfs_not-a-real-token"):
        with live_server.http(token) as c:
            for r in b_requests(c) + [c.get("/api/workspaces"), c.get("/api/whoami")]:
                assert r.status_code == 401, (r.request.url, r.status_code)
                assert r.json()["error"]["code"] == "EAUTH"
    # ?token= works like the header
    with live_server.http(token="") as c:
        assert c.get("/api/workspaces/alpha/files/secret.txt", params={"token": two_workspaces["a_read"]}).content == b"alpha secret"


def test_read_scope_cannot_write(live_server: LiveServer, two_workspaces: dict[str, str]) -> None:
    A = "/api/workspaces/alpha"
    with live_server.http(two_workspaces["a_read"]) as c:
        assert c.get(f"{A}/files/secret.txt").status_code == 200
        for r in (c.put(f"{A}/files/x", content=b"x"), c.delete(f"{A}/files/secret.txt"),
                  c.post(f"{A}/ops", json={"op": "mkdir", "path": "/d"}), c.post(f"{A}/push", json={"changes": []})):
            assert r.status_code == 403
    with live_server.http(two_workspaces["a_write"]) as c:
        assert c.put(f"{A}/files/x", content=b"x").status_code == 201
        assert c.put("/api/workspaces/alpha").status_code == 403  # creating/deleting workspaces is admin-only


async def test_websocket_refuses_other_workspace_and_bad_tokens(live_server: LiveServer,
                                                               two_workspaces: dict[str, str]) -> None:
    for token, status in ((two_workspaces["a_write"], 403), ("wsfs_bogus", 401), (None, 401)):
        with pytest.raises(InvalidStatus) as info:
            await WsClient.open(live_server.ws_url("beta", token))
        assert info.value.response.status_code == status
        assert b'"code"' in info.value.response.body
    # the header works as well as ?token=
    c = await WsClient.open(live_server.ws_url("alpha"),
                            additional_headers={"Authorization": f"Bearer {two_workspaces['a_read']}"})
    assert c.hello["workspace"] == "alpha" and c.hello["scope"] == "read"
    await c.close()


async def test_websocket_watch_is_confined_and_read_scope_cannot_push(live_server: LiveServer,
                                                                     two_workspaces: dict[str, str]) -> None:
    c = await WsClient.open(live_server.ws_url("alpha", two_workspaces["a_read"]))
    await c.request({"type": "subscribe", "id": "all", "after": None})
    snapshot = await c.collect_changes("all", count=1)
    assert {e["path"] for e in snapshot} == {"/secret.txt"}
    with live_server.http() as admin:
        admin.put(f"{B}/files/other.txt", content=b"beta only")
        admin.put("/api/workspaces/alpha/files/mine.txt", content=b"alpha")
    live = await c.collect_changes("all", count=1)
    assert [e["path"] for e in live] == ["/mine.txt"]
    err = await c.request({"type": "push", "changes": []})
    assert err["code"] == "EACCES"
    await c.conn.send(encode_chunk_frame(FRAME_PUT, "00" * 32, b""))
    await c.request({"type": "ping"})
    assert any(e.get("code") == "EACCES" for e in c.events if e["type"] == "error")
    await c.close()


async def test_revoked_token_stops_working_and_closes_its_sockets(live_server: LiveServer,
                                                                  two_workspaces: dict[str, str]) -> None:
    with live_server.http() as admin:
        made = admin.post("/api/tokens", json={"workspace": "alpha", "scope": "read", "name": "temp"})
        assert made.status_code == 201
        tok = made.json()
        assert tok["token"].startswith("wsfs_") and tok["workspace"] == "alpha"
        assert tok["id"] in [t["id"] for t in admin.get("/api/tokens").json()["tokens"]]
        assert all("token" not in t for t in admin.get("/api/tokens").json()["tokens"])
        c = await WsClient.open(live_server.ws_url("alpha", tok["token"]))
        assert admin.delete(f"/api/tokens/{tok['id']}").status_code == 204
        assert admin.delete(f"/api/tokens/{tok['id']}").status_code == 404
        assert await c.close_code() == 1008
        with live_server.http(tok["token"]) as gone:
            assert gone.get("/api/workspaces/alpha").status_code == 401


async def test_deleting_a_workspace_closes_its_sockets_and_revokes_its_tokens(
        live_server: LiveServer, two_workspaces: dict[str, str]) -> None:
    c = await WsClient.open(live_server.ws_url("alpha", two_workspaces["a_read"]))
    with live_server.http() as admin:
        assert admin.delete("/api/workspaces/alpha").status_code == 204
    assert await c.close_code() == 4404
    with live_server.http(two_workspaces["a_read"]) as c2:
        assert c2.get("/api/workspaces").status_code == 401
