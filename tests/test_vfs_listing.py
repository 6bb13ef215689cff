"""readdir and listdir read a directory as one row of aggregated columns (`vfs/listing.py`).

Held to the row-per-entry query they replaced, on directories with every
kind of entry, names that hold the column separators of the numbers (`,`)
and non-ASCII letters, symlinks (size: the target's UTF-8 length), pages
(`limit`, `offset`) and empty directories.
"""

from __future__ import annotations

import random
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import vfs
from vfs import statcache
from vfs.schema import KIND_NAMES, KIND_SYMLINK
from vfs.types import DirEntry


def _row_by_row(ws: vfs.Workspace, path: str, limit: int | None = None, offset: int = 0) -> list[DirEntry]:
    """The listing as the store built it before: one row per entry."""
    ino = ws.stat(path).ino
    rows = ws._db.conn.execute(
        "SELECT d.name, n.kind, n.size, n.mtime_ns, n.target, n.ino FROM dirents d JOIN nodes n ON n.ino = d.ino "
        "WHERE d.parent = ? ORDER BY d.name LIMIT ? OFFSET ?",
        (ino, -1 if limit is None else limit, offset),
    )
    return [
        DirEntry(name, KIND_NAMES[kind], len(target.encode()) if kind == KIND_SYMLINK else size, mtime_ns / 1e9, ino)
        for name, kind, size, mtime_ns, target, ino in rows
    ]


def _populate(ws: vfs.Workspace, rng: random.Random, top: str, count: int) -> None:
    ws.mkdir(top)
    letters = ["a", "b", ",", "1", "é", "ß", "日", " ", "-", "\u00a0", "Z"]
    for i in range(count):
        name = "".join(rng.choice(letters) for _ in range(rng.randint(1, 6))) + f"{i}"
        path = f"{top}/{name}"
        choice = rng.randrange(5)
        if choice == 0:
            ws.mkdir(path)
        elif choice == 1:
            ws.symlink("tärget/" * rng.randint(1, 3), path)
        elif choice == 2:
            ws.mknod(path, stat.S_IFIFO | 0o644)
        else:
            ws.write_file(path, rng.randbytes(rng.randint(0, 3000)), mtime=rng.uniform(0, 2e9))


def test_listing_equals_the_row_by_row_query(tmp_path):
    rng = random.Random(14)
    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        _populate(ws, rng, "/d", 300)
        ws.mkdir("/empty")
        entries = ws.readdir("/d")
        assert len(entries) == 300
        assert entries == _row_by_row(ws, "/d")
        assert [e.name for e in entries] == sorted((e.name for e in entries), key=str.encode)
        assert {e.kind for e in entries} == {"file", "dir", "symlink", "fifo"}
        assert ws.listdir("/d") == [e.name for e in entries]
        for limit, offset in [(1, 0), (10, 5), (None, 290), (50, 299), (7, 300), (0, 0), (None, 0)]:
            assert ws.readdir("/d", limit=limit, offset=offset) == _row_by_row(ws, "/d", limit, offset)
        assert ws.readdir("/empty") == [] and ws.listdir("/empty") == []
        assert ws.readdir("/") == _row_by_row(ws, "/")


def test_listing_errors_stay_those_of_the_path():
    with vfs.Workspace() as ws:
        ws.write_file("/f", b"x")
        with pytest.raises(NotADirectoryError):
            ws.readdir("/f")
        with pytest.raises(NotADirectoryError):
            ws.listdir("/f")
        with pytest.raises(FileNotFoundError):
            ws.listdir("/nope")
        ws.symlink("/", "/up")
        assert ws.listdir("/up") == ["f", "up"]


# -- a whole listing kept beside the warm stats (`vfs.statcache`) ------------------------------

ROOT = Path(__file__).resolve().parent.parent

CHANGES = [
    lambda ws: ws.write_file("/d/f", b"second"),  # size and mtime
    lambda ws: ws.utime("/d/f", 12345.0),
    lambda ws: ws.write_file("/d/new", b"x"),
    lambda ws: ws.rename("/d/f", "/d/g"),
    lambda ws: ws.symlink("a-longer-target", "/d/f"),
    lambda ws: ws.unlink("/d/f"),
    lambda ws: ws.mkdir("/d/f"),
    lambda ws: ws.rename("/d/f", "/e"),  # a directory moves out
    lambda ws: ws.rm("/d", recursive=True),
    lambda ws: ws.mkdir("/d"),
    lambda ws: ws.symlink("/e", "/d/link"),
]


