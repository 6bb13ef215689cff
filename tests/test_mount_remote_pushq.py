"""Remote mode's write-behind (`pushq.py`): what the server holds after a burst of changes to one
name, against a real server on loopback, through a real mount.

pjdfstest made and removed the same names in quick succession and found, now and then, a
name the mount had removed still on the server, an `rmdir` failing with ENOTDIR and
conflict copies with no other writer. The cause: a queued entry equal to what the server
already held (a node unlinked and made again the same way before the batch went) came back
`unchanged`, the mount stopped tracking the path, and its index kept our entry with no
server revision: the next change to that name was pushed against revision 0, a conflict on
the server (a delete kept the old node; a file's change became a conflict copy).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from client_py.mount.runner import MountProcess
from mount_api import mount_api  # noqa: F401  (every test here on each API)
from tests.test_mount_remote import server_bytes, settle, wait_for


@pytest.fixture
def gathered(live_server, tmp_path: Path, monkeypatch):
    """(mountpoint, http, log file): a mount whose pusher gathers until someone waits (fsync),
    so the changes made between two `settle()` calls go in one batch, whatever the machine's speed."""
    monkeypatch.setenv("WSFS_MOUNT_PUSH_GATHER", "30")
    mnt, http = tmp_path / "mnt", live_server.http()
    mnt.mkdir()
    http.put("/api/workspaces/demo/files/docs/readme.md", content=b"# hello\n", params={"parents": 1})
    extra = ["--token", live_server.admin, "--cache", str(tmp_path / "cache")]
    log = tmp_path / "mount.log"
    with MountProcess([live_server.url, "demo"], str(mnt), log_file=str(log), extra=extra):
        yield mnt, http, log
    http.close()


def streamed(mnt: Path, http, marker: str) -> None:
    """Wait until the mount's change stream has caught up with the server: a file written over
    HTTP shows in the mount (the stream is ordered, so everything before it arrived too)."""
    http.put(f"/api/workspaces/demo/files/{marker}", content=b"m")
    wait_for(lambda: (mnt / marker).exists(), f"the marker {marker}")


def server_names(http, path: str) -> set[str]:
    return {e["name"] for e in http.get(f"/api/workspaces/demo/readdir/{path}").json()["entries"]}


def test_a_node_made_again_unchanged_then_removed_leaves_the_server(gathered):
    """unlink + mknod of the same FIFO in one batch is `unchanged` on the server; the unlink
    after it must still remove it there (old code: pushed against revision 0, a silent
    conflict: the FIFO stayed on the server, and `rmdir` of its directory failed ENOTEMPTY)."""
    mnt, http, log = gathered
    (mnt / "d").mkdir()
    os.mkfifo(mnt / "d" / "p", 0o644)
    settle(mnt)
    streamed(mnt, http, "m1")
    os.unlink(mnt / "d" / "p")
    os.mkfifo(mnt / "d" / "p", 0o644)  # (the same node again: the server's state already)
    settle(mnt)
    os.unlink(mnt / "d" / "p")
    settle(mnt)
    assert server_names(http, "d") == set()
    os.rmdir(mnt / "d")
    assert not (mnt / "d").exists()
    assert http.get("/api/workspaces/demo/stat/d").status_code == 404
    assert "conflict" not in log.read_text()


def test_a_file_written_again_unchanged_then_changed_makes_no_conflict_copy(gathered):
    """unlink + the same bytes written again in one batch, then a chmod and new bytes: the
    server gets both, with no conflict copy (old code: `f.conflict-HOST-TIME` beside it)."""
    mnt, http, log = gathered
    (mnt / "f").write_bytes(b"same")
    settle(mnt)
    streamed(mnt, http, "m1")
    os.unlink(mnt / "f")
    (mnt / "f").write_bytes(b"same")
    settle(mnt)
    os.chmod(mnt / "f", 0o600)
    settle(mnt)
    assert stat.S_IMODE(http.get("/api/workspaces/demo/stat/f").json()["mode"]) == 0o600
    with open(mnt / "f", "r+b") as f:
        f.write(b"next")
    settle(mnt)
    assert server_bytes(http, "f") == b"next"
    assert sorted(os.listdir(mnt)) == sorted(server_names(http, "")) == ["docs", "f", "m1"]
    assert "conflict" not in log.read_text()


def test_a_name_reused_as_a_directory_is_one_on_the_server(gathered):
    """pjdfstest chown/07: a file made twice (unchanged), unlinked, and a directory made at its
    name: the mount and the server both have the directory, and rmdir removes it (old code:
    the server kept the file, rmdir failed with ENOTDIR)."""
    mnt, http, log = gathered
    (mnt / "n").write_bytes(b"")
    settle(mnt)
    streamed(mnt, http, "m1")
    os.unlink(mnt / "n")
    (mnt / "n").write_bytes(b"")
    settle(mnt)
    os.unlink(mnt / "n")
    (mnt / "n").mkdir()
    settle(mnt)
    assert http.get("/api/workspaces/demo/stat/n").json()["kind"] == "dir"
    assert (mnt / "n").is_dir()
    os.rmdir(mnt / "n")
    assert not (mnt / "n").exists() and http.get("/api/workspaces/demo/stat/n").status_code == 404
    assert "conflict" not in log.read_text()


