"""The reference's fs-bench scenarios through a wsfs FUSE mount vs the local disk.

Both targets run in the same process, interleaved rep by rep, on the same
filesystem (the store file lives beside the disk directory), and each
scenario is reported as a ratio mount / disk (< 1: the mount is faster).
The reference (dofs/computerd through its own FUSE mount, 1 vCPU, ext4)
measured: create 1.85x, stat 0.91x, rm 0.66x, mkdir tree 0.74x, find 0.72x,
write 64 MiB 16.9x, read 64 MiB 39.7x, git init+commit 0.72x.

    .venv/bin/python bench/bench_mount.py [--reps 3] [--json out.json] [--only create,stat]
    .venv/bin/python bench/bench_mount.py --sdist DIR --only real   # real programs on a real source tree
    .venv/bin/python bench/bench_mount.py --only create --ab WSFS_MOUNT_RESERVE=0   # A/B: a second mount, env set
    .venv/bin/python bench/bench_mount.py --sdist DIR --only real --remote   # and a remote mount of a local server
    .venv/bin/python bench/bench_mount.py --no-local --lowlevel --sdist DIR --only create,rm,git,real   # the floor on
        # libfuse's low-level API (pyfuse3: floor_ll; ctypes: floor_llc) beside floor_memfs.py and the disk
    .venv/bin/python bench/bench_mount.py --no-local --lowlevel --count-requests --reps 1 ...   # kernel requests by opcode
    .venv/bin/python bench/bench_mount.py --api both --lowlevel ctypes --sdist DIR --only create,rm,git,real
        # the mount on libfuse's path API (mount) and on its low-level API (mount_b), interleaved, beside both floors

Each scenario is timed the way the reference's `script/fs-bench.sh` times it:
one `bash -c` of the whole snippet in a fresh directory, output discarded,
setup included (its "rm 1000 files" creates the 1,000 files and removes
them inside the timer; "find tree" builds the tree and then finds), with the
same shell commands (`echo $i > f$i` loops, one process per `stat` and per
`touch`, `dd` of zeros, `git add -A`). Only the "pure" and "overwrite" rows
stage their file outside the timer, as the reference's table says. A second
column times the operation alone (setup untimed), which isolates what the
mount adds to that one operation. A third target, `floor_memfs.py`, is a
do-nothing in-memory filesystem on the same binding and options: the best
any Python FUSE daemon can do here, so "mount ÷ floor" is what wsfs itself
costs and "floor ÷ disk" what no Python daemon can beat (`--no-floor` skips
it). Needs root (or fuse group), fuse3, git.

Beside the times, each daemon's CPU (user + system, from /proc, read once
the run has settled: the group commit's idle flush counts) is printed as
"mount ÷ floor CPU". On this shared machine wall times swing 2x from run to
run with other jobs' load; a daemon's CPU for the same work moves far less.

`--sdist DIR` adds rows of real programs on a real ~10k-file source tree:
the Django 5.1.4 sdist, fetched once into DIR with `pip download
django==5.1.4 --no-deps --no-binary :all: -d DIR` (any sdist there will do):
`tar -xzf`, `git init + add -A + commit`, `git status` the first time
after the commit and once more (the second shows what the kernel's caches
keep), and `python -m compileall` of the tree, run as one chain per target
and rep in one directory (one untar per chain, not one per row), each step
timed alone, `--reps` chains per target, interleaved, no warm-up.

`--remote` adds a fourth target: a remote mount (`wsfs mount URL demo`) of a
`wsfs serve` started for the run on loopback, interleaved with the others;
its CPU column counts the mount daemon and the server together. Each of its
real-program steps ends with `sync .` (an fsync of the directory: the mount's
queued changes acknowledged by the server), so a step's pushes are its own.
`--remote --no-local --api both` compares the remote mount on the path API
(remote) and on the low-level API (remote_b), each with its own server.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from client_py.mount.runner import MountProcess, default_api, is_mounted, unmount, wait_mounted  # noqa: E402

# `--lowlevel`: the floor on libfuse's low-level API through pyfuse3 and through ctypes (target, script)
LOWLEVEL_FLOORS = {"pyfuse3": ("floor_ll", "floor_lowlevel.py"), "ctypes": ("floor_llc", "floor_lowlevel_ctypes.py")}
REQUESTS = None  # `--count-requests`: a fuse_requests.KernelRequests counting each timed script's requests
REMOTE_TAIL = "\nsync ."  # a remote target's chain step ends once the server has its changes (see measure_chain)

CREATE = "for i in $(seq 1 1000); do echo $i > f$i; done"
TREE = (
    "for a in $(seq 1 10); do for b in $(seq 1 10); do mkdir -p $a/$b; "
    "for c in $(seq 1 10); do touch $a/$b/$c; done; done; done"
)
WRITE = "dd if=/dev/zero of=big bs=1M count=64 status=none"
GIT_SETUP = "git init -q && for i in $(seq 1 100); do echo $i > f$i; done"
GIT_COMMIT = "git add -A && git -c user.email=a@b -c user.name=a commit -qm init"
UNTAR = 'tar -xzf "$SDIST"'
GIT_TREE = f"{UNTAR} && git init -q && {GIT_COMMIT}"
STATUS = "git status --porcelain > /dev/null"


@dataclass(frozen=True)
class Scenario:
    name: str
    operation: str
    setup: str = ""
    reference: float | None = None  # the reference's ratio against its ext4 disk
    staged: bool = False  # the setup stays outside the timer in the reference's method too

    def timed_as_reference(self) -> tuple[str, str]:
        """(untimed setup, timed script) as fs-bench.sh runs this scenario."""
        if self.staged or not self.setup:
            return self.setup, self.operation
        return "", f"{self.setup}\n{self.operation}"


SCENARIOS = [
    Scenario("create 1000 files", CREATE, reference=1.85),
    Scenario("stat 1000 files", "for i in $(seq 1 1000); do stat f$i; done", CREATE, 0.91),
    Scenario("rm 1000 files", "rm f*", CREATE, 0.66),
    Scenario("mkdir tree 10x10x10", TREE, reference=0.74),
    Scenario("find tree", "find . -type f | wc -l", TREE, 0.72),
    Scenario("write 64 MiB", WRITE, reference=16.93),
    Scenario("copy 64 MiB", "cp big big2", WRITE, 40.46),
    Scenario("read 64 MiB", "cat big > /dev/null", WRITE, 39.72),
    Scenario("pure read 64 MiB", "cat big > /dev/null", WRITE, 30.26, staged=True),
    Scenario("pure copy 64 MiB", "cp big big2", WRITE, 41.47, staged=True),
    Scenario("overwrite 64 MiB", "dd if=/dev/zero of=big bs=1M count=64 conv=notrunc status=none", WRITE, 43.35,
             staged=True),
    Scenario("git init + commit 100 files", GIT_COMMIT, GIT_SETUP, 0.72),
]

# Real programs on a real source tree (`--sdist`; selected with `--only real`): one chain per
# target and rep, each step timed in the tree the steps before it left (one untar per chain).
REAL = [
    Scenario("real: tar -xzf sdist", UNTAR),
    Scenario("real: git init + add -A + commit", f"git init -q && {GIT_COMMIT}"),
    Scenario("real: git status (1st)", STATUS),
    Scenario("real: git status (2nd)", STATUS),
    # `*` leaves out .git; the sdist holds a few deliberately broken test files (compileall exits 1)
    Scenario("real: python -m compileall", f"{sys.executable} -m compileall -q * > /dev/null; true"),
]


# `--sdist` adds SDIST, the tarball the real-program rows unpack. No automatic `git gc`:
# past ~6,700 loose objects a commit starts one in the background, which would still be
# writing into the next run's directory (and time nothing we mean to measure).
ENV = {**os.environ, "GIT_CONFIG_COUNT": "2", "GIT_CONFIG_KEY_0": "gc.auto", "GIT_CONFIG_VALUE_0": "0",
       "GIT_CONFIG_KEY_1": "maintenance.auto", "GIT_CONFIG_VALUE_1": "false"}


def bash(script: str, cwd: Path, *, timeout: float = 600) -> None:
    """Run `script`; a plain blocking wait, so the timer sees when it really ends.

    (`subprocess.run(timeout=...)` polls with sleeps of up to 50 ms, which
    rounded every figure up to the next ~50 ms.) A timer kills a hung run.
    """
    process = subprocess.Popen(["bash", "-c", script], cwd=cwd, stdout=subprocess.DEVNULL, env=ENV)
    killer = threading.Timer(timeout, process.kill)
    killer.start()
    try:
        returncode = process.wait()
    finally:
        killer.cancel()
    if returncode:
        raise subprocess.CalledProcessError(returncode, script)


SETTLE_SECONDS = 0.03  # > the group commit's idle flush (10 ms): its commit counts in the daemon's CPU


def daemon_cpu(pids: tuple[int, ...] | None) -> float:
    """CPU seconds (user + system) the processes `pids` have used so far (0 without any)."""
    total = 0.0
    for pid in pids or ():
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def run_once(setup: str, timed: str, root: Path, number: int,
             pid: tuple[int, ...] | None = None, *, fresh: bool = True) -> tuple[float, float]:
    """(seconds, daemon CPU seconds) for one run of `timed` in a fresh directory
    under `root` (after `setup`, untimed); `pid`: the daemons serving `root`, if any.
    `fresh=False`: run in `root` itself, and leave what the run made there."""
    work = root / f"run{number}" if fresh else root
    if fresh:
        work.mkdir()
    if setup:
        bash(setup, work)
    if pid is not None:
        time.sleep(SETTLE_SECONDS)  # the setup's last commit is not this run's
    cpu = daemon_cpu(pid)
    if REQUESTS:
        REQUESTS.begin()
    start = time.perf_counter()
    bash(timed, work)
    elapsed = time.perf_counter() - start
    if pid is not None:
        time.sleep(SETTLE_SECONDS)
    cpu = daemon_cpu(pid) - cpu
    if REQUESTS:
        REQUESTS.end(timed, work)
    if fresh:
        shutil.rmtree(work)
    return elapsed, cpu


def methods(scenario: Scenario) -> dict[str, tuple[str, str]]:
    """The reference's way of timing, and the operation alone where that differs."""
    out = {"reference": scenario.timed_as_reference()}
    if scenario.setup and not scenario.staged:
        out["alone"] = (scenario.setup, scenario.operation)
    return out


