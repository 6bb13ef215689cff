"""A kept listing outlives commits and is patched from the change log (`vfs/listing.py`).

Every readdir served from a kept listing is held to the listing SQLite gives
for the same directory at that moment (one aggregated statement, no cache):
after random operations of two connections on the same store (one keeps
listings, the other writes, and they swap), after changes deep below a
listed directory (a subdirectory's mtime moves), writes through another
name of a hard-linked file, tombstones compacted past the kept revision,
and more changes than a patch takes.
"""

from __future__ import annotations

import random

import vfs
from vfs import listing
from vfs.statcache import Stale

DIRS = ("/", "/a", "/a/b", "/c", "/l")  # "/l": a symlink to a directory, when it is one


def direct(ws: vfs.Workspace, path: str) -> object:
    """The listing of `path` read from SQLite now (no kept listing), or the errno."""
    try:
        found = ws._db.existing(path, follow=True)
    except OSError as exc:
        return exc.errno
    if found.node.kind != 2 and ws._db.stats.begin() is not None:  # not a directory: ask readdir for the errno
        try:
            ws.readdir(path)
        except OSError as exc:
            return exc.errno
    return listing.entries(ws._db.conn, found.node.ino, None, 0)


def kept(ws: vfs.Workspace, path: str) -> object:
    try:
        entries = ws.readdir(path)
    except OSError as exc:
        return exc.errno
    assert ws.listdir(path) == [e.name for e in entries]
    return entries


def _random_change(ws: vfs.Workspace, rng: random.Random, step: int) -> None:
    dirs = [d for d in ("/a", "/a/b", "/a/b/deep", "/c", "/c/sub") if ws.exists(d)]
    where = rng.choice(dirs or ["/"])
    name = f"{where.rstrip('/')}/{rng.choice('xyzw')}{rng.randrange(6)}"
    choice = rng.randrange(13)
    try:
        if choice <= 2:
            ws.write_file(name, rng.randbytes(rng.randrange(0, 40)), mtime=rng.uniform(1, 2e9))
        elif choice == 3:
            ws.mkdir(name)
        elif choice == 4:
            ws.rm(name, recursive=True)
        elif choice == 5:
            ws.rename(name, f"{rng.choice(dirs or ['/'])}/{rng.choice('xyzw')}{rng.randrange(6)}".replace("//", "/"))
        elif choice == 6:
            ws.utime(where, rng.uniform(1, 2e9))
        elif choice == 7:
            ws.symlink("t" * rng.randrange(1, 9), name)
        elif choice == 8:
            ws.link(name, f"/c/h{rng.randrange(3)}")
        elif choice == 9:
            ws.write_range(name, rng.randrange(0, 50), b"more")
        elif choice == 10:
            ws.mkdir(f"{name}/inner", parents=True)  # deep below a listed directory
        elif choice == 11:
            ws.rm("/l", force=True)
            ws.symlink(rng.choice(dirs or ["/"]), "/l")
        else:
            ws.compact_tombstones(ws.rev)
    except OSError:
        pass


