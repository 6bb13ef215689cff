"""A warm stat answered from memory is never stale (`vfs/statcache.py`); a write never reuses a revision.

The cache is validated by the WAL-index header every commit rewrites. These
tests change a file every way a stat can show (content, mode, times, name,
kind) from this connection, from another connection and from another
process, and hold each warm stat to what a fresh connection says.
"""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pytest

import vfs

ROOT = Path(__file__).resolve().parent.parent


def fresh_stat(path: str, name: str, *, follow: bool = True) -> object:
    """What a connection with no cache says: the Stat, or the errno."""
    with vfs.Workspace(path, readonly=True) as ws:
        try:
            return ws.stat(name) if follow else ws.lstat(name)
        except OSError as exc:
            return exc.errno


def warm_stat(ws: vfs.Workspace, name: str, *, follow: bool = True) -> object:
    try:
        return ws.stat(name) if follow else ws.lstat(name)
    except OSError as exc:
        return exc.errno


@pytest.fixture()
def two(tmp_path):
    path = str(tmp_path / "store.db")
    with vfs.Workspace(path) as reader, vfs.Workspace(path) as writer:
        yield reader, writer, path


CHANGES = [
    lambda ws: ws.write_file("/d/f", b"second"),
    lambda ws: ws.chmod("/d/f", 0o600),
    lambda ws: ws.utime("/d/f", 12345.0),
    lambda ws: ws.write_range("/d/f", 70_000, b"x" * 70_000),  # a content id left to derive
    lambda ws: ws.rename("/d/f", "/d/g"),
    lambda ws: ws.symlink("g", "/d/f"),
    lambda ws: ws.unlink("/d/f"),
    lambda ws: ws.mkdir("/d/f"),
    lambda ws: ws.rm("/d", recursive=True),
]


def test_another_connections_changes_are_seen_by_a_warm_stat(two):
    reader, writer, path = two
    writer.write_file("/d/f", b"first", parents=True)
    for step, change in enumerate(CHANGES):
        for name in ("/d/f", "/d/g"):
            for follow in (True, False):
                warm_stat(reader, name, follow=follow)  # fill the cache
        change(writer)
        for name in ("/d/f", "/d/g"):
            for follow in (True, False):
                assert warm_stat(reader, name, follow=follow) == fresh_stat(path, name, follow=follow), (step, name)
        for name in ("/d/f", "/d/g"):
            found = fresh_stat(path, name, follow=False)
            try:
                assert reader.lstat_if_exists(name) == (None if found == errno.ENOENT else found), (step, name)
            except FileNotFoundError:
                assert found == errno.ENOENT  # the parent went: raises, as before


def test_own_changes_are_seen_by_a_warm_stat(tmp_path):
    path = str(tmp_path / "store.db")
    with vfs.Workspace(path) as ws:
        ws.write_file("/d/f", b"first", parents=True)
        for step, change in enumerate(CHANGES):
            warm_stat(ws, "/d/f")
            warm_stat(ws, "/d/g")
            change(ws)
            for name in ("/d/f", "/d/g"):
                assert warm_stat(ws, name) == fresh_stat(path, name), (step, name)


def test_another_process_commit_is_seen_by_a_warm_stat(tmp_path):
    path = str(tmp_path / "store.db")
    with vfs.Workspace(path) as ws:
        ws.write_file("/f", b"first")
        before = ws.stat("/f")
        assert ws.stat("/f") == before  # warm
        script = "import sys, vfs\nwith vfs.Workspace(sys.argv[1]) as w: w.write_file('/f', b'from elsewhere')\n"
        subprocess.run([sys.executable, "-c", script, path], check=True, timeout=60, cwd=ROOT)
        after = ws.stat("/f")
        assert after.size == len(b"from elsewhere")
        assert after == fresh_stat(path, "/f")


def test_inside_a_transaction_stat_sees_its_own_writes_and_a_rollback_restores(tmp_path):
    path = str(tmp_path / "store.db")
    with vfs.Workspace(path) as ws:
        ws.write_file("/f", b"first")
        first = ws.stat("/f")
        with pytest.raises(RuntimeError):
            with ws.transaction():
                ws.write_file("/f", b"uncommitted!")
                assert ws.stat("/f").size == len(b"uncommitted!")
                raise RuntimeError("roll back")
        assert ws.stat("/f") == first == fresh_stat(path, "/f")


def test_a_store_in_memory_stats_without_a_cache():
    with vfs.Workspace(":memory:") as ws:
        ws.write_file("/f", b"one")
        assert ws.stat("/f").size == 3
        ws.write_file("/f", b"three")
        assert ws.stat("/f").size == 5


def test_two_writers_alternating_never_reuse_a_revision(tmp_path):
    """A write takes its revision from our last commit only while no other connection committed."""
    path = str(tmp_path / "store.db")
    with vfs.Workspace(path) as one, vfs.Workspace(path) as two:
        revs = []
        for step in range(20):
            ws = (one, two)[step % 3 == 0]  # runs of two writes on one side, then one on the other
            revs.append(ws.write_file(f"/f{step}", b"%d" % step).rev)
            one.stat(f"/f{step}")  # a read between writes moves no revision
        assert revs == list(range(revs[0], revs[0] + 20))
        assert [c.rev for c in sorted(one.changes(), key=lambda c: c.rev) if c.path != "/"] == revs
