"""A hostile server cannot make a replica write outside its directory.

The fake server below speaks protocol v1 over a real WebSocket on loopback
(it has to lie, so it cannot be the real server) and sends, inlined in one
`changes` message, every escape we could think of: `..` components,
absolute-looking and empty names, NUL bytes, the replica's own `.wsfs`,
symlinks pointing out (absolute, climbing with `..`), and files routed
through symlinks — one the server creates and one a local user created.
"""

from __future__ import annotations

import base64
import os
import uuid

import blake3
import orjson
from websockets.asyncio.server import serve

from client_py import Replica


def _file(path: str, data: bytes, rev: int) -> dict:
    h = blake3.blake3(data).hexdigest()
    return {"path": path, "kind": "file", "rev": rev, "cursor": f"{rev}:{path}", "mode": 0o100644,
            "mtime": 1.0, "size": len(data), "hash": h, "chunks": [[h, len(data)]],
            "data": base64.b64encode(data).decode()}


def _link(path: str, target: str, rev: int) -> dict:
    return {"path": path, "kind": "symlink", "rev": rev, "cursor": f"{rev}:{path}", "mode": 0o120777,
            "mtime": 1.0, "size": len(target), "target": target, "chunks": []}


def _dir(path: str, rev: int) -> dict:
    return {"path": path, "kind": "dir", "rev": rev, "cursor": f"{rev}:{path}", "mode": 0o40755, "mtime": 1.0,
            "size": 0, "chunks": []}


def hostile_entries(tag: str) -> list[dict]:
    evil = f"PWNED-{tag}".encode()
    return [
        _file("/../escaped-dotdot.txt", evil, 1),
        _file("/a/../../escaped-mid.txt", evil, 2),
        _file(f"/../../../../../../tmp/wsfs-hostile-{tag}", evil, 3),
        _file("//escaped-empty-name.txt", evil, 4),
        _file("/nul\x00name", evil, 5),
        _file("/.wsfs/state.db", evil, 6),
        _link("/abs-link", "/tmp", 7),
        _link("/climb-link", "../../..", 8),
        _link("/sneaky-link", "sub/../../..", 9),
        _file("/abs-link/escaped-via-abs-link.txt", evil, 10),
        _link("/inside-link", "realdir", 11),
        _dir("/realdir", 12),
        _file("/inside-link/through-link.txt", evil, 13),
        _file("/user-link/escaped-via-user-link.txt", evil, 14),
        _file("/user-link", evil, 15),  # replacing the link must not write through it
        {"path": "relative.txt", "kind": "file", "rev": 16, "data": base64.b64encode(evil).decode()},
        {"path": "/weird", "kind": "socket", "rev": 17},
        _file("/fine.txt", b"a normal file", 18),
    ]


class FakeServer:
    def __init__(self, entries: list[dict]):
        self.entries = entries
        self.pushed: list[dict] = []
        self.subscribers: list = []

    async def handler(self, ws) -> None:
        hello = orjson.loads(await ws.recv())
        assert hello["type"] == "hello"
        await ws.send(orjson.dumps({"type": "hello", "protocol": 1, "server": "evil/6.6.6", "workspace": "demo",
                                    "session": "s1", "scope": "write", "rev": 18, "cursor": "18", "limits": {}}).decode())
        await ws.send(orjson.dumps({"type": "presence", "op": "sync", "peers": []}).decode())
        async for frame in ws:
            if isinstance(frame, bytes):
                continue
            msg = orjson.loads(frame)
            kind, rid = msg.get("type"), msg.get("id")
            if kind == "subscribe":
                await ws.send(orjson.dumps({"type": "ok", "id": rid, "cursor": "0"}).decode())
                await ws.send(orjson.dumps({"type": "changes", "sub": rid, "cursor": "18", "coalesced": True,
                                            "entries": self.entries}).decode())
                await ws.send(orjson.dumps({"type": "caught_up", "sub": rid, "cursor": "18"}).decode())
                self.subscribers.append((ws, rid))
            elif kind == "has":
                await ws.send(orjson.dumps({"type": "ok", "id": rid, "missing": []}).decode())
            elif kind == "push":
                self.pushed.extend(msg["changes"])
                paths = [c["path"] for c in msg["changes"]]
                await ws.send(orjson.dumps({"type": "ok", "id": rid, "applied": paths, "unchanged": [],
                                            "conflicts": [], "rev": 19}).decode())
                for sub_ws, sub in self.subscribers:  # the live echo a real server sends
                    await sub_ws.send(orjson.dumps({"type": "changes", "sub": sub, "cursor": "19",
                                                    "entries": []}).decode())
            elif rid is not None:
                await ws.send(orjson.dumps({"type": "ok", "id": rid}).decode())


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def snapshot(root) -> dict[str, bytes | str]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            out[os.path.relpath(full, root)] = os.readlink(full) if os.path.islink(full) else (
                "dir" if os.path.isdir(full) else _read(full))
    return out


