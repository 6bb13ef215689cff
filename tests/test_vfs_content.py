"""File content: content-defined chunking, dedup, streaming, file objects, ranges.

Chunk sharing is observed through the public API only: `ws.entry(path).chunks`
(the `(hash, size)` list a sync peer would receive), `has_objects`, and
`gc().chunks_kept` (the number of distinct chunks the store holds).
"""

from __future__ import annotations

import errno
import io
import random
import tracemalloc

import blake3
import pytest

import vfs

MiB = 1024 * 1024


@pytest.fixture()
def ws(tmp_path):
    with vfs.Workspace(str(tmp_path / "store.db")) as store:
        yield store


def chunk_hashes(ws: vfs.Workspace, path: str) -> list[str]:
    entry = ws.entry(path)
    assert entry is not None and entry.kind == "file"
    return [h for h, _ in entry.chunks]


def distinct_chunks(ws: vfs.Workspace) -> int:
    return ws.gc().chunks_kept


@pytest.fixture(scope="module")
def ten_mib() -> bytes:
    return random.Random(10).randbytes(10 * MiB)


def test_chunk_sizes_follow_fastcdc_bounds(ws, ten_mib):
    ws.write_file("/k", ten_mib)
    sizes = [size for _, size in ws.entry("/k").chunks]
    assert sum(sizes) == len(ten_mib)
    assert all(16 * 1024 <= s <= 256 * 1024 for s in sizes[:-1]), sizes
    assert 40 <= len(sizes) <= 640  # ~64 KiB average: 160 chunks expected for 10 MiB
    entry = ws.entry("/k")
    data = b"".join(dict(ws.read_objects([h for h, _ in entry.chunks]))[h] for h, _ in entry.chunks)
    assert data == ten_mib


def test_inserting_one_byte_at_the_start_adds_at_most_3_chunks(ws, ten_mib):
    ws.write_file("/k", ten_mib)
    before = chunk_hashes(ws, "/k")
    ws.write_file("/k", b"\x42" + ten_mib)
    after = chunk_hashes(ws, "/k")
    new = set(after) - set(before)
    assert 1 <= len(new) <= 3, len(new)
    assert ws.read_file("/k") == b"\x42" + ten_mib
    assert ws.has_objects(after) == set(after)


def test_equal_content_and_copy_share_every_chunk(ws, ten_mib):
    ws.write_file("/a", ten_mib)
    kept = distinct_chunks(ws)
    ws.write_file("/b", ten_mib)
    ws.mkdir("/d")
    ws.copy("/a", "/d/c")
    ws.write_file("/e", io.BytesIO(ten_mib))  # streamed: same cuts as in memory
    assert chunk_hashes(ws, "/a") == chunk_hashes(ws, "/b") == chunk_hashes(ws, "/d/c") == chunk_hashes(ws, "/e")
    assert distinct_chunks(ws) == kept
    assert ws.read_file("/d/c") == ten_mib
    assert ws.stat("/d/c").mode == ws.stat("/a").mode


def test_copy_keeps_metadata_and_is_independent(ws):
    ws.write_file("/a", b"original", mode=0o600)
    ws.utime("/a", 1_000_000.0)
    ws.copy("/a", "/b")
    b = ws.stat("/b")
    assert (b.mode & 0o7777, b.mtime, b.hash) == (0o600, 1_000_000.0, ws.stat("/a").hash)
    assert b.ino != ws.stat("/a").ino and b.nlink == 1
    ws.write_range("/b", 0, b"O")
    assert ws.read_file("/a") == b"original" and ws.read_file("/b") == b"Original"


