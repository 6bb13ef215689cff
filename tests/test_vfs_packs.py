"""Chunk bytes in pack files (`vfs/chunkstore.py`, `vfs/packs.py`): crash safety, gc, the backend option.

A writer process is killed (SIGKILL) at random moments during big writes,
again and again on the same store; after each kill the store must open,
every file must read as one whole version that was written (old or new,
never a mix), its `Stat.hash` must be the BLAKE3 of what it reads, and every
catalogue row must name bytes that are there and hash to it (`fsck`). Then
`gc` must reclaim what the killed writers left in the packs.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import blake3
import pytest

import vfs
from vfs import chunkstore
from vfs.chunks import unpack
from vfs.packs import pack_dir

ROOT = Path(__file__).resolve().parent.parent
MiB = 1 << 20
FILES = 3

# The writer: file k's version i is `content(k, i)`; it rewrites the files in
# turn, forever, each write one transaction, until killed.
WRITER = r"""
import random, sys
sys.path.insert(0, sys.argv[2])
import vfs

def content(k, i):
    rnd = random.Random(k * 100_003 + i)
    return b"%8d%8d" % (k, i) + rnd.randbytes((1 + (i % 4)) * 1_100_000 + rnd.randrange(70_000))

collect = sys.argv[4] == "gc"  # keep one version and compact after every round of writes
if sys.argv[4] == "hold":  # stop for good once a write's bytes are in a pack but not yet committed
    import time
    import vfs.packs
    sync = vfs.packs.Packs.sync

    def sync_then_hold(self):
        sync(self)
        print("appended", flush=True)
        time.sleep(60)

    vfs.packs.Packs.sync = sync_then_hold
ws = vfs.Workspace(sys.argv[1], history_keep=1 if collect else 20, history_days=0 if collect else 7)
i = int(sys.argv[3])
print("ready", flush=True)
while True:
    for k in range(NFILES):
        ws.write_file(f"/f{k}", content(k, i))
    if collect:
        ws.gc()
    i += 1
""".replace("NFILES", str(FILES))


def content(k: int, i: int) -> bytes:
    """Version i of file k (as the writer makes it): it names itself in its first 16 bytes."""
    rnd = random.Random(k * 100_003 + i)
    return b"%8d%8d" % (k, i) + rnd.randbytes((1 + (i % 4)) * 1_100_000 + rnd.randrange(70_000))


def fsck(store: Path) -> dict[int, int]:
    """Every row's bytes present and hashing to its hash; every listed chunk catalogued.
    Returns the live bytes per pack."""
    conn = sqlite3.connect(store)
    try:
        packs = pack_dir(str(store))
        live: dict[int, int] = {}
        rows = conn.execute("SELECT id, hash, size, pack, pos, data FROM chunks")
        for chunk_id, digest, size, number, position, inline in rows:
            if inline is not None:  # a tiny chunk keeps its bytes in its catalogue row (TINY_CHUNK)
                data = bytes(inline)
            elif number is None:
                (data,) = conn.execute("SELECT data FROM chunk_data WHERE id = ?", (chunk_id,)).fetchone()
            else:
                with open(os.path.join(packs, f"{number:08d}.pack"), "rb") as f:
                    f.seek(position)
                    data = f.read(size)
                live[number] = live.get(number, 0) + size
            assert len(data) == size and blake3.blake3(data).digest() == digest, f"chunk {chunk_id} is damaged"
        ids = {row[0] for row in conn.execute("SELECT id FROM chunks")}
        for table in ("nodes", "versions"):
            for (blob,) in conn.execute(f"SELECT chunks FROM {table} WHERE chunks IS NOT NULL"):
                assert {e.id for e in unpack(blob)} <= ids, f"{table} lists a chunk the catalogue lost"
        return live
    finally:
        conn.close()


def check_files(store: Path) -> None:
    """Each file is exactly one version the writer wrote, and its content id is its BLAKE3."""
    with vfs.Workspace(str(store)) as ws:
        for k in range(FILES):
            if not ws.exists(f"/f{k}"):
                continue
            data = ws.read_file(f"/f{k}")
            assert ws.stat(f"/f{k}").hash == blake3.blake3(data).hexdigest()
            named_k, named_i = int(data[:8]), int(data[8:16])
            assert named_k == k and data == content(k, named_i), f"/f{k} is no version written"


def kill_writer_at_random(store: Path, start: int, rnd: random.Random, mode: str = "write") -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(store), str(ROOT), str(start), mode],
        stdout=subprocess.PIPE, start_new_session=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        time.sleep(rnd.uniform(0.05, 1.2))
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


def kill_writer_before_commit(store: Path, start: int) -> None:
    """A kill that surely lands between a write's append (synced) and its COMMIT."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(store), str(ROOT), str(start), "hold"],
        stdout=subprocess.PIPE, start_new_session=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        assert proc.stdout.readline() == b"appended\n"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


