"""The store's small operations, before and after a change, interleaved in one run (issue 14).

    python bench/bench_store_ops.py                  # this checkout's store, 5 runs
    python bench/bench_store_ops.py --ab REV         # REV's vfs/ against this checkout's, alternating
    python bench/bench_store_ops.py --ab REV --pairs 6
    python bench/bench_store_ops.py --ab REV --after REV2   # two revisions (the checkout may change meanwhile)
    python bench/bench_store_ops.py --checkpoints commit,background   # this checkout, two checkpoint modes A/B

The rows are bench_vfs.py's small ones (a create 1000 x 100 B, b/b2 stat them
cold/warm, c unlink them, l rename 1000 into a sibling dir, d mkdir a 10x10x10
tree, i3 warm stats of 1000 in a 10k dir) and a server's writes (`put_file` under
`as_author`, 1000 x 100 B: p new files, o overwrite them with new bytes, s the
same bytes again, u new files whose bytes are stored already), each timed as wall and process CPU
(user + system: the WAL's pwrites are system time). Beside them, counted once
per side: WAL frames (pages written) and SQL statements (SQLite's trace, trigger
bodies included) per operation, on a store whose WAL is not checkpointed, and
the frames by the table or index whose page each one is (`dbstat`).

`--ab REV` extracts REV's `vfs/` (`git archive`, the checkout is not touched)
and runs each side in a child process of its own, A then B then A ..., so both
see the same load; it prints each side's medians and the per-pair ratios of
after ÷ before, with the load average next to them. The machine is shared:
trust ratios of pairs, and say how many pairs were lower.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = {"a": 123, "b": 158, "b2": 5.00, "c": 90.3, "l": 96.9, "d": 55.5, "i": 10.5, "i1": 10.5, "i3": 4.88}  # dofs, ms
ROWS = ("a", "b", "b2", "c", "l", "d", "i", "i1", "i3", "p", "o", "s", "u")
WAL_FRAME = 4096 + 24  # a 4 KiB page and its frame header


def _tree_dirs(top: str) -> list[str]:
    out = []
    for x in range(10):
        out.append(f"{top}/d{x}")
        for y in range(10):
            out.append(f"{top}/d{x}/d{y}")
            out.extend(f"{top}/d{x}/d{y}/d{z}" for z in range(10))
    return sorted(out, key=lambda p: (p.count("/"), p))


class _Clock:
    """Wall and process CPU milliseconds of one call."""

    def __init__(self, out: dict[str, float], sid: str):
        self.out, self.sid = out, sid

    def __enter__(self) -> None:
        import gc

        gc.collect()
        self.cpu = resource.getrusage(resource.RUSAGE_SELF)
        self.wall = time.perf_counter()

    def __exit__(self, *_: object) -> None:
        wall = (time.perf_counter() - self.wall) * 1000
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (after.ru_utime + after.ru_stime - self.cpu.ru_utime - self.cpu.ru_stime) * 1000
        self.out[self.sid], self.out[self.sid + ":cpu"] = wall, cpu


def _timings(root: Path, vfs: object, opts: dict) -> dict[str, float]:
    """One run of every row, fresh stores under `root` (opened with `opts`)."""
    small = [random.randbytes(100) for _ in range(1000)]
    t: dict[str, float] = {}
    with _open(vfs, str(Path(tempfile.mkdtemp(dir=root)) / "s.db"), opts) as ws:  # type: ignore[attr-defined]
        ws.mkdir("/a")
        paths = [f"/a/f{i:04d}" for i in range(1000)]
        slowest = 0.0
        with _Clock(t, "a"):
            for p, d in zip(paths, small):
                start = time.perf_counter()
                ws.write_file(p, d)
                slowest = max(slowest, time.perf_counter() - start)
        t["a:slowest"] = slowest * 1000  # one create's worst wall time: an inline checkpoint shows here
        with _Clock(t, "b"):
            for p in paths:
                ws.stat(p)
        with _Clock(t, "b2"):
            for p in paths:
                ws.stat(p)
        with _Clock(t, "c"):
            for p in paths:
                ws.unlink(p)
    with _open(vfs, str(Path(tempfile.mkdtemp(dir=root)) / "s.db"), opts) as ws:  # type: ignore[attr-defined]
        ws.mkdir("/r")
        ws.mkdir("/r2")
        for i, d in enumerate(small):
            ws.write_file(f"/r/f{i:04d}", d)
        with _Clock(t, "l"):
            for i in range(1000):
                ws.rename(f"/r/f{i:04d}", f"/r2/f{i:04d}")
    _server_writes(root, vfs, opts, small, t)
    with _open(vfs, str(Path(tempfile.mkdtemp(dir=root)) / "s.db"), opts) as ws:  # type: ignore[attr-defined]
        ws.mkdir("/t")
        dirs = _tree_dirs("/t")
        with _Clock(t, "d"):
            for p in dirs:
                ws.mkdir(p)
    return t


def _server_writes(root: Path, vfs: object, opts: dict, small: list[bytes], t: dict[str, float]) -> None:
    """Rows p, o, s, u: `put_file` as a server's PUT calls it, each inside `as_author`."""
    fresh = [random.randbytes(100) for _ in range(len(small))]
    with _open(vfs, str(Path(tempfile.mkdtemp(dir=root)) / "s.db"), opts) as ws:  # type: ignore[attr-defined]
        ws.mkdir("/p")
        paths = [f"/p/f{i:04d}" for i in range(len(small))]
        for sid, names, datas in (("p", paths, small), ("o", paths, fresh), ("s", paths, fresh),
                                  ("u", [p + "u" for p in paths], small)):
            with _Clock(t, sid):
                for path, data in zip(names, datas):
                    with ws.as_author("bench"):
                        ws.put_file(path, data)


