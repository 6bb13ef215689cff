"""vfs.wire.change_from_wire: the one-pass reading of common entries decides exactly as the checked one.

`change_from_wire` reads an entry of the usual shape in one pass and hands
anything else to `change_from_wire_checked`. Both are run here on the same
inputs, valid and invalid, mostly near the edges of what the wire accepts
(types JSON can carry, bounds, lengths, missing and null fields): the same
`Change` (field values and their types) or the same refusal (code, message,
field, id).
"""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis_profiles import scaled

import vfs
from vfs.wire import ProtocolError, change_from_wire, change_to_wire, entry_data
from vfs.wire.limits import INT64_MAX, MTIME_MAX
from vfs.wire.values import _common_change, change_from_wire_checked

HASH = "ab" * 32
MISSING = object()  # the field is left out of the entry

hexes = st.text("0123456789abcdef", min_size=64, max_size=64)
near_hashes = hexes | st.text("0123456789abcdefABCDEF g", min_size=62, max_size=66) | hexes.map(lambda h: h + "\n")
ints = (st.integers(-3, 3) | st.integers(0o177770, 0o200010) | st.integers(INT64_MAX - 2, INT64_MAX + 2)
        | st.integers(-(2**70), 2**70) | st.booleans())
floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [float(MTIME_MAX), -float(MTIME_MAX), math.nextafter(MTIME_MAX, math.inf), 1.7e9, 0.0, -0.0])
mtimes = floats | st.integers(-(2**34), 2**34) | st.sampled_from([MTIME_MAX, -MTIME_MAX, MTIME_MAX + 1, 10**400])
odd = st.none() | st.booleans() | st.just("") | st.just([]) | st.just({}) | st.just(0) | st.just("x")
paths = st.text(max_size=12).map(lambda t: "/" + t) | st.text(max_size=6)
targets = st.text(max_size=8)
chunk_items = (st.tuples(near_hashes, ints).map(list) | st.tuples(hexes, st.integers(0, 2**20)).map(list)
               | st.lists(hexes, max_size=3) | odd)
chunk_lists = st.lists(chunk_items, max_size=3) | st.lists(st.tuples(hexes, st.integers(0, 2**20)).map(list), max_size=4)


usual = st.fixed_dictionaries({
    "path": st.just("/d/f.txt") | st.text(max_size=12).map(lambda t: "/" + t),
    "kind": st.sampled_from(["file", "dir", "symlink", "delete", "fifo", "char"]),
    "rev": st.integers(0, 2**40),
    "mode": st.integers(0, 0o177777),
    "mtime": st.floats(0, 2e9),
    "size": st.integers(0, 2**40),
    "hash": st.none() | hexes,
    "chunks": st.lists(st.tuples(hexes, st.integers(0, 2**20)).map(list), max_size=3),
    "target": st.none() | st.text(max_size=8),
    "cursor": st.just("1:/d/f.txt"),
})
wide = st.sampled_from(["a", "é", "€", "😀"])  # 1 to 4 bytes in UTF-8: lengths near the byte limits
edges = {
    "path": paths | st.tuples(wide, st.integers(2040, 2056)).map(lambda cn: "/" + cn[0] * (cn[1] - 1)),
    "kind": st.text(max_size=8),
    "rev": ints,
    "mode": ints,
    "mtime": mtimes,
    "size": ints,
    "hash": near_hashes,
    "chunks": chunk_lists | st.lists(chunk_items, min_size=1, max_size=2).map(lambda bad: [[HASH, 1], *bad]),
    "target": targets | st.tuples(wide, st.integers(1020, 1030)).map(lambda cn: cn[0] * cn[1]),
    "rdev": ints,
    "data": st.text(max_size=4),
}


# Each field's values on both sides of every limit the two readings check: tried one by one on entries
# of every kind (below), and drawn often by `entries`.
INT_EDGES = [-1, 0, 1, 0o177777, 0o200000, INT64_MAX, INT64_MAX + 1, True, False, 1.0, "1"]
LIMITS: dict[str, list[Any]] = {
    "path": ["/", "", "a", "/" + "a" * 2047, "/" + "😀" * 2047, "/" + "😀" * 2048, "/" + "a" * 8191,
             "/" + "a" * 8192, "/" + "é" * 4095, "/" + "é" * 4096, "/\udc80", 5, ["/a"]],
    "kind": ["file", "delete", "block", "File", "", "dir ", 1, ["file"]],
    "rev": INT_EDGES, "mode": INT_EDGES, "size": INT_EDGES, "rdev": INT_EDGES,
    "mtime": [0, 0.0, -0.0, MTIME_MAX, -MTIME_MAX, MTIME_MAX + 1, -MTIME_MAX - 1, float(MTIME_MAX),
              math.nextafter(MTIME_MAX, math.inf), float("nan"), float("inf"), -float("inf"), 10**400, True, "1"],
    "hash": [HASH, HASH.upper(), HASH[:-1], HASH + "a", HASH[:-1] + "g", HASH + "\n", " " + HASH[1:], "", 5, [HASH]],
    "chunks": [[], [[HASH, 0]], [[HASH, INT64_MAX]], [[HASH, INT64_MAX + 1]], [[HASH, -1]], [[HASH, True]],
               [[HASH, 1.0]], [[HASH.upper(), 1]], [[HASH[:-1], 1]], [[HASH + "\n", 1]], [[HASH, 1, 2]], [[HASH]],
               [(HASH, 1)], [{"h": HASH}], [[HASH, 1], [5, 1]], [[HASH, 1], None], "", 0, {}, HASH],
    "target": ["", "t" * 1024, "t" * 1025, "😀" * 1024, "😀" * 1025, "t" * 4096, "t" * 4097, 5, ["t"]],
}


