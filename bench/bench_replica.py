"""Replica vs rsync on loopback, in the same run.

1. Initial sync of a tree of 10,000 files (200 MiB, ~10 % duplicate
   content) from a wsfs server (its own process) into an empty replica,
   against `rsync -a` of the same tree from an rsync daemon on loopback into
   an empty directory.
2. One file changed: time from the server commit until the live replica's
   file has the new content, against `rsync -a` of the whole tree after the
   same change (rsync must scan everything to find it; the change log does not).

Prints each figure and the ratios. Usage:

    .venv/bin/python bench/bench_replica.py [--files 10000] [--mib 200] [--rounds 10]

Needs `rsync` (apt-get install -y rsync). Everything runs on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from client_py import Client, Replica  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_tree(root: Path, files: int, total: int, seed: int = 7) -> int:
    """`files` files totalling about `total` bytes; 1 in 10 duplicates an earlier file."""
    rng = random.Random(seed)
    big = max(1, files // 100)  # 1 % of files carry about half the bytes
    small_budget = total // 2
    big_size = (total - small_budget) // big
    written = 0
    contents: list[bytes] = []
    for i in range(files):
        path = root / f"d{i % 100:02d}" / f"s{i // 1000}" / f"file{i:05d}.dat"
        path.parent.mkdir(parents=True, exist_ok=True)
        if contents and rng.random() < 0.1:
            data = rng.choice(contents)
        elif i % 100 == 0:
            data = rng.randbytes(big_size)
        else:
            data = rng.randbytes(max(1, int(rng.expovariate(files / small_budget))))
        if len(contents) < 200:
            contents.append(data)
        path.write_bytes(data)
        written += len(data)
    return written


class WsfsServer:
    def __init__(self, data: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wsfs", "serve", "--data", str(data), "--port", str(self.port)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        self.admin = ""
        deadline = time.monotonic() + 30
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if "admin token" in line:
                self.admin = line.rsplit(" ", 1)[1].strip()
            if "open the demo" in line:
                break
        if not self.admin:
            raise RuntimeError("the server did not print an admin token")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class RsyncDaemon:
    def __init__(self, tree: Path, work: Path):
        self.port = free_port()
        conf = work / "rsyncd.conf"
        conf.write_text(f"use chroot = no\npid file = {work}/rsyncd.pid\n[tree]\npath = {tree}\nread only = yes\n"
                        "uid = root\ngid = root\n")
        self.proc = subprocess.Popen(["rsync", "--daemon", "--no-detach", f"--port={self.port}",
                                      "--address=127.0.0.1", f"--config={conf}"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("rsync daemon did not start")

    def pull(self, dest: Path) -> float:
        t0 = time.perf_counter()
        subprocess.run(["rsync", "-a", f"rsync://127.0.0.1:{self.port}/tree/", f"{dest}/"], check=True)
        return time.perf_counter() - t0

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def drop_caches() -> None:
    """Best effort, so neither side is favoured by a warm page cache of the other's reads."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        pass


async def upload(server: WsfsServer, tree: Path, work: Path) -> float:
    """Seed the workspace from the tree through a replica (also a figure: initial upload)."""
    seed = work / "seed"
    shutil.copytree(tree, seed)
    t0 = time.perf_counter()
    async with Replica(server.url, "demo", seed, token=server.admin) as r:
        summary = await r.sync_once()
    elapsed = time.perf_counter() - t0
    print(f"  seed upload through a replica: {elapsed:.2f}s ({summary.uploaded} entries, {summary.bytes_sent / 2**20:.0f} MiB sent)")
    return elapsed


async def initial_sync(server: WsfsServer, dest: Path, durability: str = "auto") -> tuple[float, object]:
    """The library: `Replica.sync_once()` in this process."""
    t0 = time.perf_counter()
    async with Replica(server.url, "demo", dest, token=server.admin, durability=durability) as r:
        summary = await r.sync_once()
    return time.perf_counter() - t0, summary


async def cli_sync(server: WsfsServer, dest: Path) -> tuple[float, float]:
    """`wsfs sync --once` in its own process, as a user runs it: (seconds, its peak RSS in MiB)."""
    cmd = [sys.executable, "-m", "wsfs", "sync", server.url, "demo", str(dest), "--once", "-q"]

    def run() -> tuple[float, float]:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "WSFS_TOKEN": server.admin},
                                stdout=subprocess.DEVNULL)
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise RuntimeError("wsfs sync failed")
        return time.perf_counter() - t0, usage.ru_maxrss / 1024

    return await asyncio.to_thread(run)


