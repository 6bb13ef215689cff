"""Benchmark the vfs store against the local disk, on the dofs-bench workload.

    python bench/bench_vfs.py            # everything (a few minutes)
    python bench/bench_vfs.py --quick    # 3 runs instead of 6, smaller change-cost trees
    python bench/bench_vfs.py --only big,insert   # some groups only
    python bench/bench_vfs.py --only big --compare sqlite   # big files with both chunk backends, interleaved

Scenarios a..k2 are those of `dofs-bench` (the reference system measured on
this kind of machine); each is run 6 times, the first run is dropped as a
warm-up and the median (min-max) of the other 5 is printed for the store (a
SQLite file in a temp dir) and for the local disk through `os`, with the
ratio store/disk and the reference's own figure beside ours. A last section
measures `changes()` after one write in trees of 1k/10k/100k nodes (issue 3).

Fairness (issue 14): the disk, the store and the physical floor run
interleaved, group by group and run by run, with `os.sync()` before every
group, so neither side pays for the other's writeback. The floor is the
work no store can skip: FastCDC-cut and BLAKE3-hash the same 64 MiB in
memory. Every timed big write carries bytes drawn fresh for that run, so
no store has seen them (no dedup hit can flatter a write). f and h are
also printed against the floor of the same run (paired), in wall time and
in the process's CPU time (every thread, `getrusage`): on a machine shared
with other work the wall time of a 64 MiB write swings 2-3x with the load,
its CPU cost much less.

Chunk backends (`vfs/chunkstore.py`): the store is made with `--backend`
(default: what a new store gets, pack files); `--compare OTHER` also runs
the big-file group on a store with the other backend, interleaved in the
same runs, and prints f, g, h, h2 of both as ratios to the floor and disk.

Disk baseline: every run uses a fresh directory and nothing is deleted
until the end, except by the scenarios themselves (c deletes 1000 files):
on no-journal ext4, creating files shortly after deletions is up to 20x
slower (reference/limits.md), so the state is printed with the figures.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import blake3  # noqa: E402

import vfs  # noqa: E402
from vfs import chunks as vfs_chunks  # noqa: E402
from vfs import chunkstore  # noqa: E402

MiB = 1024 * 1024


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    reference_ms: float | None  # dofs, file DB, median (dofs-bench.md)
    target: str = ""  # from issues 2 and 3


SCENARIOS = [
    Scenario("a", "create 1000 files of 100 B in one dir", 123, "<= 61 ms"),
    Scenario("b", "stat those 1000 files (first pass)", 158, "< 10 ms"),
    Scenario("b2", "stat them again", 5.00, "< 10 ms"),
    Scenario("c", "rm those 1000 files, one call each", 90.3, "<= 45 ms"),
    Scenario("l", "rename 1000 files into a sibling dir", 96.9, "<= 48 ms"),
    Scenario("d", "mkdir a 10x10x10 tree (1110 dirs)", 55.5, "<= 28 ms"),
    Scenario("e", "find over that tree (1110 entries)", 9.97, "<= 5 ms"),
    Scenario("f0", "(floor) FastCDC-cut + BLAKE3-hash 64 MiB in memory", None, ""),
    Scenario("f1", "(durable floor) f0 + append the chunks to one file + fdatasync", None, ""),
    Scenario("f", "write a 64 MiB file of random bytes", 266, "<= 2x floor"),
    Scenario("g", "read it back into one buffer", 62.1, ">= 500 MB/s (128 ms)"),
    Scenario("h", "overwrite it with other random 64 MiB", 204, "<= 2x floor"),
    Scenario("h2", "overwrite again with identical bytes", 35.2, ""),
    Scenario("i", "readdir of a 10,000-entry dir", 10.5, "<= 5.3 ms"),
    Scenario("i1", "readdir of it again, no commit between (the store keeps the listing)", None, ""),
    Scenario("i0", "readdir of it on a new connection (read whole from SQLite)", 10.5, "<= 5.3 ms"),
    Scenario("i+", "(disk only) readdir + lstat of each", None, ""),
    Scenario("i2", "stat 1000 of those 10,000, cold", 1517, "< 10 ms"),
    Scenario("i3", "stat the same 1000 again", 4.88, "< 10 ms"),
    Scenario("j", "changes after a cursor + 1 write", 0.162, "< 0.2 ms"),
    Scenario("j2", "full change stream (10,000+ entries)", 306, "< 150 ms"),
    Scenario("j3", "read_objects for every chunk of j2", 57.0, ""),
    Scenario("j4", "apply_changes of j2 into an empty store (chunks already put)", 7170, "< 1.5 s"),
    Scenario("j4+", "put_object of j3's chunks into that empty store", None, ""),
    Scenario("k", "insert 1 byte at offset 0 of 10 MiB (rewrite)", 36.2, ""),
    Scenario("k2", "overwrite 1 byte at offset 0 of 10 MiB", 1.64, ""),
]

Timings = dict[str, float]  # scenario id -> ms for one run


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall ms and process CPU ms (every thread, user + system) of one call, timed as `timeit`
    does: the cyclic collector off during the call (no collection of earlier garbage lands in
    it), and collected after it. A `gc.collect()` right before the call, as this did until issue
    14's sixth pass, walks every object and leaves the CPU caches cold: `changes()` after one
    write then measured 102-140 us instead of 26-32 us."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        before = resource.getrusage(resource.RUSAGE_SELF)  # microseconds (os.times() counts 10 ms ticks)
        start = time.perf_counter()
        fn()
        wall = (time.perf_counter() - start) * 1000
        after = resource.getrusage(resource.RUSAGE_SELF)
        return wall, (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000
    finally:
        if was_enabled:
            gc.enable()
        gc.collect()


def timed(fn: Callable[[], object]) -> float:
    return _timed(fn)[0]


def timed_cpu(t: Timings, sid: str, fn: Callable[[], object]) -> None:
    """`t[sid]` = wall ms and `t[sid + ":cpu"]` = the process's CPU ms (every thread, user + system).

    On a machine shared with other work the wall time of a big write swings 2-3x with the
    load; the CPU it costs does not, so its ratio to the floor's CPU is the steadier figure."""
    t[sid], t[sid + ":cpu"] = _timed(fn)


