"""A read-only open of a store made by an older wsfs upgrades it first.

A server opens its readers (read-only connections) before its writer, which
opens on the first write. Readers run this version's statements, so after
an upgrade of wsfs the first read of an older store (a replica asking which
chunks the server has, before anyone wrote) failed with "no such table:
chunk_ids" until someone wrote to the workspace.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import vfs
from vfs import schema
from vfs_old_stores import downgrade_to_v10, schema_version


def _older_store(path: Path) -> str:
    """A v10 store (sequential chunk ids, no `chunk_ids`: `vfs_old_stores`); the hash of a file in it."""
    ws = vfs.Workspace(str(path))
    ws.write_file("/a.txt", b"hello world " * 100)
    digest = ws.stat("/a.txt").hash
    ws.close()
    conn = sqlite3.connect(path)
    downgrade_to_v10(conn)
    conn.commit()
    conn.close()
    assert digest is not None
    return digest


def test_a_read_only_open_of_an_older_store_upgrades_it_and_finds_chunks_by_hash(tmp_path: Path) -> None:
    store = tmp_path / "old.db"
    digest = _older_store(store)
    assert schema_version(store) == 10

    reader = vfs.Workspace(str(store), readonly=True)
    try:
        assert reader.has_objects([digest]) == {digest}
        assert dict(reader.read_objects([digest])) == {digest: b"hello world " * 100}
        assert reader.read_file("/a.txt") == b"hello world " * 100
    finally:
        reader.close()
    assert schema_version(store) == schema.SCHEMA_VERSION

    writer = vfs.Workspace(str(store))  # and a writer later finds it current, its chunks deduplicated
    try:
        writer.write_file("/b.txt", b"hello world " * 100)
        assert writer.stat("/b.txt").hash == digest
        assert writer.has_objects([digest]) == {digest}
    finally:
        writer.close()


def test_a_current_store_opened_read_only_is_not_written(tmp_path: Path) -> None:
    store = tmp_path / "new.db"
    ws = vfs.Workspace(str(store))
    ws.write_file("/a.txt", b"x")
    ws.close()
    before = store.stat().st_mtime_ns
    reader = vfs.Workspace(str(store), readonly=True)
    try:
        assert reader.read_file("/a.txt") == b"x"
    finally:
        reader.close()
    assert store.stat().st_mtime_ns == before
