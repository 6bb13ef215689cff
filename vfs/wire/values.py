"""The value types of `vfs.types` to and from their wire dicts.

`*_to_wire` builds the JSON-ready dict; `*_from_wire` reads one back. Only
`change_from_wire` and `parse_base` validate (they read client input); the
others read what our own server wrote.
"""

from __future__ import annotations

from typing import Any, Mapping

import pybase64  # SIMD base64: a first sync decodes tens of MB of inlined files (~10x binascii)

from vfs.types import (
    ApplyResult,
    Change,
    Conflict,
    Cursor,
    DirEntry,
    GcStats,
    GrepMatch,
    Stat,
    TimedChange,
    Version,
)
from vfs.wire.fields import HASH_RE, RequestId, _fail, _Fields, check_cursor
from vfs.wire.limits import INT64_MAX, MTIME_MAX


def stat_to_wire(st: Stat, path: str | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {
        "kind": st.kind,
        "mode": st.mode,
        "size": st.size,
        "mtime": st.mtime,
        "ctime": st.ctime,
        "ino": st.ino,
        "nlink": st.nlink,
        "rev": st.rev,
        "hash": st.hash,
        "target": st.target,
    }
    if st.rdev:
        d["rdev"] = st.rdev  # device nodes only: other stats stay as they were
    if path is not None:
        d["path"] = path
    return d


def stat_from_wire(d: Mapping[str, Any]) -> Stat:
    return Stat(
        kind=d["kind"],
        mode=int(d["mode"]),
        size=int(d["size"]),
        mtime=float(d["mtime"]),
        ctime=float(d["ctime"]),
        ino=int(d["ino"]),
        nlink=int(d["nlink"]),
        rev=int(d["rev"]),
        hash=d.get("hash"),
        target=d.get("target"),
        rdev=int(d.get("rdev") or 0),
    )


def direntry_to_wire(e: DirEntry) -> dict[str, Any]:
    return {"name": e.name, "kind": e.kind, "size": e.size, "mtime": e.mtime}


def direntry_from_wire(d: Mapping[str, Any]) -> DirEntry:
    return DirEntry(name=d["name"], kind=d["kind"], size=int(d["size"]), mtime=float(d["mtime"]))


def version_to_wire(v: Version) -> dict[str, Any]:
    return {
        "path": v.path, "rev": v.rev, "kind": v.kind, "size": v.size, "hash": v.hash, "mtime": v.mtime,
        "author": v.author, "origin": v.origin,
    }


def version_from_wire(d: Mapping[str, Any]) -> Version:
    """A Version; `author` and `origin` may be absent (a server older than history across renames)."""
    return Version(
        path=d["path"], rev=int(d["rev"]), kind=d["kind"], size=int(d["size"]), hash=d.get("hash"),
        mtime=float(d["mtime"]), author=d.get("author"), origin=d.get("origin"),
    )


def grepmatch_to_wire(m: GrepMatch) -> dict[str, Any]:
    return {"path": m.path, "line_number": m.line_number, "line": m.line, "context": list(m.context)}


def grepmatch_from_wire(d: Mapping[str, Any]) -> GrepMatch:
    return GrepMatch(path=d["path"], line_number=int(d["line_number"]), line=d["line"], context=tuple(d.get("context", ())))


def _pick(value: object, names: tuple[str, ...]) -> dict[str, Any]:
    """The wire dict of a flat value: each named field under its own name, in that order."""
    return {name: getattr(value, name) for name in names}


# wire fields named as the value type names them; listed here, not read off the
# type, so a field added to the type does not silently join the protocol
_GCSTATS_FIELDS = ("chunks_removed", "bytes_removed", "chunks_kept", "versions_pruned")
_CONFLICT_FIELDS = (
    "path", "local_kind", "local_rev", "local_hash", "remote_kind", "remote_rev", "remote_hash", "reason",
)


def gcstats_to_wire(g: GcStats) -> dict[str, Any]:
    return _pick(g, _GCSTATS_FIELDS)


def gcstats_from_wire(d: Mapping[str, Any]) -> GcStats:
    return GcStats(**{k: int(d[k]) for k in _GCSTATS_FIELDS})


_KINDS = ("file", "dir", "symlink", "fifo", "socket", "char", "block", "delete")


def change_to_wire(c: Change, *, data: bytes | None = None, author: str | None = None) -> dict[str, Any]:
    """One change entry. `data` (inlined content) and `author` are optional extras."""
    d: dict[str, Any] = {
        "path": c.path,
        "kind": c.kind,
        "rev": c.rev,
        "cursor": f"{c.rev}:{c.path}",  # str(c.cursor) without building the Cursor (a page writes hundreds)
        "mode": c.mode,
        "mtime": c.mtime,
        "size": c.size,
        "hash": c.hash,
        "chunks": [[h, s] for h, s in c.chunks],
        "target": c.target,
    }
    if c.rdev:
        d["rdev"] = c.rdev  # device nodes only
    if isinstance(c, TimedChange) and c.set_mtime:
        d["set_mtime"] = True  # (a pushed directory or file entry only)
    if data is not None:
        d["data"] = pybase64.b64encode_as_string(data)
    if author is not None:
        d["author"] = author
    return d


_KIND_SET = frozenset(_KINDS)
_NOT_HEX = str.maketrans("", "", "0123456789abcdef")  # what is left of a hash once its hex digits are deleted


def change_from_wire(d: Any, *, id: RequestId | None = None, where: str = "changes") -> Change:
    """Validate and build a `Change` (fields `cursor`, `data`, `author` are ignored here).

    An entry of the usual shape (each field of its JSON type, in range, short
    enough to need no byte count) is read in one pass (`_common_change`: a first
    sync reads one per file, ~1.5 us instead of ~7); anything else, valid or
    not, goes to `change_from_wire_checked`, which accepts or refuses it with
    its own words. The one pass accepts only what that reading accepts and
    builds the same `Change` (`tests/test_wire_fastpath.py` compares both).
    """
    if type(d) is dict:
        change = _common_change(d)
        if change is not None:
            return change
    return change_from_wire_checked(d, id=id, where=where)


def _common_change(d: dict[str, Any]) -> Change | None:
    """The `Change` of an entry of the usual shape, or None for `change_from_wire_checked` to decide."""
    get = d.get
    kind, path = get("kind"), get("path")
    if "set_mtime" in d or type(kind) is not str or kind not in _KIND_SET or type(path) is not str or len(path) > 2048 or path[:1] != "/":
        return None  # 2048 characters are at most 8192 bytes: the checked reading's limit needs no count
    rev, mode, size, rdev, mtime = get("rev", 0), get("mode", 0), get("size", 0), get("rdev", 0), get("mtime", 0.0)
    if not (type(rev) is int and type(mode) is int and type(size) is int and type(rdev) is int
            and 0 <= rev <= INT64_MAX and 0 <= mode <= 0o177777 and 0 <= size <= INT64_MAX and 0 <= rdev <= INT64_MAX):
        return None
    if type(mtime) is int and -MTIME_MAX <= mtime <= MTIME_MAX:
        mtime = float(mtime)  # exact: MTIME_MAX is far below 2**53
    elif type(mtime) is not float or not -MTIME_MAX <= mtime <= MTIME_MAX:  # NaN fails the comparison too
        return None
    h, target, raw = get("hash"), get("target"), get("chunks")
    if h is not None and (type(h) is not str or len(h) != 64 or h.translate(_NOT_HEX)):
        return None  # 64 characters, none left once the hex digits are deleted: exactly HASH_RE
    if target is not None and (type(target) is not str or len(target) > 1024):
        return None
    if raw is None:
        chunks: tuple[tuple[str, int], ...] = ()
    elif type(raw) is list:
        for item in raw:
            if type(item) is not list or len(item) != 2:
                return None
            ch, n = item
            if type(n) is not int or not 0 <= n <= INT64_MAX or type(ch) is not str:
                return None
            if ch != h and (len(ch) != 64 or ch.translate(_NOT_HEX)):  # a one-chunk file's chunk is its hash
                return None
        chunks = tuple([(ch, n) for ch, n in raw])
    else:
        return None
    return Change(path, kind, rev, mode, mtime, size, h, chunks, target, rdev)  # type: ignore[arg-type]  # kind: one of _KIND_SET


def change_from_wire_checked(d: Any, *, id: RequestId | None = None, where: str = "changes") -> Change:
    """Validate and build a `Change` field by field (fields `cursor`, `data`, `author` are ignored here):
    the reference reading, and the one that words every refusal."""
    if not isinstance(d, dict):
        raise _fail(where, "each entry must be an object", id)
    f = _Fields(d, id)
    kind = f.str("kind")
    if kind not in _KINDS:
        raise _fail("kind", f"must be one of {', '.join(_KINDS)}", id)
    raw_chunks = d.get("chunks") or []
    if not isinstance(raw_chunks, list):
        raise _fail("chunks", "expected a list of [hash, size] pairs", id)
    chunks: list[tuple[str, int]] = []
    for item in raw_chunks:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not isinstance(item[0], str)
            or not HASH_RE.match(item[0])
            or isinstance(item[1], bool)
            or not isinstance(item[1], int)
            or not 0 <= item[1] <= INT64_MAX
        ):
            raise _fail("chunks", f"expected a list of [hash, size] pairs, each size in [0, {INT64_MAX}]", id)
        chunks.append((item[0], item[1]))
    h = f.str("hash", required=False, max_len=64)
    if h is not None and not HASH_RE.match(h):
        raise _fail("hash", "expected a 64-char lowercase hex BLAKE3 hash", id)
    set_mtime = f.bool("set_mtime")
    if set_mtime and kind not in ("dir", "file"):
        raise _fail("set_mtime", "only a directory or file entry carries it (a pushed symlink or node sets its mtime anyway)", id)
    return (TimedChange if set_mtime else Change)(
        path=f.path("path"),
        kind=kind,
        rev=f.int("rev", required=False, default=0),
        mode=f.int("mode", required=False, default=0, hi=0o177777),
        mtime=f.mtime("mtime", required=False, default=0.0),
        size=f.int("size", required=False, default=0),
        hash=h,
        chunks=tuple(chunks),
        target=f.str("target", required=False),
        rdev=f.int("rdev", required=False, default=0),
    )