@dataclass
class Payloads:
    small: list[bytes] = field(default_factory=lambda: [random.randbytes(100) for _ in range(1000)])
    big_a: bytes = b""
    big_b: bytes = b""
    ten: bytes = field(default_factory=lambda: random.randbytes(10 * MiB))
    many: list[bytes] = field(default_factory=lambda: [random.randbytes(100) for _ in range(10_000)])

    def new_big(self) -> None:
        """Fresh 64 MiB pair for one run of the `big` group (disk, store and floor share it)."""
        self.big_a = random.randbytes(64 * MiB)
        self.big_b = random.randbytes(64 * MiB)


# ---------------------------------------------------------------- the physical floor


class FloorBench:
    """What no store can skip: cut the bytes into content-defined chunks and hash each.

    `f1` adds what any store that keeps chunk bytes outside its metadata
    database must do before the commit that references them (issue 14's
    pack-file design): append them to a file and make it durable.
    """

    name = "floor"

    def __init__(self, root: Path, data: Payloads):
        self.root, self.data = root, data

    def big(self) -> Timings:
        t: Timings = {}
        timed_cpu(t, "f0", lambda: cut_and_hash(self.data.big_a))
        os.sync()
        pack = Path(tempfile.mkdtemp(dir=self.root)) / "chunks.pack"
        t["f1"] = timed(lambda: append_durably(pack, self.data.big_a))
        return t


