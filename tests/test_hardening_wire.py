"""Every value that reaches SQLite, `os.utime`, pathspec or a regex engine is checked by the wire.

One rule per field type (docs/protocol.md, "Field limits"): integers within
SQLite's int64 and the protocol's own bounds, mtimes finite and within
[-2^33, 2^33] seconds, ignore patterns that pathspec accepts, globs that
always translate, regexes that RE2 compiles. Each test walks up to a limit
and one past it.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import hypothesis_profiles  # noqa: F401
from vfs import wire as p
from vfs.wire import globs
from vfs.wire.http import parse_changes_query, parse_grep_query, parse_mtime, parse_op, parse_query_int

INT64_MAX = 2**63 - 1
HASH = "ab" * 32


def refused(fn, *args, field: str | None = None, **kwargs) -> p.ProtocolError:
    with pytest.raises(p.ProtocolError) as info:
        fn(*args, **kwargs)
    err = info.value
    assert 400 <= err.status < 500, (err.code, err.message)
    assert err.message
    if field is not None:
        assert err.extra.get("field") == field, (err.extra, err.message)
    return err


# ---------------------------------------------------------------- integers and cursors


@pytest.mark.parametrize("after", [str(INT64_MAX + 1), "99999999999999999999999", f"{INT64_MAX + 1}:/a",
                                   INT64_MAX + 1, 10**30])
def test_subscribe_cursor_past_int64_is_refused(after) -> None:
    refused(p.Subscribe.from_wire, {"type": "subscribe", "id": 1, "after": after}, field="after")


def test_subscribe_cursor_at_int64_is_accepted() -> None:
    msg = p.Subscribe.from_wire({"type": "subscribe", "id": 1, "after": str(INT64_MAX)})
    assert msg.after.rev == INT64_MAX


@pytest.mark.parametrize("value, ok", [(INT64_MAX, True), (INT64_MAX + 1, False), (2**64, False), (-1, False)])
def test_change_integers_at_and_past_int64(value, ok) -> None:
    for name in ("size", "rev"):
        entry = {"path": "/a", "kind": "file", name: value}
        if ok:
            assert getattr(p.change_from_wire(entry), name) == value
        else:
            refused(p.change_from_wire, entry, field=name)
    chunk_entry = {"path": "/a", "kind": "file", "chunks": [[HASH, value]]}
    if ok:
        assert p.change_from_wire(chunk_entry).chunks == ((HASH, value),)
    else:
        refused(p.change_from_wire, chunk_entry, field="chunks")


def test_push_base_revisions_past_int64() -> None:
    assert p.parse_base({"/a": INT64_MAX}) == {"/a": INT64_MAX}
    refused(p.parse_base, {"/a": INT64_MAX + 1}, field="base")
    refused(p.parse_base, str(INT64_MAX + 1), field="base")


@pytest.mark.parametrize("raw", ["", None, "0", str(INT64_MAX)])
def test_changes_query_cursor_accepted(raw) -> None:
    after, ignore = parse_changes_query(raw, [])
    assert after.rev == (int(raw) if raw else 0) and ignore == []


@pytest.mark.parametrize("raw", [str(INT64_MAX + 1), "1000000000000000000000000000000", "-1", "x", "1:rel"])
def test_changes_query_cursor_refused(raw) -> None:
    refused(parse_changes_query, raw, [], field="after")


def test_query_ints_at_and_past_their_bounds() -> None:
    assert parse_query_int("offset", str(INT64_MAX)) == INT64_MAX
    err = refused(parse_query_int, "offset", str(INT64_MAX + 1))
    assert err.extra.get("field") == "offset"
    refused(parse_query_int, "offset", "1" * 5000, field="offset")  # no 4300-digit int() ValueError leak


def test_op_ints_past_int64() -> None:
    assert parse_op({"op": "truncate", "path": "/a", "size": INT64_MAX}).args["size"] == INT64_MAX
    refused(parse_op, {"op": "truncate", "path": "/a", "size": INT64_MAX + 1}, field="size")
    refused(parse_op, {"op": "restore", "path": "/a", "rev": 10**30}, field="rev")


# ---------------------------------------------------------------- mtimes

MTIME_MAX = p.MTIME_MAX


@pytest.mark.parametrize("mtime", [0, 1.5, -1.5, MTIME_MAX, -MTIME_MAX, 1_700_000_000.123456])
def test_mtimes_inside_the_range_are_accepted(mtime) -> None:
    assert p.change_from_wire({"path": "/a", "kind": "file", "mtime": mtime}).mtime == mtime
    assert parse_op({"op": "utime", "path": "/a", "mtime": mtime}).args["mtime"] == mtime
    assert parse_mtime(repr(float(mtime))) == mtime


@pytest.mark.parametrize("mtime", [1e308, -1e308, 1e300, -1e300, MTIME_MAX + 1, -MTIME_MAX - 1,
                                   math.inf, -math.inf, math.nan, 10**400])
def test_mtimes_outside_the_range_are_refused(mtime) -> None:
    refused(p.change_from_wire, {"path": "/a", "kind": "file", "mtime": mtime}, field="mtime")
    refused(parse_op, {"op": "utime", "path": "/a", "mtime": mtime}, field="mtime")


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", "1e400", "1e300", "-1e300", "infinity", "x"])
def test_put_mtime_query_refused(raw) -> None:
    refused(parse_mtime, raw, field="mtime")


# ---------------------------------------------------------------- patterns


@pytest.mark.parametrize("pattern", ["\\", "foo\\", "a/**\\"])
def test_ignore_patterns_pathspec_rejects_are_refused(pattern) -> None:
    refused(p.Subscribe.from_wire, {"type": "subscribe", "id": 1, "ignore": [pattern]}, field="ignore")
    refused(parse_changes_query, None, [pattern], field="ignore")


def test_ignore_patterns_pathspec_accepts_pass() -> None:
    good = ["*.tmp", "build/", "!keep.tmp", "a/**/b", "\\#x", "[ab]x", "[", "#comment", ""]
    msg = p.Subscribe.from_wire({"type": "subscribe", "id": 1, "ignore": good})
    assert msg.ignore == tuple(good)


@given(st.text(max_size=20))
def test_any_ignore_pattern_is_either_refused_or_matches_without_error(pattern) -> None:
    try:
        p.Subscribe.from_wire({"type": "subscribe", "id": 1, "ignore": [pattern]})
    except p.ProtocolError as e:
        assert e.extra.get("field") == "ignore" and e.status == 422
        return
    p.PathFilter("/", None, [pattern])("/some/path.txt", "file")


@given(st.text(max_size=24))
def test_every_glob_translates_and_matches(pattern) -> None:
    try:
        regex = globs.glob_to_regex(pattern)
    except ValueError:  # only what the wire refuses (lone surrogates)
        refused(p.Subscribe.from_wire, {"type": "subscribe", "id": 1, "globs": [pattern]}, field="globs")
        return
    regex.match("a/b/c.txt")
    p.Subscribe.from_wire({"type": "subscribe", "id": 1, "globs": [pattern]})


@pytest.mark.parametrize("pattern, path, hit", [
    ("*.md", "a.md", True), ("*.md", "d/a.md", False), ("**/*.md", "d/e/a.md", True), ("**/*.md", "a.md", True),
    ("a?c", "abc", True), ("a?c", "a/c", False), ("[!a]x", "bx", True), ("[!a]x", "ax", False),
    ("[]]x", "]x", True), ("[z-a]x", "mx", False), ("[a-c-e]", "-", True), ("x[", "x[", True),
    ("a\\b", "a\\b", True), ("(a+)+$", "(a+)+$", True), ("(a+)+$", "aaa", False), ("é*", "été", True),
    ("line\nbreak", "line\nbreak", True), ("[[:alpha:]]", ":]", True), ("[[:alpha:]]", ":", False), ("[^a]", "^", True),
])
def test_glob_semantics(pattern, path, hit) -> None:
    assert bool(globs.glob_to_regex(pattern).match(path)) is hit


def test_globs_and_ignore_rules_run_on_a_linear_time_engine() -> None:
    """RE2 (and pathspec's re2 backend): no pattern can make a match backtrack."""
    assert type(globs.glob_to_regex("*a*a*a*a*a*a*b")).__module__.startswith("re2")
    spec = globs.IgnoreMatcher(["*a*a*a*a*a*a*b"])._spec
    assert type(spec._backend).__module__.startswith("pathspec._backends.re2")
    name = "a" * 3000
    assert not globs.glob_to_regex("*a*a*a*a*a*a*a*a*b").match(name)
    assert not globs.IgnoreMatcher(["*a*a*a*a*a*a*a*a*b"]).ignores("/" + name)


@pytest.mark.parametrize("pattern, regex", [("(", True), ("(?=x)", True), ("(a)\\1", True), ("a{99999}", True),
                                            ("\udc80", False), ("", False), ("x" * 5000, False)])
def test_grep_patterns_that_cannot_run_are_refused(pattern, regex) -> None:
    err = refused(parse_grep_query, {"pattern": pattern, "regex": "1" if regex else "0"}, field="pattern")
    assert err.status in (400, 422)


def test_grep_query_builds_a_linear_time_matcher() -> None:
    q = parse_grep_query({"pattern": "(a+)+$", "regex": "1", "ignore_case": "1", "include": "*.txt",
                          "context": "2", "limit": "5"})
    assert q.kwargs["regex"] and q.kwargs["ignore_case"] and q.kwargs["context"] == 2 and q.kwargs["limit"] == 5
    matcher = globs.user_regex(q.pattern, regex=True, ignore_case=True)
    assert type(matcher).__module__.startswith("re2")
    assert not matcher.search("a" * 5000 + "b")
    assert matcher.search("xAAA")
    refused(parse_grep_query, {"pattern": "x", "include": "\udc80"}, field="include")
    refused(parse_grep_query, {"pattern": "x", "context": "101"}, field="context")
