"""Replica vs rsync on loopback, in the same run.

1. Initial sync of a tree of 10,000 files (200 MiB, ~10 % duplicate
   content) from a wsfs server (its own process) into an empty replica,
   against `rsync -a` of the same tree from an rsync daemon on loopback into
   an empty directory.
2. One file changed: time from the server commit until the live replica's
   file has the new content, against `rsync -a` of the whole tree after the
   same change (rsync must scan everything to find it; the change log does not).

3. `--cli`: the side-by-side way (warm cache, reps, first dropped): `wsfs sync
   --once` run as a user runs it (its own process, start-up included, CPU time
   of the process from wait4), against `rsync -a` from the daemon followed by
   `sync` (durable, as wsfs's default) and `rsync -a --fsync`, and both
   without any flush. The server's CPU time is reported beside the client's.
   `--against DIR`: another checkout's server and `wsfs sync` too (its own
   data, seeded the same way), in turn with this one's: before/after pairs.
4. `--rest`: a live `wsfs sync` process at rest over trees of 1,000 and
   10,000 files: CPU seconds per minute of the client process.
5. `--phases`: where the client's CPU goes in a first sync (the library in
   this process, no profiler: process CPU time summed around the parts of the
   pull and the rescan), interleaved with `rsync -a` so the two can be read
   side by side. Use it with `--base /dev/shm` to leave the disk out.

Prints each figure and the ratios. Usage:

    .venv/bin/python bench/bench_replica.py [--files 10000] [--mib 200] [--rounds 10]
    .venv/bin/python bench/bench_replica.py --cli [--files 10000 --mib 100 --reps 5] [--against DIR]
    .venv/bin/python bench/bench_replica.py --rest [--rest-seconds 60]
    .venv/bin/python bench/bench_replica.py --phases --files 10000 --mib 100 --reps 3 --base /dev/shm

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
    def __init__(self, data: Path, root: Path = ROOT):
        """`wsfs serve` of the checkout at `root` (`--against`: another version, same Python)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wsfs", "serve", "--data", str(data), "--port", str(self.port)],
            cwd=root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
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

    def pull(self, dest: Path, *extra: str) -> float:
        return self.pull_usage(dest, *extra)[0]

    def pull_usage(self, dest: Path, *extra: str, then_sync: bool = False) -> tuple[float, float]:
        """(seconds, CPU seconds of the rsync client and its receiver); `then_sync`: `sync` after it, timed."""
        t0 = time.perf_counter()
        cpu = run_cpu(["rsync", "-a", *extra, f"rsync://127.0.0.1:{self.port}/tree/", f"{dest}/"])
        if then_sync:
            cpu += run_cpu(["sync"])
        return time.perf_counter() - t0, cpu

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def run_cpu(cmd: list[str], **kw: object) -> float:
    """Run `cmd` to completion; the CPU seconds (user + system) of it and the children it waited for."""
    proc = subprocess.Popen(cmd, **kw)  # type: ignore[call-overload]
    _pid, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{cmd[0]} failed: {cmd}")
    return usage.ru_utime + usage.ru_stime


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) a live process has used so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def drop_caches() -> None:
    """Best effort, so neither side is favoured by a warm page cache of the other's reads."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        pass


async def upload(server: WsfsServer, tree: Path, work: Path) -> float:
    """Seed the workspace from the tree through a replica (also a figure: initial upload)."""
    seed = work / f"seed-{server.port}"
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


def cli_env(token: str) -> dict[str, str]:
    """The environment of a `wsfs` process as a user has it: an installed package has its bytecode
    compiled (pip does it), so bytecode is cached here too (outside the tree), even where the
    environment sets PYTHONDONTWRITEBYTECODE (without a cache, ~70 modules compile at every start: +0.2 s)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "WSFS_TOKEN": token, "PYTHONPYCACHEPREFIX": str(Path(tempfile.gettempdir()) / "wsfs-bench-pycache")}


