"""Remote mode's change stream (`remote_stream.py`): what it drops from the kernel's caches,
against a real server on loopback, through a real mount.

The kernel keeps names and attributes 60 s; the stream drops what changed elsewhere. The
mount's own changes come back through the stream too (their echoes): those leave what the
mount answers as it was, so the kernel keeps them (an untar once cost 10,434 invalidations,
one per file it made, each a call into the kernel and a later GETATTR).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from client_py.mount.runner import MountProcess
from mount_api import mount_api  # noqa: F401  (every test here on each API)
from tests.test_mount_remote import settle, wait_for

FILES = 20


@contextmanager
def mounted(live_server, tmp_path: Path) -> Iterator[tuple[Path, object, Path]]:
    """(mountpoint, http, log file) of a remote mount of workspace `demo`, unmounted (and its
    counts logged) when the block ends."""
    mnt, http = tmp_path / "mnt", live_server.http()
    mnt.mkdir()
    http.put("/api/workspaces/demo/files/docs/readme.md", content=b"# hello\n", params={"parents": 1})
    extra = ["--token", live_server.admin, "--cache", str(tmp_path / "cache")]
    log = tmp_path / "mount.log"
    try:
        with MountProcess([live_server.url, "demo"], str(mnt), log_file=str(log), extra=extra):
            yield mnt, http, log
    finally:
        http.close()


def streamed(mnt: Path, http, marker: str) -> None:
    """Wait until the stream has brought everything before a file written over HTTP now
    (the stream is ordered): our own changes' echoes have all arrived then."""
    http.put(f"/api/workspaces/demo/files/{marker}", content=b"m")
    wait_for(lambda: (mnt / marker).exists(), f"the marker {marker}")


def invalidated(log: Path) -> int:
    """Paths the change stream dropped from the kernel, as the daemon logs at unmount."""
    counts = re.findall(r"change stream: (\d+) paths invalidated", log.read_text())
    assert len(counts) == 1, "the daemon logs its count once, at unmount"
    return int(counts[0])


def test_echoes_of_our_own_changes_drop_nothing_from_the_kernel(live_server, tmp_path: Path):
    """A burst of files, a directory, a chmod, a symlink and a rewrite made here: once their
    echoes are back, what the mount answers is what it answered before them, so nothing is
    dropped but what the server stamped itself (the new directory's mtime) and the marker
    written elsewhere (old code: every echoed path and its parent, more than one per file)."""
    with mounted(live_server, tmp_path) as (mnt, http, log):
        (mnt / "d").mkdir()
        for i in range(FILES):
            (mnt / "d" / f"f{i}").write_bytes(b"x" * i)
        os.chmod(mnt / "d" / "f1", 0o600)
        os.symlink("f1", mnt / "d" / "link")
        settle(mnt)
        (mnt / "d" / "f2").write_bytes(b"new bytes")
        settle(mnt)
        streamed(mnt, http, "marker")
        names = os.listdir(mnt / "d")
        assert len(names) == FILES + 1
        assert os.stat(mnt / "d" / "f2").st_size == 9 and os.stat(mnt / "d" / "f1").st_mode & 0o777 == 0o600
    assert invalidated(log) <= 4  # (the marker and its directory, `d`; FILES + 3 echoed entries)


def test_changes_made_elsewhere_to_our_files_are_still_dropped(live_server, tmp_path: Path):
    """A file written here and then changed elsewhere (its mode, then its bytes): the kernel
    is told, so a stat and a read right after the stream brought it see the new state, not
    the attributes and pages the kernel kept from our own write (60 s)."""
    with mounted(live_server, tmp_path) as (mnt, http, log):
        (mnt / "f").write_bytes(b"ours")
        settle(mnt)
        streamed(mnt, http, "m1")
        assert os.stat(mnt / "f").st_mode & 0o777 == 0o644 and (mnt / "f").read_bytes() == b"ours"
        http.post("/api/workspaces/demo/ops", json={"op": "chmod", "path": "/f", "mode": 0o600})
        streamed(mnt, http, "m2")
        assert os.stat(mnt / "f").st_mode & 0o777 == 0o600
        http.put("/api/workspaces/demo/files/f", content=b"theirs, longer")
        streamed(mnt, http, "m3")
        assert os.stat(mnt / "f").st_size == len(b"theirs, longer")
        assert (mnt / "f").read_bytes() == b"theirs, longer"
    assert invalidated(log) >= 2
