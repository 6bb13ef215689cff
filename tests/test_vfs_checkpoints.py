"""`vfs.checkpoints.Checkpointer`: a store that does not checkpoint its own WAL gets it copied in the background."""

from __future__ import annotations

import os
import time
from pathlib import Path

import vfs
from vfs.checkpoints import Checkpointer


def _write_many(ws: vfs.Workspace, count: int) -> None:
    for i in range(count):
        ws.write_file(f"/f{i}", os.urandom(8192))


def _db_bytes(path: Path) -> int:
    return path.stat().st_size


def test_without_checkpoints_the_wal_keeps_every_page(tmp_path: Path) -> None:
    store = tmp_path / "w.db"
    with vfs.Workspace(str(store), checkpoints=False, chunk_backend="sqlite") as ws:
        before = _db_bytes(store)
        _write_many(ws, 1500)  # ~12 MiB of commits: SQLite's own checkpoint would have run several times
        assert _db_bytes(store) == before  # nothing copied into the database
        assert os.path.getsize(f"{store}-wal") > 12 * 1024 * 1024


def test_the_checkpointer_copies_the_wal_while_the_writer_goes_on(tmp_path: Path) -> None:
    store = tmp_path / "w.db"
    with vfs.Workspace(str(store), checkpoints=False, chunk_backend="sqlite") as ws:
        checkpointer = Checkpointer(str(store), interval=0.05).start()
        try:
            _write_many(ws, 1500)
            deadline = time.monotonic() + 20
            while _db_bytes(store) < 12 * 1024 * 1024 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            checkpointer.stop()
        assert checkpointer.checkpoints > 0
        assert _db_bytes(store) >= 12 * 1024 * 1024  # the pages reached the database file
        assert ws.read_file("/f1499") and len(ws.listdir("/")) == 1500


def test_a_quiet_store_is_not_checkpointed_again(tmp_path: Path) -> None:
    store = tmp_path / "w.db"
    with vfs.Workspace(str(store), checkpoints=False) as ws:
        ws.write_file("/a", b"x")
        checkpointer = Checkpointer(str(store), interval=0.02).start()
        try:
            deadline = time.monotonic() + 10
            while checkpointer.checkpoints == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            first = checkpointer.checkpoints
            time.sleep(0.3)  # ~15 looks at an unchanged WAL
            assert first == 1 and checkpointer.checkpoints == 1
        finally:
            checkpointer.stop()