def fresh(path: str, name: str) -> object:
    """What a connection with no cache lists: the entries, or the errno."""
    with vfs.Workspace(path, readonly=True) as ws:
        try:
            return ws.readdir(name), ws.listdir(name)
        except OSError as exc:
            return exc.errno


def warm(ws: vfs.Workspace, name: str) -> object:
    try:
        return ws.readdir(name), ws.listdir(name)
    except OSError as exc:
        return exc.errno


def test_a_kept_listing_is_never_stale(tmp_path):
    path = str(tmp_path / "store.db")
    with vfs.Workspace(path) as reader, vfs.Workspace(path) as writer:
        writer.write_file("/d/f", b"first", parents=True)
        writer.write_file("/d/h", b"other")
        for step, change in enumerate(CHANGES):
            for ws in (reader, writer):  # another connection's commit, and our own
                for name in ("/d", "/e", "/"):
                    warm(ws, name)
                    assert warm(ws, name) == fresh(path, name), (step, name)  # served from memory
            change(writer if step % 2 else reader)
            for ws in (reader, writer):
                for name in ("/d", "/e", "/"):
                    assert warm(ws, name) == fresh(path, name), (step, name)


def test_a_kept_listing_serves_pages_and_fresh_entries(tmp_path):
    path = str(tmp_path / "store.db")
    with vfs.Workspace(path) as ws:
        for i in range(50):
            ws.write_file(f"/d/f{i:02d}", b"%d" % i, parents=True)
        whole = ws.readdir("/d")
        assert ws._db.stats.begin()[1].get(("readdir", "/d")) is not None  # kept
        for limit, offset in [(5, 0), (5, 45), (None, 10), (10, 49), (3, 50), (0, 3), (-1, 0), (2, -1)]:
            assert ws.readdir("/d", limit=limit, offset=offset) == _row_by_row(ws, "/d", limit, offset), (limit, offset)
        whole[0].size = 999  # a caller's change to an entry it got
        assert ws.readdir("/d") == _row_by_row(ws, "/d")


def test_a_kept_listing_sees_another_process(tmp_path):
    path = str(tmp_path / "store.db")
    with vfs.Workspace(path) as ws:
        ws.write_file("/d/f", b"first", parents=True)
        assert ws.listdir("/d") == ["f"] and ws.readdir("/d") == ws.readdir("/d")
        script = "import sys, vfs\nwith vfs.Workspace(sys.argv[1]) as w: w.write_file('/d/g', b'from elsewhere')\n"
        subprocess.run([sys.executable, "-c", script, path], check=True, timeout=60, cwd=ROOT)
        assert ws.listdir("/d") == ["f", "g"]
        assert ws.readdir("/d") == fresh(path, "/d")[0]


def test_inside_a_transaction_a_listing_sees_its_own_writes(tmp_path):
    path = str(tmp_path / "store.db")
    with vfs.Workspace(path) as ws:
        ws.write_file("/d/f", b"first", parents=True)
        before = ws.readdir("/d")
        with pytest.raises(RuntimeError):
            with ws.transaction():
                ws.write_file("/d/g", b"uncommitted")
                assert ws.listdir("/d") == ["f", "g"] and len(ws.readdir("/d")) == 2
                raise RuntimeError("roll back")
        assert ws.readdir("/d") == before == fresh(path, "/d")[0]


def test_a_listing_heavier_than_the_bound_is_not_kept(tmp_path):
    path = str(tmp_path / "store.db")
    with vfs.Workspace(path) as ws:
        ws.mkdir("/big")
        with ws.transaction():
            for i in range(4 * statcache.LIMIT):
                ws.write_file(f"/big/f{i:05d}", b"")
        assert len(ws.readdir("/big")) == 4 * statcache.LIMIT
        assert ws._db.stats.begin()[1].get(("readdir", "/big")) is None
        ws.readdir("/")
        assert ws._db.stats.begin()[1].get(("readdir", "/")) is not None
