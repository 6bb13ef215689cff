"""A pushed directory or file entry's `set_mtime` (`vfs.wire.TimedChange`): its wire form, its
refusals, and what the store does with it (`vfs.sync`), default off.

A pushed entry of a directory the server has changes its mode only, so replicas (whose
directories' mtimes move with every file they write) never move the server's. A mount asks
for the mtime with `set_mtime: true` (utimensat of a directory; `tar -x` does one per directory).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import orjson
import pytest

import vfs
from vfs import wire as p
from vfs.wire import TimedChange, change_from_wire, change_to_wire


def timed(path: str, mtime: float, mode: int = 0o40755) -> TimedChange:
    return TimedChange(path=path, kind="dir", rev=0, mode=mode, mtime=mtime)


def test_the_field_round_trips_and_is_absent_by_default() -> None:
    change = timed("/d", 1_234_567_890.5)
    wire = change_to_wire(change)
    assert wire["set_mtime"] is True
    assert change_from_wire(orjson.loads(orjson.dumps(wire))) == change
    push = p.Push(id=3, changes=(change, vfs.Change("/d/f", "delete", 0)), base={"/d": 4})
    assert p.decode_client(p.encode(push)) == push
    plain = vfs.Change("/d", "dir", 0, 0o40755, 5.0)
    assert "set_mtime" not in change_to_wire(plain)
    for absent in ({}, {"set_mtime": False}, {"set_mtime": None}):
        read = change_from_wire({**change_to_wire(plain), **absent})
        assert type(read) is vfs.Change and read == plain


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({"path": "/d", "kind": "dir", "set_mtime": 1}, "expected true or false"),
        ({"path": "/d", "kind": "dir", "set_mtime": "true"}, "expected true or false"),
        ({"path": "/f", "kind": "symlink", "target": "x", "set_mtime": True}, "only a directory or file entry"),
        ({"path": "/f", "kind": "delete", "set_mtime": True}, "only a directory or file entry"),
    ],
)
def test_bad_values_are_refused_naming_the_field(entry: dict, says: str) -> None:
    frame = orjson.dumps({"type": "push", "id": 7, "changes": [entry], "base": None})
    with pytest.raises(p.ProtocolError) as info:
        p.decode_client(frame)
    assert (info.value.code, info.value.extra.get("field"), info.value.id) == (p.EPROTO, "set_mtime", 7)
    assert says in info.value.message and "'set_mtime'" in info.value.message


def test_the_store_sets_the_mtime_after_the_batch_children(tmp_path: Path) -> None:
    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        ws.mkdir("/d")
        rev = ws.stat("/d").rev
        child = vfs.Change("/d/link", "symlink", 0, 0o120777, 5.0, target="x")  # (its creation moves /d's mtime)
        result = ws.apply_changes([timed("/d", 1_000_000.25, 0o40700), child], base={"/d": rev})
        assert sorted(result.applied) == ["/d", "/d/link"]
        st = ws.stat("/d")
        assert (st.mtime, st.mode & 0o7777) == (1_000_000.25, 0o700)
        again = ws.apply_changes([timed("/d", 1_000_000.25, 0o40700)], base={"/d": result.rev})
        assert (again.unchanged, again.rev) == (["/d"], result.rev)  # (nothing to do: no revision)
        only_mtime = ws.apply_changes([timed("/d", 2_000_000.0, 0o40700)], base={"/d": result.rev})
        assert only_mtime.applied == ["/d"] and ws.stat("/d").mtime == 2_000_000.0
        # Default off: a replica's directory entry never moves the server's mtime.
        plain = ws.apply_changes([vfs.Change("/d", "dir", 0, 0o40755, 3_000_000.0)], base={"/d": only_mtime.rev})
        assert plain.applied == ["/d"] and ws.stat("/d").mtime == 2_000_000.0
        # Changed here since the base: a conflict, the mtime stays.
        stale = ws.apply_changes([timed("/d", 4_000_000.0)], base={"/d": only_mtime.rev})
        assert [c.path for c in stale.conflicts] == ["/d"] and ws.stat("/d").mtime == 2_000_000.0
        made = ws.apply_changes([timed("/e", 5_000_000.5), vfs.Change("/e/s", "symlink", 0, 0o120777, target="y")])
        assert sorted(made.applied) == ["/e", "/e/s"] and ws.stat("/e").mtime == 5_000_000.5


def test_a_file_entry_sets_the_mtime_of_content_the_store_has(tmp_path: Path) -> None:
    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        st = ws.write_file("/f.txt", b"same", mtime=100.0)
        entry = vfs.Change("/f.txt", "file", st.rev, 0o100644, 200.5, 4, st.hash, ((st.hash, 4),))
        plain = ws.apply_changes([entry], base={"/f.txt": st.rev})
        assert plain.unchanged == ["/f.txt"] and ws.stat("/f.txt").mtime == 100.0  # (without it: unchanged)
        timed = TimedChange(**{**{k: getattr(entry, k) for k in entry.__dataclass_fields__}, "set_mtime": True})
        result = ws.apply_changes([timed], base={"/f.txt": st.rev})
        assert result.applied == ["/f.txt"] and result.rev > st.rev
        after = ws.stat("/f.txt")
        assert (after.mtime, after.hash, after.ino) == (200.5, st.hash, st.ino)
        assert [v.rev for v in ws.history("/f.txt")] == [st.rev]  # an mtime, not a new version
        again = ws.apply_changes([timed], base={"/f.txt": result.rev})
        assert (again.unchanged, again.rev) == (["/f.txt"], result.rev)
        # Changed here since the base: a conflict, the mtime stays.
        ws.write_file("/f.txt", b"other")
        stale = ws.apply_changes([dataclasses.replace(timed, mtime=300.0)], base={"/f.txt": result.rev})
        assert [c.path for c in stale.conflicts] == ["/f.txt"] and ws.read_file("/f.txt") == b"other"
        # New content with set_mtime: the entry's content and mtime, as any file entry.
        new = ws.put_object(b"third")
        made = ws.apply_changes([TimedChange("/g.txt", "file", 0, 0o100600, 400.25, 5, new, ((new, 5),))])
        assert made.applied == ["/g.txt"] and ws.stat("/g.txt").mtime == 400.25 and ws.read_file("/g.txt") == b"third"


def test_a_push_over_http_sets_it_and_refuses_a_bad_one(live_server) -> None:
    http = live_server.http()
    http.put("/api/workspaces/demo/files/d/f.txt", content=b"x", params={"parents": 1})
    entry = change_to_wire(timed("/d", 1_500_000_000.5))
    ok = http.post("/api/workspaces/demo/push", json={"changes": [entry], "base": None})
    assert ok.status_code == 200 and ok.json()["applied"] == ["/d"]
    assert http.get("/api/workspaces/demo/stat/d").json()["mtime"] == 1_500_000_000.5
    bad = http.post("/api/workspaces/demo/push", json={"changes": [{**entry, "set_mtime": "yes"}], "base": None})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "set_mtime"
    http.close()