def measure(scenarios: list[Scenario], targets: dict[str, Path], reps: int,
            pids: dict[str, tuple[int, ...]]) -> list[dict]:
    """Targets interleaved rep by rep (rotating which goes first); medians, and the disk's spread.
    `pids`: the daemon behind each FUSE target, whose CPU is counted too."""
    results = []
    counter = 0
    order = list(targets.items())
    for scenario in scenarios:
        times = {(method, target): [] for method in methods(scenario) for target in targets}
        cpus = {target: [] for target in pids}
        for rep in range(reps + 1):  # the first rep is a warm-up
            shift = rep % len(order)
            for target, root in order[shift:] + order[:shift]:
                for method, (setup, timed) in methods(scenario).items():
                    counter += 1
                    elapsed, cpu = run_once(setup, timed, root, counter, pids.get(target))
                    if rep:
                        times[method, target].append(elapsed)
                        if method == "reference" and target in cpus:
                            cpus[target].append(cpu)
        row = {"scenario": scenario.name, "reference_ratio": scenario.reference}
        for method in methods(scenario):
            row[method] = {f"{target}_ms": round(statistics.median(times[method, target]) * 1000, 1) for target in targets}
            row[method]["disk_range_ms"] = [round(min(times[method, "disk"]) * 1000, 1),
                                            round(max(times[method, "disk"]) * 1000, 1)]
        row["cpu_ms"] = {target: round(statistics.median(values) * 1000, 1) for target, values in cpus.items()}
        results.append(row)
        print(_format(row) if "mount_ms" in row["reference"] else _format_targets(row), flush=True)
    return results


