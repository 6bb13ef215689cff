"""A big PUT's chunks are stored under the ids its cutter thread computed (`_Arriving`,
`put_objects(hashed=True)`): every id the store catalogued is the BLAKE3 of the bytes it serves
under it. Ids that arrive with their bytes (an object upload) are still checked, and only the
documented in-process callers pass `hashed=True`."""

from __future__ import annotations

import os
import re
from pathlib import Path

import blake3

from server.http_files import STORE_AS_IT_ARRIVES
from server_fixtures import LiveServer

W = "/api/workspaces/demo"
ROOT = Path(__file__).resolve().parent.parent
# Where ids a caller computed itself are taken as given (docs/server.md, vfs.Sync.put_objects).
TRUSTED_CALLERS = {"server/http_files.py", "client_py/mount/remote_cache.py"}


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
    """`hashed=True` skips the store's check of an id: a caller passing ids that came with their
    bytes would let a client store bytes under another content's id."""
    found = set()
    for tree in ("server", "client_py"):
        for path in (ROOT / tree).rglob("*.py"):
            if re.search(r"hashed\s*=\s*True", path.read_text()):
                found.add(path.relative_to(ROOT).as_posix())
    assert found == TRUSTED_CALLERS