def _big_dir(root: Path, vfs: object) -> Path:
    path = Path(tempfile.mkdtemp(dir=root)) / "big.db"
    with vfs.Workspace(str(path)) as ws:  # type: ignore[attr-defined]
        ws.mkdir("/big")
        with ws.transaction():
            for i in range(10_000):
                ws.write_file(f"/big/f{i:05d}", b"%d" % i)
    return path


def _big_dir_rows(path: Path, vfs: object, t: dict[str, float]) -> None:
    """i: readdir of the 10k-entry directory on a fresh connection (nothing kept: read whole from
    SQLite, as bench_vfs.py's i0; bench_vfs.py's i is the first since a write, patched from the change
    log); i1: again, nothing committed between; i3: 1000 warm stats in it."""
    sample = [f"/big/f{i:05d}" for i in range(0, 10_000, 10)]
    with vfs.Workspace(str(path)) as ws:  # type: ignore[attr-defined]
        ws.stat("/big")  # (the connection's first query pays for reading the schema)
        with _Clock(t, "i"):
            ws.readdir("/big")
        with _Clock(t, "i1"):
            ws.readdir("/big")
        for p in sample:
            ws.stat(p)
        with _Clock(t, "i3"):
            for p in sample:
                ws.stat(p)


def _open(vfs: object, path: str, opts: dict) -> object:
    """A Workspace with `opts`; a revision before `checkpoints=` existed opens without it."""
    try:
        return vfs.Workspace(path, **opts)  # type: ignore[attr-defined]
    except TypeError:
        return vfs.Workspace(path)  # type: ignore[attr-defined]


def _conn_and_wal(ws: object) -> tuple[object, Path]:
    """The store's connection and WAL path, as this revision or an older one (`Core`: `_conn`, `path`) keeps them."""
    db = getattr(ws, "_db", ws)
    conn = getattr(db, "conn", None) or getattr(db, "_conn")
    return conn, Path(db.path + "-wal")


def _counts(root: Path, vfs: object, n: int = 200) -> dict[str, float]:
    """WAL frames and statements per operation (create, unlink, rename, mkdir), n of each."""
    out: dict[str, float] = {}
    with _open(vfs, str(Path(tempfile.mkdtemp(dir=root)) / "c.db"), {"checkpoints": False}) as ws:  # type: ignore[attr-defined]
        for d in ("/a", "/r2", "/t"):
            ws.mkdir(d)
        olds = [random.randbytes(100) for _ in range(n)]
        for i in range(n):  # a populated store: the rows of earlier files sit in the pages touched
            ws.write_file(f"/a/old{i:04d}", olds[i])
        news = [random.randbytes(100) for _ in range(n)]
        conn, wal = _conn_and_wal(ws)
        conn.execute("PRAGMA wal_autocheckpoint=0")  # what checkpoints=False does (older revisions lack it)
        statements = [0]
        conn.set_trace_callback(lambda _sql: statements.__setitem__(0, statements[0] + 1))
        steps = {
            "a": lambda i: ws.write_file(f"/a/f{i:04d}", random.randbytes(100)),
            "l": lambda i: ws.rename(f"/a/f{i:04d}", f"/r2/f{i:04d}"),
            "c": lambda i: ws.unlink(f"/r2/f{i:04d}"),
            "d": lambda i: ws.mkdir(f"/t/d{i:04d}"),
            "o": lambda i: ws.put_file(f"/a/old{i:04d}", news[i]),
            "s": lambda i: ws.put_file(f"/a/old{i:04d}", news[i]),
            "u": lambda i: ws.put_file(f"/t/u{i:04d}", olds[i]),
        }
        for sid, step in steps.items():
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            statements[0] = 0
            for i in range(n):
                step(i)
            size = wal.stat().st_size if wal.exists() else 0
            out[sid + ":frames"] = max(0, size - 32) / WAL_FRAME / n
            out[sid + ":sql"] = statements[0] / n
            out[sid + ":by"] = _frames_by_table(wal, n)  # type: ignore[assignment]
        conn.set_trace_callback(None)
    return out


