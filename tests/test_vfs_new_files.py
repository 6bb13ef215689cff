"""`Workspace.write_new_files`: several created files in one call (a FUSE mount's closed
pending files), each exactly as its own `write_file(..., if_match="", ino=, created_ns=)`."""

from __future__ import annotations

import errno

import pytest

import vfs

T = 1_800_000_000_000_000_000  # a time after the stores were made: parents' times move to it


def _files(ws: vfs.Workspace) -> list[dict]:
    sizes = [0, 5, 1500, 40_000]  # empty, inline chunk, catalogue chunk, cut into chunks
    out = []
    for i, size in enumerate(sizes):
        out.append({
            "path": f"/{'de'[i % 2]}/f{i}", "data": bytes([65 + i]) * size, "mode": 0o100640 + i, "uid": 1000 + i,
            "gid": 2000 + i, "ino": ws.reserve_ino(), "created_ns": T + 10 * i, "atime_ns": T + 10 * i,
            "mtime_ns": T + 10 * i + 3, "ctime_ns": T + 10 * i + 5,
        })  # fmt: skip
    return out


def _fields(st: vfs.Stat) -> tuple:
    return (st.kind, st.mode, st.size, st.hash, st.ino, st.nlink, st.mtime_ns, st.ctime_ns, st.atime_ns, st.uid, st.gid)


def _one_by_one(ws: vfs.Workspace, files: list[dict]) -> list[vfs.Stat]:
    stats = []
    with ws.transaction():
        for f in files:
            with ws.as_owner(f["uid"], f["gid"]):
                stats.append(ws.write_file(f["path"], f["data"], mode=f["mode"] & 0o7777, if_match="", ino=f["ino"],
                                           created_ns=f["created_ns"], atime_ns=f["atime_ns"],
                                           mtime_ns=f["mtime_ns"], ctime_ns=f["ctime_ns"]))
    return stats


def _setup(path) -> vfs.Workspace:
    ws = vfs.Workspace(str(path), exclusive=True)
    ws.mkdir("/d")
    ws.mkdir("/e")
    return ws


def test_batch_stores_what_one_write_file_each_stores(tmp_path):
    with _setup(tmp_path / "a.db") as batch, _setup(tmp_path / "b.db") as single:
        cursor_a, cursor_b = batch.cursor(), single.cursor()
        files_a, files_b = _files(batch), _files(single)
        assert [f["ino"] for f in files_a] == [f["ino"] for f in files_b]
        with batch.transaction():
            got = batch.write_new_files(files_a)
        want = _one_by_one(single, files_b)
        assert [_fields(st) for st in got] == [_fields(st) for st in want]
        for f in files_a:
            assert _fields(batch.lstat(f["path"])) == _fields(single.lstat(f["path"]))
            assert batch.read_file(f["path"]) == f["data"]
        for parent, last in (("/d", T + 20), ("/e", T + 30)):  # (the root and atimes: when each store was set up)
            a, b = batch.lstat(parent), single.lstat(parent)
            assert (a.mtime_ns, a.ctime_ns, a.nlink) == (b.mtime_ns, b.ctime_ns, b.nlink) == (last, last, 2)
        assert [(c.kind, c.path) for c in batch.changes(after=cursor_a)] == [
            (c.kind, c.path) for c in single.changes(after=cursor_b)]
        assert batch.rev == single.rev


def test_a_taken_name_leaves_none_of_them(tmp_path):
    with _setup(tmp_path / "a.db") as ws:
        ws.write_file("/e/f3", b"already here")
        rev, files = ws.rev, _files(ws)
        with pytest.raises(vfs.PreconditionFailed):
            ws.write_new_files(files)
        assert ws.rev == rev and ws.read_file("/e/f3") == b"already here"
        assert ws.listdir("/d") == [] and ws.listdir("/e") == ["f3"]


def test_a_name_taken_by_a_directory_or_given_twice_leaves_none_of_them(tmp_path):
    with _setup(tmp_path / "a.db") as ws:
        ws.mkdir("/d/f2")
        rev, files = ws.rev, _files(ws)
        with pytest.raises(FileExistsError):
            ws.write_new_files(files)
        with pytest.raises(ValueError):
            ws.write_new_files([files[0], {**files[1], "path": files[0]["path"]}])
        assert ws.rev == rev and ws.listdir("/d") == ["f2"] and ws.listdir("/e") == []


def test_a_given_hash_spares_the_second_blake3_and_changes_nothing(tmp_path, monkeypatch):
    """A local mount hashes a closed file where it lies and passes that digest as `hash`: a small
    file is stored without hashing it again (big ones are cut and hashed as always), and what is
    stored is what the same batch without `hash` stores."""
    import blake3

    import vfs.content

    calls = []

    class Counting:  # what vfs.content calls blake3 through, counted
        @staticmethod
        def blake3(*args, **kwargs):
            calls.append(1)
            return blake3.blake3(*args, **kwargs)

    monkeypatch.setattr(vfs.content, "blake3", Counting)
    with _setup(tmp_path / "a.db") as plain, _setup(tmp_path / "b.db") as given:
        files_a, files_b = _files(plain), _files(given)
        for f in files_b:
            f["hash"] = blake3.blake3(f["data"]).digest()
        want = plain.write_new_files(files_a)
        plain_calls, calls[:] = len(calls), []
        got = given.write_new_files(files_b)
        assert plain_calls - len(calls) == 2  # the 5 B and the 1,500 B file (empty: no hash; 40 kB: cut)
        assert [_fields(st) for st in got] == [_fields(st) for st in want]
        for f in files_b:
            assert given.read_file(f["path"]) == f["data"]
            assert given.lstat(f["path"]).hash == blake3.blake3(f["data"]).hexdigest()


def test_answers_are_the_rows_stored_and_parents_resolve_through_symlinks(tmp_path):
    """The `Stat`s returned are built from the rows written, not read back: each equals what
    `lstat` reads afterwards, in every field; a parent named through a symlink (resolved from
    the connection's directory cache) gets the file, and a missing or non-directory parent
    leaves none of the batch."""
    with _setup(tmp_path / "a.db") as ws:
        ws.symlink("/d", "/link")
        files = _files(ws)
        files[0]["path"] = "/link/through"
        with ws.transaction():
            got = ws.write_new_files(files)
        assert got == [ws.lstat(f["path"].replace("/link/", "/d/")) for f in files]
        assert ws.read_file("/d/through") == files[0]["data"]
        for bad, code in (("/nowhere/x", "ENOENT"), ("/d/f2/x", "ENOTDIR")):
            more = [{**files[1], "path": "/e/fine", "ino": ws.reserve_ino()}, {**files[1], "path": bad, "ino": ws.reserve_ino()}]
            with pytest.raises(OSError) as caught:
                ws.write_new_files(more)
            assert caught.value.errno == getattr(errno, code)
            assert not ws.exists("/e/fine")