async def change_latency(server: WsfsServer, dest: Path, rounds: int, rel: str,
                         durability: str) -> tuple[list[float], list[float]]:
    """Server commit -> new content in the live replica's file, `rounds` times.

    Returns (from the commit, from the write request). The commit instant is
    the ctime the server stamped on the file (same machine, same clock); the
    write request adds the HTTP upload and the server's commit path on top.
    """
    latencies, after_reply = [], []
    replica = Replica(server.url, "demo", dest, token=server.admin, reconcile_interval=3600, durability=durability)
    task = asyncio.ensure_future(replica.run())
    await asyncio.wait_for(replica.ready.wait(), 300)
    local = dest / rel
    async with Client(server.url, token=server.admin) as c:
        ws = c.workspace("demo")
        for i in range(rounds):
            data = f"round {i} {time.time()}\n".encode() * 100
            t0 = time.perf_counter()
            st = await ws.write_file("/" + rel, data)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if local.read_bytes() == data:
                        break
                except FileNotFoundError:
                    pass
                await asyncio.sleep(0.0005)
            else:
                raise RuntimeError("the change did not reach the replica within 30 s")
            now, t2 = time.time(), time.perf_counter()
            latencies.append(now - st.ctime)
            after_reply.append(t2 - t0)
            await asyncio.sleep(0.05)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    await replica.close()
    return latencies, after_reply


def rsync_change(rsyncd: RsyncDaemon, tree: Path, dest: Path, rel: str, rounds: int) -> list[float]:
    times = []
    for i in range(rounds):
        (tree / rel).write_bytes(f"rsync round {i} {time.time()}\n".encode() * 100)
        times.append(rsyncd.pull(dest))
    return times


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--mib", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=2, help="initial syncs of each kind (best is reported)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    if shutil.which("rsync") is None:
        sys.exit("rsync is not installed (apt-get install -y rsync)")
    work = Path(tempfile.mkdtemp(prefix="wsfs-bench-"))
    print(f"work dir {work}")
    tree = work / "tree"
    total = make_tree(tree, args.files, args.mib * 2**20)
    print(f"tree: {args.files} files, {total / 2**20:.1f} MiB")
    server = WsfsServer(work / "data")
    rsyncd = RsyncDaemon(tree, work)
    try:
        await upload(server, tree, work)
        rel = "d05/s0/file00005.dat"

        # Interleaved, best of `--repeat`: file creation speed on a shared machine drifts
        # (other tenants, ext4 inode reuse), so neither side should get the quiet minute.
        t_rsync, results = [], {"auto": [], "none": []}
        for rep in range(args.repeat):
            drop_caches()
            t_rsync.append(rsyncd.pull(work / ("rsync-dest" if rep == 0 else f"rsync-dest{rep}")))
            for durability in ("auto", "none"):
                drop_caches()
                suffix = "" if rep == 0 else str(rep)
                results[durability].append(await initial_sync(server, work / f"replica-{durability}{suffix}", durability))
        best_rsync = min(t_rsync)
        print(f"initial sync   rsync -a (daemon):            {best_rsync:7.2f}s  (runs: "
              + ", ".join(f"{t:.2f}" for t in t_rsync) + ")")
        for durability, runs in results.items():
            best = min(t for t, _ in runs)
            print(f"initial sync   wsfs replica, durability={durability:<4}: {best:7.2f}s  ratio wsfs/rsync = "
                  f"{best / best_rsync:.2f} (goal <= 1.0)  (runs: " + ", ".join(f"{t:.2f}" for t, _ in runs) + ")")
        print(f"  ({runs[0][1]})")
        drop_caches()
        t_cli, rss = await cli_sync(server, work / "replica-cli")
        print(f"initial sync   `wsfs sync --once` process (auto, startup included): {t_cli:.2f}s, "
              f"ratio {t_cli / best_rsync:.2f}; peak RSS {rss:.0f} MiB")

        rs = rsync_change(rsyncd, tree, work / "rsync-dest", rel, args.rounds)
        med_rs = statistics.median(rs)
        print(f"one change     rsync -a of the tree: median {med_rs * 1000:8.1f} ms (min {min(rs) * 1000:.1f})")
        for durability in ("auto", "none"):
            lat, after = await change_latency(server, work / f"replica-{durability}", args.rounds, rel, durability)
            med_lat, med_after = statistics.median(lat), statistics.median(after)
            print(f"one change     wsfs, durability={durability:<4}: median {med_lat * 1000:6.1f} ms commit->file "
                  f"(min {min(lat) * 1000:.1f}, max {max(lat) * 1000:.1f}; {med_after * 1000:.1f} ms from the write "
                  f"request)  ratio rsync/wsfs = {med_rs / med_lat:.1f}x (goal >= 20x)")
    finally:
        server.stop()
        rsyncd.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