def test_a_directory_chmod_then_utime_keeps_both_on_the_server(gathered):
    """`tar -x` sets every directory's mode, then its times: the mode change is queued, the
    utime is one HTTP call that does not wait for it. Both reach the server (old code: the
    utime moved the directory's revision past the queued entry's base, the push conflicted and
    the mode change was dropped, on the server and then in the mount)."""
    mnt, http, log = gathered
    (mnt / "d").mkdir()
    settle(mnt)
    streamed(mnt, http, "m1")
    os.chmod(mnt / "d", 0o700)
    os.utime(mnt / "d", ns=(1_000_000_000_000_000_000, 1_100_000_000_000_000_000))
    settle(mnt)
    st = http.get("/api/workspaces/demo/stat/d").json()
    assert (stat.S_IMODE(st["mode"]), st["mtime"]) == (0o700, 1_100_000_000.0)
    streamed(mnt, http, "m2")
    assert stat.S_IMODE(os.stat(mnt / "d").st_mode) == 0o700
    assert os.stat(mnt / "d").st_mtime_ns == 1_100_000_000_000_000_000
    assert "conflict" not in log.read_text()


def test_a_directory_made_where_a_file_was_takes_its_utime(gathered):
    """pjdfstest utimensat/00: a file unlinked and a directory made at its name in one batch,
    then utimensat of the directory: the server has the directory with those times (old code:
    the utime went to the server first, on the file still there, and the directory's push
    then conflicted: the server kept the file)."""
    mnt, http, log = gathered
    (mnt / "n").write_bytes(b"x")
    settle(mnt)
    streamed(mnt, http, "m1")
    os.unlink(mnt / "n")
    (mnt / "n").mkdir()
    os.utime(mnt / "n", ns=(1_900_000_000_000_000_000, 1_950_000_000_000_000_000))
    assert os.stat(mnt / "n").st_mtime_ns == 1_950_000_000_000_000_000
    settle(mnt)
    st = http.get("/api/workspaces/demo/stat/n").json()
    assert (st["kind"], st["mtime"]) == ("dir", 1_950_000_000.0)
    streamed(mnt, http, "m2")
    assert (mnt / "n").is_dir() and os.stat(mnt / "n").st_mtime_ns == 1_950_000_000_000_000_000
    os.rmdir(mnt / "n")
    assert "conflict" not in log.read_text()


def test_directory_times_are_queued_with_the_push(gathered):
    """`tar -x` at its end sets each directory's mode and times: queued as entries that set the
    mtime (`set_mtime`), one push for all of them (old code: one HTTP `utime` per directory, a
    revision each). A name added after the utime moves the mtime again, on the server too."""
    mnt, http, log = gathered
    for i in range(30):
        (mnt / f"d{i}").mkdir()
        (mnt / f"d{i}" / "f").write_bytes(b"%d" % i)
    settle(mnt)
    streamed(mnt, http, "m1")
    rev = http.get("/api/workspaces/demo").json()["rev"]
    for i in range(30):
        os.chmod(mnt / f"d{i}", 0o750)
        os.utime(mnt / f"d{i}", ns=(1_000_000_000_000_000_000, (1_200_000_000 + i) * 10**9))
    settle(mnt)
    assert http.get("/api/workspaces/demo").json()["rev"] - rev == 1
    for i in range(30):
        st = http.get(f"/api/workspaces/demo/stat/d{i}").json()
        assert (stat.S_IMODE(st["mode"]), st["mtime"]) == (0o750, 1_200_000_000 + i)
        assert os.stat(mnt / f"d{i}").st_mtime_ns == (1_200_000_000 + i) * 10**9
    os.utime(mnt / "d0", ns=(1_000_000_000_000_000_000, 1_300_000_000 * 10**9))
    (mnt / "d0" / "later").write_bytes(b"l")  # (after the utime: on a disk it moves the mtime)
    shown = os.stat(mnt / "d0").st_mtime
    assert shown > 1_300_000_000 + 10**8
    settle(mnt)
    assert abs(http.get("/api/workspaces/demo/stat/d0").json()["mtime"] - shown) < 0.01
    assert "conflict" not in log.read_text()


