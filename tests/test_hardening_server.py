"""A live server against hostile and careless clients (issue 17).

Bad values get a 4xx naming the field, never a 500; a text frame that is
not UTF-8 gets close 1007; a client leaving in any protocol state leaves
nothing behind; a user regex cannot freeze the server; sizes and quotas are
refused before any work; revocation from another process cuts sockets;
416 and If-Match keep the contract of docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import blake3
import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from server_fixtures import ROOT, LiveServer, ServerProcess, WsClient, serving, wait_for
from vfs.wire import FRAME_PUT, encode_chunk_frame

W = "/api/workspaces/demo"
INT64_MAX = 2**63 - 1


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def server_errors() -> Iterator[list[logging.LogRecord]]:
    """ERROR records the server (uvicorn, wsfs, asyncio) logs during the test: tracebacks, leaked tasks."""
    handler = _Collect()
    loggers = [logging.getLogger(n) for n in ("uvicorn.error", "uvicorn", "wsfs.server", "asyncio", "")]
    for lg in loggers:
        lg.addHandler(handler)
    try:
        yield handler.records
    finally:
        for lg in loggers:
            lg.removeHandler(handler)


def described(records: list[logging.LogRecord]) -> list[str]:
    return [f"{r.name}: {r.getMessage()} {r.exc_info[1]!r}" if r.exc_info else f"{r.name}: {r.getMessage()}"
            for r in records]


def gauge(g) -> float:
    return g._value.get()


# ---------------------------------------------------------------- bad values over HTTP

BAD_HTTP = [
    ("PUT", f"{W}/files/q.txt?mtime=nan", None, "mtime"),
    ("PUT", f"{W}/files/q.txt?mtime=inf", None, "mtime"),
    ("PUT", f"{W}/files/q.txt?mtime=-inf", None, "mtime"),
    ("PUT", f"{W}/files/q.txt?mtime=1e400", None, "mtime"),
    ("PUT", f"{W}/files/q.txt?mtime=1e300", None, "mtime"),
    ("PUT", f"{W}/files/q.txt?mtime=-1e300", None, "mtime"),
    ("POST", f"{W}/ops", {"op": "utime", "path": "/q.txt", "mtime": 1e308}, "mtime"),
    ("POST", f"{W}/ops", {"op": "utime", "path": "/q.txt", "mtime": -1e308}, "mtime"),
    ("POST", f"{W}/ops", {"op": "truncate", "path": "/q.txt", "size": INT64_MAX + 1}, "size"),
    ("POST", f"{W}/push", {"changes": [{"path": "/q.txt", "kind": "file", "mtime": 1e308}]}, "mtime"),
    ("POST", f"{W}/push", '{"changes": [], "base": {"/q.txt": 1000000000000000000000000000000}}', "base"),
    ("GET", f"{W}/changes?after=1000000000000000000000000000000", None, "after"),
    ("GET", f"{W}/changes?ignore=%5C", None, "ignore"),
    ("GET", f"{W}/grep?pattern=(&regex=1", None, "pattern"),
    ("GET", f"{W}/grep?pattern=(%3F%3Dx)&regex=1", None, "pattern"),
    ("GET", f"{W}/grep?pattern=x&context=101", None, "context"),
    ("GET", f"{W}/find?pattern=" + "x" * 5000, None, "pattern"),
    ("GET", f"{W}/files/q.txt?offset={INT64_MAX + 1}", None, "offset"),
    ("PATCH", f"{W}/files/q.txt?offset={INT64_MAX + 1}", None, "offset"),
]


@pytest.mark.parametrize("method, url, body, field", BAD_HTTP)
def test_bad_http_values_get_a_4xx_naming_the_field(live_server: LiveServer, server_errors, method, url, body,
                                                    field) -> None:
    with live_server.http() as c:
        assert c.put(f"{W}/files/q.txt?mtime=1000", content=b"keep").status_code == 201
        raw = body if isinstance(body, str) else orjson.dumps(body) if body is not None else b"x"
        r = c.request(method, url, content=raw)
        assert 400 <= r.status_code < 500, (r.status_code, r.text)
        error = r.json()["error"]
        assert error["code"] != "EINTERNAL" and error["message"]
        if field is not None:
            assert error.get("field") == field, error
        got = c.get(f"{W}/files/q.txt")
        assert got.content == b"keep" and c.get(f"{W}/stat/q.txt").json()["mtime"] == 1000  # nothing lost
    assert described(server_errors) == []


_EDGE_TEXT = st.sampled_from([
    "0", "-1", "1.5", "nan", "inf", "-inf", "1e400", "1e300", "-1e300", str(INT64_MAX), str(INT64_MAX + 1),
    str(2**64), "9" * 30, "1" * 5000, "8589934592", "8589934593", " 7 ", "0x10", "1_000", "", "(", "(a+)+$",
    "\\", "!", "[z-a]", "**/", "*a*a*a*a*a*a*b", "(?=x)", "a{99999}", "é\n\t", "x" * 5000, "/", "1:/a", "1:rel",
]) | st.text(max_size=12)
_QUERY_ROUTES = [
    ("GET", f"{W}/files/q.txt", ("offset", "limit", "rev")),
    ("GET", f"{W}/files/", ("offset", "limit")),
    ("PUT", f"{W}/files/q.txt", ("mtime", "mode", "parents")),
    ("PATCH", f"{W}/files/q.txt", ("offset",)),
    ("GET", f"{W}/changes", ("after", "limit", "ignore", "prefix")),
    ("GET", f"{W}/grep", ("pattern", "regex", "ignore_case", "include", "context", "limit", "path")),
    ("GET", f"{W}/find", ("pattern", "kind", "limit", "path")),
]


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(route=st.sampled_from(_QUERY_ROUTES), data=st.data())
def test_fuzz_query_values_never_make_a_500(live_server: LiveServer, server_errors, route, data) -> None:
    """Every query value of every route, at and past its limits and as user patterns: a 2xx or a named 4xx."""
    method, url, names = route
    params = {name: data.draw(_EDGE_TEXT, label=name) for name in data.draw(st.sets(st.sampled_from(names),
                                                                                     min_size=1))}
    if url.endswith("/grep"):
        params.setdefault("pattern", "x")  # the one required value: its absence is tested elsewhere
    with live_server.http() as c:
        c.put(f"{W}/files/q.txt", content=b"keep\n")
        r = c.request(method, url, params=params, content=b"x" if method in ("PUT", "PATCH") else None)
        assert r.status_code < 500, (method, url, params, r.text)
        if r.status_code >= 400:
            assert r.json()["error"]["message"], r.text
    assert described(server_errors) == []


# ---------------------------------------------------------------- bad values over the WebSocket

BAD_WS = [  # raw text: a JSON encoder refuses integers past 64 bits, a hostile client does not
    ('{"type": "subscribe", "id": 1, "after": "99999999999999999999999"}', "after"),
    ('{"type": "subscribe", "id": 1, "after": %d}' % (INT64_MAX + 1), "after"),
    ('{"type": "subscribe", "id": 1, "ignore": ["\\\\"]}', "ignore"),
    ('{"type": "push", "id": 2, "changes": [{"path": "/w.txt", "kind": "file", "mtime": 1e308}]}', "mtime"),
    ('{"type": "push", "id": 2, "changes": [{"path": "/w.txt", "kind": "file", "size": %d}]}' % 2**64, "size"),
    ('{"type": "push", "id": 2, "changes": [], "base": "%d"}' % 10**30, "base"),
]


async def test_bad_ws_values_get_an_error_naming_the_field(live_server: LiveServer, server_errors) -> None:
    c = await WsClient.open(live_server.ws_url(token=live_server.admin))
    for msg, field in BAD_WS:
        await c.conn.send(msg)
        err = await c.next_event("error")
        assert err["code"] == "EPROTO" and err.get("field") == field and err["message"], (msg, err)
    assert (await c.request({"type": "ping"}))["type"] == "ok"
    await c.close()
    assert described(server_errors) == []


async def test_text_frame_not_utf8_is_closed_with_1007(live_server: LiveServer, server_errors) -> None:
    for _ in range(5):
        c = await WsClient.open(live_server.ws_url(token=live_server.admin))
        await c.conn.send(b'{"type": "ping", "id": "\xff\xfe"}', text=True)
        assert await c.close_code() == 1007
    other = await WsClient.open(live_server.ws_url(token=live_server.admin))
    assert (await other.request({"type": "ping"}))["type"] == "ok"
    await other.close()
    assert described(server_errors) == []


# ---------------------------------------------------------------- leaving at the wrong moment


async def _reset(c: WsClient) -> None:
    """Leave as a crashed client does: a TCP reset, no close frame."""
    sock = c.conn.transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.conn.transport.abort()
    await asyncio.sleep(0)


def _put_frame(data: bytes) -> bytes:
    return encode_chunk_frame(FRAME_PUT, blake3.blake3(data).hexdigest(), data)


async def _leave_in(state: str, url: str) -> None:
    c = await WsClient.open(url, hello=False if state == "before-hello" else None)
    if state == "after-hello":
        pass
    elif state == "subscribe-sent":  # the `ok` of the subscribe cannot be sent any more
        await c.send({"type": "subscribe", "id": "s", "after": None})
    elif state == "subscribe-now":
        await c.send({"type": "subscribe", "id": "s", "after": "now"})
    elif state == "subscribed":
        await c.request({"type": "subscribe", "id": "s", "after": None, "batch_max": 1})
    elif state == "get-sent":
        digest = blake3.blake3(b"big" * 100_000).hexdigest()
        await c.send({"type": "get", "id": "g", "hashes": [digest] * 64})
    elif state == "upload-sent":
        for i in range(8):
            await c.conn.send(_put_frame(os.urandom(4096) + bytes([i])))
    elif state == "push-sent":
        data = b"pushed"
        digest = blake3.blake3(data).hexdigest()
        await c.conn.send(_put_frame(data))
        await c.send({"type": "push", "id": "p", "changes": [
            {"path": "/left.txt", "kind": "file", "size": len(data), "hash": digest, "chunks": [[digest, len(data)]]}]})
    elif state == "presence":
        await c.send({"type": "presence", "op": "join", "name": "leaver"})
    await _reset(c)


STATES = ["before-hello", "after-hello", "subscribe-sent", "subscribe-now", "subscribed", "get-sent", "upload-sent",
          "push-sent", "presence"]


async def test_a_client_leaving_in_any_state_leaves_nothing_behind(live_server: LiveServer, server_errors) -> None:
    st = live_server.state
    with live_server.http() as c:  # pages the store must read (not cached) and a big file for `get`
        for i in range(40):
            c.put(f"{W}/files/d/f{i}.txt?parents=1", content=b"x" * i)
        c.put(f"{W}/files/big.bin", content=b"big" * 100_000)
    url = live_server.ws_url(token=live_server.admin)
    for round_ in range(6):
        for state in STATES:
            await _leave_in(state, url)
    await wait_for(lambda: not st.sessions and gauge(st.metrics.ws_connections) == 0, timeout=20)
    await wait_for(lambda: gauge(st.metrics.subscriptions) == 0, timeout=20)
    await wait_for(lambda: not any(h.fanout.parked or h._live for h in st.stores.open_handles()), timeout=20)
    watcher = await WsClient.open(url)
    assert (await watcher.request({"type": "ping"}))["type"] == "ok"
    presence = [e for e in watcher.events if e.get("type") == "presence"]
    assert presence and presence[0]["op"] == "sync" and presence[0]["peers"] == []  # no leaver left behind
    await watcher.close()
    assert described(server_errors) == []


# ---------------------------------------------------------------- user patterns cannot freeze the server


def test_catastrophic_regex_and_glob_answer_at_once(live_server: LiveServer, server_errors) -> None:
    """`(a+)+$` over `a`*40 + `b` is 2^40 steps for a backtracking engine; RE2 is linear."""
    name = "a" * 40 + "b"
    with live_server.http() as c:
        c.put(f"{W}/files/{name}.txt", content=name.encode() + b"\n")
        with httpx.Client(base_url=live_server.url, headers={"Authorization": f"Bearer {live_server.admin}"},
                          timeout=60) as slow:
            r = slow.get(f"{W}/grep", params={"pattern": "(a+)+$", "regex": "1"})
            assert r.status_code == 200 and r.json()["matches"] == []
            r = slow.get(f"{W}/grep", params={"pattern": "(a+)+b$", "regex": "1"})
            assert [m["line"] for m in r.json()["matches"]] == [name]
            r = slow.get(f"{W}/find", params={"pattern": "*a*a*a*a*a*a*a*a*a*a*a*a*c"})
            assert r.status_code == 200 and r.json()["paths"] == []
            r = slow.get(f"{W}/changes", params={"ignore": "*a*a*a*a*a*a*a*a*a*a*a*a*c"})
            assert f"/{name}.txt" in [e["path"] for e in r.json()["entries"]]
    assert described(server_errors) == []


# ---------------------------------------------------------------- sizes and quotas before any work


@pytest.fixture
def limited_server(tmp_path: Path) -> Iterator[LiveServer]:
    yield from serving(LiveServer(tmp_path / "data", max_file_size=1000, quota=3000).start())


def test_file_size_limit_answers_413_before_any_work(limited_server: LiveServer, server_errors) -> None:
    with limited_server.http() as c:
        c.put(f"{W}/files/a.txt", content=b"a" * 100)
        for method, url, body, field in [
            ("PATCH", f"{W}/files/a.txt?offset=1099511627760", b"x" * 16, "offset"),
            ("PATCH", f"{W}/files/a.txt?offset=990", b"x" * 11, "offset"),
            ("POST", f"{W}/ops", orjson.dumps({"op": "truncate", "path": "/a.txt", "size": 2**40}), "size"),
            ("POST", f"{W}/ops", orjson.dumps({"op": "truncate", "path": "/a.txt", "size": 1001}), "size"),
            ("PUT", f"{W}/files/b.txt", b"b" * 1001, None),
        ]:
            r = c.request(method, url, content=body)
            assert r.status_code == 413 and r.json()["error"]["code"] == "EFBIG", (url, r.text)
            if field:
                assert r.json()["error"].get("field") == field
        assert c.get(f"{W}/files/a.txt").content == b"a" * 100
        assert c.get(f"{W}/stat/b.txt").status_code == 404
        assert c.request("PATCH", f"{W}/files/a.txt?offset=990", content=b"y" * 10).status_code == 200
        r = c.post(f"{W}/ops", json={"op": "truncate", "path": "/a.txt", "size": 1000})
        assert r.status_code == 200 and r.json()["stat"]["size"] == 1000
    assert described(server_errors) == []


async def test_quota_answers_507_and_loses_nothing(limited_server: LiveServer, server_errors) -> None:
    with limited_server.http() as c:
        for name, size in (("a", 900), ("b", 900), ("c", 900), ("d", 300)):  # 3000: at the quota, allowed
            assert c.put(f"{W}/files/{name}.txt", content=name.encode() * size).status_code == 201
        for method, url, body in [
            ("PUT", f"{W}/files/e.txt", b"e"),
            ("PATCH", f"{W}/files/a.txt?offset=900", b"more"),
            ("POST", f"{W}/ops", orjson.dumps({"op": "truncate", "path": "/b.txt", "size": 901})),
            ("POST", f"{W}/ops", orjson.dumps({"op": "copy", "src": "/a.txt", "dst": "/a2.txt"})),
        ]:
            r = c.request(method, url, content=body)
            assert r.status_code == 507 and r.json()["error"]["code"] == "EDQUOT", (url, r.text)
        assert c.get(f"{W}/du").json()["bytes"] == 3000 and c.get(f"{W}/stat/a2.txt").status_code == 404
        # replacing within the quota is fine: the workspace's size does not grow
        assert c.put(f"{W}/files/c.txt", content=b"C" * 900).status_code == 200
        assert c.post(f"{W}/ops", json={"op": "truncate", "path": "/b.txt", "size": 10}).status_code == 200
        assert c.put(f"{W}/files/e.txt", content=b"e" * 890).status_code == 201
        assert c.get(f"{W}/du").json()["bytes"] == 3000
    data = b"e" * 500
    digest = blake3.blake3(data).hexdigest()
    ws = await WsClient.open(limited_server.ws_url(token=limited_server.admin))
    await ws.conn.send(_put_frame(data))
    reply = await ws.request({"type": "push", "changes": [
        {"path": "/f.txt", "kind": "file", "size": len(data), "hash": digest, "chunks": [[digest, len(data)]]}]})
    assert reply["type"] == "error" and reply["code"] == "EDQUOT", reply
    await ws.close()
    with limited_server.http() as c:
        assert c.get(f"{W}/stat/f.txt").status_code == 404
    big = await WsClient.open(limited_server.ws_url(token=limited_server.admin))
    reply = await big.request({"type": "push", "changes": [{"path": "/huge.bin", "kind": "file", "size": 2**40}]})
    assert reply["type"] == "error" and reply["code"] == "EFBIG" and reply["field"] == "size", reply
    await big.close()
    assert described(server_errors) == []


def test_default_file_size_limit_refuses_a_tebibyte(live_server: LiveServer) -> None:
    with live_server.http() as c:
        c.put(f"{W}/files/t.txt", content=b"t")
        r = c.post(f"{W}/ops", json={"op": "truncate", "path": "/t.txt", "size": 2**40})
        assert r.status_code == 413 and r.json()["error"]["code"] == "EFBIG"
        r = c.request("PATCH", f"{W}/files/t.txt?offset=1099511627760", content=b"x" * 16)
        assert r.status_code == 413
        assert c.get(f"{W}/files/t.txt").content == b"t"


def test_serve_takes_the_limits_as_options(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--max-file-size", "1k", "--quota", "1536")
    try:
        headers = {"Authorization": f"Bearer {server.admin}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as c:
            assert c.put(f"{W}/files/a.bin", content=b"a" * 1024).status_code == 201
            r = c.put(f"{W}/files/b.bin", content=b"b" * 1025)
            assert r.status_code == 413 and r.json()["error"]["max_file_size"] == 1024
            r = c.put(f"{W}/files/b.bin", content=b"b" * 1000)
            assert r.status_code == 507 and r.json()["error"]["quota"] == 1536
    finally:
        server.stop()


# ---------------------------------------------------------------- revocation from another process


async def test_revocation_by_another_process_closes_sockets(live_server: LiveServer) -> None:
    st = live_server.state
    principal, secret = st.tokens.create("demo", "write", "to-revoke")
    keep = live_server.token("demo", "write", "kept")
    victim = await WsClient.open(live_server.ws_url(token=secret))
    await victim.request({"type": "subscribe", "id": "v", "after": "now"})
    bystander = await WsClient.open(live_server.ws_url(token=keep))
    await bystander.request({"type": "subscribe", "id": "b", "after": "now"})
    with live_server.http(token=secret) as c:  # the server now knows this token (TokenStore remembers it)
        assert c.put(f"{W}/files/rv/early.txt?parents=1", content=b"early").status_code < 300
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "wsfs", "token", "revoke", principal.id, "--data",
                         str(live_server.data_dir)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    with live_server.http(token=secret) as c:  # the very next request, before any timer ran
        assert c.put(f"{W}/files/rv/late.txt?parents=1", content=b"late").status_code == 401
    assert await victim.close_code() == 1008
    with pytest.raises(ConnectionClosed):
        await victim.request({"type": "ping"})
    assert (await bystander.request({"type": "ping"}))["type"] == "ok"  # only that token's sockets
    await bystander.close()


# ---------------------------------------------------------------- the contract


def test_416_carries_content_range(live_server: LiveServer) -> None:
    with live_server.http() as c:
        c.put(f"{W}/files/r.txt", content=b"0123456789")
        r = c.get(f"{W}/files/r.txt", headers={"Range": "bytes=20-30"})
        assert r.status_code == 416 and r.headers["content-range"] == "bytes */10"
        assert r.json()["error"]["code"] == "ERANGE"


@pytest.mark.parametrize("etag", ['""', f'"{"ab" * 32}"', "*"])
def test_if_match_on_a_missing_path_is_412(live_server: LiveServer, etag) -> None:
    with live_server.http() as c:
        for method, extra in [("PUT", ""), ("PATCH", "?offset=0")]:
            r = c.request(method, f"{W}/files/nowhere.txt{extra}", content=b"x", headers={"If-Match": etag})
            assert r.status_code == 412 and r.json()["error"]["code"] == "EPRECONDITION", (method, etag, r.text)
        assert c.get(f"{W}/stat/nowhere.txt").status_code == 404


def test_if_none_match_star_message_names_the_path(live_server: LiveServer) -> None:
    with live_server.http() as c:
        c.put(f"{W}/files/there.txt", content=b"x")
        r = c.put(f"{W}/files/there.txt", content=b"y", headers={"If-None-Match": "*"})
        assert r.status_code == 412
        error = r.json()["error"]
        assert error["path"] == "/there.txt" and "/there.txt" in error["message"], error
        assert "exist" in error["message"], error