def append_durably(pack: Path, data: bytes) -> None:
    fd = os.open(pack, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for piece in vfs_chunks.cut(data):
            blake3.blake3(piece).digest()
            os.write(fd, piece)
        os.fdatasync(fd)
    finally:
        os.close(fd)


def cut_and_hash(data: bytes) -> int:
    pieces = 0
    for piece in vfs_chunks.cut(data):
        blake3.blake3(piece).digest()
        pieces += 1
    return pieces


# ---------------------------------------------------------------- the store


class StoreBench:
    name = "store"

    def __init__(self, root: Path, data: Payloads, backend: str | None = None):
        self.root, self.data = root, data
        self.backend = backend  # the chunk backend of every store it makes (None: a new store's default)
        self.shared: vfs.Workspace | None = None
        self.extra = 0
        self.notes: dict[str, str] = {}  # scenario id -> remark (the last run's)

    def fresh(self) -> vfs.Workspace:
        d = Path(tempfile.mkdtemp(dir=self.root))
        return vfs.Workspace(str(d / "bench.db"), chunk_backend=self.backend)

    def small_files(self) -> Timings:
        t: Timings = {}
        with self.fresh() as ws:
            ws.mkdir("/a")
            paths = [f"/a/f{i:04d}" for i in range(1000)]
            timed_cpu(t, "a", lambda: [ws.write_file(p, d) for p, d in zip(paths, self.data.small)])
            t["b"] = timed(lambda: [ws.stat(p) for p in paths])
            t["b2"] = timed(lambda: [ws.stat(p) for p in paths])
            timed_cpu(t, "c", lambda: [ws.unlink(p) for p in paths])
        with self.fresh() as ws:
            ws.mkdir("/r")
            ws.mkdir("/r2")
            for i, d in enumerate(self.data.small):
                ws.write_file(f"/r/f{i:04d}", d)
            timed_cpu(t, "l", lambda: [ws.rename(f"/r/f{i:04d}", f"/r2/f{i:04d}") for i in range(1000)])
        return t

    def tree(self) -> Timings:
        with self.fresh() as ws:
            ws.mkdir("/t")
            t: Timings = {}
            timed_cpu(t, "d", lambda: [ws.mkdir(p) for p in tree_dirs("/t")])
            found: list = []
            t["e"] = timed(lambda: found.extend(ws.find("/t")))
            assert len(found) == 1110, len(found)
            return t

    def big(self) -> Timings:
        with self.fresh() as ws:
            out: list[bytes] = []
            t: Timings = {}
            timed_cpu(t, "f", lambda: ws.write_file("/big.bin", self.data.big_a))
            timed_cpu(t, "g", lambda: out.append(ws.read_file("/big.bin")))
            assert out[0] == self.data.big_a
            timed_cpu(t, "h", lambda: ws.write_file("/big.bin", self.data.big_b))
            t["h2"] = timed(lambda: ws.write_file("/big.bin", self.data.big_b))
            return t

    def insert(self) -> Timings:
        with self.fresh() as ws:
            ws.write_file("/k.bin", self.data.ten)
            before = [c for c, _ in ws.entry("/k.bin").chunks]
            t = {"k": timed(lambda: ws.write_file("/k.bin", b"\x42" + self.data.ten))}
            after = ws.entry("/k.bin").chunks
            new = [(c, s) for c, s in after if c not in set(before)]
            self.notes["k"] = (f"k: {len(after)} chunks in the new version, {len(new)} new "
                              f"({sum(s for _, s in new):,} bytes) (dofs: 21 of 21, 10,485,761 bytes)")
            ws.write_file("/k2.bin", self.data.ten)
            t["k2"] = timed(lambda: ws.write_range("/k2.bin", 0, b"\x42"))
            return t

    def big_dir(self) -> Timings:
        if self.shared is None:
            self.shared_path = self.root / "shared.db"
            self.shared = vfs.Workspace(str(self.shared_path), chunk_backend=self.backend)
            self.shared.mkdir("/big")
            for i, d in enumerate(self.data.many):
                self.shared.write_file(f"/big/f{i:05d}", d)
        ws = self.shared
        t = {"i": timed(lambda: ws.readdir("/big"))}  # the first since the last run's write: the kept listing patched from the change log (vfs/listing.py)
        t["i1"] = timed(lambda: ws.readdir("/big"))
        with vfs.Workspace(str(self.shared_path)) as first:
            first.stat("/")  # (the connection's first query reads the schema)
            t["i0"] = timed(lambda: first.readdir("/big"))
        sample = [f"/big/f{i:05d}" for i in range(0, 10_000, 10)]
        with vfs.Workspace(str(self.shared_path)) as cold:  # a new object: empty caches
            t["i2"] = timed(lambda: [cold.stat(p) for p in sample])
            t["i3"] = timed(lambda: [cold.stat(p) for p in sample])
        cursor = ws.cursor()
        self.extra += 1
        ws.write_file(f"/big/extra{self.extra}", random.randbytes(100))
        got: list = []
        t["j"] = timed(lambda: got.extend(ws.changes(after=cursor)))
        assert len(got) == 1, got
        full: list = []
        t["j2"] = timed(lambda: full.extend(ws.changes()))
        hashes = sorted({h for e in full for h, _ in e.chunks})
        objects: list = []
        t["j3"] = timed(lambda: objects.extend(ws.read_objects(hashes)))
        assert len(objects) == len(hashes)
        with self.fresh() as empty:
            t["j4+"] = timed(lambda: [empty.put_object(data, expected_hash=h) for h, data in objects])
            t["j4"] = timed(lambda: empty.apply_changes(full))
            assert len(empty.readdir("/big")) == len(full) - 1 - sum(e.path == "/" for e in full)
        self.notes["j2"] = f"j2: {len(full):,} entries, j3: {len(hashes):,} chunks (dofs: 10,007 and 10,006)"
        return t


class OtherBackend(StoreBench):
    """The store with another chunk backend, big files only (`--compare`), interleaved with the rest."""

    small_files = tree = insert = big_dir = None  # type: ignore[assignment]

    def __init__(self, root: Path, data: Payloads, backend: str):
        super().__init__(root, data, backend)
        self.name = f"store[{backend}]"


def tree_dirs(top: str) -> list[str]:
    out = []
    for x in range(10):
        out.append(f"{top}/d{x}")
        for y in range(10):
            out.append(f"{top}/d{x}/d{y}")
            out.extend(f"{top}/d{x}/d{y}/d{z}" for z in range(10))
    # parent first: sort so that every dir comes after its parent
    return sorted(out, key=lambda p: (p.count("/"), p))


# ---------------------------------------------------------------- the local disk


class DiskBench:
    name = "disk"

    def __init__(self, root: Path, data: Payloads):
        self.root, self.data = root, data
        self.shared: Path | None = None
        self.extra = 0

    def fresh(self) -> Path:
        return Path(tempfile.mkdtemp(dir=self.root))

    def small_files(self) -> Timings:
        base = self.fresh()
        a = base / "a"
        a.mkdir()
        paths = [str(a / f"f{i:04d}") for i in range(1000)]
        t = {"a": timed(lambda: [write(p, d) for p, d in zip(paths, self.data.small)])}
        t["b"] = timed(lambda: [os.stat(p) for p in paths])
        t["b2"] = timed(lambda: [os.stat(p) for p in paths])
        t["c"] = timed(lambda: [os.unlink(p) for p in paths])
        r, r2 = base / "r", base / "r2"
        r.mkdir()
        r2.mkdir()
        for i, d in enumerate(self.data.small):
            write(str(r / f"f{i:04d}"), d)
        t["l"] = timed(lambda: [os.rename(r / f"f{i:04d}", r2 / f"f{i:04d}") for i in range(1000)])
        return t

    def tree(self) -> Timings:
        base = self.fresh()
        top = str(base / "t")
        os.mkdir(top)
        t = {"d": timed(lambda: [os.mkdir(p) for p in tree_dirs(top)])}
        found: list = []
        t["e"] = timed(lambda: found.extend(walk_types(top)))
        assert len(found) == 1110
        return t

    def big(self) -> Timings:
        path = str(self.fresh() / "big.bin")
        out: list[bytes] = []
        t = {"f": timed(lambda: write(path, self.data.big_a))}
        timed_cpu(t, "g", lambda: out.append(Path(path).read_bytes()))  # CPU too: g's goal is against it
        t["h"] = timed(lambda: write(path, self.data.big_b))
        t["h2"] = timed(lambda: write(path, self.data.big_b))
        return t

    def insert(self) -> Timings:
        base = self.fresh()
        k, k2 = str(base / "k.bin"), str(base / "k2.bin")
        write(k, self.data.ten)
        t = {"k": timed(lambda: write(k, b"\x42" + self.data.ten))}
        write(k2, self.data.ten)

        def pwrite() -> None:
            fd = os.open(k2, os.O_WRONLY)
            os.pwrite(fd, b"\x42", 0)
            os.close(fd)

        t["k2"] = timed(pwrite)
        return t

    def big_dir(self) -> Timings:
        if self.shared is None:
            self.shared = self.fresh() / "big"
            self.shared.mkdir()
            for i, d in enumerate(self.data.many):
                write(str(self.shared / f"f{i:05d}"), d)
        big = str(self.shared)
        t = {"i": timed(lambda: [(e.name, e.is_dir()) for e in os.scandir(big)])}
        t["i+"] = timed(lambda: [os.lstat(e.path) for e in os.scandir(big)])
        sample = [f"{big}/f{i:05d}" for i in range(0, 10_000, 10)]
        t["i2"] = timed(lambda: [os.stat(p) for p in sample])
        since = time.time() - 0.020
        self.extra += 1
        write(f"{big}/extra{self.extra}", random.randbytes(100))
        newer: list = []
        t["j"] = timed(lambda: newer.extend(e for e in os.scandir(big) if e.stat().st_mtime > since))
        return t


def write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def walk_types(top: str) -> list[tuple[str, bool]]:
    out, stack = [], [top]
    while stack:
        with os.scandir(stack.pop()) as it:
            for e in it:
                out.append((e.path, e.is_dir(follow_symlinks=False)))
                if out[-1][1]:
                    stack.append(e.path)
    return out


# ---------------------------------------------------------------- running and printing


GROUPS = ("small_files", "tree", "big", "insert", "big_dir")


def run_interleaved(benches: list, runs: int, data: Payloads, only: set[str]) -> dict[str, dict[str, list[float]]]:
    """Run each group `runs` times, every bench in turn within a run, syncing before each.

    Interleaving puts the disk, the store and the floor under the same load
    at the same moments; `os.sync()` first makes each one start with no
    writeback of the previous one's bytes pending.
    """
    results: dict[str, dict[str, list[float]]] = {bench.name: {} for bench in benches}
    for group in GROUPS:
        if only and group not in only:
            continue
        for run in range(runs):
            if group == "big":
                data.new_big()
            for bench in benches:
                method = getattr(bench, group, None)
                if method is None:
                    continue
                os.sync()
                for sid, ms in method().items():
                    if run > 0:  # the first run is the warm-up
                        results[bench.name].setdefault(sid, []).append(ms)
    return results


def fmt(ms: float) -> str:
    return f"{ms:,.3f}" if ms < 1 else f"{ms:,.2f}" if ms < 10 else f"{ms:,.1f}" if ms < 100 else f"{ms:,.0f}"


def cell(values: list[float] | None) -> str:
    if not values:
        return "—"
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}–{fmt(max(values))})"