def test_a_writer_killed_during_big_writes_leaves_whole_versions(tmp_path: Path) -> None:
    store = tmp_path / "crash.db"
    vfs.Workspace(str(store)).close()  # a new store: the packs backend by default
    rnd = random.Random(14)
    rounds = 8
    for round_ in range(rounds):
        kill_writer_at_random(store, round_ * 1000, rnd)
        fsck(store)
        check_files(store)
    # Random kills may all miss the append-to-commit window (a fast disk makes it
    # short, and CI's did once); this last one cannot.
    kill_writer_before_commit(store, rounds * 1000)
    fsck(store)
    check_files(store)
    packs = pack_dir(str(store))
    on_disk = sum(os.path.getsize(os.path.join(packs, name)) for name in os.listdir(packs))
    assert on_disk > sum(fsck(store).values()), "the kills left bytes no row names (else nothing was tested)"
    with vfs.Workspace(str(store), history_keep=1, history_days=0) as ws:
        ws.gc()
    live = fsck(store)
    check_files(store)
    for name in os.listdir(packs):
        number, size = int(name.split(".")[0]), os.path.getsize(os.path.join(packs, name))
        assert size == 0 or live.get(number, 0) * 2 > size, f"gc left {name} at least half garbage"


def test_a_writer_killed_while_gc_compacts_packs_loses_nothing(tmp_path: Path) -> None:
    """Kills land in writes, in gc's deletions, in compaction's moves and between a move and the unlink."""
    store = tmp_path / "compact.db"
    vfs.Workspace(str(store)).close()
    rnd = random.Random(41)
    for round_ in range(8):
        kill_writer_at_random(store, round_ * 1000, rnd, mode="gc")
        fsck(store)
        check_files(store)
    numbers = sorted(int(name.split(".")[0]) for name in os.listdir(pack_dir(str(store))))
    assert numbers and numbers[0] > 1, "compaction moved the first pack's chunks on and dropped it"


def test_gc_reclaims_overwritten_and_rolled_back_bytes(tmp_path: Path) -> None:
    store = tmp_path / "gc.db"
    packs = pack_dir(str(store))
    with vfs.Workspace(str(store), history_keep=1, history_days=0) as ws:
        for i in range(4):
            ws.write_file("/big", content(0, i))
        size_before = sum(os.path.getsize(os.path.join(packs, n)) for n in os.listdir(packs))
        with pytest.raises(RuntimeError):
            with ws.transaction():
                ws.write_file("/other", content(1, 3))
                raise RuntimeError("rolled back")
        assert sum(os.path.getsize(os.path.join(packs, n)) for n in os.listdir(packs)) == size_before
        stats = ws.gc()
        assert stats.chunks_removed > 0
        assert ws.read_file("/big") == content(0, 3)
    live = fsck(store)
    total = sum(os.path.getsize(os.path.join(packs, n)) for n in os.listdir(packs))
    assert total < size_before
    assert total <= 2 * sum(live.values())


def test_backend_is_a_per_store_choice(tmp_path: Path) -> None:
    big = content(2, 1)
    with vfs.Workspace(str(tmp_path / "inline.db"), chunk_backend="sqlite") as ws:
        ws.write_file("/big", big)
    assert not os.path.exists(pack_dir(str(tmp_path / "inline.db")))
    with vfs.Workspace(str(tmp_path / "inline.db")) as ws:  # reopened: keeps its choice
        ws.write_file("/big2", big[::-1])
        assert ws.read_file("/big2") == big[::-1]
    assert not os.path.exists(pack_dir(str(tmp_path / "inline.db")))
    with vfs.Workspace(str(tmp_path / "inline.db"), chunk_backend="packs") as ws:  # may move on to packs
        ws.write_file("/big3", content(3, 1))
        assert ws.read_file("/big") == big and ws.read_file("/big3") == content(3, 1)
    assert os.listdir(pack_dir(str(tmp_path / "inline.db")))
    with pytest.raises(ValueError, match="pack files"):
        vfs.Workspace(str(tmp_path / "inline.db"), chunk_backend="sqlite")
    with pytest.raises(ValueError, match="unknown chunk backend"):
        vfs.Workspace(str(tmp_path / "x.db"), chunk_backend="s3")
    with vfs.Workspace(str(tmp_path / "inline.db"), readonly=True) as ro:
        assert ro.read_file("/big3") == content(3, 1)
    with vfs.Workspace() as memory:  # nowhere to put packs
        memory.write_file("/big", big)
        assert memory.read_file("/big") == big


