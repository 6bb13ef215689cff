"""A big PUT's chunks are stored under the ids its cutter thread computed (`_Arriving`, a staged
pack adopted by the commit, `StoredChunks(staged=...)`): every id the store catalogued is the
BLAKE3 of the bytes it serves under it. Ids that arrive with their bytes (an object upload) are
still checked, and only the documented in-process callers hand the store ids it does not check."""

from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path

import blake3

from server.http_files import STORE_AS_IT_ARRIVES
import vfs
from server_fixtures import LiveServer, serving

W = "/api/workspaces/demo"
ROOT = Path(__file__).resolve().parent.parent
# Where ids a caller computed itself are taken as given (docs/server.md, vfs.Sync.put_objects,
# vfs.content.StoredChunks): the pattern each passes them by -> the files that may.
TRUSTED_CALLERS = {r"hashed\s*=\s*True": {"client_py/mount/remote_cache.py", "server/http_files.py"},
                   r"StagedPack\(": {"server/http_files.py"}}


def test_every_chunk_of_a_big_put_is_served_under_its_own_hash(live_server: LiveServer) -> None:
    data = os.urandom(STORE_AS_IT_ARRIVES + (5 << 20) + 4321)  # three batches, the last one short
    with live_server.http() as c:
        r = c.put(f"{W}/files/big.bin", content=data, headers={"Content-Length": str(len(data))})
        assert r.status_code == 201, r.text
        chunks = c.get(f"{W}/entry/big.bin").json()["chunks"]
        assert len(chunks) > 100
        joined = []
        for digest, size in chunks:
            got = c.get(f"{W}/objects/{digest}")
            assert got.status_code == 200, digest
            assert len(got.content) == size and blake3.blake3(got.content).hexdigest() == digest
            joined.append(got.content)
        assert b"".join(joined) == data


def test_an_uploaded_object_under_a_wrong_id_is_refused(live_server: LiveServer) -> None:
    data, other = os.urandom(70000), os.urandom(70000)
    wrong = blake3.blake3(other).hexdigest()
    with live_server.http() as c:
        r = c.put(f"{W}/objects/{wrong}", content=data)
        assert r.status_code == 422 and r.json()["error"]["code"] == "EBADOBJECT"
        assert c.post(f"{W}/objects/has", json={"hashes": [wrong]}).json()["missing"] == [wrong]


def test_only_the_documented_callers_pass_their_own_ids() -> None:
    """`hashed=True` and a staged pack skip the store's check of an id: a caller passing ids that
    came with their bytes would let a client store bytes under another content's id."""
    for pattern, allowed in TRUSTED_CALLERS.items():
        found = set()
        for tree in ("server", "client_py"):
            for path in (ROOT / tree).rglob("*.py"):
                if re.search(pattern, path.read_text()):
                    found.add(path.relative_to(ROOT).as_posix())
        assert found == allowed, pattern


def test_an_upload_cut_short_leaves_no_staged_file(live_server: LiveServer) -> None:
    """The client leaves after 12 MiB of 20 (three batches cut and appended to its staged pack):
    the staged file is deleted, and the retry is stored whole."""
    data = os.urandom(20 << 20)
    packs = live_server.data_dir / "workspaces" / "demo.db-packs"
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=30) as sock:
        sock.sendall((f"PUT {W}/files/cut.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {live_server.admin}\r\n"
                      f"Content-Length: {len(data)}\r\n\r\n").encode() + data[: 12 << 20])
        deadline = time.monotonic() + 20
        while not (packs.is_dir() and any(p.name.startswith("staged-") for p in packs.iterdir())):
            assert time.monotonic() < deadline, "the upload never staged its first batch"
            time.sleep(0.01)
    deadline = time.monotonic() + 20
    while any(p.name.startswith("staged-") for p in packs.iterdir()):
        assert time.monotonic() < deadline, sorted(p.name for p in packs.iterdir())
        time.sleep(0.02)
    with live_server.http() as c:
        assert c.get(f"{W}/files/cut.bin").status_code == 404
        r = c.put(f"{W}/files/cut.bin", content=data)
        assert r.status_code == 201 and r.headers["etag"] == f'"{blake3.blake3(data).hexdigest()}"'
        assert c.get(f"{W}/files/cut.bin").content == data
    assert not any(p.name.startswith("staged-") for p in packs.iterdir())


def test_two_big_puts_at_once_each_get_their_own_pack(live_server: LiveServer) -> None:
    """Two uploads stage side by side (each its own file) and are adopted one after the other:
    both files read back exactly, and no staged file is left."""
    import concurrent.futures

    bodies = {f"/f{i}.bin": os.urandom(STORE_AS_IT_ARRIVES + (3 << 20) + i) for i in range(2)}

    def put(path: str) -> int:
        with live_server.http() as c:
            return c.put(f"{W}/files{path}", content=bodies[path]).status_code

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        assert list(pool.map(put, bodies)) == [201, 201]
    with live_server.http() as c:
        for path, data in bodies.items():
            assert c.get(f"{W}/files{path}").content == data
            assert c.get(f"{W}/entry{path}").json()["hash"] == blake3.blake3(data).hexdigest()
    packs = live_server.data_dir / "workspaces" / "demo.db-packs"
    assert not any(p.name.startswith("staged-") for p in packs.iterdir())


def test_a_store_without_packs_takes_a_big_put_batch_by_batch(tmp_path: Path) -> None:
    """A workspace whose store keeps chunks inside SQLite (made before packs) stages nothing:
    its chunks go to the writer batch by batch, under their own hashes, and the file is exact."""
    workspaces = tmp_path / "data" / "workspaces"
    workspaces.mkdir(parents=True)
    vfs.Workspace(str(workspaces / "old.db"), chunk_backend="sqlite").close()
    data = os.urandom(STORE_AS_IT_ARRIVES + (5 << 20) + 99)
    for server in serving(LiveServer(tmp_path / "data").start()):
        with server.http() as c:
            r = c.put("/api/workspaces/old/files/big.bin", content=data)
            assert r.status_code == 201, r.text
            assert c.get("/api/workspaces/old/files/big.bin").content == data
            chunks = c.get("/api/workspaces/old/entry/big.bin").json()["chunks"]
            for digest, _ in chunks[:: max(1, len(chunks) // 20)]:
                got = c.get(f"/api/workspaces/old/objects/{digest}").content
                assert blake3.blake3(got).hexdigest() == digest
    assert not (workspaces / "old.db-packs").exists()
    with vfs.Workspace(str(workspaces / "old.db")) as ws:
        assert ws.read_file("/big.bin") == data
