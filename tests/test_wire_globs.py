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