def test_write_range_rechunks_only_near_the_edit(ws, ten_mib):
    ws.write_file("/k", ten_mib)
    before = chunk_hashes(ws, "/k")
    ws.write_range("/k", 5 * MiB, b"edit" * 25)
    after = chunk_hashes(ws, "/k")
    assert len(set(after) - set(before)) <= 3
    assert len(set(before) & set(after)) >= len(before) - 3
    expected = bytearray(ten_mib)
    expected[5 * MiB : 5 * MiB + 100] = b"edit" * 25
    assert ws.read_file("/k") == bytes(expected)
    assert ws.stat("/k").hash == blake3.blake3(bytes(expected)).hexdigest()


def test_truncate_rechunks_only_the_tail(ws, ten_mib):
    ws.write_file("/k", ten_mib)
    before = chunk_hashes(ws, "/k")
    ws.truncate("/k", 7 * MiB)
    after = chunk_hashes(ws, "/k")
    assert len(set(after) - set(before)) <= 2
    assert ws.read_file("/k") == ten_mib[: 7 * MiB]


@pytest.mark.parametrize("content", [b"", b"x", b"hello\n" * 1000, bytes(range(256)) * 2000])
def test_stat_hash_is_blake3_of_content(ws, content):
    st = ws.write_file("/f", content)
    want = blake3.blake3(content).hexdigest()
    assert st.hash == ws.stat("/f").hash == want
    assert st.size == len(content)
    ws.mkdir("/d")
    assert ws.stat("/d").hash is None


def test_write_file_accepts_str_iterables_and_file_objects(ws):
    ws.write_file("/s", "héllo")
    assert ws.read_file("/s") == "héllo".encode()
    ws.write_file("/i", (bytes([i]) * 1000 for i in range(50)))
    assert ws.read_file("/i") == b"".join(bytes([i]) * 1000 for i in range(50))
    ws.write_file("/empty-iter", iter(()))
    assert ws.read_file("/empty-iter") == b""
    ws.write_file("/fo", io.BytesIO(b"from a file object"))
    assert ws.read_file("/fo") == b"from a file object"


class _Generated(io.RawIOBase):
    """A large deterministic stream that is never held in memory as a whole."""

    def __init__(self, total: int, block: bytes):
        self.left, self.block, self.pos = total, block, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        n = min(len(buf), self.left, len(self.block) - self.pos % len(self.block))
        start = self.pos % len(self.block)
        buf[:n] = self.block[start : start + n]
        self.pos += n
        self.left -= n
        return n


def _pieces(total: int, hasher) -> object:
    """Fresh random bytes, 4 MiB at a time: nothing dedups, every chunk must be stored."""
    rnd, sent = random.Random(5), 0
    while sent < total:
        piece = rnd.randbytes(min(4 * MiB, total - sent))
        hasher.update(piece)
        yield piece
        sent += len(piece)


