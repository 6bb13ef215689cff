"""Content ids after positional writes: left to derive, exact whenever read.

`write_range` and `truncate` keep per-chunk hashes but do not re-read the
whole file to hash it (issue 14): the file's content id is derived from its
chunk list when someone first reads it. Every reader must still see the
exact BLAKE3 of the content: `stat`, the Stat a write returns, the change
log, `entry`, history and restore, `if_match`, a read-only open and a store
reopened after the write. The ground truth is BLAKE3 of a bytearray that
mirrors every edit.
"""

from __future__ import annotations

import random
import sqlite3

import blake3
import pytest

import vfs

MiB = 1024 * 1024


def exact(data: bytes | bytearray) -> str:
    return blake3.blake3(bytes(data)).hexdigest()


@pytest.fixture()
def store_path(tmp_path):
    return str(tmp_path / "store.db")


@pytest.fixture()
def ws(store_path):
    with vfs.Workspace(store_path) as store:
        yield store


def stored_id_is_null(store_path: str, path_name: str) -> bool:
    """Is the node row's content id still left to derive? (read straight from the SQLite file)."""
    with sqlite3.connect(store_path) as conn:
        row = conn.execute(
            "SELECT n.hash IS NULL FROM dirents d JOIN nodes n ON n.ino = d.ino WHERE d.parent = 1 AND d.name = ?",
            (path_name,),
        ).fetchone()
    return bool(row[0])


def test_every_reader_sees_the_exact_id_after_positional_writes(ws):
    rng = random.Random(14)
    model = bytearray(rng.randbytes(3 * MiB))
    ws.write_file("/f", bytes(model))
    for step in range(12):
        cursor = ws.cursor()
        if step % 4 == 3:
            size = rng.randrange(0, 4 * MiB)
            returned = ws.truncate("/f", size)
            model = model[:size] + bytes(max(0, size - len(model)))
        else:
            offset = rng.randrange(0, len(model) + 1000)
            data = rng.randbytes(rng.randrange(1, 70_000))
            returned = ws.write_range("/f", offset, data)
            if offset > len(model):
                model.extend(bytes(offset - len(model)))
            model[offset : offset + len(data)] = data
        truth = exact(model)
        assert returned.hash == truth
        assert ws.stat("/f").hash == truth
        assert ws.entry("/f").hash == truth
        (change,) = ws.changes(after=cursor)
        assert change.path == "/f" and change.hash == truth
        assert ws.read_file("/f") == bytes(model)
    for version in ws.history("/f"):
        assert version.hash == exact(ws.read_file("/f", rev=version.rev)), version


def test_a_write_leaves_the_id_to_derive_and_the_first_reader_keeps_it(ws, store_path):
    ws.write_file("/f", random.Random(1).randbytes(2 * MiB))
    returned = ws.write_range("/f", 10, b"edit")
    assert stored_id_is_null(store_path, "f"), "a positional write must not re-hash the whole file"
    assert ws.stat("/f").hash == returned.hash == exact(ws.read_file("/f"))
    assert not stored_id_is_null(store_path, "f"), "the derived id is kept once read"


def test_the_change_log_alone_derives_the_same_id(ws, store_path):
    ws.write_file("/f", random.Random(2).randbytes(2 * MiB))
    cursor = ws.cursor()
    ws.write_range("/f", 0, b"x")
    (change,) = ws.changes(after=cursor)
    assert change.hash == exact(ws.read_file("/f"))
    assert not stored_id_is_null(store_path, "f")
    assert ws.stat("/f").hash == change.hash


def test_stats_with_a_derived_id_equal_plain_stats(ws):
    ws.write_file("/f", random.Random(3).randbytes(2 * MiB))
    returned = ws.write_range("/f", 5, b"abc")
    plain = ws.stat("/f")
    assert returned == plain and plain == returned
    assert len({returned, plain}) == 1
    other = ws.write_range("/f", 5, b"xyz")
    assert other != plain


def test_if_match_sees_the_derived_id(ws):
    ws.write_file("/f", random.Random(4).randbytes(2 * MiB))
    before = ws.stat("/f").hash
    ws.write_range("/f", 100, b"changed")
    with pytest.raises(vfs.PreconditionFailed):
        ws.write_file("/f", b"new", if_match=before)
    current = exact(ws.read_file("/f"))
    assert ws.write_file("/f", b"new", if_match=current).hash == exact(b"new")


def test_a_read_only_open_and_a_reopened_store_see_the_exact_id(store_path):
    with vfs.Workspace(store_path) as ws:
        ws.write_file("/f", random.Random(5).randbytes(2 * MiB))
        ws.write_range("/f", 1, b"q")
        truth = exact(ws.read_file("/f"))
    assert stored_id_is_null(store_path, "f")
    with vfs.Workspace(store_path, readonly=True) as ro:
        assert ro.stat("/f").hash == truth
        assert ro.entry("/f").hash == truth
    assert stored_id_is_null(store_path, "f"), "a read-only open writes nothing"
    with vfs.Workspace(store_path) as again:
        assert again.stat("/f").hash == truth


