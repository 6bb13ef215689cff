"""Crash safety: SIGKILL a writer at random moments, reopen, check nothing is torn.

A writer process (this module run as a script) loops over large writes of
several MiB (in memory and streamed), positional rewrites of a 3 MiB file
(a truncate and three `write_range` calls, the first past EOF, in one
transaction: content ids left to derive), renames of a 50-file directory,
`apply_changes` batches of 200 files (as a sync peer would send them) and
`gc()` passes, appending to a side file what it committed after each commit. The test
kills it with SIGKILL at random moments, several rounds on the same store,
and after each kill checks that:
- `PRAGMA integrity_check` says ok (sqlite3 opened directly on the file);
- every file is wholly one version: its content is exactly
  `version_content(n)` for the version number `n` in its header;
- no acknowledged commit was lost: each file's version is at least the last
  one the side file records for it;
- the renamed directory exists under exactly one of its two names, complete;
- every applied batch is all there or not there at all;
- the change log agrees with the tree (a full `changes()` lists exactly the
  live paths, with the same hashes).
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

MiB = 1024 * 1024
BIG = ("/big/f0", "/big/f1", "/big/f2")
POSITIONAL = "/big/positional"
DIR_NAMES = ("/d/x", "/d/y")
DIR_FILES = 50
BATCH_FILES = 200
ROUNDS = 6
REPO = Path(__file__).resolve().parent.parent


def version_content(n: int) -> bytes:
    size = (1 + n % 5) * MiB + n % 1000
    return b"version %010d\n" % n + random.Random(n).randbytes(size)


def positional_content(n: int) -> bytes:
    return b"version %010d\n" % n + random.Random(-n).randbytes(3 * MiB - 19)


def positional_rewrite(ws, n: int) -> None:
    """One transaction: shrink to 1000 bytes, write the last MiB past EOF, then the others."""
    data = positional_content(n)
    with ws.transaction():
        ws.truncate(POSITIONAL, 1000)
        for offset in (2 * MiB, MiB, 0):
            ws.write_range(POSITIONAL, offset, data[offset : offset + MiB])


def version_of(data: bytes) -> int:
    assert data.startswith(b"version "), data[:20]
    return int(data[8:18])


# ---------------------------------------------------------------- the writer (child process)


def writer(db: str, side: str, first: int) -> None:
    import vfs

    with vfs.Workspace(db) as ws, open(side, "a", encoding="utf-8") as log:
        if not ws.exists("/big"):  # first run, or killed during setup: (re)do it all
            home = "/d/y" if ws.exists("/d/y") else "/d/x"
            ws.mkdir(home, parents=True, exist_ok=True)
            for i in range(DIR_FILES):
                ws.write_file(f"{home}/f{i:02d}", b"dir file %d" % i)
            ws.mkdir("/big")
        if not ws.exists(POSITIONAL):
            ws.write_file(POSITIONAL, positional_content(0))
        for n in range(first, first + 10_000):
            if n % 10 == 5:
                ws.gc()
                log.write(f"{n} gc -\n")
            elif n % 4 == 2:
                apply_batch(ws, n)
                log.write(f"{n} apply /batch{n}\n")
            elif n % 8 == 4:
                positional_rewrite(ws, n)
                log.write(f"{n} write {POSITIONAL}\n")
            elif n % 4 == 3:
                src = "/d/x" if ws.exists("/d/x") else "/d/y"
                dst = DIR_NAMES[1 - DIR_NAMES.index(src)]
                ws.rename(src, dst)
                log.write(f"{n} rename {dst}\n")
            else:
                path, data = BIG[n % 3], version_content(n)
                if n % 2:
                    ws.write_file(path, data)
                else:  # streamed: chunks may be stored before the file is linked
                    ws.write_file(path, (data[i : i + MiB] for i in range(0, len(data), MiB)))
                log.write(f"{n} write {path}\n")
            log.flush()


def apply_batch(ws, n: int) -> None:
    """One sync batch of BATCH_FILES new files, built in a scratch store and applied in one call."""
    import vfs

    with vfs.Workspace(":memory:") as src:
        src.mkdir(f"/batch{n}")
        for i in range(BATCH_FILES):
            src.write_file(f"/batch{n}/f{i:03d}", b"batch %d file %d" % (n, i))
        entries = src.changes()
        for hash_, data in src.read_objects({h for e in entries for h, _ in e.chunks}):
            ws.put_object(data, expected_hash=hash_)
    ws.apply_changes(entries)


# ---------------------------------------------------------------- the test (parent)


def read_side(side: Path) -> list[tuple[int, str, str]]:
    if not side.exists():
        return []
    out = []
    for line in side.read_text(encoding="utf-8").splitlines():
        n, op, path = line.split(" ", 2)
        out.append((int(n), op, path))
    return out


def start_writer(db: Path, side: Path, first: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, __file__, str(db), str(side), str(first)], env=env, cwd=REPO)


def wait_for_progress(proc: subprocess.Popen, side: Path, lines: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while len(read_side(side)) <= lines:
        assert proc.poll() is None, f"writer exited early with {proc.returncode}"
        assert time.monotonic() < deadline, "writer made no progress"
        time.sleep(0.01)


def check_store(db: Path, side: Path) -> None:
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()

    import vfs
    from vfs_strategies import blake3_hex, vfs_snapshot

    with vfs.Workspace(str(db)) as ws:
        acknowledged: dict[str, int] = {}
        for n, op, path in read_side(side):
            if op == "write":
                acknowledged[path] = n
        for path in BIG:
            if not ws.exists(path):
                assert path not in acknowledged, f"{path} acknowledged but missing"
                continue
            data = ws.read_file(path)
            n = version_of(data)
            assert data == version_content(n), f"{path}: torn content claiming version {n}"
            assert n >= acknowledged.get(path, -1), f"{path}: version {n} older than acknowledged"
            assert ws.stat(path).hash == blake3_hex(data)
        if ws.exists(POSITIONAL):
            data = ws.read_file(POSITIONAL)
            n = version_of(data)
            assert data == positional_content(n), f"positional rewrite torn, claiming version {n}"
            assert n >= acknowledged.get(POSITIONAL, -1), f"positional version {n} older than acknowledged"
            assert ws.stat(POSITIONAL).hash == blake3_hex(data)
        else:
            assert POSITIONAL not in acknowledged, "positional file acknowledged but missing"
        present = [d for d in DIR_NAMES if ws.exists(d)]
        if ws.exists("/big"):  # the setup finished: the directory lives under exactly one name
            assert len(present) == 1, present
            names = sorted(e.name for e in ws.readdir(present[0]))
            assert names == [f"f{i:02d}" for i in range(DIR_FILES)]
            for i, name in enumerate(names):
                assert ws.read_file(f"{present[0]}/{name}") == b"dir file %d" % i
        for entry in ws.readdir("/"):
            if entry.name.startswith("batch"):
                n = int(entry.name[5:])
                got = {e.name: ws.read_file(f"/{entry.name}/{e.name}") for e in ws.readdir("/" + entry.name)}
                assert got == {f"f{i:03d}": b"batch %d file %d" % (n, i) for i in range(BATCH_FILES)}
        applied = [p for _, op, p in read_side(side) if op == "apply"]
        assert all(ws.exists(p) for p in applied), "an acknowledged batch is missing"
        tree = vfs_snapshot(ws)
        live = {e.path: e for e in ws.changes() if e.kind != "delete" and e.path != "/"}
        assert set(live) == set(tree), set(live) ^ set(tree)
        for path, node in tree.items():
            assert live[path].kind == node.kind
            if node.kind == "file":
                assert live[path].hash == blake3_hex(node.content)


def test_sigkill_during_large_writes_and_renames_never_tears(tmp_path):
    db, side = tmp_path / "crash.db", tmp_path / "committed.log"
    rnd = random.Random(42)
    for _ in range(ROUNDS):
        done = read_side(side)
        first = done[-1][0] + 1 if done else 0
        proc = start_writer(db, side, first)
        try:
            wait_for_progress(proc, side, len(done))
            time.sleep(rnd.uniform(0.0, 0.5))
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        check_store(db, side)
    assert len(read_side(side)) > ROUNDS  # the rounds really wrote something


if __name__ == "__main__":
    writer(sys.argv[1], sys.argv[2], int(sys.argv[3]))