def test_small_writes_stay_inside_sqlite(tmp_path: Path) -> None:
    store = tmp_path / "small.db"
    with vfs.Workspace(str(store)) as ws:
        for i in range(20):
            ws.write_file(f"/s{i}", os.urandom(30_000))
    assert not os.path.exists(pack_dir(str(store))) or not any(
        os.path.getsize(os.path.join(pack_dir(str(store)), n)) for n in os.listdir(pack_dir(str(store)))
    )
    assert chunkstore.SPILL >= 30_000


def test_a_small_edit_of_a_big_file_appends_nothing_to_the_packs(tmp_path: Path) -> None:
    """Rewriting a big file with one byte inserted stores 1-3 new chunks: inline, not in a pack."""
    store = tmp_path / "edit.db"
    big = content(1, 2)
    with vfs.Workspace(str(store)) as ws:
        ws.write_file("/big", big)
        packs = pack_dir(str(store))
        before = {n: os.path.getsize(os.path.join(packs, n)) for n in os.listdir(packs)}
        ws.write_file("/big", b"!" + big)
        ws.write_range("/big", 5, b"??")
        assert {n: os.path.getsize(os.path.join(packs, n)) for n in os.listdir(packs)} == before
        assert ws.read_file("/big") == b"!" + big[:4] + b"??" + big[6:]
    fsck(store)


def test_a_reader_whose_pack_compaction_dropped_reads_from_the_new_place(tmp_path: Path) -> None:
    """A reader located the chunks, then gc moved them and unlinked their pack before it opened it."""
    store = tmp_path / "race.db"
    tail = content(6, 1)[: 2 * MiB]
    with vfs.Workspace(str(store), history_keep=1, history_days=0) as writer:
        writer.write_file("/junk", content(5, 3))  # ~4.4 MB of pack 1 that will be garbage
        writer.write_file("/f", b"head")  # inline
        writer.write_range("/f", 4, tail)  # its first MiB inline, the rest appended to pack 1
        writer.unlink("/junk")
        first_pack = os.path.join(pack_dir(str(store)), "00000001.pack")
        assert os.path.exists(first_pack)
        with vfs.Workspace(str(store), readonly=True) as reader:
            entries = reader._content.file_chunks("/f", None)
            pieces = reader._content.iter_chunks(entries)
            got = next(pieces)  # located every chunk, read the inline head; pack 1 not opened yet
            writer.gc()
            assert not os.path.exists(first_pack), "compaction moved /f's chunks and dropped pack 1"
            got += b"".join(pieces)
        assert got == b"head" + tail
    fsck(store)


# A write whose pack append fails (the file-size limit, EFBIG, part-way through a `pwritev` group):
# the error must reach the writer inside its transaction, which rolls back and takes the bytes back.
FAILING_APPEND = r"""
import errno, os, resource, signal, sys
sys.path.insert(0, sys.argv[2])
import vfs

ws = vfs.Workspace(sys.argv[1])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[3]), int(sys.argv[3])))
try:
    ws.write_file("/big", sys.stdin.buffer.read())
except OSError as error:
    print("refused", errno.errorcode[error.errno])
else:
    print("written")
"""


def test_a_failed_pack_append_rolls_the_write_back(tmp_path: Path) -> None:
    store = tmp_path / "full.db"
    first = content(0, 1)  # ~2.2 MB: its tail goes to a pack
    with vfs.Workspace(str(store)) as ws:
        ws.write_file("/big", first)
    packs = pack_dir(str(store))
    size_before = sum(os.path.getsize(os.path.join(packs, n)) for n in os.listdir(packs))
    limit = size_before + 2 * MiB  # the store file and its WAL stay far below it
    bigger = content(0, 3)  # ~4.4 MB: more than the limit allows the pack to grow
    run = subprocess.run([sys.executable, "-c", FAILING_APPEND, str(store), str(ROOT), str(limit)],
                         input=bigger, capture_output=True, timeout=120)
    assert run.stdout.decode().split() == ["refused", "EFBIG"], run.stderr.decode()
    assert sum(os.path.getsize(os.path.join(packs, n)) for n in os.listdir(packs)) == size_before
    with vfs.Workspace(str(store)) as ws:
        assert ws.read_file("/big") == first
        assert ws.stat("/big").hash == blake3.blake3(first).hexdigest()
    fsck(store)
