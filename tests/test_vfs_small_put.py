"""A server's small write (`put_file` of ~100 B) with fewer statements, nothing given up (issues 14, 18).

A chunk already stored is found by its insert alone where `chunk_ids` is empty (no lookup after
it), a prefix collision there still lands elsewhere; an identical rewrite of a small file writes
no chunk statement and is still a version, a change and the same content id; authors are
recorded as before, through `as_author` or the settable `Workspace.author`.
"""

from __future__ import annotations

import time
from pathlib import Path

import blake3
import pytest

import vfs
from vfs import chunkids


def _traced(ws: vfs.Workspace) -> list[str]:
    statements: list[str] = []
    ws._db.conn.set_trace_callback(statements.append)
    return statements


def _chunk_statements(statements: list[str]) -> list[str]:
    return [s for s in statements if any(t in s for t in ("INTO chunks", "FROM chunks", "chunk_ids"))]


def test_content_already_stored_is_found_by_its_insert_alone(tmp_path: Path) -> None:
    data = b"the same hundred bytes, written under two names" * 2
    with vfs.Workspace(tmp_path / "s.db") as ws:
        ws.put_file("/a", data)
        statements = _traced(ws)
        st, created = ws.put_file("/b", data)
        ws._db.conn.set_trace_callback(None)
        assert created and st.hash == blake3.blake3(data).hexdigest()
        assert len(_chunk_statements(statements)) == 1, statements  # the insert; no lookup after it
        digest = blake3.blake3(data).digest()
        rows = ws._db.conn.execute("SELECT id FROM chunks WHERE hash = ?", (digest,)).fetchall()
        assert rows == [(chunkids.natural_id(digest),)]  # one row: dedup
        assert ws.read_file("/b") == data and ws.stat("/a").hash == st.hash


def test_a_prefix_collision_where_chunk_ids_is_empty_is_placed_elsewhere(tmp_path: Path) -> None:
    """Another chunk's hash shares our 63-bit prefix and sits at its own id; this writer knows
    `chunk_ids` is empty (it inserts unguarded): the insert is refused, the chunk goes to a free
    id named in `chunk_ids`, and the next write of the same bytes finds it there."""
    data = b"a chunk whose id is taken by another hash"
    digest = blake3.blake3(data).digest()
    other = digest[:8] + bytes(24)  # the same natural id, another hash
    with vfs.Workspace(tmp_path / "s.db") as ws:
        ws.write_file("/first", b"this connection has asked chunk_ids once")
        with ws.transaction():  # our own commit: data_version does not move, the writer stays unguarded
            ws._db.dml("INSERT INTO chunks(id, hash, size, created, data) VALUES(?, ?, ?, ?, ?)",
                       (chunkids.natural_id(digest), other, 3, time.time(), b"abc"))
        assert not ws._db.chunks._displaced
        st = ws.write_file("/x", data)
        conn = ws._db.conn
        (where,) = [r[0] for r in conn.execute("SELECT id FROM chunks WHERE hash = ?", (digest,))]
        assert where != chunkids.natural_id(digest)
        assert conn.execute("SELECT id FROM chunk_ids WHERE hash = ?", (digest,)).fetchone() == (where,)
        assert conn.execute("SELECT hash FROM chunks WHERE id = ?", (chunkids.natural_id(digest),)).fetchone() == (other,)
        assert ws.read_file("/x") == data and st.hash == digest.hex()
        ws.write_file("/y", data)  # dedup through `chunk_ids`: no second row
        assert conn.execute("SELECT count(*) FROM chunks WHERE hash = ?", (digest,)).fetchone() == (1,)
        assert ws.read_file("/y") == data


def test_an_identical_small_rewrite_writes_no_chunk_and_is_still_a_version(tmp_path: Path) -> None:
    data = b"unchanged small file"
    with vfs.Workspace(tmp_path / "s.db") as ws:
        ws.put_file("/f", data)
        rev = ws.rev
        statements = _traced(ws)
        st, created = ws.put_file("/f", data)
        ws._db.conn.set_trace_callback(None)
        assert not created and st.hash == blake3.blake3(data).hexdigest() and st.size == len(data)
        assert _chunk_statements(statements) == [], statements
        assert ws.rev == rev + 1 and [c.path for c in ws.changes(vfs.types.Cursor(rev, None))] == ["/f"]
        assert [v.rev for v in ws.history("/f")] == [rev + 1, rev]
        assert ws.read_file("/f") == data and ws.read_file("/f", rev=rev) == data


def test_authors_through_the_settable_author_and_as_author(tmp_path: Path) -> None:
    with vfs.Workspace(tmp_path / "s.db") as ws:
        ws.author = "ann"
        ws.put_file("/g", b"one")
        ws.author = None
        ws.put_file("/g", b"two")
        with ws.as_author("bob"):
            ws.put_file("/g", b"three")
            assert ws.author == "bob"
        assert ws.author is None
        ws.author = "cat"
        with pytest.raises(FileNotFoundError), ws.as_author("dan"):
            ws.put_file("/no/such/dir/g", b"x")
        assert ws.author == "cat"  # the block put back what was there, on the error's way out too
        ws.author = None
        assert [v.author for v in ws.history("/g")] == ["bob", None, "ann"]