def measure_chain(steps: list[Scenario], targets: dict[str, Path], reps: int,
                  pids: dict[str, tuple[int, ...]]) -> list[dict]:
    """`steps` run one after another in one fresh directory per target and rep (targets
    interleaved, rotating which goes first; no warm-up: each chain starts with the same
    untar), each timed alone, with its daemons' CPU; rows as `measure` makes them.
    The trees stay (every target keeps its earlier chains' files) until the run ends."""
    times = {(step.name, target): [] for step in steps for target in targets}
    cpus = {(step.name, target): [] for step in steps for target in pids}
    order = list(targets.items())
    for rep in range(reps):
        shift = rep % len(order)
        for target, root in order[shift:] + order[:shift]:
            work = root / f"chain{rep}"
            work.mkdir()
            for step in steps:
                # A remote mount's close returns once the change is queued: the step ends when the
                # server has it (`sync .`: fsync of the directory), not in the next step's time.
                operation = step.operation + (REMOTE_TAIL if target.startswith("remote") else "")
                elapsed, cpu = run_once("", operation, work, 0, pids.get(target), fresh=False)
                times[step.name, target].append(elapsed)
                if target in pids:
                    cpus[step.name, target].append(cpu)
            # (the chain's tree stays until the run ends: removing 13,000 files through a
            # remote mount takes minutes; each later chain gets a directory of its own)
            done = ", ".join(f"{times[step.name, target][-1] * 1000:.0f}" for step in steps)
            used = (", CPU " + ", ".join(f"{cpus[step.name, target][-1] * 1000:.0f}" for step in steps)
                    if target in pids else "")
            print(f"  (rep {rep + 1}, {target}: {done} ms{used}; load {os.getloadavg()[0]:.1f})", flush=True)
    results = []
    for step in steps:
        spread = times[step.name, "disk"]
        row = {"scenario": step.name, "reference_ratio": None,
               "reference": {**{f"{t}_ms": round(statistics.median(times[step.name, t]) * 1000, 1) for t in targets},
                             "disk_range_ms": [round(min(spread) * 1000, 1), round(max(spread) * 1000, 1)],
                             "all_ms": {t: [round(x * 1000) for x in times[step.name, t]] for t in targets}},
               "cpu_ms": {t: round(statistics.median(cpus[step.name, t]) * 1000, 1) for t in pids}}
        results.append(row)
        print(_format_chain(row), flush=True)
    return results