async def test_hostile_server_writes_nothing_outside(tmp_path):
    tag = uuid.uuid4().hex
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_bytes(b"keep me")
    local = tmp_path / "box" / "rep"
    local.mkdir(parents=True)
    os.symlink(str(outside), local / "user-link")  # a user's own link out of the replica
    before_outside = snapshot(tmp_path / "outside")
    fake = FakeServer(hostile_entries(tag))
    async with serve(fake.handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        async with Replica(f"http://127.0.0.1:{port}", "demo", local, token="t", inline_max=1024) as replica:
            summary = await replica.sync_once()

    # nothing appeared or changed outside the replica
    assert snapshot(tmp_path / "outside") == before_outside
    assert sorted(os.listdir(tmp_path)) == ["box", "outside"]
    assert os.listdir(tmp_path / "box") == ["rep"]
    assert not os.path.exists(f"/tmp/wsfs-hostile-{tag}")
    # the one honest file arrived; the inside link was created as a link
    assert (local / "fine.txt").read_bytes() == b"a normal file"
    assert os.readlink(local / "inside-link") == "realdir"
    # evil bytes only where a file may legitimately be: replacing the user's link, inside the replica
    # (a refused link's name is then just a real directory inside the replica)
    assert {k for k, v in snapshot(local).items() if isinstance(v, bytes) and b"PWNED" in v} == {
        "user-link", "abs-link/escaped-via-abs-link.txt"}
    assert not os.path.islink(local / "abs-link")
    assert os.readlink(local / summary.conflicts[0].lstrip("/")) == str(outside)  # the user's link kept aside
    for name in ("climb-link", "sneaky-link"):
        assert not os.path.lexists(local / name)
    # the replica's own state was not overwritten
    assert (local / ".wsfs" / "state.db").read_bytes()[:16] == b"SQLite format 3\x00"
    # and every refusal was reported
    refused = {path for path, _reason in summary.refused}
    for path in ("/../escaped-dotdot.txt", "/a/../../escaped-mid.txt", "//escaped-empty-name.txt", "/.wsfs/state.db",
                 "/abs-link", "/climb-link", "/sneaky-link", "/inside-link/through-link.txt",
                 "/user-link/escaped-via-user-link.txt"):
        assert path in refused, (path, refused)


async def test_hostile_chunk_bytes_are_rejected(tmp_path):
    """A chunk whose bytes do not hash to its id is never written."""
    good = b"x" * 100_000
    h = blake3.blake3(good).hexdigest()
    entry = {"path": "/big", "kind": "file", "rev": 1, "cursor": "1:/big", "mode": 0o100644, "mtime": 1.0,
             "size": len(good), "hash": h, "chunks": [[h, len(good)]]}

    async def handler(ws):
        await ws.recv()
        await ws.send(orjson.dumps({"type": "hello", "protocol": 1, "server": "evil", "workspace": "demo",
                                    "session": "s", "scope": "read", "rev": 1, "cursor": "1"}).decode())
        async for frame in ws:
            msg = orjson.loads(frame)
            if msg["type"] == "subscribe":
                await ws.send(orjson.dumps({"type": "ok", "id": msg["id"], "cursor": "0"}).decode())
                await ws.send(orjson.dumps({"type": "changes", "sub": msg["id"], "cursor": "1",
                                            "entries": [entry]}).decode())
            elif msg["type"] == "get":
                await ws.send(b"\x02" + bytes.fromhex(h) + b"y" * 100_000)  # wrong bytes
                await ws.send(orjson.dumps({"type": "ok", "id": msg["id"], "missing": []}).decode())

    local = tmp_path / "rep"
    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        async with Replica(f"http://127.0.0.1:{port}", "demo", local, token="t") as replica:
            try:
                await replica.sync_once()
            except Exception as e:  # the session is torn down: a lying server gets nothing written
                assert "hash" in str(e) or "lost" in str(e)
            else:
                raise AssertionError("a corrupt chunk was accepted")
    assert not (local / "big").exists()


async def test_hostile_modes_lose_setuid_setgid_and_sticky(tmp_path):
    """A server-sent mode of 0o104777 must not plant a setuid file: only permission bits apply."""
    data = b"#!/bin/sh\necho pwned\n"
    suid = {**_file("/suid.sh", data, 1), "mode": 0o104777}
    sgid = {**_file("/sgid.sh", data, 2), "mode": 0o102755}
    sticky_dir = {**_dir("/shared", 3), "mode": 0o41777}
    sgid_dir = {**_dir("/group", 4), "mode": 0o42775}
    plain = {**_file("/plain.txt", b"x", 5), "mode": 0o100640}
    fake = FakeServer([suid, sgid, sticky_dir, sgid_dir, plain])
    local = tmp_path / "rep"
    async with serve(fake.handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        async with Replica(f"http://127.0.0.1:{port}", "demo", local, token="t", inline_max=1024) as replica:
            await replica.sync_once()
    modes = {name: os.lstat(local / name).st_mode & 0o7777 for name in ("suid.sh", "sgid.sh", "shared", "group",
                                                                       "plain.txt")}
    assert (local / "suid.sh").read_bytes() == data
    assert modes == {"suid.sh": 0o777, "sgid.sh": 0o755, "shared": 0o777, "group": 0o775, "plain.txt": 0o640}
    assert fake.pushed == []  # dropping the bits is not a local edit to push back
