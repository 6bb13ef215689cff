"""Chunk ids derived from hashes (schema v11, `vfs/chunkids.py`): the migration of stores made
before it, a crash in the middle of that migration, and two hashes that name the same id.

The old stores are made by this wsfs and taken back to v10 by `vfs_old_stores.downgrade_to_v10`
(sequential chunk ids, `chunks.hash UNIQUE`, no `chunk_ids`), so no git history is needed. For
the files these tests write, it leaves the schema, chunk ids, catalogue rows and chunk lists the
wsfs of commit b2cfafa (schema v10) writes itself, both backends (compared when it was written).
A crash is a SIGKILL the migrating process sends itself from SQLite's progress handler, at
chosen points inside the migration's transaction. A collision of two 63-bit hash prefixes cannot
be found by search, so the tests give a chunk's id to another chunk the way the store does when
one happens (a row at that id, named in `chunk_ids`).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import blake3

import vfs
from vfs import chunkids, chunks, schema
from vfs_old_stores import downgrade_to_v10, schema_version

ROOT = Path(__file__).resolve().parent.parent


def _contents(n_small: int) -> dict[str, bytes]:
    rng = random.Random(14)
    files = {
        "/tiny": b"hello",
        "/tiny-again": b"hello",  # the same chunk: one catalogue row
        "/mid": rng.randbytes(5000),  # inline in `chunk_data`
        "/big": rng.randbytes(3 << 20),  # past the 1 MiB spill: pack files (with the packs backend)
    }
    files.update({f"/many/f{i:05d}": rng.randbytes(100) for i in range(n_small)})
    return files


def _make_old_store(store: Path, files: dict[str, bytes], backend: str) -> None:
    """A v10 store: `files`, an overwrite kept in history, a hard link, a rename; no chunk at its hash's id."""
    with vfs.Workspace(store, chunk_backend=backend) as ws:
        ws.mkdir("/many")
        ws.write_file("/tiny", b"first version")
        for path, data in files.items():
            ws.write_file(path, data)
        ws.link("/mid", "/mid-link")
        ws.write_file("/moved-away", b"renamed later")
        ws.rename("/moved-away", "/moved")
    conn = sqlite3.connect(store)
    try:
        downgrade_to_v10(conn)
        conn.commit()
        rows = conn.execute("SELECT id, hash FROM chunks").fetchall()
    finally:
        conn.close()
    assert sorted(chunk_id for chunk_id, _ in rows) == list(range(1, len(rows) + 1))  # as a v10 wsfs numbered them
    assert not any(chunk_id == chunkids.natural_id(digest) for chunk_id, digest in rows)  # each needs `chunk_ids`


def _check_store(ws: vfs.Workspace, files: dict[str, bytes], *, history: bool = True) -> None:
    """Every file reads as written, with its exact content id; history, links and renames hold."""
    for path, data in files.items():
        assert ws.read_file(path) == data, path
        assert ws.stat(path).hash == blake3.blake3(data).hexdigest(), path
    assert ws.read_file("/mid-link") == files["/mid"]
    assert ws.read_file("/moved") == b"renamed later"
    if history:
        first = [v.rev for v in ws.history("/tiny")][-1]
        assert ws.read_file("/tiny", rev=first) == b"first version"


def test_a_store_made_before_v11_opens_migrated_and_keeps_working(tmp_path: Path) -> None:
    files = _contents(50)
    for backend in ("packs", "sqlite"):
        store = tmp_path / backend / "s.db"
        store.parent.mkdir()
        _make_old_store(store, files, backend)
        conn = sqlite3.connect(store)
        assert schema_version(store) == 10 and conn.execute("PRAGMA index_list(chunks)").fetchall()  # the hash index
        old_rows = dict(conn.execute("SELECT hash, id FROM chunks"))
        conn.close()
        with vfs.Workspace(store) as ws:
            conn = ws._db.conn
            assert conn.execute("PRAGMA index_list(chunks)").fetchall() == []
            assert dict(conn.execute("SELECT hash, id FROM chunks")) == old_rows  # same ids: lists untouched
            assert dict(conn.execute("SELECT hash, id FROM chunk_ids")) == old_rows
            _check_store(ws, files)
            # dedup finds the old chunks by hash: rewriting their bytes adds no catalogue row
            ws.write_file("/copy-of-big", files["/big"])
            ws.write_file("/copy-of-tiny", b"hello")
            assert conn.execute("SELECT count(*) FROM chunks").fetchone()[0] == len(old_rows)
            # the wire's objects, by hash
            hexes = [h.hex() for h in old_rows]
            assert ws.has_objects(hexes) == set(hexes)
            assert {h: blake3.blake3(data).hexdigest() for h, data in ws.read_objects(hexes)} == {h: h for h in hexes}
            # a new chunk goes to its hash's id, and gc forgets old and new alike
            ws.write_file("/new", b"written after the migration")
            new_hash = blake3.blake3(b"written after the migration").digest()
            assert chunkids.find(conn, new_hash) == chunkids.natural_id(new_hash)
            for path in ("/new", "/big", "/copy-of-big"):
                ws.unlink(path)
            ws.history_keep, ws.history_days = 0, 0  # no version keeps a chunk of a deleted file
            ws.gc()
            big_hashes = {e.hash for e in chunks.unpack(_list_of(files["/big"]))}
            left = {row[0] for row in conn.execute("SELECT hash FROM chunks")}
            assert not big_hashes & left and new_hash not in left
            assert not big_hashes & {row[0] for row in conn.execute("SELECT hash FROM chunk_ids")}
            _check_store(ws, {p: d for p, d in files.items() if p != "/big"}, history=False)
        assert schema_version(store) == schema.SCHEMA_VERSION