def entry_data(d: Mapping[str, Any]) -> bytes | None:
    """The inlined content of a wire change entry, if the server inlined it.

    Raises ValueError when `data` is not strict base64 (RFC 4648, padded)."""
    raw = d.get("data")
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ValueError("data: expected a base64 string")
    return pybase64.b64decode(raw, validate=True)


def conflict_to_wire(c: Conflict) -> dict[str, Any]:
    return _pick(c, _CONFLICT_FIELDS)


def conflict_from_wire(d: Mapping[str, Any]) -> Conflict:
    return Conflict(
        path=d["path"],
        local_kind=d.get("local_kind"),
        local_rev=int(d["local_rev"]),
        local_hash=d.get("local_hash"),
        remote_kind=d["remote_kind"],
        remote_rev=int(d["remote_rev"]),
        remote_hash=d.get("remote_hash"),
        reason=d["reason"],
    )


def apply_result_to_wire(r: ApplyResult) -> dict[str, Any]:
    return {
        "applied": list(r.applied),
        "unchanged": list(r.unchanged),
        "conflicts": [conflict_to_wire(c) for c in r.conflicts],
        "rev": r.rev,
    }


def apply_result_from_wire(d: Mapping[str, Any]) -> ApplyResult:
    return ApplyResult(
        applied=list(d.get("applied", [])),
        unchanged=list(d.get("unchanged", [])),
        conflicts=[conflict_from_wire(c) for c in d.get("conflicts", [])],
        rev=int(d.get("rev", 0)),
    )


def parse_base(v: Any, *, id: RequestId | None = None) -> Cursor | dict[str, int] | None:
    """`base` of a push: null, a cursor string, or an object `{path: rev}`."""
    if v is None:
        return None
    if isinstance(v, dict):
        out: dict[str, int] = {}
        for k, rev in v.items():
            if not k.startswith("/") or isinstance(rev, bool) or not isinstance(rev, int) or not 0 <= rev <= INT64_MAX:
                raise _fail("base", f"expected {{absolute path: revision in [0, {INT64_MAX}]}} pairs", id)
            out[k] = rev
        return out
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise _fail("base", "expected null, a cursor or {absolute path: revision}", id)
    return check_cursor("base", v, id)


def base_to_wire(base: Cursor | Mapping[str, int] | None) -> Any:
    if base is None:
        return None
    if isinstance(base, Cursor):
        return str(base)
    return dict(base)