def _frames_by_table(wal: Path, n: int) -> dict[str, float]:
    """The WAL's frames per operation by the table or index owning each page (`dbstat`; "/i": its
    interior pages; "page 1": the header, written when the file grows; "free": freelist pages)."""
    import sqlite3

    if not wal.exists():
        return {}
    data = wal.read_bytes()
    pages = [int.from_bytes(data[at : at + 4], "big") for at in range(32, len(data) - WAL_FRAME + 1, WAL_FRAME)]
    conn = sqlite3.connect(str(wal)[: -len("-wal")])
    try:
        owner = {page: name + ("/i" if kind == "internal" else "")
                 for name, page, kind in conn.execute("SELECT name, pageno, pagetype FROM dbstat")}
    finally:
        conn.close()
    owner[1] = "page 1"
    counts: dict[str, float] = {}
    for page in pages:
        name = owner.get(page, "free")
        counts[name] = counts.get(name, 0) + 1 / n
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def _print_by_table(sides: dict[str, dict[str, list]]) -> None:
    print("\nWAL frames per operation by table (`dbstat`; /i: interior pages)\n")
    for sid in ("a", "c", "l", "d", "o", "s", "u"):
        for side, r in sides.items():
            by = r.get(sid + ":by", [{}])[0]
            print(f"- {sid} {side}: " + ", ".join(f"{name} {count:.2f}" for name, count in by.items()))


def child(runs: int, checkpoints: str | None = None) -> dict[str, list[float]]:
    import vfs

    opts = {"checkpoints": checkpoints} if checkpoints else {}
    random.seed(1)
    root = Path(tempfile.mkdtemp(prefix="bench-ops-"))
    try:
        results: dict[str, list[float]] = {}
        big = _big_dir(root, vfs)
        for run in range(runs + 1):
            t = _timings(root, vfs, opts)
            _big_dir_rows(big, vfs, t)
            if run:  # the first run warms up
                for key, value in t.items():
                    results.setdefault(key, []).append(value)
        for key, value in _counts(root, vfs).items():
            results[key] = [value]
        return results
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_side(code: Path, runs: int, checkpoints: str | None = None) -> dict[str, list[float]]:
    env = {**os.environ, "PYTHONPATH": str(code)}
    mode = ["--checkpoints", checkpoints] if checkpoints else []
    done = subprocess.run(
        [sys.executable, __file__, "--child", "--runs", str(runs), *mode], env=env, cwd=code, capture_output=True,
        text=True, check=True,
    )
    return json.loads(done.stdout)


def _fmt(ms: float) -> str:
    return f"{ms:.2f}" if ms < 10 else f"{ms:.1f}"


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def single(runs: int) -> None:
    r = run_side(ROOT, runs)
    print(f"load {_load()}; medians of {runs} runs, ms (wall / CPU), dofs beside\n")
    print("| row | wall | CPU | dofs | wall ÷ dofs | WAL frames/op | SQL/op |")
    print("|---|---|---|---|---|---|---|")
    for sid in ROWS:
        wall, cpu = statistics.median(r[sid]), statistics.median(r[sid + ":cpu"])
        frames = r.get(sid + ":frames", ["—"])[0]
        sql = r.get(sid + ":sql", ["—"])[0]
        ref = REFERENCE.get(sid)
        print(f"| {sid} | {_fmt(wall)} | {_fmt(cpu)} | {ref or '—'} | {f'{wall / ref:.2f}' if ref else '—'} | "
              f"{frames if isinstance(frames, str) else f'{frames:.2f}'} | {sql if isinstance(sql, str) else f'{sql:.1f}'} |")
    _print_by_table({"": r})


