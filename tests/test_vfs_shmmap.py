"""Reading a store's WAL-index header keeps this process's SQLite locks (`vfs/shmmap.py`).

The observable is the kernel's own table of POSIX locks (/proc/locks): SQLite
marks a `-shm` file in use with a read lock on its byte 128 (the DMS lock);
while a process holds it, no other process resets the shared memory as its
first user. Closing any descriptor of the file in the process drops that lock,
which is what a cluster node's Litestream then tripped over (SQLITE_PROTOCOL on
the first write after a failover, tests/test_cluster_chunks.py).
"""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path

import pytest

import vfs

from vfs import shmmap
from vfs.statcache import HEADER, StatCache
from vfs.storefiles import remove_store

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/locks")

DMS = 128  # SQLite's UNIX_SHM_DMS: (22 + SQLITE_SHM_NLOCK) * 4


def dms_holders(shm: Path) -> set[int]:
    """The pids holding a POSIX lock on byte DMS of `shm` (from /proc/locks)."""
    ino = os.stat(shm).st_ino
    holders = set()
    with open("/proc/locks") as table:  # not the -shm: closing this one drops nothing
        for line in table:
            fields = line.split()
            # "1: POSIX  ADVISORY  READ 24911 fe:00:2785330 128 128"
            if "POSIX" in fields and fields[-3].rsplit(":", 1)[-1] == str(ino) and fields[-2] == str(DMS):
                holders.add(int(fields[-4]))
    return holders


@pytest.fixture
def store(tmp_path: Path):
    path = tmp_path / "s.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (1)")
    assert os.getpid() in dms_holders(Path(f"{path}-shm"))  # SQLite marked the shared memory in use
    yield path, conn
    conn.close()


def test_a_plain_open_and_close_of_the_shm_drops_sqlite_s_lock(store) -> None:
    """The hazard itself (why the module exists): one open and close of `-shm` anywhere in the process."""
    path, _ = store
    os.close(os.open(f"{path}-shm", os.O_RDONLY))
    assert os.getpid() not in dms_holders(Path(f"{path}-shm"))


def test_mapping_the_header_keeps_the_lock_and_follows_commits(store) -> None:
    path, conn = store
    shm = Path(f"{path}-shm")
    first = shmmap.header_map(str(shm), HEADER)
    assert first is not None and shmmap.header_map(str(shm), HEADER) is first  # one mapping per inode
    before = first[:HEADER]
    conn.execute("INSERT INTO t VALUES (2)")
    assert first[:HEADER] != before  # the header moved with the commit
    assert os.getpid() in dms_holders(shm)


def test_the_stat_cache_keeps_the_lock(store) -> None:
    path, conn = store
    cache = StatCache(str(path))
    assert cache.begin() is not None
    cache.close()
    assert os.getpid() in dms_holders(Path(f"{path}-shm"))


def test_a_removed_store_s_shm_is_let_go(store) -> None:
    path, conn = store
    assert shmmap.header_map(f"{path}-shm", HEADER) is not None
    st = os.stat(f"{path}-shm")
    assert (st.st_dev, st.st_ino) in shmmap.kept_inodes()
    conn.close()
    remove_store(path)
    assert (st.st_dev, st.st_ino) not in shmmap.kept_inodes()


def test_a_store_s_whole_life_keeps_the_lock_while_it_is_open(tmp_path: Path) -> None:
    """What a server does with a store (write, stat, read, another store object on the same file
    opened and closed beside it): its shared memory stays marked in use by this process."""
    path = str(tmp_path / "w.db")
    with vfs.Workspace(path) as ws:
        ws.write_file("/f", b"one")
        assert ws.stat("/f").size == 3 and ws.read_file("/f") == b"one"
        with vfs.Workspace(path) as other:
            assert other.stat("/f").size == 3
        ws.write_file("/f", b"two")
        assert ws.stat("/f").size == 3
        assert os.getpid() in dms_holders(Path(f"{path}-shm"))


def test_a_closed_store_keeps_no_descriptor_of_its_shared_memory(tmp_path: Path) -> None:
    """A node opens and closes thousands of stores: once SQLite removed a closed store's -shm with
    its last connection, this process keeps nothing of it (no descriptor left per store ever opened)."""
    path = tmp_path / "w.db"
    with vfs.Workspace(str(path)) as ws:
        ws.write_file("/f", b"one")
        ws.stat("/f")
        assert ws.stat("/f").size == 3  # a warm stat maps the WAL-index header
        st = os.stat(f"{path}-shm")
        assert (st.st_dev, st.st_ino) in shmmap.kept_inodes()
    assert not Path(f"{path}-shm").exists()  # the last connection took it away
    assert (st.st_dev, st.st_ino) not in shmmap.kept_inodes()


def test_the_last_connection_to_close_need_not_be_the_one_that_mapped(tmp_path: Path) -> None:
    """A server's reader stats (and maps the header), closes first; the writer, which never stat'd,
    closes last and SQLite removes the -shm then: nothing of it is kept (a sleeping store holds only its
    lock)."""
    path = tmp_path / "w.db"
    writer = vfs.Workspace(str(path))
    writer.write_file("/f", b"one")
    reader = vfs.Workspace(str(path), readonly=True)
    assert reader.stat("/f").size == reader.stat("/f").size == 3
    st = os.stat(f"{path}-shm")
    reader.close()
    assert (st.st_dev, st.st_ino) in shmmap.kept_inodes()  # the writer still uses the shared memory
    writer.close()
    assert not Path(f"{path}-shm").exists()
    assert (st.st_dev, st.st_ino) not in shmmap.kept_inodes()