def test_restoring_a_positional_version_restores_its_exact_id(ws):
    original = random.Random(6).randbytes(2 * MiB)
    ws.write_file("/f", original)
    ws.write_range("/f", 0, b"one")
    edited_rev = ws.entry("/f").rev
    edited = ws.read_file("/f")
    ws.write_range("/f", 0, b"two")
    restored = ws.restore("/f", rev=edited_rev)
    assert restored.hash == exact(edited)
    assert ws.read_file("/f") == edited


def test_a_peer_applies_changes_of_a_positionally_written_file(ws, tmp_path):
    ws.write_file("/f", random.Random(7).randbytes(2 * MiB))
    ws.write_range("/f", 7, b"peer")
    changes = ws.changes()
    hashes = sorted({h for change in changes for h, _ in change.chunks})
    with vfs.Workspace(str(tmp_path / "peer.db")) as peer:
        for digest, data in ws.read_objects(hashes):
            peer.put_object(data, expected_hash=digest)
        peer.apply_changes(changes)
        assert peer.stat("/f").hash == exact(ws.read_file("/f")) == ws.stat("/f").hash


def test_a_returned_stat_keeps_its_exact_id_after_the_store_closes(store_path):
    with vfs.Workspace(store_path) as ws:
        ws.write_file("/f", random.Random(8).randbytes(2 * MiB))
        returned = ws.write_range("/f", 3, b"late")
        truth = exact(ws.read_file("/f"))
    assert returned.hash == truth


def test_ids_derived_by_a_read_only_reader_follow_every_new_write(store_path):
    """A read-only connection remembers derived ids by chunk list: never a stale one."""
    rng = random.Random(9)
    model = bytearray(rng.randbytes(2 * MiB))
    with vfs.Workspace(store_path) as ws, vfs.Workspace(store_path, readonly=True) as ro:
        ws.write_file("/f", bytes(model))
        for step in range(6):
            offset = rng.randrange(0, len(model) - 10)
            data = rng.randbytes(10) if step != 3 else bytes(model[offset : offset + 10])  # step 3 rewrites the same bytes
            ws.write_range("/f", offset, data)
            model[offset : offset + 10] = data
            assert ro.stat("/f").hash == exact(model) == ro.entry("/f").hash
            assert ro.stat("/f").hash == exact(model)  # asked again: remembered, still exact
        ws.truncate("/f", 1000)
        assert ro.stat("/f").hash == exact(model[:1000])


def test_rewriting_identical_bytes_keeps_the_exact_id(ws):
    data = bytearray(random.Random(10).randbytes(3 * MiB))
    first = ws.write_file("/f", bytes(data))
    again = ws.write_file("/f", bytes(data))
    assert again.hash == first.hash == exact(data) and again.rev > first.rev
    ws.write_range("/f", 9, b"stale")  # the id is now left to derive ...
    data[9:14] = b"stale"
    assert ws.write_file("/f", bytes(data)).hash == exact(data)  # ... and an identical rewrite still gets it right
    data[-1] ^= 1
    assert ws.write_file("/f", bytes(data)).hash == exact(data)


def test_version_listing_gives_exact_ids_on_a_read_only_store(store_path):
    with vfs.Workspace(store_path) as ws:
        ws.write_file("/f", random.Random(11).randbytes(2 * MiB))
        ws.write_range("/f", 0, b"1")
        one = ws.read_file("/f")
        ws.write_range("/f", 0, b"2")
        two = ws.read_file("/f")
        ws.unlink("/f")
    with vfs.Workspace(store_path, readonly=True) as ro:
        rows = ro._versions.listing("/f")  # what History.history lists
    kinds_and_ids = [(kind, digest.hex() if digest else None) for _, kind, _, digest, _ in rows]
    assert kinds_and_ids[0] == (0, None)  # the deletion
    assert kinds_and_ids[1:3] == [(1, exact(two)), (1, exact(one))]


def test_a_stat_with_a_derived_id_pickles_and_copies_as_a_plain_stat(ws):
    import copy
    import dataclasses
    import pickle

    ws.write_file("/f", random.Random(12).randbytes(2 * MiB))
    returned = ws.write_range("/f", 1, b"p")
    truth = exact(ws.read_file("/f"))
    for twin in (pickle.loads(pickle.dumps(returned)), copy.copy(returned), copy.deepcopy(returned)):
        assert type(twin) is vfs.Stat and twin == returned and twin.hash == truth
    assert dataclasses.replace(ws.write_range("/f", 1, b"q"), nlink=0).hash == exact(ws.read_file("/f"))
