"""A local FUSE mount is a store's only writer; everyone else is told so at once.

See `vfs.storelock`: writable opens share the store, an exclusive open (what
`wsfs mount STORE.db` does) shuts other writers out, read-only opens never
conflict, and a killed holder leaves no stale lock.
"""

from __future__ import annotations

import errno
import signal
import subprocess
import sys
import time

import pytest

import vfs


def test_exclusive_open_shuts_out_writers_but_not_readers(tmp_path):
    path = str(tmp_path / "s.db")
    with vfs.Workspace(path, exclusive=True) as owner:
        owner.write_file("/f", b"mine")
        with pytest.raises(vfs.StoreBusy) as info:
            vfs.Workspace(path)
        assert info.value.errno == errno.EBUSY
        assert "mounted" in info.value.strerror and info.value.filename == path
        with vfs.Workspace(path, readonly=True) as reader:
            assert reader.read_file("/f") == b"mine"
    with vfs.Workspace(path) as writer:  # released on close
        assert writer.read_file("/f") == b"mine"


def test_exclusive_open_is_refused_while_anyone_writes(tmp_path):
    path = str(tmp_path / "s.db")
    first, second = vfs.Workspace(path), vfs.Workspace(path)  # writers share
    try:
        with pytest.raises(vfs.StoreBusy) as info:
            vfs.Workspace(path, exclusive=True)
        assert "wsfs mount URL WORKSPACE MOUNTPOINT" in info.value.strerror
        first.close()
        with pytest.raises(vfs.StoreBusy):
            vfs.Workspace(path, exclusive=True)  # the second writer still holds it
    finally:
        first.close()
        second.close()
    vfs.Workspace(path, exclusive=True).close()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    path = str(tmp_path / "s.db")
    vfs.Workspace(path).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import sys, time, vfs; ws = vfs.Workspace({path!r}, exclusive=True); "
         "print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(vfs.StoreBusy):
            vfs.Workspace(path)
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    finally:
        holder.kill()
        holder.wait(10)
        holder.stdout.close()
    deadline = time.monotonic() + 5
    while True:  # the kernel drops the flock with the process
        try:
            vfs.Workspace(path).close()
            break
        except vfs.StoreBusy:
            assert time.monotonic() < deadline, "the lock outlived its holder"
            time.sleep(0.05)


def test_memory_and_read_only_stores_take_no_lock(tmp_path):
    with vfs.Workspace(":memory:", exclusive=True) as one, vfs.Workspace(":memory:", exclusive=True) as two:
        one.write_file("/a", b"1")
        two.write_file("/a", b"2")
    path = str(tmp_path / "ro.db")
    vfs.Workspace(path).close()
    with vfs.Workspace(path, exclusive=True):
        with vfs.Workspace(path, readonly=True) as reader:
            assert reader.exists("/") is True