def test_kept_listings_equal_sqlite_through_random_changes(tmp_path):
    path = str(tmp_path / "s.db")
    rng = random.Random(1414)
    patched = 0
    with vfs.Workspace(path) as one, vfs.Workspace(path) as two:
        one.mkdir("/a/b/deep", parents=True)
        one.mkdir("/c/sub", parents=True)
        for step in range(400):
            writer = one if (step // 25) % 2 else two
            for _ in range(rng.choice((1, 1, 1, 2, 5))):
                _random_change(writer, rng, step)
            for ws in (one, two):
                for d in DIRS:
                    was = ws._db.stats.begin()[1].get(("readdir", d))
                    assert kept(ws, d) == direct(ws, d), (step, d)
                    patched += was.__class__ is Stale
    assert patched > 500  # the patch path ran, not only whole reads


def test_a_change_deep_below_moves_the_subdirectory_entry(tmp_path):
    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        ws.mkdir("/d/sub/deeper", parents=True)
        ws.utime("/d/sub", 1.0)
        assert ws.readdir("/d")[0].mtime == 1.0
        ws.write_file("/d/sub/deeper/f", b"x")  # touches /d/sub/deeper, not /d/sub ...
        ws.write_file("/d/sub/g", b"x")  # ... this one touches /d/sub
        assert ws.readdir("/d") == direct(ws, "/d") and ws.readdir("/d")[0].mtime > 1.0


def test_a_write_through_another_name_of_a_hard_link_is_seen(tmp_path):
    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        ws.write_file("/d/f", b"one", parents=True)
        ws.mkdir("/e")
        ws.link("/d/f", "/e/g")
        assert ws.readdir("/d")[0].size == 3
        ws.write_file("/e/g", b"longer content")
        assert ws.readdir("/d")[0].size == len(b"longer content")
        assert ws.readdir("/d") == direct(ws, "/d")


def test_a_deletion_whose_tombstone_was_compacted_is_seen(tmp_path):
    path = str(tmp_path / "s.db")
    with vfs.Workspace(path) as ws, vfs.Workspace(path) as other:
        ws.write_file("/d/f", b"x", parents=True)
        ws.write_file("/d/g", b"x")
        assert [e.name for e in ws.readdir("/d")] == ["f", "g"]
        other.unlink("/d/f")
        other.compact_tombstones(other.rev)  # the row saying /d/f went is gone
        assert [e.name for e in ws.readdir("/d")] == ["g"]


def test_more_changes_than_a_patch_takes_read_the_listing_whole(tmp_path):
    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        ws.mkdir("/d")
        ws.mkdir("/elsewhere")
        assert ws.readdir("/d") == []
        for count, where in ((listing._PATCH + 5, "/d"), (listing._SCAN + 5, "/elsewhere"), (3, "/d")):
            with ws.transaction():
                for i in range(count):
                    ws.write_file(f"{where}/n{i:04d}-{count}", b"x")
            assert ws.readdir("/d") == direct(ws, "/d")
        assert len(ws.readdir("/d")) == listing._PATCH + 5 + 3


def test_a_listing_kept_across_a_commit_counts_against_the_bound_once(tmp_path):
    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        with ws.transaction():
            for i in range(2000):
                ws.write_file(f"/d/f{i:04d}", b"", parents=True)
        ino = ws._db.existing("/d", follow=True).node.ino  # (no stat kept)
        heavy = listing.weight(listing.columns(ws._db.conn, ino))
        for step in range(5):
            ws.readdir("/d")
            ws.stat("/d/f0000")
            _, entries, used = ws._db.stats.begin()
            assert used[0] == heavy + 1, step  # not once per commit it outlived
            ws.write_file(f"/d/new{step}", b"x")
            heavy = listing.weight(listing.columns(ws._db.conn, ino))
            assert ws._db.stats.begin()[1][("readdir", "/d")].__class__ is Stale


def test_names_below_a_directory_with_letters_beyond_ascii_are_cut_where_they_end(tmp_path):
    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        top = "/dé😀日"  # SQLite's substr counts characters, as Python's len does
        ws.mkdir(f"{top}/sub😀", parents=True)
        ws.write_file(f"{top}/ä", b"x")
        assert [e.name for e in ws.readdir(top)] == ["sub😀", "ä"]
        ws.write_file(f"{top}/sub😀/deep", b"x")
        ws.write_file(f"{top}/ä", b"longer")
        ws.write_file(f"{top}/ö😀", b"new")
        assert ws.readdir(top) == direct(ws, top)
        assert [(e.name, e.size) for e in ws.readdir(top)] == [("sub😀", 0), ("ä", 6), ("ö😀", 3)]


def test_a_page_after_a_commit_is_cut_from_the_patched_listing(tmp_path):
    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        for i in range(20):
            ws.write_file(f"/d/f{i:02d}", b"x", parents=True)
        ws.readdir("/d")
        ws.unlink("/d/f03")
        ws.write_file("/d/f00a", b"new")
        assert ws._db.stats.begin()[1][("readdir", "/d")].__class__ is Stale
        whole = direct(ws, "/d")
        for limit, offset in [(5, 0), (5, 2), (None, 17), (3, 19), (0, 4)]:
            end = None if limit is None else offset + limit
            assert ws.readdir("/d", limit=limit, offset=offset) == whole[offset:end], (limit, offset)
        assert ws._db.stats.begin()[1][("readdir", "/d")].__class__ is listing.Listing


def test_a_kept_listing_that_grows_past_the_bound_is_let_go(tmp_path):
    from vfs import statcache

    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        with ws.transaction():
            for i in range(4 * statcache.LIMIT - 8):
                ws.write_file(f"/d/f{i:05d}", b"", parents=True)
        ws.readdir("/d")
        assert ws._db.stats.begin()[1][("readdir", "/d")].__class__ is listing.Listing
        for i in range(20):
            ws.write_file(f"/d/g{i:02d}", b"")
        assert ws.readdir("/d") == direct(ws, "/d")  # patched, now heavier than the bound: not kept
        assert ("readdir", "/d") not in ws._db.stats.begin()[1] and not ws._db.stats._carried