@st.composite
def entries(draw: st.DrawFn) -> dict[str, Any]:
    """A usual entry with up to three fields replaced by an edge value, an odd one, or left out."""
    entry = draw(usual)
    for name in draw(st.lists(st.sampled_from(sorted(edges)), max_size=3, unique=True)):
        value = draw(st.sampled_from(LIMITS.get(name, [None])) | edges[name] | odd | st.just(MISSING))
        if value is MISSING:
            entry.pop(name, None)
        else:
            entry[name] = value
    return entry


def outcome(read: Any, entry: Any) -> tuple[Any, ...]:
    """What a reading makes of `entry`: the Change with its field types, or the refusal's words."""
    try:
        c = read(entry, id=7, where="changes")
    except ProtocolError as e:
        return ("refused", e.code, e.message, e.id, e.extra)
    return ("accepted", c, tuple(type(getattr(c, f)) for f in c.__slots__),
            tuple(tuple(type(x) for x in pair) for pair in c.chunks))


@scaled(10)  # pure and cheap: ten times the profile's examples (~1,500 in ci, ~2 s)
@given(entries())
@example({"path": "/a", "kind": "file", "rev": 1, "mtime": MTIME_MAX + 1})
@example({"path": "/a", "kind": "file", "rev": 1, "mtime": float("nan")})
@example({"path": "/a", "kind": "file", "hash": HASH.upper()})
@example({"path": "/a", "kind": "file", "hash": HASH + "\n"})
@example({"path": "/a", "kind": "file", "chunks": [[HASH, True]]})
@example({"path": "/a", "kind": "file", "chunks": 0})
@example({"path": "/a", "kind": "file", "rev": True})
@example({"path": "/" + "é" * 2047, "kind": "dir"})
@example({"path": "/a", "kind": "symlink", "target": "€" * 1025})
def test_both_readings_agree(entry: dict[str, Any]) -> None:
    assert outcome(change_from_wire, entry) == outcome(change_from_wire_checked, entry)


@pytest.mark.parametrize("kind", ["file", "dir", "symlink", "delete"])
def test_every_limit_agrees(kind: str) -> None:
    """Each field at each of its limits, one at a time, and left out or null, on a usual entry of `kind`."""
    base = {"path": "/d/f", "kind": kind, "rev": 9, "mode": 0o100644, "mtime": 1.7e9, "size": 1, "hash": HASH,
            "chunks": [[HASH, 1]], "target": "f" if kind == "symlink" else None, "cursor": "9:/d/f"}
    tried = 0
    for name, values in LIMITS.items():
        for value in [*values, None, MISSING]:
            entry = {k: v for k, v in base.items() if k != name}
            if value is not MISSING:
                entry[name] = value
            assert outcome(change_from_wire, entry) == outcome(change_from_wire_checked, entry), (name, value)
            tried += 1
    assert tried > 100


@given(st.one_of(st.none(), st.integers(), st.text(max_size=3), st.lists(st.integers(), max_size=2)))
def test_not_an_object_is_refused_alike(entry: Any) -> None:
    assert outcome(change_from_wire, entry) == outcome(change_from_wire_checked, entry)


def test_what_a_server_writes_takes_the_one_pass() -> None:
    """The fast reading is not dead code: every entry our own server writes is read by it."""
    samples = [
        vfs.Change("/d/f.txt", "file", 12, 0o100644, 1.7e9 + 0.25, 3, HASH, ((HASH, 3),)),
        vfs.Change("/d", "dir", 3, 0o40755, 1.7e9),
        vfs.Change("/l", "symlink", 4, 0o120777, 1.7e9, 1, None, (), "d/f.txt"),
        vfs.Change("/gone", "delete", 5),
        vfs.Change("/dev/null0", "char", 6, 0o20644, 1.7e9, rdev=259),
        vfs.Change("/e", "file", 7, 0o100600, 0.0, 0, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"),
    ]
    for c in samples:
        entry = orjson.loads(orjson.dumps(change_to_wire(c, data=b"abc" if c.kind == "file" else None, author="x")))
        assert _common_change(entry) == c
        assert change_from_wire(entry) == change_from_wire_checked(entry) == c


@given(st.text(max_size=10).map(lambda t: "/" + t), st.integers(0, INT64_MAX), st.none() | st.binary(max_size=40))
def test_written_entry_names_the_cursor_of_its_change(path: str, rev: int, data: bytes | None) -> None:
    """change_to_wire spells the cursor itself (no Cursor built per entry): exactly `str(change.cursor)`."""
    c = vfs.Change(path, "file", rev, 0o100644, 1.0, len(data or b""), HASH, ((HASH, 1),))
    wire = orjson.loads(orjson.dumps(change_to_wire(c, data=data)))
    assert wire["cursor"] == str(c.cursor)
    assert vfs.Cursor.parse(wire["cursor"]) == c.cursor
    assert entry_data(wire) == data
