"""Background WAL checkpoints (`Workspace(..., checkpoints="background")`, `vfs/checkpointer.py`).

- the WAL stays bounded under writes that never pause, and under writes with
  a reader holding an old snapshot for a while;
- the thread copies the WAL into the database once the writes stop (quiet),
  so nothing is left only in the WAL of an idle store;
- commits of other connections and processes on the same store are copied too;
- a writer killed with SIGKILL at random moments, while its checkpointer
  copies, loses no acknowledged commit and leaves the store consistent.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import vfs
from vfs import checkpointer

REPO = Path(__file__).resolve().parent.parent
PAGE = 4096


def _wait(condition, seconds: float = 20.0) -> bool:
    """Poll `condition` until true, at most `seconds` (bounded: 0.05 s steps)."""
    for _ in range(int(seconds / 0.05)):
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _wal_bytes(db: Path) -> int:
    wal = Path(f"{db}-wal")
    return wal.stat().st_size if wal.exists() else 0


def test_mode_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        vfs.Workspace(tmp_path / "s.db", checkpoints="sometimes")


def test_wal_bounded_under_writes_that_never_pause(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    biggest = 0
    with vfs.Workspace(db, checkpoints="background") as ws:
        thread = ws._db.checkpointer
        assert thread is not None
        for d in range(30):
            ws.mkdir(f"/d{d}")
        for i in range(3000):  # ~7 pages each: ~20k frames, five times the backstop
            ws.write_file(f"/d{i % 30}/f{i}", b"x" * 100)
            if i % 100 == 0:
                biggest = max(biggest, _wal_bytes(db))
        biggest = max(biggest, _wal_bytes(db))
        assert thread.runs >= 1 and thread.copied > 0  # the thread did copy, while the writes went on
    # The backstop (the writer's own wal_autocheckpoint=LIMIT) bounds it, plus one transaction.
    assert biggest <= (checkpointer.LIMIT + 100) * (PAGE + 24) + 32, biggest
    with vfs.Workspace(db) as ws:
        assert len(ws.listdir("/d7")) == 100


def test_wal_bounded_with_a_reader_holding_a_snapshot(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with vfs.Workspace(db, checkpoints="background") as ws:
        ws.mkdir("/d")
        reader = sqlite3.connect(db, isolation_level=None)
        for i in range(2000):
            if i % 500 == 0:  # hold a read snapshot across 500 writes, then let go
                if reader.in_transaction:
                    reader.execute("COMMIT")
                reader.execute("BEGIN")
                reader.execute("SELECT count(*) FROM nodes").fetchone()
            ws.write_file(f"/d/f{i}", b"y" * 100)
        reader.execute("COMMIT")
        reader.close()
        # Once no snapshot holds old frames, the quiet checkpoint copies everything.
        assert _wait(lambda: ws._db.checkpointer.backlog() == 0)
        ws.write_file("/d/after", b"z")  # the first write after a full copy restarts the WAL
        assert _wait(lambda: ws._db.checkpointer.backlog() == 0)
    assert _wal_bytes(db) == 0  # closed: the last connection removed the WAL


def test_quiet_store_is_copied_into_the_database(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with vfs.Workspace(db, checkpoints="background") as ws:
        for i in range(20):  # far below the 1,000-page threshold: only quiet copies these
            ws.write_file(f"/f{i}", b"%d" % i)
        thread = ws._db.checkpointer
        assert _wait(lambda: thread.backlog() == 0)
        assert thread.runs >= 1
        # Every committed page is in the database file: a connection that ignores the WAL sees them.
        os.link(db, tmp_path / "copy.db")  # the same inode, opened without its -wal beside it
        copy = sqlite3.connect(f"file:{tmp_path / 'copy.db'}?mode=ro&immutable=1", uri=True)
        assert copy.execute("SELECT count(*) FROM dirents WHERE name LIKE 'f%'").fetchone()[0] == 20
        copy.close()


def test_other_writers_commits_are_copied(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with vfs.Workspace(db, checkpoints="background") as ws:
        ws.write_file("/mine", b"1")
        script = (
            "import sys, vfs\n"
            "with vfs.Workspace(sys.argv[1]) as ws:\n"  # SQLite's own checkpoints, never reached here
            "    for i in range(50): ws.write_file(f'/theirs{i}', b'2')\n"
        )
        subprocess.run([sys.executable, "-c", script, str(db)], check=True, timeout=120, cwd=REPO)
        ws.write_file("/mine2", b"3")  # our commit tells the thread; the quiet copy takes theirs too
        assert _wait(lambda: ws._db.checkpointer.backlog() == 0)
        assert ws.read_file("/theirs49") == b"2"


# ---------------------------------------------------------------- crash: SIGKILL the writer


def _writer(db: str, side: str) -> None:
    with vfs.Workspace(db, checkpoints="background") as ws, open(side, "a", encoding="utf-8") as log:
        ws.mkdir("/c", exist_ok=True)
        n = 0
        while True:
            n += 1
            with ws.transaction():  # a group of files, as a mount commits them
                for k in range(20):
                    ws.write_file(f"/c/f{(n * 20 + k) % 3000}", b"%d:%d\n" % (n, k) * 50)
            log.write(f"{n}\n")
            log.flush()


def test_sigkill_during_background_checkpoints_loses_nothing(tmp_path: Path) -> None:
    db, side = tmp_path / "s.db", tmp_path / "acked"
    rng = random.Random(15)
    for _round in range(4):
        child = subprocess.Popen([sys.executable, __file__, str(db), str(side)], cwd=REPO)
        time.sleep(rng.uniform(1.0, 3.0))
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
        conn = sqlite3.connect(db)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
        # (a child killed before it opened the file, as at a load of ~9 its imports can take the whole 1-3 s: none)
        acked = [int(line) for line in side.read_text().split()] if side.exists() else []
        if not acked:
            continue
        last = acked[-1]
        with vfs.Workspace(db) as ws:
            for k in range(20):  # the last acknowledged group is there, whole
                data = ws.read_file(f"/c/f{(last * 20 + k) % 3000}")
                n, kk = data.split(b"\n", 1)[0].split(b":")
                assert int(n) >= last and int(kk) == k
            live = {c.path: c.hash for c in ws.changes() if c.kind != "delete" and c.path.startswith("/c/")}
            assert live == {f"/c/{name}": ws.stat(f"/c/{name}").hash for name in ws.listdir("/c")}
        side.write_text("")  # the next round's acknowledgements start afresh (counter restarts)


if __name__ == "__main__":
    _writer(sys.argv[1], sys.argv[2])
