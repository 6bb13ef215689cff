"""vfs.wire.globs: globs and the subscription path filter."""

from __future__ import annotations

import pytest

from vfs import wire as p


@pytest.mark.parametrize(
    ("glob", "yes", "no"),
    [
        ("*.md", ["a.md"], ["d/a.md", "a.mdx"]),
        ("**/*.md", ["a.md", "x/y/a.md"], ["a.txt"]),
        ("src/**", ["src/a", "src/a/b"], ["srcx/a"]),
        ("a?c", ["abc"], ["a/c", "abbc"]),
        ("[ab]*", ["apple", "b"], ["cat"]),
        ("[!ab]*", ["cat"], ["apple"]),
    ],
)
def test_globs(glob: str, yes: list[str], no: list[str]) -> None:
    rx = p.glob_to_regex(glob)
    assert all(rx.match(x) for x in yes)
    assert not any(rx.match(x) for x in no)


def test_path_filter() -> None:
    f = p.PathFilter("/docs", ["**/*.md"], ["drafts/"])
    assert f("/docs/a.md") and f("/docs/x/b.md")
    assert not f("/docs/a.txt") and not f("/other/a.md") and not f("/docsx/a.md")
    assert not f("/docs/drafts/a.md")
    # a directory pattern drops the directory itself and its tombstone, not a file of that name
    assert not f("/docs/drafts", "dir") and not f("/docs/drafts", "delete")
    g = p.PathFilter("/", None, ["build/"])
    assert g("/build", "file") and not g("/build", "dir") and not g("/build", "delete")
    assert p.PathFilter("/")("/anything")


@pytest.mark.parametrize(
    ("glob", "yes", "no"),
    [
        ("[]a]", ["]", "a"], ["b"]),  # a `]` right after `[` belongs to the class, as in fnmatch
        ("[!]a]", ["b"], ["]", "a"]),
        ("[^a]", ["^", "a"], ["b"]),  # `^` is literal, `!` negates
        ("a[", ["a["], ["a"]),  # an unclosed `[` is literal
        ("*", ["line\nbreak"], ["a/b"]),  # names may hold newlines
    ],
)
def test_globs_follow_fnmatch_classes(glob: str, yes: list[str], no: list[str]) -> None:
    rx = p.glob_to_regex(glob)
    assert all(rx.match(x) for x in yes), glob
    assert not any(rx.match(x) for x in no), glob


def test_ignore_matcher_directory_patterns_cover_tombstones() -> None:
    m = p.IgnoreMatcher(["build/", "*.tmp", "!keep.tmp", "", "   "])
    assert m.patterns == ("build/", "*.tmp", "!keep.tmp")
    assert m.ignores("/build", "dir") and m.ignores("/build", "delete") and m.ignores("/build", None)
    assert not m.ignores("/build", "file")
    assert m.ignores("/x/a.tmp", "file") and not m.ignores("/keep.tmp", "file")
    assert not m.ignores("/", "dir")
    assert not p.IgnoreMatcher() and not p.IgnoreMatcher().ignores("/a.tmp", "file")