def _list_of(data: bytes) -> bytes:
    """The packed chunk list `data` cuts into (ids left 0: only the hashes are used)."""
    return chunks.pack(chunks.ChunkEntry(blake3.blake3(p).digest(), len(p), 0) for p in chunks.cut(data))


_MIGRATE_AND_DIE = textwrap.dedent("""
    import os, signal, sqlite3, sys
    from vfs import schema
    store, die_at = sys.argv[1], int(sys.argv[2])
    conn = sqlite3.connect(store, isolation_level=None)
    schema.configure(conn, readonly=False)
    calls = [0]
    def tick():
        calls[0] += 1
        if calls[0] == die_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return 0
    conn.set_progress_handler(tick, 200)
    schema.migrate(conn)
    print(calls[0])
    """)


def test_a_crash_during_the_migration_leaves_a_store_that_opens(tmp_path: Path) -> None:
    """SIGKILL at five points inside the v10 -> v11 migration: the store is still v10 after each,
    and opens (migrated then) with every file, history entry and link intact."""
    files = _contents(2000)
    original = tmp_path / "original" / "s.db"
    original.parent.mkdir()
    _make_old_store(original, files, "packs")

    def copy(name: str) -> Path:
        into = tmp_path / name
        shutil.copytree(original.parent, into)
        return into / "s.db"

    def migrate(store: Path, die_at: int) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", _MIGRATE_AND_DIE, str(store), str(die_at)], cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300)

    whole = migrate(copy("calibrate"), 0)  # never dies: counts the progress handler's calls
    assert whole.returncode == 0, whole.stderr
    total = int(whole.stdout)
    assert total >= 20, total  # the migration is long enough to be cut at five distinct points
    for n, fraction in enumerate((0.05, 0.3, 0.5, 0.7, 0.95)):
        store = copy(f"crash{n}")
        killed = migrate(store, max(1, int(total * fraction)))
        assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr)
        assert schema_version(store) == 10  # the migration's one transaction never committed
        with vfs.Workspace(store) as ws:
            _check_store(ws, files)
            ws.write_file("/after-the-crash", b"x")
        assert schema_version(store) == schema.SCHEMA_VERSION


def _give_id_away(store: Path, chunk_id: int, data: bytes) -> bytes:
    """What a collision leaves: another chunk (`data`) at `chunk_id`, named in `chunk_ids` (it is
    not at its own hash's id), written by another connection as another writer would. Returns
    that chunk's hash."""
    digest = blake3.blake3(data).digest()
    conn = sqlite3.connect(store, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO chunks(id, hash, size, created, data) VALUES(?, ?, ?, ?, ?)",
                     (chunk_id, digest, len(data), time.time() - 3600, data))
        conn.execute("INSERT INTO chunk_ids(hash, id) VALUES(?, ?)", (digest, chunk_id))
        conn.execute("COMMIT")
    finally:
        conn.close()
    return digest


def _rows_of(conn: sqlite3.Connection, digest: bytes) -> list[int]:
    return [row[0] for row in conn.execute("SELECT id FROM chunks WHERE hash = ?", (digest,))]