def print_table(store: dict[str, list[float]], disk: dict[str, list[float]], floor: dict[str, list[float]]) -> None:
    print("| id | scenario | store ms, median (min–max) | disk ms | store ÷ disk | dofs ms | store ÷ dofs | target |")
    print("|---|---|---|---|---|---|---|---|")
    store = {**floor, **store}
    for s in SCENARIOS:
        mine, theirs = store.get(s.id), disk.get(s.id)
        if not mine and not theirs:
            continue  # a group left out with --only
        ratio = f"{statistics.median(mine) / statistics.median(theirs):.2f}×" if mine and theirs else "—"
        vs_ref = f"{statistics.median(mine) / s.reference_ms:.2f}×" if mine and s.reference_ms else "—"
        ref = fmt(s.reference_ms) if s.reference_ms else "—"
        print(f"| {s.id} | {s.title} | {cell(mine)} | {cell(theirs)} | {ratio} | {ref} | {vs_ref} | {s.target} |")
    if floor.get("f0"):
        base = statistics.median(floor["f0"])
        ratios = [f"{sid} ÷ floor = {statistics.median(store[sid]) / base:.2f}×" for sid in ("f1", "f", "h") if store.get(sid)]
        print(f"\nfloor (f0): {fmt(base)} ms = {64 * MiB / base / 1e3:,.0f} MB/s; " + ", ".join(ratios))
    print_paired(store, disk)