@pytest.mark.parametrize("source", ["generator", "file object"])
def test_streaming_300_mib_keeps_memory_bounded(ws, source):
    total = 300 * MiB
    block = random.Random(3).randbytes(4 * MiB)
    hasher = blake3.blake3()
    if source == "generator":
        data = _pieces(total, hasher)
    else:
        data = io.BufferedReader(_Generated(total, block), buffer_size=1 * MiB)
        for i in range(total // len(block)):
            hasher.update(block)
    tracemalloc.start()
    try:
        st = ws.write_file("/big", data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * MiB, f"peak {peak / MiB:.1f} MiB"
    assert st.size == total
    assert st.hash == hasher.hexdigest()


def test_iter_file_streams_in_chunks(ws, ten_mib):
    ws.write_file("/k", ten_mib)
    pieces = list(ws.iter_file("/k"))
    assert len(pieces) > 1 and b"".join(pieces) == ten_mib
    assert b"".join(ws.iter_file("/k", 1000, 300_000)) == ten_mib[1000:301_000]


def test_read_range_is_short_at_eof(ws):
    ws.write_file("/f", b"abc")
    assert [ws.read_range("/f", o, 100) for o in (0, 2, 3, 50)] == [b"abc", b"c", b"", b""]
    assert ws.read_range("/f", 1, 0) == b""
    for bad in ((-1, 5), (0, -1)):
        with pytest.raises(OSError) as info:
            ws.read_range("/f", *bad)
        assert info.value.errno == errno.EINVAL


def test_read_range_across_chunk_boundaries(ws, ten_mib):
    ws.write_file("/k", ten_mib)
    rnd = random.Random(1)
    for _ in range(50):
        off, size = rnd.randrange(len(ten_mib) + 10), rnd.choice([1, 100, 70_000, 600_000])
        assert ws.read_range("/k", off, size) == ten_mib[off : off + size]


def test_write_range_past_eof_zero_fills(ws):
    ws.write_file("/f", b"ab")
    st = ws.write_range("/f", 5, b"z")
    assert ws.read_file("/f") == b"ab\0\0\0z" and st.size == 6
    ws.write_range("/f", 300_000, b"far")
    data = ws.read_file("/f")
    assert len(data) == 300_003 and data[6:300_000] == bytes(300_000 - 6) and data.endswith(b"far")


def test_truncate_shrinks_and_zero_extends(ws):
    ws.write_file("/f", b"hello world")
    assert ws.truncate("/f", 5).size == 5 and ws.read_file("/f") == b"hello"
    assert ws.truncate("/f", 300_000).size == 300_000
    assert ws.read_file("/f") == b"hello" + bytes(299_995)
    assert ws.truncate("/f", 0).size == 0 and ws.read_file("/f") == b""
    with pytest.raises(OSError) as info:
        ws.truncate("/f", -1)
    assert info.value.errno == errno.EINVAL


# ---------------------------------------------------------------- file objects
# Every script runs against a real file too: Python's own file objects are the truth.


def _run_script(f, script):
    out = []
    for op, *args in script:
        out.append(getattr(f, op)(*args))
    return out


SCRIPTS = {
    "rb": [("read", 3), ("seek", 0, 2), ("tell",), ("read",), ("seek", -4, 2), ("read", 10),
           ("seek", 100), ("read", 1), ("seek", 2), ("read",)],
    "wb": [("write", b"hello"), ("tell",), ("seek", 1), ("write", b"E"), ("seek", 10), ("write", b"!"),
           ("truncate", 8), ("tell",), ("seek", 0, 2), ("tell",)],
    # (flush before the last tell: Python's buffered writer reports a stale position in append mode)
    "ab": [("write", b"-tail"), ("tell",), ("seek", 0), ("write", b"+more"), ("flush",), ("tell",)],
    "r+b": [("read", 2), ("write", b"XY"), ("seek", 0), ("read", 6), ("truncate",), ("seek", 0, 2),
            ("tell",), ("write", b"end"), ("seek", 1), ("truncate", 3)],
    "xb": [("write", b"new file"), ("seek", 3), ("write", b"X"), ("truncate", 6), ("tell",)],
}


@pytest.mark.parametrize("mode", list(SCRIPTS))
def test_open_modes_behave_like_python_files(ws, tmp_path, mode):
    initial = b"0123456789abcdef"
    real = tmp_path / "real.bin"
    if mode != "xb":
        real.write_bytes(initial)
        ws.write_file("/f", initial)
    with open(real, mode) as f:
        want = _run_script(f, SCRIPTS[mode])
    with ws.open("/f", mode) as f:
        got = _run_script(f, SCRIPTS[mode])
    assert got == want
    assert ws.read_file("/f") == real.read_bytes()


def test_open_errors_like_python(ws, tmp_path):
    ws.write_file("/exists", b"x")
    ws.mkdir("/dir")
    cases = [("/missing", "rb", errno.ENOENT), ("/exists", "xb", errno.EEXIST),
             ("/dir", "rb", errno.EISDIR), ("/dir", "wb", errno.EISDIR), ("/missing/x", "wb", errno.ENOENT)]
    for path, mode, code in cases:
        with pytest.raises(OSError) as info:
            ws.open(path, mode)
        assert info.value.errno == code, (path, mode)
    with ws.open("/exists", "rb") as f, pytest.raises(io.UnsupportedOperation):
        f.write(b"no")
    with pytest.raises((ValueError, OSError)):
        ws.open("/exists", "r")  # text mode is not offered: binary file objects only


def test_many_small_writes_commit_once_on_close(ws, tmp_path):
    path = str(tmp_path / "store.db")
    ws.write_file("/log", b"")
    rev = ws.rev
    with vfs.Workspace(path) as reader:
        with ws.open("/log", "ab") as f:
            for i in range(500):
                f.write(b"line %d\n" % i)
            assert reader.read_file("/log") == b""  # not committed yet
            assert ws.rev == rev
        assert ws.rev == rev + 1
        assert reader.read_file("/log") == b"".join(b"line %d\n" % i for i in range(500))


def test_flush_commits_and_close_after_flush_adds_nothing(ws):
    with ws.open("/f", "wb") as f:
        f.write(b"one")
        f.flush()
        rev = ws.rev
        assert ws.read_file("/f") == b"one"
    assert ws.rev == rev  # nothing new since the flush


def test_open_write_through_hard_link_and_symlink(ws):
    ws.write_file("/a", b"shared")
    ws.link("/a", "/b")
    ws.symlink("a", "/s")
    with ws.open("/s", "r+b") as f:
        f.seek(0)
        f.write(b"S")
    assert ws.read_file("/b") == b"Shared"
    assert ws.lstat("/s").kind == "symlink"


def test_file_object_truncate_can_extend(ws, tmp_path):
    real = tmp_path / "real.bin"
    script = [("write", b"xy"), ("truncate", 5), ("seek", 0, 2), ("tell",), ("truncate", 70_000), ("tell",)]
    with open(real, "wb") as f:
        want = _run_script(f, script)
    with ws.open("/f", "wb") as f:
        got = _run_script(f, script)
    assert got == want
    assert ws.read_file("/f") == real.read_bytes() == b"xy" + bytes(69_998)


@pytest.mark.parametrize("bad, error", [(1e308, OverflowError), (-1e308, OverflowError), (float("inf"), OverflowError),
                                        (float("nan"), ValueError), (2.0**40, OverflowError)])
def test_utime_out_of_range_raises_as_os_utime_does_and_changes_nothing(ws, bad, error):
    """The store keeps int64 nanoseconds: a time past that is refused with the class os.utime uses for
    times it cannot keep, with a message saying the range, and the file and the log are untouched."""
    ws.write_file("/t", b"t")
    ws.utime("/t", 1_000_000.0)
    rev = ws.rev
    with pytest.raises(error) as info:
        ws.utime("/t", bad)
    assert error is ValueError or "1678-2262" in str(info.value)
    with pytest.raises(OverflowError, match="1678-2262"):
        ws.set_times("/t", mtime_ns=2**63)
    assert ws.stat("/t").mtime == 1_000_000.0 and ws.rev == rev


def test_write_file_stamps_a_given_change_time_but_never_an_earlier_one(ws):
    """A mount commits buffered writes after they happened and passes the time of the last write as
    ctime (what the kernel was told); the store keeps it, unless the file changed later meanwhile."""
    ws.write_file("/f", b"old")
    before = ws.stat("/f").ctime_ns
    written = ws.write_file("/f", b"new", mtime_ns=before + 5, ctime_ns=before + 5)
    assert written.ctime_ns == ws.stat("/f").ctime_ns == before + 5 and written.mtime_ns == before + 5
    ws.chmod("/f", 0o600)
    chmodded = ws.stat("/f").ctime_ns
    again = ws.write_file("/f", b"newer", ctime_ns=before + 10)  # older than the chmod's: the chmod's stays
    assert again.ctime_ns == chmodded and ws.read_file("/f") == b"newer"
    assert ws.write_file("/f", b"now").ctime_ns > chmodded  # without it: the commit's time, as before


def test_put_file_says_whether_it_created_the_file(ws):
    """`put_file` is `write_file` plus created-or-replaced, from the write's own lookup (the server's
    201/200): a new name, an existing file, a dangling symlink's target, a failed precondition."""
    stat, created = ws.put_file("/a.txt", b"one")
    assert created and stat.size == 3
    stat, created = ws.put_file("/a.txt", b"two!")
    assert not created and stat.size == 4 and ws.read_file("/a.txt") == b"two!"
    ws.symlink("/target.txt", "/link")
    _, created = ws.put_file("/link", b"through")  # the link stays; its target is made
    assert created and ws.read_file("/target.txt") == b"through"
    _, created = ws.put_file("/link", b"again")
    assert not created
    rev = ws.rev
    with pytest.raises(vfs.PreconditionFailed):
        ws.put_file("/a.txt", b"x", if_match="")
    assert ws.rev == rev and ws.read_file("/a.txt") == b"two!"


def test_identical_rewrite_keeps_the_files_own_chunk_list(ws, ten_mib):
    """Rewriting a file's exact bytes reuses its chunk list, even one a fresh cut would not make
    (zero-extension appends the shared zero chunk where FastCDC would cut elsewhere): no chunk is
    stored, and the rewrite is still a new version with the exact id."""
    head = ten_mib[: 3 * MiB]
    ws.write_file("/f", head)
    ws.truncate("/f", 5 * MiB + 12345)  # zero-extended: a chunk list no fresh cut of these bytes gives
    content = ws.read_file("/f")
    listed, kept, before = chunk_hashes(ws, "/f"), distinct_chunks(ws), ws.stat("/f")
    after = ws.write_file("/f", content)
    assert chunk_hashes(ws, "/f") == listed and distinct_chunks(ws) == kept
    assert after.hash == blake3.blake3(content).digest().hex() == before.hash and after.rev > before.rev
    assert ws.read_file("/f") == content
    assert len(ws.history("/f")) == 3
    # Same size and first chunk, other bytes: a new list, the new exact id.
    changed = bytearray(content)
    changed[4 * MiB] ^= 1
    again = ws.write_file("/f", bytes(changed))
    assert again.hash == blake3.blake3(changed).digest().hex() and ws.read_file("/f") == changed
    assert chunk_hashes(ws, "/f") != listed


def test_content_stored_beforehand_commits_by_chunk_list_and_a_missing_chunk_commits_nothing(ws):
    """`StoredChunks` (what a server builds while a big upload arrives): the file gets exactly
    those chunks and the given content id; one chunk collected meanwhile fails the write with
    EAGAIN and leaves the file as it was."""
    from vfs.chunks import cut
    from vfs.content import StoredChunks

    data = random.Random(7).randbytes(3 * MiB)
    pieces = [bytes(p) for p in cut(data)]
    ws.put_objects([(None, p) for p in pieces])
    content = StoredChunks(tuple((blake3.blake3(p).digest(), len(p)) for p in pieces), blake3.blake3(data).digest())
    st = ws.write_file("/a.bin", content)
    assert st.hash == blake3.blake3(data).hexdigest() and st.size == len(data)
    assert ws.read_file("/a.bin") == data
    assert [h for h, _ in ws.entry("/a.bin").chunks] == [blake3.blake3(p).hexdigest() for p in pieces]
    rev = ws.rev
    lost = random.Random(8).randbytes(MiB)
    missing = StoredChunks(content.chunks + ((blake3.blake3(lost).digest(), len(lost)),),
                           blake3.blake3(data + lost).digest())
    with pytest.raises(OSError) as err:
        ws.write_file("/a.bin", missing)
    assert err.value.errno == errno.EAGAIN
    assert ws.rev == rev and ws.read_file("/a.bin") == data