def _format(row: dict) -> str:
    main, ref = row["reference"], row["reference_ratio"]
    ratio = main["mount_ms"] / main["disk_ms"]
    low, high = main["disk_range_ms"]
    text = (
        f"| {row['scenario']} | {main['mount_ms']:.0f} | {main['disk_ms']:.0f} ({low:.0f}–{high:.0f}) "
        f"| **{ratio:.2f}×** | {'—' if ref is None else f'{ref}× ' + ('beats' if ratio < ref else 'worse')} |"
    )
    if "floor_ms" in main:
        text += f" {main['floor_ms']:.0f} | {main['floor_ms'] / main['disk_ms']:.2f}× | {main['mount_ms'] / main['floor_ms']:.2f}× |"
    alone = row.get("alone")
    text += f" {alone['mount_ms']:.0f} / {alone['disk_ms']:.0f} |" if alone else " (same) |"
    cpu = row.get("cpu_ms", {})
    if "floor" in cpu:
        ratio = f"{cpu['mount'] / cpu['floor']:.2f}×" if cpu["floor"] else "—"
        text += f" {cpu['mount']:.0f} / {cpu['floor']:.0f} | {ratio} |"
    if "remote_ms" in main:
        text += (f" {main['remote_ms']:.0f} | **{main['remote_ms'] / main['disk_ms']:.2f}×** |"
                 f" {cpu.get('remote', 0):.0f} |")
    if "mount_b_ms" in main:
        text += (f" {main['mount_b_ms']:.0f} / {cpu.get('mount_b', 0):.0f} | "
                 f"{main['mount_b_ms'] / main['mount_ms']:.2f}× / "
                 f"{cpu.get('mount_b', 0) / cpu['mount'] if cpu.get('mount') else 0:.2f}× |")
    return text