def print_paired(store: dict[str, list[float]], disk: dict[str, list[float]] | None = None) -> None:
    """f and h against the floor of the same run (wall and process CPU), and g against the
    disk's read of the same run, run by run: a ratio of two medians mixes runs made under
    different loads."""
    parts = []
    for sid in ("f", "h"):
        for suffix in ("", ":cpu"):
            mine, base = store.get(sid + suffix), store.get("f0" + suffix)
            if mine and base and len(mine) == len(base):
                ratios = sorted(m / b for m, b in zip(mine, base))
                parts.append(f"{sid}{suffix or ' wall'} ÷ f0{suffix} = {statistics.median(ratios):.2f}× "
                             f"({', '.join(f'{r:.2f}' for r in ratios)})")
    for suffix in ("", ":cpu"):
        mine, base = store.get("g" + suffix), (disk or {}).get("g" + suffix)
        if mine and base and len(mine) == len(base):
            ratios = sorted(m / max(b, 1e-3) for m, b in zip(mine, base))
            parts.append(f"g{suffix or ' wall'} ÷ disk g{suffix} = {statistics.median(ratios):.2f}× "
                         f"({', '.join(f'{r:.2f}' for r in ratios)})")
    # (a, c, l, d too: under load their wall times swing 2-7x, their CPU far less)
    cpu = [f"{sid} {fmt(statistics.median(store[sid + ':cpu']))}" for sid in ("a", "c", "l", "d", "f0", "f", "g", "h")
           if store.get(sid + ":cpu")]
    if disk and disk.get("g:cpu"):
        cpu.append(f"disk g {fmt(statistics.median(disk['g:cpu']))}")
    if parts:
        print("paired by run: " + "; ".join(parts))
    if cpu:
        print("process CPU ms (all threads), medians: " + ", ".join(cpu))