def _extract(rev: str) -> Path:
    """REV's `vfs/` in a temporary directory (`git archive`: the checkout is not touched)."""
    into = Path(tempfile.mkdtemp(prefix="bench-ops-code-"))
    archive = subprocess.run(["git", "archive", rev, "vfs"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def ab(rev: str | None, pairs: int, runs: int, after_rev: str | None = None,
       modes: tuple[str | None, str | None] = (None, None)) -> None:
    """`rev` None: this checkout on both sides, the store opened with `modes` (checkpoints) before and after."""
    extracted = [_extract(r) for r in (rev, after_rev) if r]  # the only directories removed at the end
    before = extracted[0] if rev else ROOT
    after = extracted[-1] if after_rev else ROOT
    try:
        sides: dict[str, list[dict[str, list[float]]]] = {"before": [], "after": []}
        loads = [_load()]
        for _ in range(pairs):
            sides["before"].append(run_side(before, runs, modes[0]))
            sides["after"].append(run_side(after, runs, modes[1]))
            loads.append(_load())
        if not rev:
            rev, after_rev = f"checkpoints={modes[0]}", f"checkpoints={modes[1]}"
        print(f"before = {rev}, after = {after_rev or 'this checkout'}; {pairs} pairs (before, after alternating), "
              f"each side a child process, medians of {runs} runs; load average at each pair's end: {' | '.join(loads)}\n")
        print("| row | dofs | before wall | after wall | before CPU | after CPU | after ÷ before, wall, per pair | "
              "CPU, per pair | pairs lower (CPU) | frames/op | SQL/op |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for sid in ROWS:
            if sid == "a":
                worst = {k: [max(s["a:slowest"]) for s in v if "a:slowest" in s] for k, v in sides.items()}
                print(f"| a: slowest create, ms per pair | | {' / '.join(_fmt(x) for x in worst['before'])} | "
                      f"{' / '.join(_fmt(x) for x in worst['after'])} | | | | | | | |")
            med = {k: [statistics.median(s[sid]) for s in v] for k, v in sides.items()}
            cpu = {k: [statistics.median(s[sid + ":cpu"]) for s in v] for k, v in sides.items()}
            wall_r = [a / b for a, b in zip(med["after"], med["before"])]
            cpu_r = [a / b for a, b in zip(cpu["after"], cpu["before"])]
            fr = {k: v[0].get(sid + ":frames", [None])[0] for k, v in sides.items()}
            sq = {k: v[0].get(sid + ":sql", [None])[0] for k, v in sides.items()}
            counts = (f"{fr['before']:.2f} → {fr['after']:.2f}", f"{sq['before']:.1f} → {sq['after']:.1f}") \
                if fr["before"] is not None else ("—", "—")
            print(f"| {sid} | {REFERENCE.get(sid, '—')} | {' / '.join(_fmt(x) for x in med['before'])} | "
                  f"{' / '.join(_fmt(x) for x in med['after'])} | {' / '.join(_fmt(x) for x in cpu['before'])} | "
                  f"{' / '.join(_fmt(x) for x in cpu['after'])} | {' '.join(f'{x:.2f}' for x in wall_r)} | "
                  f"{' '.join(f'{x:.2f}' for x in cpu_r)} | {sum(x < 1 for x in cpu_r)} of {pairs} | "
                  f"{counts[0]} | {counts[1]} |")
        _print_by_table({"before": sides["before"][0], "after": sides["after"][0]})
    finally:
        for directory in extracted:  # never ROOT: the checkout itself is on one side or both
            assert directory != ROOT and directory.name.startswith("bench-ops-code-"), directory
            shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ab", metavar="REV", help="compare REV's vfs/ (before) with this checkout's (after)")
    parser.add_argument("--after", metavar="REV2", help="with --ab: REV2's vfs/ as the after side")
    parser.add_argument("--pairs", type=int, default=4, help="A/B pairs with --ab")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per side (one more warms up)")
    parser.add_argument("--checkpoints", metavar="MODE[,MODE]",
                        help="open the timed stores with Workspace(checkpoints=MODE); two modes: an A/B of them "
                             "on this checkout (commit, background)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        json.dump(child(args.runs, args.checkpoints), sys.stdout)
    elif args.checkpoints and "," in args.checkpoints:
        first, second = args.checkpoints.split(",", 1)
        ab(None, args.pairs, args.runs, modes=(first, second))
    elif args.ab:
        ab(args.ab, args.pairs, args.runs, args.after)
    else:
        single(args.runs)


if __name__ == "__main__":
    main()
