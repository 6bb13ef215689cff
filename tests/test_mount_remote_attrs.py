"""Remote mode's chmod, chown and utimens (`RemoteBackend`), against a real server: tar sends
them for every node it makes, so each resolves its path once and builds one `Stat`; and the
answer is what a `stat` right after gives."""

from __future__ import annotations

import stat as stat_mod
from collections import Counter
from pathlib import Path

import pytest

from client_py.mount.remote_backend import RemoteBackend

EXACT_NS = 1_600_000_000_123_456_789  # more digits than a float of seconds keeps


@pytest.fixture
def backend(live_server, tmp_path: Path):
    b = RemoteBackend(live_server.url, "demo", token=live_server.admin, cache_dir=str(tmp_path / "cache")).start()
    try:
        yield b
    finally:
        b.close()


def counting(b: RemoteBackend) -> Counter:
    """Count the backend's path resolutions and `Stat` builds (the instance's own methods, wrapped)."""
    calls: Counter = Counter()
    for name in ("_entry", "_stat"):
        method = getattr(b, name)

        def wrapper(*args, _method=method, _name=name, **kwargs):
            calls[_name] += 1
            return _method(*args, **kwargs)

        setattr(b, name, wrapper)
    return calls


def test_queued_attribute_changes_resolve_once_and_answer_as_stat(backend: RemoteBackend):
    backend.mkdir("/d", mode=0o755)
    backend.write_file("/d/f", b"content", ino=backend.reserve_ino())
    calls = counting(backend)
    for path in ("/d", "/d/f"):
        before = backend.lstat(path)
        calls.clear()
        answers = [backend.chmod(path, 0o700), backend.chown(path, 1234, 5678, follow_symlinks=False),
                   backend.set_times(path, atime_ns=EXACT_NS + 1, mtime_ns=EXACT_NS, follow_symlinks=False)]
        assert calls == Counter(_entry=3, _stat=3), path  # (2-4 of each per call before)
        after = backend.lstat(path)
        assert answers[-1] == after
        assert (stat_mod.S_IMODE(after.mode), after.uid, after.gid) == (0o700, 1234, 5678)
        assert (after.mtime_ns, after.atime_ns) == (EXACT_NS, EXACT_NS + 1)
        assert after.ctime_ns >= before.ctime_ns and after.ino == before.ino
    backend.sync()
    assert stat_mod.S_IMODE(backend.lstat("/d/f").mode) == 0o700


def test_times_set_through_a_symlink_land_on_its_target_exactly(backend: RemoteBackend):
    """Following a symlink, the exact nanoseconds go with the target's new mtime (they were
    matched against the symlink's own mtime, and dropped)."""
    backend.write_file("/t", b"target", ino=backend.reserve_ino())
    backend.symlink("t", "/s")
    link_mtime = backend.lstat("/s").mtime_ns
    st = backend.set_times("/s", mtime_ns=EXACT_NS, follow_symlinks=True)
    assert st.kind == "file" and st.mtime_ns == EXACT_NS
    assert backend.stat("/s").mtime_ns == EXACT_NS and backend.lstat("/t").mtime_ns == EXACT_NS
    assert backend.lstat("/s").mtime_ns == link_mtime


def test_a_directory_keeps_the_mtime_its_create_gave_it_through_the_close(backend: RemoteBackend):
    """A file made here moves its directory's mtime at the create (the kernel asks for the
    directory's attributes right then), not again at the close that queues it."""
    backend.mkdir("/d", mode=0o755)
    backend.pending_created("/d/f")
    at_create = backend.lstat("/d").mtime_ns
    backend.write_file("/d/f", b"content", ino=backend.reserve_ino())
    assert backend.lstat("/d").mtime_ns == at_create
    assert backend.lstat("/d/f").size == 7