def test_a_chunk_whose_id_another_chunk_holds_is_stored_once_elsewhere(tmp_path: Path) -> None:
    """Tiny, inline and packed chunks whose hash's id is taken land at a free id named in
    `chunk_ids`; reads, content ids, dedup, the wire's objects and gc all find them there, and
    once the other chunk is collected a new write of theirs does not make a second row."""
    rng = random.Random(3)
    tiny, mid, big = b"collide-me", rng.randbytes(5000), rng.randbytes(3 << 20)
    big_pieces = [bytes(p) for p in chunks.cut(big)]
    packed = big_pieces[len(big_pieces) // 2]  # past the 1 MiB spill: appended to a pack
    with vfs.Workspace(tmp_path / "s.db") as ws:
        conn = ws._db.conn
        ws.write_file("/before", b"a write before: this connection has looked at `chunk_ids` already")
        # A chunk another writer placed away from its hash's id (as a migration does), the id free:
        # this connection's next write of those bytes finds it, and makes no second row there.
        displaced = b"displaced: kept elsewhere"
        _give_id_away(tmp_path / "s.db", 12345, displaced)
        ws.write_file("/displaced", displaced)
        assert _rows_of(conn, blake3.blake3(displaced).digest()) == [12345]
        assert ws.read_file("/displaced") == displaced
        taken = {}
        for data in (tiny, mid, packed):
            natural = chunkids.natural_id(blake3.blake3(data).digest())
            taken[data] = _give_id_away(tmp_path / "s.db", natural, b"squatter " + data[:8])
        ws.write_file("/tiny", tiny)
        ws.write_file("/mid", mid)
        ws.write_file("/big", big)
        for data in (tiny, mid, packed):
            digest = blake3.blake3(data).digest()
            (where,) = _rows_of(conn, digest)
            assert where != chunkids.natural_id(digest)
            assert conn.execute("SELECT id FROM chunk_ids WHERE hash = ?", (digest,)).fetchone() == (where,)
        assert conn.execute("SELECT pack FROM chunks WHERE hash = ?", (blake3.blake3(packed).digest(),)).fetchone()[0]
        for path, data in (("/tiny", tiny), ("/mid", mid), ("/big", big)):
            assert ws.read_file(path) == data and ws.stat(path).hash == blake3.blake3(data).hexdigest()
            ws.write_file(path + "-again", data)  # dedup: no second row
        hexes = [blake3.blake3(d).hexdigest() for d in (tiny, mid, packed)]
        assert ws.has_objects(hexes) == set(hexes)
        assert dict(ws.read_objects(hexes)) == {h: d for h, d in zip(hexes, (tiny, mid, packed))}
        ws.gc()  # the squatters are referenced by nothing: their rows and `chunk_ids` entries go
        for squatter in taken.values():
            assert _rows_of(conn, squatter) == []
            assert conn.execute("SELECT 1 FROM chunk_ids WHERE hash = ?", (squatter,)).fetchone() is None
        # Their ids are free now; the displaced chunks stay where they are, found through `chunk_ids`
        for path, data in (("/tiny", tiny), ("/mid", mid), ("/big", big)):
            ws.write_file(path + "-third", data)
            assert ws.read_file(path + "-third") == data
        ws.put_objects([(None, packed)])  # the wire's upload path, too
        for data in (tiny, mid, packed):
            assert len(_rows_of(conn, blake3.blake3(data).digest())) == 1
        for path in ("/tiny", "/mid", "/big"):
            for suffix in ("", "-again", "-third"):
                ws.unlink(path + suffix)
        ws.unlink("/displaced")
        ws.history_keep, ws.history_days = 0, 0  # no version keeps a chunk of a deleted file
        ws.gc()
        assert conn.execute("SELECT count(*) FROM chunk_ids").fetchone()[0] == 0
        for data in (tiny, mid, packed):
            assert _rows_of(conn, blake3.blake3(data).digest()) == []


def test_a_new_store_has_no_hash_index_and_a_new_chunk_sits_at_its_hash_id(tmp_path: Path) -> None:
    with vfs.Workspace(tmp_path / "s.db") as ws:
        ws.write_file("/a", b"a tiny file")
        ws.write_file("/b", random.Random(1).randbytes(200_000))
        conn = ws._db.conn
        assert conn.execute("PRAGMA index_list(chunks)").fetchall() == []
        rows = conn.execute("SELECT id, hash FROM chunks").fetchall()
        assert len(rows) > 2 and all(chunk_id == chunkids.natural_id(digest) for chunk_id, digest in rows)
        assert conn.execute("SELECT count(*) FROM chunk_ids").fetchone()[0] == 0