def header(with_floor: bool, ab: str | None = None, remote: bool = False) -> str:
    floor = " floor ms | floor ÷ disk | mount ÷ floor |" if with_floor else ""
    columns = (
        f"| scenario (timed as fs-bench.sh) | mount ms | disk ms (range) | mount ÷ disk | reference |{floor}"
        " operation alone, mount / disk ms |"
        + (" daemon CPU ms, mount / floor | mount ÷ floor CPU |" if with_floor else "")
        + (" remote ms | remote ÷ disk | remote CPU ms (mount + server) |" if remote else "")
        + (f" mount with {ab}: ms / CPU ms | ÷ mount, wall / CPU |" if ab else "")
    )
    return columns + "\n|" + "---|" * (columns.count("|") - 1)


@contextmanager
def remote_mount(data: Path, mountpoint: Path, cache: Path, log_file: Path) -> Iterator[tuple[int, int]]:
    """A `wsfs serve` on loopback (data in `data`) and a remote mount of its workspace
    `demo` at `mountpoint` for the duration: yields (mount daemon pid, server pid)."""
    with open(log_file, "ab") as log:
        server = subprocess.Popen([sys.executable, "-m", "wsfs", "serve", "--data", str(data), "--port", "0",
                                   "--no-seed"], cwd=_server_tree(), stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        url = token = ""
        deadline = time.monotonic() + 30
        while not url and time.monotonic() < deadline:
            line = server.stdout.readline()
            if not line:
                raise RuntimeError(f"the server exited: see {log_file}")
            if "admin token" in line:
                token = line.rsplit(" ", 1)[1].strip()
            if "open the demo:" in line:
                url = line.split("open the demo:", 1)[1].strip().split("/?token=")[0]
        threading.Thread(target=server.stdout.read, daemon=True).start()  # (never blocks the server)
        extra = ["--token", token, "--cache", str(cache)]
        with MountProcess([url, "demo"], str(mountpoint), log_file=str(log_file), extra=extra) as mount:
            yield mount.pid, server.pid
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _server_tree() -> Path:
    """Where the server's code comes from: the first `PYTHONPATH` entry holding a `server/` (an A/B's
    other tree, `--ab PYTHONPATH=DIR`), else this checkout. `-m` puts the working directory first
    on `sys.path`, so it decides which tree's server runs."""
    for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        if entry and (Path(entry) / "server").is_dir():
            return Path(entry)
    return Path(__file__).resolve().parent.parent


@contextmanager
def floor_mount(mountpoint: Path, log_file: Path, script: str = "floor_memfs.py", extra: tuple[str, ...] = ()
                ) -> Iterator[int]:
    """`script` (a floor in bench/, with `extra` arguments) mounted at `mountpoint` for the duration."""
    with open(log_file, "ab") as log:
        daemon = subprocess.Popen([sys.executable, str(Path(__file__).with_name(script)), str(mountpoint), *extra],
                                  stdout=log, stderr=log)
    try:
        wait_mounted(str(mountpoint), daemon.poll)
        yield daemon.pid
    finally:
        if is_mounted(str(mountpoint)):
            unmount(str(mountpoint), lazy=daemon.poll() is not None)
        try:
            daemon.wait(10)
        except subprocess.TimeoutExpired:
            daemon.kill()


@contextmanager
def _environment(variables: dict[str, str]) -> Iterator[None]:
    """`variables` set in os.environ for the duration (what a daemon started meanwhile inherits)."""
    saved = {var: os.environ.get(var) for var in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for var, value in saved.items():
            if value is None:
                del os.environ[var]
            else:
                os.environ[var] = value


def _start_targets(stack: ExitStack, targets: dict[str, Path], base: Path, ab: dict[str, str], api: str) -> dict:
    """Mount every FUSE target in `targets` (closed by `stack`); their daemons' pids. `api`:
    libfuse's API of the local mount (`--api`)."""
    pids = {}
    if "mount" in targets:
        with _environment({"WSFS_MOUNT_API": api}):
            pids["mount"] = (stack.enter_context(
                MountProcess([str(base / "store.db")], str(targets["mount"]), log_file=str(base / "mount.log"))).pid,)
    if "mount_b" in targets:
        with _environment(ab):
            pids["mount_b"] = (stack.enter_context(
                MountProcess([str(base / "store_b.db")], str(targets["mount_b"]),
                             log_file=str(base / "mount_b.log"))).pid,)
    if "floor" in targets:
        pids["floor"] = (stack.enter_context(floor_mount(targets["floor"], base / "floor.log")),)
    for target, script in LOWLEVEL_FLOORS.values():  # `--lowlevel`; requests per handler: TARGET.json at unmount
        if target in targets:
            pids[target] = (stack.enter_context(floor_mount(
                targets[target], base / f"{target}.log", script, ("--counts", str(base / f"{target}.json")))),)
    if "remote" in targets:
        with _environment({"WSFS_MOUNT_API": api}):
            pids["remote"] = stack.enter_context(
                remote_mount(base / "server", targets["remote"], base / "cache", base / "remote.log"))
    if "remote_b" in targets:
        with _environment(ab):
            pids["remote_b"] = stack.enter_context(
                remote_mount(base / "server_b", targets["remote_b"], base / "cache_b", base / "remote_b.log"))
    return pids


def chain_header(targets: dict[str, Path]) -> str:
    others = [t for t in targets if t != "disk"]
    columns = "| real program (one chain per rep) | disk ms (range) |" + "".join(
        f" {t} ms | {t} ÷ disk | {t} daemon CPU ms |" for t in others)
    return columns + "\n|" + "---|" * (columns.count("|") - 1)


def _format_chain(row: dict) -> str:
    main, cpu = row["reference"], row["cpu_ms"]
    low, high = main["disk_range_ms"]
    text = f"| {row['scenario']} | {main['disk_ms']:.0f} ({low:.0f}–{high:.0f}) |"
    for target in main["all_ms"]:
        if target != "disk":
            ratio = main[f"{target}_ms"] / main["disk_ms"] if main["disk_ms"] else 0.0
            text += f" {main[f'{target}_ms']:.0f} | **{ratio:.2f}×** | {cpu.get(target, 0):.0f} |"
    return text + f" all ms: {main['all_ms']} |"


def _format_targets(row: dict) -> str:
    """A row without the local mount (`--no-local`): each target's time, ratio to disk and CPU."""
    main, cpu = row["reference"], row.get("cpu_ms", {})
    text = f"| {row['scenario']} | disk {main['disk_ms']:.0f} |"
    for key, value in main.items():
        target = key.removesuffix("_ms")
        if key.endswith("_ms") and target != "disk" and isinstance(value, float):
            text += f" {target} {value:.0f} ({value / main['disk_ms']:.2f}×, CPU {cpu.get(target, 0):.0f}) |"
    return text + f" load {os.getloadavg()[0]:.1f} |"


def _count_requests(stack: ExitStack, targets: dict[str, Path]) -> None:
    """`--count-requests`: REQUESTS counts the FUSE targets' requests from now on (once)."""
    global REQUESTS
    if REQUESTS is None:
        from fuse_requests import KernelRequests  # bench/ is on sys.path (this script's directory)

        REQUESTS = KernelRequests({t: p for t, p in targets.items() if t != "disk"})
        stack.callback(REQUESTS.close)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--only", help="comma-separated scenario name prefixes")
    parser.add_argument("--dir", help="where to put the store and the disk directory (default: a temp dir)")
    parser.add_argument("--no-floor", action="store_true", help="skip the do-nothing Python filesystem (floor_memfs.py)")
    parser.add_argument("--sdist", metavar="DIR", help="add the real-program rows, on the first *.tar.gz in DIR")
    parser.add_argument("--remote", action="store_true", help="add a remote mount of a `wsfs serve` on loopback")
    parser.add_argument("--no-local", action="store_true", help="no local mount (with --remote: the remote one alone)")
    parser.add_argument("--lowlevel", nargs="?", const="pyfuse3,ctypes", metavar="pyfuse3,ctypes",
                        help="add the floor on libfuse's low-level API: floor_lowlevel.py (pyfuse3) as target "
                        "floor_ll, floor_lowlevel_ctypes.py as floor_llc; with --no-local the rows print every target")
    parser.add_argument("--count-requests", action="store_true", help="count the requests the kernel sends each "
                        "FUSE target per timed script, by opcode (tracefs; slows the FUSE targets a little: "
                        "a run of its own, --reps 1)")
    parser.add_argument("--ab", metavar="VAR=VALUE[,...]", help="A/B: a second mount (mount_b, its own store; and "
                        "remote_b, its own server, with --remote) whose daemons run with these environment "
                        "variables set (PYTHONPATH=an older tree's copy of client_py/, run from outside the "
                        "checkout, compares code), interleaved with the others")
    parser.add_argument("--api", choices=("path", "lowlevel", "both"), default=default_api(),
                        help="libfuse's API of the local and remote mounts (wsfs mount --api; default the "
                        "mount's: $WSFS_MOUNT_API or lowlevel); both: the path API as mount and remote, the "
                        "low-level API as mount_b and remote_b (as --ab WSFS_MOUNT_API=lowlevel), interleaved")
    args = parser.parse_args()
    if args.api == "both":
        args.ab = ",".join(filter(None, [args.ab, "WSFS_MOUNT_API=lowlevel"]))
    scenarios, chain = SCENARIOS, []
    if args.sdist:
        tarballs = sorted(Path(args.sdist).glob("*.tar.gz"))
        if not tarballs:
            parser.error(f"no *.tar.gz in {args.sdist}: pip download django==5.1.4 --no-deps --no-binary :all: -d DIR")
        ENV["SDIST"] = str(tarballs[0].resolve())
        chain = REAL
    if args.only:
        prefixes = [p.strip() for p in args.only.split(",")]
        scenarios = [s for s in scenarios if any(s.name.startswith(p) for p in prefixes)]
        # "real" runs the whole chain; "real: tar,real: git" its first steps only (each needs those before it)
        steps = [s for s in chain if any(p.startswith("real:") and s.name.startswith(p) for p in prefixes)]
        chain = chain if any("real".startswith(p) for p in prefixes) else steps
    base = Path(tempfile.mkdtemp(prefix="wsfs-bench-", dir=args.dir))
    ab = dict(pair.partition("=")[::2] for pair in args.ab.split(",")) if args.ab else {}
    try:
        targets = {} if args.no_local else {"mount": base / "mnt"}
        targets["disk"] = base / "disk"
        if ab and not args.no_local:
            targets["mount_b"] = base / "mnt_b"
        if args.remote:
            targets["remote"] = base / "rmnt"
        if ab and args.remote:
            targets["remote_b"] = base / "rmnt_b"
        if not args.no_floor:
            targets["floor"] = base / "floor"
        for kind in args.lowlevel.split(",") if args.lowlevel else ():
            target = LOWLEVEL_FLOORS[kind][0]
            targets[target] = base / target
        for directory in targets.values():
            directory.mkdir()
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        reps = f"{args.reps} reps + 1 warm-up" if scenarios else f"{args.reps} chains per target, no warm-up"
        print(f"store {base / 'store.db'}  disk {targets['disk']}  ({os.cpu_count()} CPUs, load {load}, {reps}, medians)")
        with ExitStack() as stack:
            pids = _start_targets(stack, targets, base, ab, "lowlevel" if args.api == "lowlevel" else "path")
            if scenarios:
                print(header("floor" in targets, args.ab, args.remote), flush=True)
            if args.count_requests:
                _count_requests(stack, targets)
            results = measure(scenarios, targets, args.reps, pids) if scenarios else []
            if chain:
                print(chain_header(targets), flush=True)
            results += measure_chain(chain, targets, args.reps, pids) if chain else []
            if REQUESTS:
                print(REQUESTS.report([(s.name, s.timed_as_reference()[1], -1) for s in scenarios]
                                      + [(s.name, s.operation + tail, [c.operation for c in chain[:i]].count(s.operation))
                                         for i, s in enumerate(chain) for tail in ("", REMOTE_TAIL)]))
        for target, _ in LOWLEVEL_FLOORS.values():
            if (base / f"{target}.json").exists():
                counts = json.loads((base / f"{target}.json").read_text())
                print(f"{target}'s handlers, whole run: {', '.join(f'{k} {v}' for k, v in counts.items())}")
        print(f"(load at the end {', '.join(f'{x:.2f}' for x in os.getloadavg())})")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
