"""Remote mode's metadata reads (`remote_reads.py`): the short ways (a FUSE path looked up in the
index as it is, an absent name answered without building the error) give exactly what the
general path (normalise, walk, raise) gives, for hits, misses and every error."""

from __future__ import annotations

import errno
import stat as stat_mod
from pathlib import Path

import pytest

from client_py.mount.remote_backend import RemoteBackend
from vfs.types import Change


@pytest.fixture
def backend(tmp_path: Path) -> RemoteBackend:
    """A backend whose index holds a small tree (never started: reads need no server)."""
    b = RemoteBackend("http://127.0.0.1:9", "demo", token=None, cache_dir=str(tmp_path / "cache"))
    b.index.live = True
    apply = b.index.apply
    apply(Change(path="/d", kind="dir", rev=1, mode=stat_mod.S_IFDIR | 0o755, mtime=1.5))
    apply(Change(path="/d/f", kind="file", rev=2, mode=stat_mod.S_IFREG | 0o644, mtime=2.25, size=3, hash="ab",
                 chunks=(("ab", 3),)))
    apply(Change(path="/d/s", kind="symlink", rev=3, mode=stat_mod.S_IFLNK | 0o777, mtime=3.0, target="f"))
    apply(Change(path="/d/e", kind="dir", rev=4, mode=stat_mod.S_IFDIR | 0o700, mtime=4.0))
    apply(Change(path="/d/g", kind="file", rev=5, mode=stat_mod.S_IFREG | 0o644, mtime=2.25, size=3, hash="ab",
                 chunks=(("ab", 3),)))
    b.index.link("/d/f", "/d/g")  # (a hard link made through the mount: one inode, two names)
    b.attrs.chown(b.index.inos["/d/f"], 7, 8)
    b.attrs.set_times(b.index.inos["/d/f"], 5_000_000_001, 2_250_000_007, 2.25)
    return b


def general(b: RemoteBackend, path: str):
    """What the general path answers: the Stat, or the errno it raises."""
    try:
        real, change = b._entry(path, follow=False)
    except OSError as exc:
        return exc.errno
    return b._stat(real, change)


PATHS = ["/", "/d", "/d/f", "/d/g", "/d/s", "/d/e", "/d/nope", "/nope", "/nope/x", "/d/f/x", "/d/e/x", "/d/", "//d/f",
         "/d/./f", "/d/../d/f", "/d/..", "/d/" + "n" * 255, "/d/" + "n" * 256, "/d/" + "é" * 128,
         "/d/\udcff"]


@pytest.mark.parametrize("path", PATHS)
def test_short_ways_answer_as_the_general_path(backend: RemoteBackend, path: str):
    expected = general(backend, path)
    try:
        got = backend.lstat(path)
    except OSError as exc:
        got = exc.errno
    assert got == expected
    if_exists = backend.lstat_if_exists(path) if expected in (errno.ENOENT,) or not isinstance(expected, int) else None
    assert if_exists == (None if isinstance(expected, int) else expected)


def test_the_stat_carries_owners_exact_times_and_links(backend: RemoteBackend):
    st = backend.lstat("/d/f")
    assert (st.uid, st.gid, st.mtime_ns, st.atime_ns, st.nlink, st.size) == (7, 8, 2_250_000_007, 5_000_000_001, 2, 3)
    assert st.ctime_ns >= st.mtime_ns and st.mode == stat_mod.S_IFREG | 0o644
    assert backend.lstat("/d").nlink == 3  # (one subdirectory)
    assert backend.lstat("/d/s").size == 1
    assert [(e.name, e.ino) for e in backend.readdir("/d")] == [
        (name, backend.index.inos[f"/d/{name}"]) for name in ("e", "f", "g", "s")]
    assert backend.lstat("/d/g").ino == st.ino and backend.lstat("/d/e").nlink == 2


def test_an_inode_number_lasts_as_long_as_its_node(backend: RemoteBackend):
    """The low-level mount hands the index's inode numbers to the kernel as its inodes: new content
    or mode keeps a path's number; a node of another kind at the path (replaced elsewhere: one
    streamed entry) is another node with a number of its own, as is a name made again after a
    delete."""
    index = backend.index
    file_ino, dir_ino = index.inos["/d/f"], index.inos["/d/e"]
    index.apply(Change(path="/d/f", kind="file", rev=6, mode=stat_mod.S_IFREG | 0o600, mtime=6.0, size=1, hash="cd",
                       chunks=(("cd", 1),)))
    assert index.inos["/d/f"] == file_ino
    index.apply(Change(path="/d/f", kind="symlink", rev=7, mode=stat_mod.S_IFLNK | 0o777, mtime=7.0, target="e"))
    assert index.inos["/d/f"] not in (file_ino, dir_ino) and index.nlink("/d/g") == 1
    index.apply(Change(path="/d/e/x", kind="file", rev=8, mode=stat_mod.S_IFREG | 0o644, mtime=8.0))
    index.apply(Change(path="/d/e", kind="fifo", rev=9, mode=stat_mod.S_IFIFO | 0o644, mtime=9.0))
    assert index.inos["/d/e"] != dir_ino and "/d/e/x" not in index.entries and index.subdirs.get("/d", 0) == 0
    fifo_ino = index.inos["/d/e"]
    index.apply(Change(path="/d/e", kind="delete", rev=10))
    index.apply(Change(path="/d/e", kind="fifo", rev=11, mode=stat_mod.S_IFIFO | 0o644, mtime=11.0))
    assert index.inos["/d/e"] != fifo_ino