def print_backends(name: str, store: dict[str, list[float]], other_name: str, other: dict[str, list[float]],
                   disk: dict[str, list[float]], floor: dict[str, list[float]]) -> None:
    """The big-file rows for both chunk backends, measured in the same runs, as ratios to the floor and the disk."""
    if not floor.get("f0") or not other:
        return
    base = statistics.median(floor["f0"])
    print(f"\n### big files by chunk backend (same runs; floor f0 = {fmt(base)} ms)\n")
    print(f"| id | {name} ms | {other_name} ms | {name} ÷ floor | {other_name} ÷ floor | {name} ÷ disk | {other_name} ÷ disk |")
    print("|---|---|---|---|---|---|---|")
    for sid in ("f", "g", "h", "h2"):
        a, b, d = store.get(sid), other.get(sid), disk.get(sid)
        if not a or not b or not d:
            continue
        ma, mb, md = (statistics.median(v) for v in (a, b, d))
        print(f"| {sid} | {cell(a)} | {cell(b)} | {ma / base:.2f}× | {mb / base:.2f}× | {ma / md:.2f}× | {mb / md:.2f}× |")


def changes_cost(root: Path, sizes: list[int], reps: int) -> None:
    """changes(after=cursor) after one write, in trees of growing size (issue 3: < 0.2 ms at any size)."""
    print("\n### changes() after 1 write, by tree size (median of %d; dofs: 0.162 ms at 10k)\n" % reps)
    print("| nodes | build s | changes ms, median (min–max) |")
    print("|---|---|---|")
    for n in sizes:
        d = Path(tempfile.mkdtemp(dir=root))
        with vfs.Workspace(str(d / "n.db")) as ws:
            start = time.perf_counter()
            per_dir = 1000
            for k in range(n // per_dir):
                ws.mkdir(f"/d{k:03d}")
                for i in range(per_dir - 1):
                    ws.write_file(f"/d{k:03d}/f{i:04d}", b"%d" % i)
            build = time.perf_counter() - start
            times = []
            for r in range(reps + 1):
                cursor = ws.cursor()
                ws.write_file(f"/d000/new{r}", b"x")
                got: list = []
                ms = timed(lambda: got.extend(ws.changes(after=cursor)))
                assert len(got) == 1
                if r:
                    times.append(ms)
        print(f"| {n:,} | {build:.1f} | {cell(times)} |")
        shutil.rmtree(d, ignore_errors=True)


def disk_state(root: Path) -> str:
    flag = subprocess.run(["chattr", "+T", str(root)], capture_output=True).returncode == 0
    return (f"fresh directory per run under {root} (chattr +T {'set' if flag else 'not available'}); "
            f"nothing deleted before the run; scenario c deletes 1000 files per run, so later creates "
            f"(l setup, d, the 10,000-file dir) run after recent deletions")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs, change-cost trees up to 10k nodes")
    parser.add_argument("--dir", default=None, help="where to put the stores and the disk trees")
    parser.add_argument("--only", default="", help=f"comma-separated groups to run ({', '.join(GROUPS)})")
    parser.add_argument("--backend", default=None, choices=chunkstore.BACKENDS,
                        help=f"the store's chunk backend (default: a new store's, {chunkstore.DEFAULT_BACKEND})")
    parser.add_argument("--compare", default=None, choices=chunkstore.BACKENDS,
                        help="also run the big-file group with this backend, interleaved, and print it beside")
    args = parser.parse_args()
    only = {g for g in args.only.split(",") if g}
    if only - set(GROUPS):
        parser.error(f"unknown group(s): {', '.join(sorted(only - set(GROUPS)))}")
    runs = 3 if args.quick else 6
    random.seed(1)
    data = Payloads()
    root = Path(tempfile.mkdtemp(prefix="bench-vfs-", dir=args.dir))
    try:
        (root / "disk").mkdir()
        (root / "store").mkdir()
        state = disk_state(root / "disk")
        print(f"# bench_vfs — {time.strftime('%Y-%m-%d %H:%M:%S')} — Python {sys.version.split()[0]}, "
              f"SQLite {vfs_sqlite_version()}, {os.cpu_count()} CPUs, load average at start "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}\n")
        print(f"{runs} runs per scenario, first dropped; disk, store and floor interleaved run by run, "
              f"os.sync() before each group. Disk: {state}.\n")
        disk = DiskBench(root / "disk", data)
        store = StoreBench(root / "store", data, args.backend)
        floor = FloorBench(root, data)
        benches: list = [disk, store, floor]
        if args.compare:
            benches.append(OtherBackend(root / "store", data, args.compare))
        results = run_interleaved(benches, runs, data, only)
        if store.shared:
            store.shared.close()
        print(f"Store chunk backend: {args.backend or chunkstore.DEFAULT_BACKEND}.\n")
        print_table(results["store"], results["disk"], results["floor"])
        if args.compare:
            print_backends(args.backend or chunkstore.DEFAULT_BACKEND, results["store"], args.compare,
                           results[f"store[{args.compare}]"], results["disk"], results["floor"])
        print()
        for note in store.notes.values():
            print(f"- {note}")
        if not only:
            changes_cost(root / "store", [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000], 20)
        print(f"\nload average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def vfs_sqlite_version() -> str:
    import sqlite3

    return sqlite3.sqlite_version


if __name__ == "__main__":
    main()
