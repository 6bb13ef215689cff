"""The change log, cursors, object exchange, conflict-aware apply and history (issue 3).

Every test uses real SQLite files. Two-store tests copy chunks with
`has_objects`/`read_objects`/`put_object` exactly as a sync peer would; the
randomised two-store property lives in `test_vfs_sync.py`.
"""

from __future__ import annotations

import blake3
import pytest
from vfs_strategies import vfs_snapshot

import vfs
from vfs import Cursor


def h(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


@pytest.fixture()
def ws(tmp_path):
    with vfs.Workspace(str(tmp_path / "a.db")) as store:
        yield store


@pytest.fixture()
def pair(tmp_path):
    with vfs.Workspace(str(tmp_path / "a.db")) as a, vfs.Workspace(str(tmp_path / "b.db")) as b:
        yield a, b


def listing(entries) -> list[tuple[str, str]]:
    """(path, kind) of each entry; the root's own entry, if any, is left out."""
    return [(e.path, e.kind) for e in entries if e.path != "/"]


def copy_objects(src: vfs.Workspace, dst: vfs.Workspace, entries) -> None:
    wanted = {hash_ for e in entries for hash_, _ in e.chunks}
    missing = wanted - dst.has_objects(wanted)
    for hash_, data in src.read_objects(sorted(missing)):
        dst.put_object(data, expected_hash=hash_)


def push(src: vfs.Workspace, dst: vfs.Workspace, after=None, **kw) -> vfs.ApplyResult:
    entries = src.changes(after=after)
    copy_objects(src, dst, entries)
    return dst.apply_changes(entries, **kw)


# ---------------------------------------------------------------- cursor


def test_cursor_order_string_and_parse():
    order = [Cursor(0), Cursor(1, "/a"), Cursor(1, "/a/b"), Cursor(1, "/b"), Cursor(1, "/é"), Cursor(1),
             Cursor(2, "/")]
    assert sorted(reversed(order)) == order
    assert Cursor(1, "/z") < Cursor(1) < Cursor(2, "/a")
    for c in order:
        assert Cursor.parse(str(c)) == c
    assert str(Cursor(12)) == "12" and str(Cursor(12, "/p q")) == "12:/p q"
    assert Cursor.parse("7:/with:colon") == Cursor(7, "/with:colon")
    assert Cursor.parse(None) == Cursor(0)
    for bad in ("", "x", "-1", "3:relative", "3.5"):
        with pytest.raises(ValueError):
            Cursor.parse(bad)


def test_every_mutation_advances_rev_by_one(ws):
    steps = [lambda: ws.mkdir("/d"), lambda: ws.write_file("/d/f", b"x"), lambda: ws.write_range("/d/f", 1, b"y"),
             lambda: ws.truncate("/d/f", 1), lambda: ws.chmod("/d/f", 0o600), lambda: ws.symlink("f", "/d/s"),
             lambda: ws.link("/d/f", "/d/g"), lambda: ws.rename("/d", "/e"), lambda: ws.unlink("/e/g"),
             lambda: ws.copy("/e/f", "/e/c"), lambda: ws.rm("/e", recursive=True)]
    for step in steps:
        before = ws.rev
        step()
        assert ws.rev == before + 1
        assert ws.cursor() == Cursor(ws.rev)


def test_failed_mutation_does_not_advance_rev(ws):
    ws.mkdir("/d")
    before = ws.rev
    for bad in (lambda: ws.mkdir("/d"), lambda: ws.unlink("/missing"), lambda: ws.rename("/d", "/d/x")):
        with pytest.raises(OSError):
            bad()
    assert ws.rev == before and ws.changes(after=Cursor(before)) == []


# ---------------------------------------------------------------- change log semantics


def test_rewrites_coalesce_to_one_entry_with_the_latest_state(ws):
    c = ws.cursor()
    for i in range(5):
        ws.write_file("/f", b"version %d" % i)
    (entry,) = ws.changes(after=c)
    assert (entry.path, entry.kind, entry.rev) == ("/f", "file", ws.rev)
    assert entry.hash == h(b"version 4") and entry.size == 9
    assert [s for _, s in entry.chunks] == [9] and entry.chunks[0][0] == h(b"version 4")
    assert entry.cursor == Cursor(ws.rev, "/f")
    assert ws.entry("/f") == entry


def test_deletions_leave_tombstones(ws):
    ws.write_file("/f", b"x")
    ws.mkdir("/d/e", parents=True)
    ws.write_file("/d/e/g", b"y")
    c = ws.cursor()
    ws.unlink("/f")
    ws.rm("/d", recursive=True)
    entries = ws.changes(after=c)
    assert sorted(listing(entries)) == [("/d", "delete"), ("/d/e", "delete"), ("/d/e/g", "delete"),
                                        ("/f", "delete")]
    rm_rev = ws.rev
    assert {e.rev for e in entries if e.path.startswith("/d")} == {rm_rev}


def test_delete_then_recreate_is_one_live_entry(ws):
    ws.write_file("/f", b"1")
    c = ws.cursor()
    ws.unlink("/f")
    ws.mkdir("/f")
    assert listing(ws.changes(after=c)) == [("/f", "dir")]


def test_entries_are_ordered_by_rev_then_path(ws):
    c = ws.cursor()
    ws.write_file("/z", b"1")
    ws.mkdir("/a")
    ws.write_file("/a/b", b"2")
    ws.write_file("/z", b"3")
    entries = ws.changes(after=c)
    assert listing(entries) == [("/a", "dir"), ("/a/b", "file"), ("/z", "file")]
    assert [e.cursor for e in entries] == sorted(e.cursor for e in entries)


def test_directory_rename_is_one_revision_with_every_old_and_new_path(ws):
    ws.mkdir("/src/sub/deeper", parents=True)
    names = []
    for i in range(30):
        d = ["/src", "/src/sub", "/src/sub/deeper"][i % 3]
        ws.write_file(f"{d}/f{i}", b"%d" % i)
        names.append(f"{d}/f{i}")
    ws.symlink("f0", "/src/link")
    old_paths = ["/src", "/src/sub", "/src/sub/deeper", "/src/link", *names]
    c = ws.cursor()
    ws.rename("/src", "/dst")
    assert ws.rev == c.rev + 1
    entries = ws.changes(after=c)
    got = dict(listing(entries))
    assert {p for p, k in got.items() if k == "delete"} == set(old_paths)
    new_kinds = {p.replace("/src", "/dst", 1): ("file" if "/f" in p else "symlink" if p.endswith("link") else "dir")
                 for p in old_paths}
    assert {p: k for p, k in got.items() if k != "delete"} == new_kinds
    assert {e.rev for e in entries} == {ws.rev}
    assert next(e for e in entries if e.path == "/dst/link").target == "f0"


def test_hard_links_yield_an_entry_per_name(ws):
    ws.mkdir("/d")
    ws.write_file("/a", b"one")
    ws.link("/a", "/d/b")
    c = ws.cursor()
    ws.write_range("/d/b", 0, b"O")
    entries = ws.changes(after=c)
    assert listing(entries) == [("/a", "file"), ("/d/b", "file")]
    assert {e.hash for e in entries} == {h(b"One")}


def test_symlink_and_dir_entries_carry_their_state(ws):
    c = ws.cursor()
    ws.mkdir("/d", mode=0o700)
    ws.symlink("../target", "/d/l")
    ws.write_file("/d/x", b"abc", mode=0o640)
    by_path = {e.path: e for e in ws.changes(after=c)}
    assert by_path["/d"].kind == "dir" and by_path["/d"].mode & 0o7777 == 0o700
    assert by_path["/d/l"].kind == "symlink" and by_path["/d/l"].target == "../target"
    assert by_path["/d/x"].mode & 0o7777 == 0o640 and by_path["/d/x"].size == 3


def test_full_stream_lists_every_live_path(ws):
    ws.mkdir("/d")
    ws.write_file("/d/f", b"x")
    ws.write_file("/gone", b"y")
    ws.unlink("/gone")
    live = {p: k for p, k in listing(ws.changes()) if k != "delete"}
    assert live == {"/d": "dir", "/d/f": "file"}


def _paginate(ws, after, limit, **kw):
    """Read the whole stream in pages, persisting only `page.cursor` between them."""
    out, cursor, pages = [], after, 0
    while True:
        page = ws.changes_page(after=Cursor.parse(str(cursor)), limit=limit, **kw)  # persisted as a string
        out.extend(page.entries)
        assert len(page.entries) <= limit
        cursor, pages = page.cursor, pages + 1
        if not page.more:
            return out, cursor, pages
        assert pages < 10_000


def test_limit_resumes_inside_one_huge_revision(ws):
    ws.mkdir("/big/a", parents=True)
    ws.mkdir("/big/b")
    for i in range(1500):
        ws.write_file(f"/big/{'ab'[i % 2]}/f{i:04d}", b"%d" % i)
    c = ws.cursor()
    ws.rename("/big", "/moved")  # one revision, ~3000 paths
    full = ws.changes(after=c)
    assert len(full) == 2 * 1503 and {e.rev for e in full} == {ws.rev}
    for limit in (1, 97, 1000):
        paged, end, pages = _paginate(ws, c, limit)
        assert [e.cursor for e in paged] == [e.cursor for e in full]  # no skip, no repeat
        assert end >= Cursor(ws.rev, full[-1].path)
        assert pages >= len(full) // limit
    # Resuming from an entry's own cursor also works mid-revision.
    assert ws.changes(after=full[1234].cursor) == full[1235:]


def test_prefix_is_segment_aware(ws):
    c = ws.cursor()
    for p in ("/a/x", "/ab/x", "/a/deep/y", "/b"):
        ws.write_file(p, b"1", parents=True)
    paths = {p for p, _ in listing(ws.changes(after=c, prefix="/a"))}
    assert {"/a/x", "/a/deep", "/a/deep/y"} <= paths
    assert paths <= {"/a", "/a/x", "/a/deep", "/a/deep/y"}


def test_ignore_patterns_filter_but_still_advance_the_cursor(ws):
    ignore = ["*.log", "build/", "node_modules"]
    c = ws.cursor()
    for p in ("/x.log", "/src/y.log", "/build/out.o", "/src/node_modules/m.js", "/src/keep.py", "/buildinfo"):
        ws.write_file(p, b"1", parents=True)
    paths = {p for p, _ in listing(ws.changes(after=c, ignore=ignore))}
    assert {"/src/keep.py", "/buildinfo"} <= paths
    assert not paths & {"/x.log", "/src/y.log", "/build", "/build/out.o", "/src/node_modules",
                        "/src/node_modules/m.js"}
    c2 = ws.cursor()
    ws.write_file("/z.log", b"ignored")
    ws.write_file("/build/more", b"ignored")
    page = ws.changes_page(after=c2, ignore=ignore)
    assert page.entries == [] and not page.more
    assert page.cursor > c2 and page.cursor >= Cursor(ws.rev, "/z.log")
    # A paged reader skipping only ignored entries still reaches the end.
    entries, end, _ = _paginate(ws, c2, 1, ignore=ignore)
    assert entries == [] and end > c2


def test_cursor_too_old_after_tombstone_compaction(ws):
    ws.write_file("/x", b"1")
    old = ws.cursor()
    ws.unlink("/x")
    ws.write_file("/y", b"2")
    ws.compact_tombstones(ws.rev)
    with pytest.raises(vfs.CursorTooOld):
        ws.changes(after=old)
    with pytest.raises(vfs.CursorTooOld):
        ws.changes_page(after=old, limit=10)
    assert listing(ws.changes()) == [("/y", "file")]  # a snapshot is always available
    fresh = ws.cursor()
    ws.unlink("/y")
    assert listing(ws.changes(after=fresh)) == [("/y", "delete")]


def test_cursor_horizon_boundaries(ws):
    ws.write_file("/a", b"1")
    ws.unlink("/a")
    horizon = ws.rev
    ws.write_file("/b", b"2")
    ws.compact_tombstones(horizon)
    assert listing(ws.changes(after=Cursor(horizon))) == [("/b", "file")]  # all of `horizon` seen: fine
    for too_old in (Cursor(horizon - 1), Cursor(horizon, "/a"), Cursor(1)):
        with pytest.raises(vfs.CursorTooOld) as info:
            ws.changes(after=too_old)
        assert info.value.horizon == horizon


def test_a_listing_from_the_start_pages_below_the_horizon_until_more_is_compacted(ws):
    """A snapshot of a compacted log spans many pages: its cursors (`REV~H:/path`) stay usable
    below the horizon H, and only a later compaction makes them too old."""
    ws.mkdir("/d")
    for i in range(9):
        ws.write_file(f"/d/{i}", b"x")
    ws.write_file("/gone", b"g")
    ws.unlink("/gone")
    ws.compact_tombstones(ws.rev)
    horizon = ws.rev
    seen, after = [], None
    for _ in range(20):
        page = ws.changes_page(after=after, limit=3)
        seen += listing(page.entries)
        after = str(page.cursor)  # through the string form, as a replica persists it
        if not page.more:
            break
    assert seen == [("/d", "dir")] + [(f"/d/{i}", "file") for i in range(9)]
    first = ws.changes_page(limit=3).cursor
    assert first.floor == horizon and str(first).startswith(f"{first.rev}~{horizon}:")
    assert Cursor.parse(str(first)) == first == Cursor(first.rev, first.path)  # floor is not identity
    ws.write_file("/x", b"1")
    ws.unlink("/x")
    ws.compact_tombstones(ws.rev)  # a deletion the listing might have needed is gone now
    with pytest.raises(vfs.CursorTooOld):
        ws.changes_page(after=str(first), limit=3)
    with pytest.raises(vfs.CursorTooOld):  # a floor never lifts a cursor above what it saw
        ws.changes(after=Cursor(first.rev, first.path, ws.rev - 1))


def test_on_commit_is_called_after_each_commit(ws):
    seen: list[int] = []
    unsubscribe = ws.on_commit(seen.append)
    ws.write_file("/a", b"1")
    ws.mkdir("/d")
    with pytest.raises(OSError):
        ws.mkdir("/d")
    assert seen == [ws.rev - 1, ws.rev]
    unsubscribe()
    ws.write_file("/b", b"2")
    assert seen == [ws.rev - 2, ws.rev - 1]


# ---------------------------------------------------------------- objects


def test_objects_round_trip_and_wrong_ids_are_rejected(ws):
    data = b"chunk bytes" * 100
    hash_ = ws.put_object(data)
    assert hash_ == h(data) and len(hash_) == 64 and hash_ == hash_.lower()
    assert ws.put_object(data, expected_hash=hash_) == hash_  # idempotent
    assert ws.has_objects([hash_, h(b"absent")]) == {hash_}
    assert list(ws.read_objects([hash_])) == [(hash_, data)]
    other = b"other bytes"
    with pytest.raises(vfs.BadObject):
        ws.put_object(other, expected_hash=hash_)
    with pytest.raises(vfs.BadObject):
        ws.put_object(other, expected_hash=h(b"something else"))
    assert ws.has_objects([h(other)]) == set()


# ---------------------------------------------------------------- apply


def _make_tree(ws):
    ws.mkdir("/d/e", parents=True, mode=0o750)
    ws.write_file("/d/e/f", b"deep file" * 5000)
    ws.write_file("/top", b"top", mode=0o600)
    ws.symlink("d/e/f", "/link")
    ws.mkdir("/empty")


def test_apply_reproduces_the_tree_and_is_idempotent(pair):
    a, b = pair
    _make_tree(a)
    result = push(a, b)
    assert vfs_snapshot(b) == vfs_snapshot(a)
    assert set(result.applied) >= {"/d", "/d/e", "/d/e/f", "/top", "/link", "/empty"}
    assert result.rev == b.rev and result.conflicts == []
    rev = b.rev
    again = push(a, b)
    assert b.rev == rev and again.applied == [] and again.conflicts == []
    assert b.changes(after=Cursor(rev)) == []


def test_apply_carries_deletions_and_renames(pair):
    a, b = pair
    _make_tree(a)
    push(a, b)
    c = a.cursor()
    a.rename("/d", "/renamed")
    a.unlink("/top")
    push(a, b, after=c)
    assert vfs_snapshot(b) == vfs_snapshot(a)
    assert not b.exists("/d")


def test_apply_is_all_or_nothing_and_names_missing_chunks(pair):
    a, b = pair
    a.write_file("/good", b"good")
    a.write_file("/bad", b"bad content")
    entries = a.changes()
    b.put_object(b"good")
    rev = b.rev
    with pytest.raises(vfs.MissingObjects) as info:
        b.apply_changes(entries)
    assert info.value.missing == [h(b"bad content")]
    assert b.rev == rev and not b.exists("/good") and not b.exists("/bad")
    b.put_object(b"bad content")
    b.apply_changes(entries)
    assert b.read_file("/bad") == b"bad content" and b.read_file("/good") == b"good"


@pytest.fixture()
def synced(pair):
    """A and B identical; `base` is B's cursor as A last saw it; A's cursor as B last saw it."""
    a, b = pair
    a.write_file("/f", b"base")
    a.write_file("/g", b"base g")
    a.mkdir("/d")
    a.write_file("/d/x", b"x")
    push(a, b)
    return a, b, a.cursor(), b.cursor()


def test_concurrent_edits_conflict_and_nothing_is_lost(synced):
    a, b, a_seen, base = synced
    b.write_file("/f", b"B edit")
    a.write_file("/f", b"A edit")
    a.write_file("/g", b"A only")  # not touched on B: applies
    result = push(a, b, after=a_seen, base=base)
    (conflict,) = result.conflicts
    assert conflict.path == "/f"
    assert conflict.local_hash == h(b"B edit") and conflict.remote_hash == h(b"A edit")
    assert conflict.local_rev > base.rev and conflict.local_kind == "file" and conflict.remote_kind == "file"
    assert b.read_file("/f") == b"B edit"
    assert b.read_file("/g") == b"A only"
    assert "/g" in result.applied and "/f" not in result.applied


# local change on B: (operation, paths B now owns and must keep as they are, paths B removed)
LOCAL_OPS = {
    "file": (lambda b: (b.rm("/f"), b.write_file("/f", b"B file")), ["/f"], []),
    "dir": (lambda b: (b.rm("/f"), b.mkdir("/f"), b.write_file("/f/inside", b"B in")), ["/f", "/f/inside"], []),
    "edit": (lambda b: b.write_file("/f", b"B edit"), ["/f"], []),
    "delete": (lambda b: b.unlink("/f"), [], ["/f"]),
    "child": (lambda b: b.write_file("/d/new", b"B child"), ["/d", "/d/new"], []),
    "symlink": (lambda b: (b.rm("/f"), b.symlink("g", "/f")), ["/f"], []),
}
REMOTE_OPS = {
    "dir": lambda a: (a.rm("/f"), a.mkdir("/f"), a.write_file("/f/a", b"A inside")),
    "file": lambda a: (a.rm("/f"), a.write_file("/f", b"A file")),
    "delete": lambda a: a.unlink("/f"),
    "edit": lambda a: a.write_file("/f", b"A edit"),
    "rmtree": lambda a: a.rm("/d", recursive=True),
}


@pytest.mark.parametrize(
    "local, remote",
    [("file", "dir"), ("dir", "file"), ("edit", "delete"), ("delete", "edit"), ("child", "rmtree"),
     ("symlink", "file"), ("file", "edit"), ("dir", "delete")],
)
def test_kind_and_delete_conflicts(synced, local, remote):
    """The reference silently replaces local subtrees on kind changes; we report and keep them."""
    a, b, a_seen, base = synced
    op, owned, removed = LOCAL_OPS[local]
    op(b)
    before = vfs_snapshot(b)
    REMOTE_OPS[remote](a)
    result = push(a, b, after=a_seen, base=base)
    assert result.conflicts, f"{local} vs {remote}: no conflict reported"
    target = owned[0] if owned else removed[0]
    assert any(c.path == target or c.path.startswith(target + "/") for c in result.conflicts)
    after = vfs_snapshot(b)
    for path in owned:
        assert after.get(path) == before[path], (path, local, remote)
    for path in removed:
        assert path not in after, (path, local, remote)


def test_unconflicted_paths_apply_alongside_conflicts(synced):
    a, b, a_seen, base = synced
    b.write_file("/f", b"B edit")
    a.write_file("/f", b"A edit")
    a.write_file("/new", b"new from A")
    a.unlink("/g")
    result = push(a, b, after=a_seen, base=base)
    assert [c.path for c in result.conflicts] == ["/f"]
    assert b.read_file("/new") == b"new from A" and not b.exists("/g")


def test_applied_entries_enter_the_receivers_stream(tmp_path):
    """A -> B -> C: B forwards what it applied, so a chain of replicas converges."""
    with vfs.Workspace(str(tmp_path / "a.db")) as a, vfs.Workspace(str(tmp_path / "b.db")) as b, \
            vfs.Workspace(str(tmp_path / "c.db")) as c:
        _make_tree(a)
        push(a, b)
        push(b, c)
        assert vfs_snapshot(c) == vfs_snapshot(a)
        a_seen, b_seen = a.cursor(), b.cursor()
        a.rename("/d", "/d2")
        a.write_file("/top", b"changed")
        push(a, b, after=a_seen)
        push(b, c, after=b_seen)
        assert vfs_snapshot(c) == vfs_snapshot(a)


def test_prefix_and_ignore_combine(ws):
    c = ws.cursor()
    for p in ("/w/a.py", "/w/a.log", "/w/sub/b.log", "/other/c.py"):
        ws.write_file(p, b"1", parents=True)
    got = {p for p, _ in listing(ws.changes(after=c, prefix="/w", ignore=["*.log"]))}
    assert "/w/a.py" in got and not got & {"/w/a.log", "/w/sub/b.log", "/other/c.py"}


# ---------------------------------------------------------------- history


def test_history_read_at_rev_and_restore(ws):
    revs = [ws.write_file("/h", b"v%d" % i).rev for i in range(3)]
    assert revs == sorted(revs) and revs[-1] == ws.rev
    history = ws.history("/h")
    assert [v.rev for v in history[:3]] == revs[::-1]
    assert [v.hash for v in history[:3]] == [h(b"v2"), h(b"v1"), h(b"v0")]
    assert all(v.path == "/h" and v.kind == "file" for v in history[:3])
    for i, rev in enumerate(revs):
        assert ws.read_file("/h", rev=rev) == b"v%d" % i
    before = ws.rev
    st = ws.restore("/h", rev=revs[0])
    assert ws.rev == before + 1 and st.rev == ws.rev
    assert ws.read_file("/h") == b"v0"
    assert ws.history("/h")[0].rev == ws.rev
    assert ws.read_file("/h", rev=revs[2]) == b"v2"  # restoring keeps the later versions


def test_history_survives_deletion_and_restore_recreates(ws):
    rev = ws.write_file("/gone", b"keep me").rev
    ws.unlink("/gone")
    assert ws.history("/gone")[0].kind == "delete"
    ws.restore("/gone", rev=rev)
    assert ws.read_file("/gone") == b"keep me"


def test_default_retention_keeps_at_least_20_versions(ws):
    revs = [ws.write_file("/v", b"%d" % i * 100).rev for i in range(25)]
    ws.gc()
    kept = [v.rev for v in ws.history("/v") if v.kind == "file"]
    assert len(kept) >= 20
    assert set(revs[-20:]) <= set(kept)
    for i, rev in enumerate(revs):
        if rev in kept:
            assert ws.read_file("/v", rev=rev) == b"%d" % i * 100


def test_retention_policy_is_configurable(tmp_path):
    with vfs.Workspace(str(tmp_path / "s.db"), history_keep=3, history_days=0) as ws:
        revs = [ws.write_file("/v", b"%d" % i).rev for i in range(10)]
        ws.gc()  # pruning may happen on write or in gc: either way it is done by now
        kept = [v.rev for v in ws.history("/v")]
        assert set(revs[-3:]) <= set(kept) and len(kept) <= 4, kept
        assert ws.read_file("/v", rev=revs[-3]) == b"7"


def test_a_file_recreated_and_written_in_one_transaction_is_pruned_by_the_next_write(tmp_path):
    """A mount creates a file and writes its content in one group transaction; that
    write skips pruning (the create skipped it too). The path's next write, in a
    later transaction, prunes as usual: nothing beyond the policy is kept for good."""
    with vfs.Workspace(str(tmp_path / "s.db"), history_keep=2, history_days=0) as ws:
        for i in range(4):
            ws.write_file("/v", b"old %d" % i)
        ws.unlink("/v")
        with ws.transaction():
            ws.write_file("/v", b"", if_match="")
            ws.write_file("/v", b"new")
        assert ws.read_file("/v") == b"new"
        before = [v.rev for v in ws.history("/v")]
        last = ws.write_file("/v", b"newer").rev
        after = [v.rev for v in ws.history("/v")]
        assert len(after) <= 2 < len(before), (before, after)
        assert last in after and ws.read_file("/v") == b"newer"


def test_concurrent_writers_on_one_file_get_distinct_revisions(tmp_path):
    """One Workspace object per thread on the same file: every commit gets its own revision."""
    import threading

    path = str(tmp_path / "shared.db")
    vfs.Workspace(path).close()
    revs: dict[str, list[int]] = {}
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            with vfs.Workspace(path) as ws:
                revs[name] = [ws.write_file(f"/{name}-{i}", b"%d" % i).rev for i in range(150)]
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("x", "y", "z")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    every = [r for rs in revs.values() for r in rs]
    assert len(every) == len(set(every)) == 450
    with vfs.Workspace(path) as ws:
        assert ws.rev == max(every)
        assert len([e for e in ws.changes() if e.kind == "file"]) == 450


def test_dir_times_ns_reports_the_times_a_call_gave_the_directories_it_changed(tmp_path):
    """A FUSE mount keeps its cached parent stats with `dir_times_ns` instead of reading them
    again: after each call it must equal the parents' new mtime and ctime, or be 0 if the
    call changed no directory (a stale value would give the kernel wrong times)."""
    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        ws.mkdir("/d")
        ws.mkdir("/e")
        steps = [
            (lambda: ws.write_file("/d/a", b"1", if_match=""), ["/d"]),
            (lambda: ws.link("/d/a", "/d/b"), ["/d"]),
            (lambda: ws.unlink("/d/b"), ["/d"]),
            (lambda: ws.mkdir("/d/sub"), ["/d"]),
            (lambda: ws.symlink("a", "/d/s"), ["/d"]),
            (lambda: ws.rename("/d/a", "/e/a"), ["/d", "/e"]),
            (lambda: ws.rmdir("/d/sub"), ["/d"]),
        ]
        for call, parents in steps:
            call()
            stamped = ws.dir_times_ns
            assert stamped > 0
            for parent in parents:
                st = ws.lstat(parent)
                assert st.mtime_ns == st.ctime_ns == stamped, (parent, st, stamped)
        ws.rename("/e/a", "/e/a")  # changes nothing
        assert ws.dir_times_ns == 0
        ws.chmod("/e/a", 0o600)  # changes no directory
        assert ws.dir_times_ns == 0


def test_a_chmod_of_the_root_is_a_change(tmp_path):
    """The root has no name row and a link count of 2: its metadata changes are logged at `/` all the same."""
    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        cursor = ws.cursor()
        ws.chmod("/", 0o700)
        changed = list(ws.changes(after=cursor))
        assert [(c.path, c.kind, c.mode & 0o777) for c in changed] == [("/", "dir", 0o700)]
        assert ws.rev == changed[0].rev
