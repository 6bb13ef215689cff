"""gc() removes only unreferenced chunks.

The proof is by reading back: before a gc, every live file and every
retained version is read; after it, each must read back byte for byte.
Unreferenced chunks are observed with `has_objects`.
"""

from __future__ import annotations

import random

import blake3
import pytest

import vfs

KiB = 1024


def h(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def everything_readable(ws: vfs.Workspace, paths: set[str]) -> dict[tuple[str, int | None], bytes]:
    """Live content of every file and of every retained version of every path ever used."""
    out: dict[tuple[str, int | None], bytes] = {}
    for path in paths:
        if ws.exists(path) and ws.stat(path).kind == "file":
            out[(path, None)] = ws.read_file(path)
        for version in ws.history(path):
            if version.kind == "file":
                data = ws.read_file(path, rev=version.rev)
                assert h(data) == version.hash
                out[(path, version.rev)] = data
    return out


def test_orphan_objects_are_removed_and_nothing_else(tmp_path):
    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        ws.write_file("/keep", b"kept" * 10_000)
        shared = random.Random(1).randbytes(300 * KiB)
        ws.write_file("/shared", shared)
        orphans = [random.Random(i).randbytes(20 * KiB) for i in range(3)]
        ids = [ws.put_object(o) for o in orphans]
        ids.append(ws.put_object(shared[:100]))  # not a chunk of /shared (different cut), so orphan too
        assert ws.has_objects(ids) == set(ids)
        live = [c for p in ("/keep", "/shared") for c, _ in ws.entry(p).chunks]
        stats = ws.gc()
        assert ws.has_objects(ids) == set()
        assert ws.has_objects(live) == set(live)
        assert stats.chunks_removed == 4 and stats.bytes_removed == 3 * 20 * KiB + 100
        assert stats.chunks_kept == len(set(live))
        assert ws.read_file("/keep") == b"kept" * 10_000 and ws.read_file("/shared") == shared
        again = ws.gc()
        assert (again.chunks_removed, again.bytes_removed) == (0, 0)


def test_chunks_of_retained_versions_survive_and_pruned_ones_go(tmp_path):
    with vfs.Workspace(str(tmp_path / "s.db"), history_keep=2, history_days=0) as ws:
        versions = [random.Random(i).randbytes(100 * KiB) for i in range(6)]
        for data in versions:
            ws.write_file("/f", data)
        ws.gc()
        retained = {v.hash for v in ws.history("/f") if v.kind == "file"}
        assert h(versions[-1]) in retained and h(versions[-2]) in retained
        for v in ws.history("/f"):
            if v.kind == "file":
                assert h(ws.read_file("/f", rev=v.rev)) == v.hash
        # The first version is out of the policy: none of its chunks may remain.
        ws2 = vfs.Workspace(":memory:")
        ws2.write_file("/x", versions[0])
        first_chunks = [c for c, _ in ws2.entry("/x").chunks]
        ws2.close()
        assert ws.has_objects(first_chunks) == set()


def test_deleted_file_chunks_stay_while_history_holds_them(tmp_path):
    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        data = random.Random(7).randbytes(200 * KiB)
        rev = ws.write_file("/gone", data).rev
        chunks = [c for c, _ in ws.entry("/gone").chunks]
        ws.unlink("/gone")
        ws.gc()
        assert ws.has_objects(chunks) == set(chunks)
        assert ws.read_file("/gone", rev=rev) == data


@pytest.mark.parametrize("keep", [(20, 7.0), (1, 0.0)])
def test_random_workload_gc_never_removes_what_is_readable(tmp_path, keep):
    """Overwrites, deletes, copies, links, ranges and truncates with shared content, gc at random points."""
    rnd = random.Random(sum(keep))
    pool = [rnd.randbytes(rnd.choice((10, 40 * KiB, 200 * KiB))) for _ in range(6)]
    names = [f"/d{i % 2}/f{i}" for i in range(6)]
    used: set[str] = set()
    with vfs.Workspace(str(tmp_path / "s.db"), history_keep=keep[0], history_days=keep[1]) as ws:
        ws.mkdir("/d0")
        ws.mkdir("/d1")
        for step in range(160):
            path, other = rnd.choice(names), rnd.choice(names)
            op = rnd.choice(("write", "write", "mix", "unlink", "copy", "link", "range", "truncate", "rename"))
            used |= {path, other}
            try:
                if op == "write":
                    ws.write_file(path, rnd.choice(pool))
                elif op == "mix":
                    a, b = rnd.sample(pool, 2)
                    ws.write_file(path, a[: len(a) // 2] + b)
                elif op == "unlink":
                    ws.unlink(path)
                elif op == "copy":
                    ws.copy(path, other)
                elif op == "link":
                    ws.link(path, other)
                elif op == "range":
                    ws.write_range(path, rnd.randrange(300 * KiB), b"edit")
                elif op == "truncate":
                    ws.truncate(path, rnd.randrange(300 * KiB))
                else:
                    ws.rename(path, other)
            except OSError:
                pass
            if step % 20 == 19:
                before = everything_readable(ws, used)
                ws.gc()  # may prune versions outside the policy; must not break any that remain
                after = everything_readable(ws, used)
                assert {k: v for k, v in before.items() if k in after} == after
                assert {k for k in before if k[1] is None} == {k for k in after if k[1] is None}
                for path_ in used:
                    entry = ws.entry(path_)
                    if entry is not None and entry.kind == "file":
                        hashes = {c for c, _ in entry.chunks}
                        assert ws.has_objects(hashes) == hashes


def test_tombstone_retention_compacts_old_deletions_and_refuses_old_cursors(tmp_path):
    """With `tombstone_revs`, gc forgets old deletions; a reader behind the horizon is told, not misled."""
    ws = vfs.Workspace(tmp_path / "t.db", tombstone_revs=3)
    ws.write_file("/old", b"x")
    reader = ws.cursor()
    ws.unlink("/old")
    for i in range(5):
        ws.write_file(f"/f{i}", b"y")
    ws.gc()
    assert "/old" not in {c.path for c in ws.changes()}  # the tombstone is gone ...
    with pytest.raises(vfs.CursorTooOld):  # ... so an old reader must resync
        ws.changes(after=reader)
    recent = vfs.Cursor(ws.rev - 1)
    assert [c.path for c in ws.changes(after=recent)] == ["/f4"]
