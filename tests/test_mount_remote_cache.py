"""Remote mode's chunk cache (`remote_cache.py`): chunks written through the mount are saved to
it by a thread of their own, and stay readable at every moment on the way."""

from __future__ import annotations

import os
from pathlib import Path

import blake3

import vfs
from client_py.mount.remote_cache import SAVE_CHUNKS, WrittenChunks
from client_py.mount.runner import MountProcess
from tests.test_mount_remote import settle


def chunk(i: int) -> tuple[str, bytes]:
    data = f"chunk {i} ".encode() * 20
    return blake3.blake3(data).hexdigest(), data


def readable(written: WrittenChunks, digest: str) -> bytes | None:
    """What `RemoteBackend.chunk` finds without the server: memory, else the cache."""
    data = written.get(digest)
    if data is not None:
        return data
    with written.lock:
        for _, data in written.cache.read_objects([digest]):
            return data
    return None


def test_written_chunks_are_readable_before_during_and_after_their_save(tmp_path: Path):
    """Three batches' worth, one chunk at a time, from this thread while the saver thread
    commits: after every add, every chunk added so far is found in memory or in the cache
    (a saver that let go of a batch before its commit would lose some in between); after
    `close` all are in the cache and none is held in memory."""
    with vfs.Workspace(str(tmp_path / "cache.db")) as cache:
        written = WrittenChunks(cache)
        added = []
        for i in range(3 * SAVE_CHUNKS + 7):
            digest, data = chunk(i)
            written.add([(digest, data)])
            added.append((digest, data))
            if i % 97 == 0 or i >= 3 * SAVE_CHUNKS:
                assert all(readable(written, d) == b for d, b in added)
        written.close()
        assert written.saves >= 3
        with written.lock:
            assert cache.has_objects([d for d, _ in added]) == {d for d, _ in added}
        assert all(written.get(d) is None for d, _ in added)


def test_files_written_through_the_mount_read_back_and_reach_the_cache(live_server, tmp_path: Path):
    """More files than one save holds, read back at once (from memory or the cache, never the
    server: the bytes are checked against what was written), and in the cache after unmount."""
    mnt, cache = tmp_path / "mnt", tmp_path / "cache"
    mnt.mkdir()
    extra = ["--token", live_server.admin, "--cache", str(cache)]
    contents = {f"f{i}": f"file {i}\n".encode() * (1 + i % 7) for i in range(SAVE_CHUNKS + 100)}
    with MountProcess([live_server.url, "demo"], str(mnt), log_file=str(tmp_path / "mount.log"), extra=extra):
        (mnt / "d").mkdir()
        for name, data in contents.items():
            (mnt / "d" / name).write_bytes(data)
        assert all((mnt / "d" / name).read_bytes() == data for name, data in contents.items())
        settle(mnt)
    assert "saved written chunks to the cache in" in (tmp_path / "mount.log").read_text()
    digests = {blake3.blake3(data).hexdigest() for data in contents.values()}
    with vfs.Workspace(str(cache / "demo.cache.db"), readonly=True) as store:
        assert store.has_objects(sorted(digests)) == digests
    assert not os.path.exists(mnt / "d")  # (unmounted)
