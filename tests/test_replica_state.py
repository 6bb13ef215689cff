"""The replica's state database on its own: the chunk index, and a state written by an older version.

The chunk index is looked up by a short integer key (a hash's first 8 bytes);
hashes sharing a key must never be mistaken for each other, and a state.db
made with the older table keyed by the whole hash keeps its locations.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from client_py.replica.state import State, chunk_key

A = "0123456789abcdef" + "a" * 48
B = "0123456789abcdef" + "b" * 48  # same key as A
C = "fedcba9876543210" + "c" * 48


def test_key_is_a_signed_64_bit_prefix() -> None:
    assert chunk_key(A) == chunk_key(B) != chunk_key(C)
    assert chunk_key("0" * 64) == -(2**63) and chunk_key("f" * 64) == 2**63 - 1


def test_lookups_tell_apart_hashes_that_share_a_key(tmp_path: Path) -> None:
    state = State(str(tmp_path / "state.db"))
    with state.transaction():
        state.index_chunks("/x", [(A, 10), (B, 20), (A, 5)], fresh=True)
        state.index_chunks("/y", [(C, 7)], fresh=True)
    assert state.chunk_locations(A) == [("/x", 0, 10), ("/x", 30, 5)]
    assert state.chunk_locations(B) == [("/x", 10, 20)]
    assert state.chunk_locations_many([B, C]) == {B: [("/x", 10, 20)], C: [("/y", 0, 7)]}
    assert state.chunk_locations_many(["d" * 64]) == {}
    state.forget_chunk(A, "/x", 0)
    assert state.chunk_locations(A) == [("/x", 30, 5)] and state.chunk_locations(B) == [("/x", 10, 20)]
    with state.transaction():
        state.index_chunks("/x", [(C, 1)])  # re-indexed: the old rows of /x go
    assert state.chunk_locations_many([A, B, C]) == {C: [("/y", 0, 7), ("/x", 0, 1)]}
    state.delete("/y")
    assert state.chunk_locations(C) == [("/x", 0, 1)]
    state.close()


def test_a_state_from_before_the_chunk_index_keeps_its_locations(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    old = sqlite3.connect(db)
    old.executescript("""
        CREATE TABLE chunks(hash TEXT NOT NULL, path TEXT NOT NULL, offset INTEGER NOT NULL, size INTEGER NOT NULL,
                            PRIMARY KEY(hash, path, offset)) WITHOUT ROWID;
        CREATE INDEX chunks_path ON chunks(path);
    """)
    old.executemany("INSERT INTO chunks VALUES(?, ?, ?, ?)", [(A, "/x", 0, 10), (B, "/x", 10, 20), (C, "/y", 0, 7)])
    old.commit()
    old.close()
    state = State(str(db))
    assert state.chunk_locations_many([A, B, C]) == {A: [("/x", 0, 10)], B: [("/x", 10, 20)], C: [("/y", 0, 7)]}
    tables = {name for (name,) in state.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "chunks" not in tables and "chunk_index" in tables
    state.close()
    again = State(str(db))  # opening it again moves nothing twice
    assert again.chunk_locations(A) == [("/x", 0, 10)]
    again.close()