def test_renaming_a_file_the_server_has_keeps_its_history(gathered):
    """A file already on the server renamed through the mount keeps its history (a `rename`
    call; old code: a queued delete and a new entry, so `/b`'s history started at `/b`). One
    renamed before its first push still goes as the two queued entries."""
    mnt, http, _log = gathered
    (mnt / "a").write_bytes(b"v1")
    settle(mnt)
    os.rename(mnt / "a", mnt / "b")
    (mnt / "c.tmp").write_bytes(b"c")
    os.rename(mnt / "c.tmp", mnt / "c")
    settle(mnt)
    versions = http.get("/api/workspaces/demo/history/b").json()["versions"]
    assert "/a" in {v["path"] for v in versions}
    assert server_bytes(http, "b") == b"v1" and server_bytes(http, "a") is None
    assert server_bytes(http, "c") == b"c" and server_bytes(http, "c.tmp") is None
    assert sorted(os.listdir(mnt)) == sorted(server_names(http, "")) == ["b", "c", "docs"]


def test_lock_files_renamed_into_place_stay_queued(gathered):
    """git's lock files: `x.lock` written, renamed over `x`, again and again. Each is a file
    the server never had, so each rename is two queued entries, even while the server's echo
    of the previous `x.lock`'s removal is still on its way (591bbe1 made that one a `rename`
    call, which first waited for the whole queue: git add + commit of Django went 42 -> 51 s).
    (Whether the echo is still on its way when the next lock is written is the machine's
    timing: on 591bbe1 this fails only when it is.)"""
    mnt, http, _log = gathered
    rev = http.get("/api/workspaces/demo").json()["rev"]
    for number in range(10):
        (mnt / "x.lock").write_bytes(b"%d" % number)
        os.rename(mnt / "x.lock", mnt / "x")
        settle(mnt)
    assert http.get("/api/workspaces/demo").json()["rev"] - rev == 10  # (one push each: no rename call)
    assert server_bytes(http, "x") == b"9" and server_bytes(http, "x.lock") is None


def test_a_utime_of_a_file_the_server_has_is_queued(gathered):
    """git freshens an object it would write again (utime of a file it wrote long ago): queued
    as an entry of the next push that sets its mtime (`set_mtime`; a wire `utime` after the
    batch to a server older than `file_set_mtime`), so the caller waits neither for the
    queue to drain nor for the round trip (old code: one HTTP call in the FUSE request, 774 in
    Django's `git add`, ~15 ms each). The server has the new mtime once settled, not before (the
    pusher gathers until someone waits); a chmod queued after it keeps both."""
    mnt, http, log = gathered
    (mnt / "f").write_bytes(b"obj")
    (mnt / "g").write_bytes(b"obj2")
    settle(mnt)
    streamed(mnt, http, "m1")
    before = http.get("/api/workspaces/demo/stat/f").json()["mtime"]
    os.utime(mnt / "f", ns=(1_000_000_000_000_000_000, 1_400_000_000_000_000_000))
    os.utime(mnt / "g", ns=(1_000_000_000_000_000_000, 1_500_000_000_000_000_000))
    os.chmod(mnt / "g", 0o600)
    assert os.stat(mnt / "f").st_mtime_ns == 1_400_000_000_000_000_000
    assert http.get("/api/workspaces/demo/stat/f").json()["mtime"] == before  # (queued: not sent yet)
    settle(mnt)
    st_f = http.get("/api/workspaces/demo/stat/f").json()
    assert st_f["mtime"] == 1_400_000_000.0
    st = http.get("/api/workspaces/demo/stat/g").json()
    assert (stat.S_IMODE(st["mode"]), st["mtime"]) == (0o600, 1_500_000_000.0)
    # One push for both (the server speaks `file_set_mtime`: f's mtime is an entry of the batch,
    # not a wire `utime` after it, a revision of its own)
    assert st_f["rev"] == st["rev"]
    streamed(mnt, http, "m2")
    assert os.stat(mnt / "f").st_mtime_ns == 1_400_000_000_000_000_000
    assert os.stat(mnt / "g").st_mtime_ns == 1_500_000_000_000_000_000
    assert server_bytes(http, "f") == b"obj" and server_bytes(http, "g") == b"obj2"
    assert "conflict" not in log.read_text()


class _Hello:
    """What `_timed_files` asks of a session: the features its server's hello listed."""

    def __init__(self, *features: str):
        self.features = features

    def speaks(self, feature: str) -> bool:
        return feature in self.features


def test_a_retry_on_a_server_without_file_set_mtime_sends_the_utime_again():
    """A batch's file utimes become `set_mtime` entries for a server that lists
    `file_set_mtime`; when the retry's new connection reaches a server that does not (a
    rolling downgrade), they go back to wire `utime` calls rather than entries it refuses."""
    from client_py.mount.pushq import Item, _timed_files
    from vfs.types import Change, TimedChange
    from vfs.wire import FEATURE_FILE_SET_MTIME

    entry = Change("/f", "file", 3, mode=0o100644, mtime=1234.5, size=1, hash="ab")
    item = Item(entry, base=3, utime=True)
    _timed_files([item], _Hello(FEATURE_FILE_SET_MTIME))
    assert isinstance(item.change, TimedChange) and item.timed and not item.utime and not item.wire
    _timed_files([item], _Hello())
    assert type(item.change) is Change and item.change == entry
    assert item.utime and not item.timed and item.wire