def cli_sync_usage(server: WsfsServer, dest: Path, durability: str = "auto",
                   root: Path = ROOT) -> tuple[float, float, float]:
    """`wsfs sync --once` as its own process: (seconds, its CPU seconds, the server's CPU seconds meanwhile)."""
    cmd = [sys.executable, "-m", "wsfs", "sync", server.url, "demo", str(dest), "--once", "-q",
           "--durability", durability]
    env = cli_env(server.admin)
    if root != ROOT:  # its own bytecode cache: the two versions' modules must not share one
        env["PYTHONPYCACHEPREFIX"] += "-" + root.name
    s0 = proc_cpu(server.proc.pid)
    t0 = time.perf_counter()
    cpu = run_cpu(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0, cpu, proc_cpu(server.proc.pid) - s0


def fresh(path: Path) -> Path:
    """An empty destination; the removal of the previous one flushed before anything is timed."""
    shutil.rmtree(path, ignore_errors=True)
    os.sync()
    return path


def side_by_side(server: WsfsServer, rsyncd: RsyncDaemon, work: Path, reps: int,
                 against: WsfsServer | None = None, against_root: Path | None = None) -> None:
    """Warm cache, interleaved, `reps` runs of each (the first dropped), medians: the independent way.

    `against`: the server of another checkout (`against_root`), whose own `wsfs sync --once`
    runs in turn with this one's: before/after in one run."""
    kinds: dict[str, object] = {
        "rsync -a (no flush)": lambda d: (*rsyncd.pull_usage(d), 0.0),
        "rsync -a; sync": lambda d: (*rsyncd.pull_usage(d, then_sync=True), 0.0),
        "rsync -a --fsync": lambda d: (*rsyncd.pull_usage(d, "--fsync"), 0.0),
        "wsfs sync --once (auto)": lambda d: cli_sync_usage(server, d, "auto"),
        "wsfs sync --once (none)": lambda d: cli_sync_usage(server, d, "none"),
    }
    if against is not None and against_root is not None:
        kinds["--against (auto)"] = lambda d: cli_sync_usage(against, d, "auto", against_root)
    runs: dict[str, list[tuple[float, float, float]]] = {k: [] for k in kinds}
    for rep in range(reps + 1):
        for name, fn in kinds.items():
            dest = fresh(work / "sbs-dest")
            result = fn(dest)  # type: ignore[operator]
            if rep:
                runs[name].append(result)
    shutil.rmtree(work / "sbs-dest", ignore_errors=True)
    base = statistics.median(t for t, _, _ in runs["rsync -a; sync"])
    base_cpu = statistics.median(c for _, c, _ in runs["rsync -a; sync"])
    print(f"side by side, warm cache, {reps} reps after one dropped, medians ({load()}):")
    for name, rs in runs.items():
        t = statistics.median(r[0] for r in rs)
        cpu = statistics.median(r[1] for r in rs)
        srv = statistics.median(r[2] for r in rs)
        print(f"  {name:<26} {t:6.2f}s  CPU {cpu:5.2f}s" + (f" (+ server {srv:.2f}s)" if srv else "")
              + f"  time ratio vs rsync;sync {t / base:4.2f}  CPU ratio {cpu / base_cpu:4.2f}"
              + "  (runs " + ", ".join(f"{r[0]:.2f}" for r in rs) + ")")
    if "--against (auto)" in runs:
        pairs = list(zip(runs["wsfs sync --once (auto)"], runs["--against (auto)"]))
        print(f"  this checkout below --against in {sum(a[1] < b[1] for a, b in pairs)} of {len(pairs)} pairs by client"
              f" CPU, {sum(a[0] < b[0] for a, b in pairs)} by wall")


def rest_cost(server_url: str, token: str, work: Path, files: int, seconds: float) -> None:
    """A live `wsfs sync` at rest over `files` files: its CPU seconds per minute once up to date."""
    dest = fresh(work / f"rest-{files}")
    tree = work / f"rest-tree-{files}"
    make_tree(tree, files, files * 1024)
    shutil.copytree(tree, dest, dirs_exist_ok=True)
    env = cli_env(token)
    proc = subprocess.Popen([sys.executable, "-m", "wsfs", "sync", server_url, "demo", str(dest)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line or "up to date" in line:
                break
        if proc.poll() is not None:
            raise RuntimeError("wsfs sync exited")
        time.sleep(2)  # let the echoes of the first push settle
        c0, t0 = proc_cpu(proc.pid), time.monotonic()
        time.sleep(seconds)
        used, elapsed = proc_cpu(proc.pid) - c0, time.monotonic() - t0
        print(f"  at rest, {files:>6} files in the replica: {used / elapsed * 60:.3f} CPU-s per minute"
              f" ({used:.2f} s over {elapsed:.0f} s; {load()})")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    rescan = asyncio.run(rescan_cpu(server_url, token, dest))
    print(f"  one stat-only rescan of the {files} files: {rescan * 1000:.0f} ms CPU; at the default interval "
          f"(600 s) that adds {rescan / 10:.4f} CPU-s per minute (at the old 30 s: {rescan * 2:.3f})")


async def rescan_cpu(url: str, token: str, dest: Path) -> float:
    """CPU seconds of one full rescan (the periodic reconcile) of a synced replica directory."""
    async with Replica(url, "demo", dest, token=token) as r:
        t0 = time.process_time()
        found = list(r.pusher.scan("/"))
        used = time.process_time() - t0
    if found:
        print(f"  (the rescan found {len(found)} changed paths, e.g. {found[:3]})")
    return used


# The parts of a first sync timed by `--phases`: (module, class, method, label). Nested parts are indented;
# an async part counts the CPU of everything the event loop ran while it waited (e.g. chunk frames received).
PHASES = (
    ("client_py.replica.pull", "Puller", "_accept_all", "accept: decode and validate entries"),
    ("client_py.replica.pull", "Puller", "_open", "state rows of the batch"),
    ("client_py.replica.pull", "Puller", "_gather", "gather (async: waits for gets)"),
    ("client_py.replica.pull", "Puller", "_already_here", "  already here? (lstat)"),
    ("client_py.replica.download", "Downloader", "fetch", "  fetch chunks (async)"),
    ("client_py.replica.pull", "Puller", "_commit", "commit: install, rows, COMMIT"),
    ("client_py.replica.localfs", "LocalTree", "write_file", "  small files written and renamed"),
    ("client_py.replica.localfs", "LocalTree", "make_dir", "  directories"),
    ("client_py.replica.state", "State", "_flush", "  state rows inserted"),
    ("client_py.session", "Session", "_on_text", "text frames decoded (changes messages)"),
    ("client_py.session", "Session", "_on_chunk", "chunk frames received and verified"),
    ("client_py.replica.push", "Pusher", "push", "rescan for local changes, push"),
)


def _timed(fn: object, label: str, acc: dict[str, float]) -> object:
    """`fn` wrapped so that the process CPU time spent inside it is added to `acc[label]`."""
    import functools
    import inspect

    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)  # type: ignore[arg-type]
        async def timed_async(*a: object, **k: object) -> object:
            t = time.process_time()
            try:
                return await fn(*a, **k)  # type: ignore[operator]
            finally:
                acc[label] = acc.get(label, 0.0) + time.process_time() - t
        return timed_async

    @functools.wraps(fn)  # type: ignore[arg-type]
    def timed(*a: object, **k: object) -> object:
        t = time.process_time()
        try:
            return fn(*a, **k)  # type: ignore[operator]
        finally:
            acc[label] = acc.get(label, 0.0) + time.process_time() - t
    return timed


async def phases(server: WsfsServer, rsyncd: RsyncDaemon, work: Path, reps: int, files: int) -> None:
    """A first sync's client CPU by part, `reps` runs interleaved with `rsync -a; sync` (medians)."""
    import importlib

    originals = []
    acc: dict[str, float] = {}
    for module, cls_name, method, label in PHASES:
        cls = getattr(importlib.import_module(module), cls_name)
        originals.append((cls, method, getattr(cls, method)))
        setattr(cls, method, _timed(getattr(cls, method), label, acc))
    runs: list[dict[str, float]] = []
    rsync_cpu: list[float] = []
    try:
        for _ in range(reps):
            rsync_cpu.append(rsyncd.pull_usage(fresh(work / "phases-rsync"), then_sync=True)[1])
            dest = fresh(work / "phases-wsfs")
            acc.clear()
            t0 = time.process_time()
            await initial_sync(server, dest)
            runs.append({"total": time.process_time() - t0, **acc})
    finally:
        for cls, method, fn in originals:
            setattr(cls, method, fn)
    print(f"first sync, client CPU by part, library in this process, median of {reps} ({load()}):")
    print(f"  {'rsync -a; sync (its client, CPU)':<44} {statistics.median(rsync_cpu):6.3f}s")
    for label in ["total", *(p[3] for p in PHASES)]:
        values = [r.get(label, 0.0) for r in runs]
        med = statistics.median(values)
        print(f"  {('wsfs sync_once, whole' if label == 'total' else label):<44} {med:6.3f}s  "
              f"{med / files * 1e6:6.1f} us per file")


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
    ap.add_argument("--cli", action="store_true", help="only the side-by-side CLI run (warm cache, medians)")
    ap.add_argument("--reps", type=int, default=5, help="--cli: runs of each kind after one dropped")
    ap.add_argument("--against", type=Path, default=None, metavar="DIR",
                    help="--cli: also run another checkout's server and client in turn (e.g. `git archive` of the "
                         "commit before a change, unpacked in DIR), each on its own data")
    ap.add_argument("--rest", action="store_true", help="only the CPU cost of a live replica at rest")
    ap.add_argument("--rest-seconds", type=float, default=60.0)
    ap.add_argument("--phases", action="store_true", help="only a first sync's client CPU by part (with --reps)")
    ap.add_argument("--base", default=None, help="where the work directory goes (e.g. /dev/shm: no disk in the way)")
    args = ap.parse_args()
    if args.rest:
        await asyncio.to_thread(rest_main, args)  # it runs loops of its own
        return
    if shutil.which("rsync") is None:
        sys.exit("rsync is not installed (apt-get install -y rsync)")
    work = Path(tempfile.mkdtemp(prefix="wsfs-bench-", dir=args.base))
    print(f"work dir {work}")
    tree = work / "tree"
    total = make_tree(tree, args.files, args.mib * 2**20)
    print(f"tree: {args.files} files, {total / 2**20:.1f} MiB")
    server = WsfsServer(work / "data")
    rsyncd = RsyncDaemon(tree, work)
    try:
        await upload(server, tree, work)
        if args.cli:
            against = WsfsServer(work / "data-against", args.against.resolve()) if args.against else None
            try:
                if against is not None:
                    await upload(against, tree, work)
                side_by_side(server, rsyncd, work, args.reps, against, args.against.resolve() if args.against else None)
            finally:
                if against is not None:
                    against.stop()
            return
        if args.phases:
            await phases(server, rsyncd, work, args.reps, args.files)
            return
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


def rest_main(args: argparse.Namespace) -> None:
    """Rest cost with 1,000 and 10,000 files, each tree pushed by the live replica itself first."""
    work = Path(tempfile.mkdtemp(prefix="wsfs-bench-rest-", dir=args.base))
    print(f"work dir {work}")
    try:
        for files in (1000, 10_000):
            server = WsfsServer(work / f"data-{files}")
            try:
                rest_cost(server.url, server.admin, work, files, args.rest_seconds)
            finally:
                server.stop()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
