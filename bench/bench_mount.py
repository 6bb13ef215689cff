"""The reference's fs-bench scenarios through a wsfs FUSE mount vs the local disk.

Both targets run in the same process, interleaved rep by rep, on the same
filesystem (the store file lives beside the disk directory), and each
scenario is reported as a ratio mount / disk (< 1: the mount is faster).
The reference (dofs/computerd through its own FUSE mount, 1 vCPU, ext4)
measured: create 1.85x, stat 0.91x, rm 0.66x, mkdir tree 0.74x, find 0.72x,
write 64 MiB 16.9x, read 64 MiB 39.7x, git init+commit 0.72x.

    .venv/bin/python bench/bench_mount.py [--reps 3] [--json out.json] [--only create,stat]

Each scenario is a shell snippet with an untimed setup; the workloads follow
the reference's descriptions (shell loops, one process per `stat`, `dd`
of zeros). Needs root (or fuse group), fuse3, git.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from client_py.mount.runner import MountProcess  # noqa: E402

CREATE = "for i in $(seq 1000); do echo $i > f$i; done"
TREE = "for a in 0 1 2 3 4 5 6 7 8 9; do for b in 0 1 2 3 4 5 6 7 8 9; do for c in 0 1 2 3 4 5 6 7 8 9; do " \
       "mkdir -p $a/$b/$c && touch $a/$b/$c/leaf; done; done; done"
WRITE = "dd if=/dev/zero of=big bs=1M count=64 status=none"
GIT = (
    "git init -q . && for i in $(seq 100); do echo $i > f$i.txt; done && git add . && "
    "git -c user.name=b -c user.email=b@example.com commit -q -m bench"
)


@dataclass(frozen=True)
class Scenario:
    name: str
    timed: str
    setup: str = ""
    reference: float | None = None  # the reference's disk ratio


SCENARIOS = [
    Scenario("create 1000 files", CREATE, reference=1.85),
    Scenario("stat 1000 files", "for i in $(seq 1000); do stat f$i > /dev/null; done", CREATE, 0.91),
    Scenario("rm 1000 files", "rm f*", CREATE, 0.66),
    Scenario("mkdir tree 10x10x10", TREE, reference=0.74),
    Scenario("find tree", "find . -type f | wc -l > /dev/null", TREE, 0.72),
    Scenario("write 64 MiB", WRITE, reference=16.93),
    Scenario("copy 64 MiB", f"{WRITE} && cp big big2", reference=40.46),
    Scenario("read 64 MiB", f"{WRITE} && cat big > /dev/null", reference=39.72),
    Scenario("pure read 64 MiB", "cat big > /dev/null", WRITE, 30.26),
    Scenario("pure copy 64 MiB", "cp big big2", WRITE, 41.47),
    Scenario("overwrite 64 MiB", "dd if=/dev/zero of=big bs=1M count=64 conv=notrunc status=none", WRITE, 43.35),
    Scenario("git init + commit 100 files", GIT, reference=0.72),
]


def bash(script: str, cwd: Path) -> None:
    subprocess.run(["bash", "-c", script], cwd=cwd, check=True, timeout=600)


def run_once(scenario: Scenario, root: Path, number: int) -> float:
    """Seconds for one run of `scenario` in a fresh directory under `root`."""
    work = root / f"run{number}"
    work.mkdir()
    if scenario.setup:
        bash(scenario.setup, work)
    start = time.perf_counter()
    bash(scenario.timed, work)
    elapsed = time.perf_counter() - start
    shutil.rmtree(work)
    return elapsed


def measure(scenarios: list[Scenario], mount_dir: Path, disk_dir: Path, reps: int) -> list[dict]:
    results = []
    counter = 0
    for scenario in scenarios:
        times: dict[str, list[float]] = {"mount": [], "disk": []}
        for rep in range(reps + 1):  # the first rep is a warm-up
            order = [("mount", mount_dir), ("disk", disk_dir)] if rep % 2 == 0 else [("disk", disk_dir), ("mount", mount_dir)]
            for target, root in order:
                counter += 1
                elapsed = run_once(scenario, root, counter)
                if rep:
                    times[target].append(elapsed)
        mount_s, disk_s = statistics.median(times["mount"]), statistics.median(times["disk"])
        row = {
            "scenario": scenario.name,
            "mount_ms": round(mount_s * 1000, 1),
            "disk_ms": round(disk_s * 1000, 1),
            "ratio": round(mount_s / disk_s, 2),
            "reference_ratio": scenario.reference,
        }
        results.append(row)
        print(_format(row), flush=True)
    return results


def _format(row: dict) -> str:
    beat = "" if row["reference_ratio"] is None else ("  beats" if row["ratio"] < row["reference_ratio"] else "  (worse)")
    return (
        f"{row['scenario']:<30} mount {row['mount_ms']:>9.1f} ms   disk {row['disk_ms']:>9.1f} ms   "
        f"ratio {row['ratio']:>6.2f}x   reference {row['reference_ratio']}x{beat}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--only", help="comma-separated scenario name prefixes")
    parser.add_argument("--dir", help="where to put the store and the disk directory (default: a temp dir)")
    args = parser.parse_args()
    scenarios = SCENARIOS
    if args.only:
        prefixes = [p.strip() for p in args.only.split(",")]
        scenarios = [s for s in SCENARIOS if any(s.name.startswith(p) for p in prefixes)]
    base = Path(tempfile.mkdtemp(prefix="wsfs-bench-", dir=args.dir))
    try:
        disk_dir, mount_dir = base / "disk", base / "mnt"
        disk_dir.mkdir()
        mount_dir.mkdir()
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"store {base / 'store.db'}  disk {disk_dir}  ({os.cpu_count()} CPUs, load {load}, "
              f"{args.reps} reps + 1 warm-up, medians)")
        with MountProcess([str(base / "store.db")], str(mount_dir), log_file=str(base / "mount.log")):
            results = measure(scenarios, mount_dir, disk_dir, args.reps)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
