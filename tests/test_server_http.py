"""HTTP API against a live server: files, ops, metadata, changes, objects, workspaces, errors."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import blake3
import httpx
import pytest

import vfs
from server_fixtures import LiveServer

W = "/api/workspaces/demo"


def h(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def err(r) -> str:
    return r.json()["error"]["code"]


def test_put_get_roundtrip_etag_and_304(live_server: LiveServer) -> None:
    with live_server.http() as c:
        r = c.put(f"{W}/files/notes/a.md?parents=1&mode=600", content=b"hello\n")
        assert r.status_code == 201
        body = r.json()
        assert body["hash"] == h(b"hello\n") and body["path"] == "/notes/a.md"
        assert body["mode"] & 0o777 == 0o600
        hello = h(b"hello\n")
        assert r.headers["etag"] == f'"{hello}"'
        assert c.put(f"{W}/files/notes/a.md", content=b"hello again\n").status_code == 200
        r = c.get(f"{W}/files/notes/a.md")
        assert r.content == b"hello again\n"
        again = h(b"hello again\n")
        assert r.headers["etag"] == f'"{again}"'
        assert r.headers["content-type"].startswith("text/markdown")
        assert c.get(f"{W}/files/notes/a.md", headers={"If-None-Match": r.headers["etag"]}).status_code == 304
        listing = c.get(f"{W}/files/notes").json()
        assert listing["kind"] == "dir" and [e["name"] for e in listing["entries"]] == ["a.md"]
        assert [e["name"] for e in c.get(f"{W}/files/").json()["entries"]] == ["notes"]


def test_large_file_streams_both_ways(live_server: LiveServer) -> None:
    data = os.urandom(3 * 1024 * 1024 + 123)

    def body():
        for i in range(0, len(data), 100_000):
            yield data[i : i + 100_000]

    with live_server.http() as c:
        r = c.put(f"{W}/files/big.bin", content=body())  # chunked, no Content-Length
        assert r.status_code == 201 and r.json()["size"] == len(data)
        r = c.get(f"{W}/files/big.bin")
        assert r.content == data and r.headers["etag"] == f'"{h(data)}"'
        assert r.headers["content-length"] == str(len(data))
        r = c.get(f"{W}/files/big.bin", headers={"Range": "bytes=1000000-2999999"})
        assert r.status_code == 206 and r.content == data[1_000_000:3_000_000]


def test_ranges(live_server: LiveServer) -> None:
    data = bytes(range(256)) * 4
    with live_server.http() as c:
        c.put(f"{W}/files/r.bin", content=data)
        r = c.get(f"{W}/files/r.bin", headers={"Range": "bytes=10-19"})
        assert r.status_code == 206 and r.content == data[10:20]
        assert r.headers["content-range"] == f"bytes 10-19/{len(data)}"
        assert c.get(f"{W}/files/r.bin", headers={"Range": "bytes=1000-"}).content == data[1000:]
        assert c.get(f"{W}/files/r.bin", headers={"Range": "bytes=-5"}).content == data[-5:]
        assert c.get(f"{W}/files/r.bin", headers={"Range": "bytes=0-99999"}).content == data
        r = c.get(f"{W}/files/r.bin", headers={"Range": "bytes=5000-6000"})
        assert r.status_code == 416 and err(r) == "ERANGE"
        assert c.get(f"{W}/files/r.bin", headers={"Range": "bytes=0-1,5-6"}).status_code == 200


async def test_conditional_writes_one_wins_the_other_412(live_server: LiveServer) -> None:
    async with live_server.ahttp() as c:
        base = (await c.put(f"{W}/files/c.txt", content=b"base")).json()["hash"]
        results = await asyncio.gather(*(
            c.put(f"{W}/files/c.txt", content=f"writer {i}".encode(), headers={"If-Match": f'"{base}"'})
            for i in range(2)
        ))
        statuses = sorted(r.status_code for r in results)
        assert statuses == [200, 412]
        winner = next(r for r in results if r.status_code == 200).json()["hash"]
        loser = next(r for r in results if r.status_code == 412).json()["error"]
        assert loser["code"] == "EPRECONDITION" and loser["current"] == winner and loser["expected"] == base
        assert h((await c.get(f"{W}/files/c.txt")).content) == winner
        # create-only
        assert (await c.put(f"{W}/files/new.txt", content=b"1", headers={"If-None-Match": "*"})).status_code == 201
        r = await c.put(f"{W}/files/new.txt", content=b"2", headers={"If-None-Match": "*"})
        assert r.status_code == 412 and (await c.get(f"{W}/files/new.txt")).content == b"1"


def test_patch_is_pwrite(live_server: LiveServer) -> None:
    with live_server.http() as c:
        c.put(f"{W}/files/p.bin", content=b"abcdef")
        r = c.patch(f"{W}/files/p.bin?offset=2", content=b"XY")
        assert r.status_code == 200 and r.json()["size"] == 6
        assert c.get(f"{W}/files/p.bin").content == b"abXYef"
        c.patch(f"{W}/files/p.bin?offset=8", content=b"Z")
        assert c.get(f"{W}/files/p.bin").content == b"abXYef\0\0Z"
        assert c.patch(f"{W}/files/missing?offset=0", content=b"x").status_code == 404
        r = c.patch(f"{W}/files/p.bin?offset=0", content=b"q", headers={"If-Match": h(b"nope")})
        assert r.status_code == 412


def test_mkdir_and_link_reply_with_the_stat_a_lookup_reads_next(live_server: LiveServer) -> None:
    """mkdir and link answer with the Stat their store call returned (no lookup after the op): it must be
    the one an lstat of the result path reads, symlinks included (link does not follow its source)."""
    with live_server.http() as c:
        def op(**body):
            r = c.post(f"{W}/ops", json=body)
            assert r.status_code == 200, r.text
            return r.json()["stat"]

        made = op(op="mkdir", path="/sd/a/b", parents=True, mode=0o700)
        assert made["kind"] == "dir" and made["mode"] & 0o777 == 0o700
        assert made == c.get(f"{W}/stat/sd/a/b?follow=0").json()
        assert op(op="mkdir", path="/sd/a", parents=True, exist_ok=True) == c.get(f"{W}/stat/sd/a?follow=0").json()
        c.put(f"{W}/files/sd/f", content=b"abc")
        linked = op(op="link", src="/sd/f", dst="/sd/g")
        assert linked["nlink"] == 2 and linked == c.get(f"{W}/stat/sd/g?follow=0").json()
        op(op="symlink", target="f", path="/sd/s")
        linked = op(op="link", src="/sd/s", dst="/sd/t")
        assert linked["kind"] == "symlink" and linked == c.get(f"{W}/stat/sd/t?follow=0").json()


def test_ops_and_metadata_routes(live_server: LiveServer) -> None:
    with live_server.http() as c:
        def op(**body):
            r = c.post(f"{W}/ops", json=body)
            assert r.status_code == 200, r.text
            return r.json()

        op(op="mkdir", path="/src/pkg", parents=True)
        c.put(f"{W}/files/src/pkg/mod.py", content=b"def f():\n    return 42\n")
        c.put(f"{W}/files/src/readme.md", content=b"see mod\n")
        assert op(op="copy", src="/src/pkg/mod.py", dst="/src/pkg/copy.py")["stat"]["hash"] == h(b"def f():\n    return 42\n")
        op(op="symlink", target="pkg/mod.py", path="/src/link.py")
        op(op="link", src="/src/readme.md", dst="/src/hard.md")
        assert op(op="chmod", path="/src/readme.md", mode=0o600)["stat"]["mode"] & 0o777 == 0o600
        assert op(op="utime", path="/src/readme.md", mtime=1000.5)["stat"]["mtime"] == 1000.5
        assert op(op="truncate", path="/src/readme.md", size=3)["stat"]["size"] == 3
        renamed = op(op="rename", src="/src/pkg/copy.py", dst="/src/copy2.py")
        assert renamed["stat"]["kind"] == "file" and renamed["rev"] > 0

        assert c.get(f"{W}/stat/src/link.py").json()["kind"] == "file"
        lst = c.get(f"{W}/stat/src/link.py?follow=0").json()
        assert lst["kind"] == "symlink" and lst["target"] == "pkg/mod.py"
        assert c.get(f"{W}/stat/src/hard.md").json()["nlink"] == 2
        names = [e["name"] for e in c.get(f"{W}/readdir/src").json()["entries"]]
        assert names == sorted(names) and "copy2.py" in names
        page = c.get(f"{W}/readdir/src?limit=2&offset=1").json()["entries"]
        assert [e["name"] for e in page] == names[1:3]
        assert c.get(f"{W}/find", params={"path": "/src", "pattern": "**/*.py", "kind": "file"}).json()["paths"] == [
            "/src/copy2.py", "/src/pkg/mod.py"]
        assert "/src/readme.md" in c.get(f"{W}/ls", params={"prefix": "/src"}).json()["paths"]
        matches = c.get(f"{W}/grep", params={"pattern": "return", "path": "/src"}).json()["matches"]
        assert {m["path"] for m in matches} >= {"/src/pkg/mod.py"}
        assert matches[0]["line_number"] == 2
        assert c.get(f"{W}/du", params={"path": "/src/pkg"}).json()["bytes"] == len(b"def f():\n    return 42\n")
        entry = c.get(f"{W}/entry/src/link.py").json()
        assert entry["kind"] == "symlink" and entry["target"] == "pkg/mod.py"
        op(op="rm", path="/src", recursive=True)
        assert c.get(f"{W}/stat/src").status_code == 404
        assert c.get(f"{W}/entry/src").json()["kind"] == "delete"


def test_history_past_versions_and_restore(live_server: LiveServer) -> None:
    with live_server.http() as c:
        revs = [c.put(f"{W}/files/h.txt", content=f"version {i}".encode()).json()["rev"] for i in range(3)]
        versions = c.get(f"{W}/history/h.txt").json()["versions"]
        assert [v["rev"] for v in versions][:3] == sorted(revs, reverse=True)
        assert c.get(f"{W}/files/h.txt", params={"rev": revs[0]}).content == b"version 0"
        r = c.post(f"{W}/ops", json={"op": "restore", "path": "/h.txt", "rev": revs[0]})
        assert r.status_code == 200 and r.json()["stat"]["hash"] == h(b"version 0")
        assert c.get(f"{W}/files/h.txt").content == b"version 0"


def test_delete_semantics(live_server: LiveServer) -> None:
    with live_server.http() as c:
        c.put(f"{W}/files/d/x/y.txt?parents=1", content=b"y")
        r = c.delete(f"{W}/files/d")
        assert r.status_code == 409 and err(r) == "ENOTEMPTY"
        assert c.delete(f"{W}/files/d?recursive=1").status_code == 200
        assert c.delete(f"{W}/files/d").status_code == 404
        assert c.delete(f"{W}/files/d?force=1").status_code == 200
        r = c.delete(f"{W}/files/?recursive=1")
        assert r.status_code == 403 and err(r) == "EPERM"


def test_errno_mapping(live_server: LiveServer) -> None:
    with live_server.http() as c:
        c.put(f"{W}/files/f", content=b"f")
        c.post(f"{W}/ops", json={"op": "mkdir", "path": "/dir"})
        cases = [
            (c.get(f"{W}/files/nope"), 404, "ENOENT"),
            (c.post(f"{W}/ops", json={"op": "mkdir", "path": "/dir"}), 409, "EEXIST"),
            (c.put(f"{W}/files/f/under", content=b"x"), 409, "ENOTDIR"),
            (c.put(f"{W}/files/dir", content=b"x"), 409, "EISDIR"),
            (c.post(f"{W}/ops", json={"op": "rename", "src": "/dir", "dst": "/dir/sub"}), 400, "EINVAL"),
            (c.put(f"{W}/files/{'n' * 300}", content=b"x"), 400, "ENAMETOOLONG"),
            (c.post(f"{W}/ops", content=b"{not json"), 400, "EBADMSG"),
            (c.post(f"{W}/ops", json={"op": "explode", "path": "/f"}), 422, "EPROTO"),
            (c.post(f"{W}/ops", json={"op": "chmod", "path": "/f", "mode": "rwx"}), 422, "EPROTO"),
            (c.post(f"{W}/ops", json={"op": "rename", "src": "/f"}), 422, "EPROTO"),
            (c.get(f"{W}/changes", params={"after": "banana"}), 400, "EINVAL"),
            (c.get(f"{W}/files/f", params={"rev": "x"}), 400, "EINVAL"),
            (c.put(f"{W}/files/g?mode=999", content=b"x"), 400, "EINVAL"),
            (c.get("/api/workspaces/nosuch"), 404, "ENOENT"),
            (c.get("/api/nothing/here"), 404, "ENOENT"),
        ]
        for r, status, code in cases:
            assert (r.status_code, err(r)) == (status, code), r.request.url
        assert c.post(f"{W}/ops", json={"op": "rename", "src": "/f"}).json()["error"]["field"] == "dst"


def test_upload_limit_413(tmp_path) -> None:
    server = LiveServer(tmp_path / "data", max_upload=1000).start()
    try:
        with server.http() as c:
            r = c.put(f"{W}/files/big", content=b"x" * 1001)
            assert r.status_code == 413 and err(r) == "EFBIG"
            r = c.put(f"{W}/files/big", content=iter([b"x" * 600, b"y" * 600]))  # no Content-Length
            assert r.status_code == 413
            assert c.get(f"{W}/files/big").status_code == 404
            assert c.put(f"{W}/files/ok", content=b"x" * 1000).status_code == 201
    finally:
        server.stop()


def test_changes_pagination(live_server: LiveServer) -> None:
    with live_server.http() as c:
        for i in range(25):
            c.put(f"{W}/files/p{i:02d}", content=b"x")
        c.post(f"{W}/ops", json={"op": "mkdir", "path": "/ignored"})
        seen, after, pages = [], None, 0
        while True:
            params = {"limit": 10, "ignore": "ignored"}
            if after:
                params["after"] = after
            page = c.get(f"{W}/changes", params=params).json()
            seen += [e["path"] for e in page["entries"]]
            after = page["cursor"]
            pages += 1
            if not page["more"]:
                break
        assert seen == [f"/p{i:02d}" for i in range(25)] and pages == 3
        assert after == c.get(W).json()["cursor"]
        page = c.get(f"{W}/changes", params={"after": after}).json()
        assert page == {"entries": [], "cursor": after, "more": False}


def test_objects_and_push_over_http(live_server: LiveServer) -> None:
    data = b"chunk over http"
    with live_server.http() as c:
        assert c.post(f"{W}/objects/has", json={"hashes": [h(data)]}).json()["missing"] == [h(data)]
        r = c.put(f"{W}/objects/{h(data)}", content=b"wrong")
        assert r.status_code == 422 and err(r) == "EBADOBJECT"
        assert c.put(f"{W}/objects/{h(data)}", content=data).status_code == 201
        assert c.get(f"{W}/objects/{h(data)}").content == data
        assert c.get(f"{W}/objects/{h(b'nope')}").status_code == 404
        entry = {"path": "/pushed", "kind": "file", "mode": 0o100644, "mtime": 5.0, "size": len(data),
                 "hash": h(data), "chunks": [[h(data), len(data)]]}
        r = c.post(f"{W}/push", json={"changes": [entry], "base": None})
        assert r.status_code == 200 and r.json()["applied"] == ["/pushed"]
        assert c.get(f"{W}/files/pushed").content == data
        missing = {**entry, "path": "/other", "hash": h(b"zz"), "chunks": [[h(b"zz"), 2]], "size": 2}
        r = c.post(f"{W}/push", json={"changes": [missing]})
        assert r.status_code == 422 and r.json()["error"]["missing"] == [h(b"zz")]


def test_workspace_lifecycle(live_server: LiveServer) -> None:
    with live_server.http() as c:
        assert c.put("/api/workspaces/proj").status_code == 201
        assert c.put("/api/workspaces/proj").status_code == 200
        assert c.put("/api/workspaces/bad%20name").status_code == 400
        assert [w["name"] for w in c.get("/api/workspaces").json()["workspaces"]] == ["demo", "proj"]
        c.put("/api/workspaces/proj/files/x", content=b"x")
        info = c.get("/api/workspaces/proj").json()
        assert info["name"] == "proj" and info["rev"] == 1 and info["cursor"] == "1"
        c.put("/api/workspaces/proj/files/big", content=os.urandom(3 << 20))  # past what stays inline: packs
        store = live_server.data_dir / "workspaces" / "proj.db"
        assert any(store.with_name("proj.db-packs").iterdir())
        assert c.delete("/api/workspaces/proj").status_code == 204
        assert not any(store.parent.glob("proj.db*"))  # WAL, shm, lock and pack files went with it
        assert c.get("/api/workspaces/proj").status_code == 404
        assert c.delete("/api/workspaces/proj").status_code == 404
        assert c.put("/api/workspaces/proj").json()["rev"] == 0  # recreated empty
        assert c.get("/api/workspaces/proj/files/big").status_code == 404


def test_healthz_metrics_whoami(live_server: LiveServer) -> None:
    with live_server.http(token="") as anon:
        assert anon.get("/healthz").json()["protocol"] == [1]
        assert anon.get("/metrics").status_code == 401
    reader = live_server.token("demo", "read")
    with live_server.http(reader) as c:
        assert c.get("/metrics").status_code == 403
        me = c.get("/api/whoami").json()
        assert me["workspace"] == "demo" and me["scope"] == "read" and me["kind"] == "workspace"
    with live_server.http() as c:
        c.put(f"{W}/files/m", content=b"m")
        text = c.get("/metrics").text
        assert 'wsfs_http_requests_total{method="PUT",status="201"}' in text
        assert 'wsfs_op_seconds_count{op="put"}' in text
        assert "wsfs_ws_connections" in text


@pytest.mark.parametrize("path", ["../../server.db", "..%2F..%2Fserver.db", "a/../../../etc/passwd", "%2e%2e/%2e%2e/tokens"])
def test_paths_cannot_escape_the_workspace(live_server: LiveServer, path: str) -> None:
    with live_server.http() as c:
        c.put(f"{W}/files/secret-of-demo", content=b"demo")
        r = c.get(f"{W}/files/{path}")
        assert r.status_code in (400, 404)
        assert b"CREATE TABLE" not in r.content and b"root:" not in r.content
        c.put(f"{W}/files/{path}", content=b"evil")  # at worst lands inside some workspace
        assert c.get(f"{W}/files/secret-of-demo").content == b"demo"
        assert c.get("/api/whoami").status_code == 200  # the token table is intact
    assert (live_server.data_dir / "server.db").read_bytes()[:15] == b"SQLite format 3"
    assert sorted(p.name for p in live_server.data_dir.iterdir() if p.is_file()) == [
        "demo-token", "server.db", "server.db-shm", "server.db-wal"]


def test_head_static_demo_and_json_limit(tmp_path) -> None:
    server = LiveServer(tmp_path / "data", max_json=200).start()
    try:
        with server.http() as c:
            c.put(f"{W}/files/h.txt", content=b"12345")
            r = c.head(f"{W}/files/h.txt")
            assert r.status_code == 200 and r.headers["content-length"] == "5" and r.content == b""
            assert r.headers["etag"] == f'"{h(b"12345")}"'
            r = c.post(f"{W}/ops", json={"op": "mkdir", "path": "/" + "d" * 300})
            assert r.status_code == 413 and err(r) == "EMSGSIZE"
        with server.http(token="") as anon:  # the demo page itself holds no data: no token needed
            page = anon.get("/")
            assert page.status_code == 200 and "text/html" in page.headers["content-type"]
            assert anon.get("/api/workspaces/demo").status_code == 401
    finally:
        server.stop()


def test_client_leaving_mid_download_leaves_the_server_healthy(live_server: LiveServer) -> None:
    data = os.urandom(8 * 1024 * 1024)
    with live_server.http() as c:
        c.put(f"{W}/files/big.bin", content=data)
        for _ in range(5):
            with c.stream("GET", f"{W}/files/big.bin") as r:
                next(r.iter_bytes(65536))  # read a little, then hang up
        assert c.get(f"{W}/files/big.bin").content == data
        assert c.get(f"{W}/stat/big.bin").json()["size"] == len(data)


def test_demo_workspace_is_seeded_once_never_over_user_content(tmp_path) -> None:
    server = LiveServer(tmp_path / "data", seed_demo=True).start()
    try:
        with server.http() as c:
            assert c.get(f"{W}/ls", params={"prefix": "/"}).json()["paths"] == [
                "/README.md", "/img/gradient.png", "/notes/todo.md", "/src/hello.py"]
            readme = c.get(f"{W}/files/README.md").text
            assert "second window" in readme
            png = c.get(f"{W}/files/img/gradient.png")
            assert png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG\r\n\x1a\n")
            assert "def " in c.get(f"{W}/files/src/hello.py").text
            assert c.get(W).json()["rev"] == 1  # one commit for the whole seed
            # the user makes it theirs
            c.put(f"{W}/files/README.md", content=b"mine\n").raise_for_status()
            c.delete(f"{W}/files/notes/todo.md").raise_for_status()
            rev = c.get(W).json()["rev"]
    finally:
        server.stop()
    server = LiveServer(tmp_path / "data", seed_demo=True).start()  # a restart
    try:
        with server.http() as c:
            assert c.get(W).json()["rev"] == rev
            assert c.get(f"{W}/files/README.md").content == b"mine\n"
            assert c.get(f"{W}/files/notes/todo.md").status_code == 404
    finally:
        server.stop()


def test_a_demo_emptied_by_its_users_is_not_seeded_again(tmp_path) -> None:
    server = LiveServer(tmp_path / "data", seed_demo=True).start()
    try:
        with server.http() as c:
            for name in ("README.md", "img", "notes", "src"):
                c.delete(f"{W}/files/{name}", params={"recursive": 1}).raise_for_status()
    finally:
        server.stop()
    server = LiveServer(tmp_path / "data", seed_demo=True).start()
    try:
        with server.http() as c:
            assert c.get(f"{W}/readdir/").json()["entries"] == []
    finally:
        server.stop()


def test_a_locally_mounted_workspace_is_served_read_only(tmp_path):
    """`wsfs mount STORE.db` holds its store exclusively (vfs.storelock): the server still
    starts, serves reads, answers writes with 409 EBUSY (without its file paths), and
    writes again once the mount lets go."""
    data = tmp_path / "data"
    (data / "workspaces").mkdir(parents=True)
    store = str(data / "workspaces" / "demo.db")
    mount = vfs.Workspace(store, exclusive=True)  # what the mount daemon holds
    mount.write_file("/a.txt", b"from the mount")
    server = LiveServer(data, seed_demo=True).start()
    try:
        with server.http() as http:
            assert http.get("/api/workspaces/demo/files/a.txt").content == b"from the mount"
            refused = http.put("/api/workspaces/demo/files/b.txt", content=b"x")
            assert refused.status_code == 409
            error = refused.json()["error"]
            assert error["code"] == "EBUSY" and "mounted" in error["message"]
            assert store not in refused.text
            mount.close()  # unmounted
            assert http.put("/api/workspaces/demo/files/b.txt", content=b"x").status_code in (200, 201)
            assert http.get("/api/workspaces/demo/files/b.txt").content == b"x"
    finally:
        mount.close()
        server.stop()


def test_a_locally_mounted_workspace_cannot_be_deleted_from_under_the_mount(live_server: LiveServer) -> None:
    store = live_server.data_dir / "workspaces" / "proj.db"
    mount = vfs.Workspace(str(store), exclusive=True)  # what `wsfs mount proj.db` holds
    mount.write_file("/keep.txt", b"mine")
    try:
        with live_server.http() as http:
            assert http.get("/api/workspaces/proj/files/keep.txt").content == b"mine"
            refused = http.delete("/api/workspaces/proj")
            assert refused.status_code == 409 and refused.json()["error"]["code"] == "EBUSY"
            assert mount.read_file("/keep.txt") == b"mine" and store.exists()
            mount.close()  # unmounted
            assert http.delete("/api/workspaces/proj").status_code == 204
            assert not any(store.parent.glob("proj.db*"))  # the lock file goes too
    finally:
        mount.close()



@contextmanager
def _rewritten(live_server: LiveServer, path: str, contents: list[bytes], rounds: int) -> Iterator[None]:
    """Another client rewrites `path` with each of `contents` in turn while the block runs (at most
    `rounds` writes: bounded; stopped as soon as the block ends)."""
    stop = threading.Event()

    def rewrite() -> None:
        with live_server.http() as w:
            for i in range(rounds):
                if stop.is_set():
                    return
                w.put(f"{W}/files{path}", content=contents[i % len(contents)])

    writer = threading.Thread(target=rewrite)
    writer.start()
    try:
        yield
    finally:
        stop.set()
        writer.join(timeout=60)


def test_a_small_file_rewritten_while_it_is_read_is_served_whole_and_matching_its_etag(
        live_server: LiveServer) -> None:
    """The stat (ETag, Content-Length) and the bytes of a small GET come from one version even while
    another client rewrites the file with contents of other lengths (seen torn once: 27 bytes
    announced, 20 sent, the connection cut)."""
    contents = [b"short", b"a somewhat longer content!!", b"x" * 300, b""]
    with live_server.http() as c:
        assert c.put(f"{W}/files/busy.txt", content=contents[0]).status_code == 201
        served = 0
        with _rewritten(live_server, "/busy.txt", contents, 2000):
            for _ in range(300):
                r = c.get(f"{W}/files/busy.txt")
                if r.status_code == 503:
                    assert err(r) == "EAGAIN"  # rewritten under every attempt: refused, never torn
                    continue
                assert r.status_code == 200
                assert r.content in contents
                assert int(r.headers["content-length"]) == len(r.content)
                assert r.headers["etag"] == f'"{h(r.content)}"'
                served += 1
        assert served > 0


def test_a_big_file_rewritten_while_it_is_streamed_is_never_sent_under_another_version_s_etag(
        live_server: LiveServer) -> None:
    """Big files stream after their headers: a rewrite between the two cuts the response (the client
    reads again) and never sends another version's bytes under the announced ETag and length."""
    mib = 1024 * 1024
    contents = [os.urandom(2 * mib), os.urandom(2 * mib), os.urandom(3 * mib)]
    with live_server.http() as c:
        assert c.put(f"{W}/files/big.bin", content=contents[0]).status_code == 201
        whole = 0
        with _rewritten(live_server, "/big.bin", contents, 300):
            for _ in range(40):
                try:
                    r = c.get(f"{W}/files/big.bin")
                except httpx.TransportError:
                    continue  # cut: the file moved after the headers went out
                if r.status_code == 503:
                    continue
                assert r.status_code == 200
                assert r.headers["etag"] == f'"{h(r.content)}"'
                assert int(r.headers["content-length"]) == len(r.content)
                whole += 1
        assert whole > 0
