"""The one glob and ignore matcher, shared by the store, the server and the clients.

Two kinds of pattern travel on the wire and both are matched here, so every
side agrees on what a pattern selects:

- **globs** (`find`, `grep --include`, a subscription's `globs`): `*` and `?`
  stay inside one name, `**` crosses directories, `[...]` is a class as in
  fnmatch. Names may hold any character but `/`, newlines included.
- **ignore patterns** (`changes(ignore=...)`, a subscription's `ignore`, a
  replica's `.wsfsignore`): gitignore-style, matched by pathspec.

`PathFilter` combines a prefix, globs and ignore patterns into the filter of
a subscription, here rather than in the server so a client can apply exactly
the filter the server applies to what it already holds.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterable

import pathspec

# Kinds for which a directory pattern (`build/`) also matches: a directory,
# and a tombstone or an unknown kind, since a deleted path no longer says
# what it was.
_MAYBE_DIR = frozenset({"dir", "delete", None})


@lru_cache(maxsize=256)
def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """Compile a path glob, matched against a whole relative path (no leading `/`).

    `**/` also matches zero directories, so `**/*.md` matches `a.md` and `x/y/a.md`.
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            i = _character_class(pattern, i, out)
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def _character_class(pattern: str, start: int, out: list[str]) -> int:
    """Translate the `[...]` at `start` as fnmatch does; return the index after it.

    A `]` right after `[` or `[!` belongs to the class; an unclosed `[` is literal.
    """
    j = start + 1
    if j < len(pattern) and pattern[j] == "!":
        j += 1
    if j < len(pattern) and pattern[j] == "]":
        j += 1
    end = pattern.find("]", j)
    if end == -1:
        out.append(re.escape("["))
        return start + 1
    body = pattern[start + 1 : end].replace("\\", "\\\\")
    if body.startswith("!"):
        body = "^" + body[1:]
    elif body.startswith("^"):
        body = "\\" + body
    out.append("[" + body + "]")
    return end + 1


class IgnoreMatcher:
    """gitignore-style patterns (`*.tmp`, `build/`, `!keep.tmp`) over workspace paths (`/a/b`)."""

    __slots__ = ("patterns", "_spec")

    def __init__(self, patterns: Iterable[str] = ()):
        self.patterns: tuple[str, ...] = tuple(p for p in patterns if p and p.strip())
        self._spec = pathspec.GitIgnoreSpec.from_lines(self.patterns) if self.patterns else None

    def __bool__(self) -> bool:
        return self._spec is not None

    def ignores(self, path: str, kind: str | None = None) -> bool:
        """Does a pattern exclude `path`? `kind` is "file", "symlink", "dir", "delete" or None.

        A directory pattern (`build/`) matches a directory and, since a tombstone
        no longer knows its kind, a deleted or unknown path of that name too.
        """
        if self._spec is None or path == "/":
            return False
        relative = path.lstrip("/")
        if self._spec.match_file(relative):
            return True
        return kind in _MAYBE_DIR and self._spec.match_file(relative + "/")


class PathFilter:
    """The path filter of a subscription: under `prefix`, matching any glob, not ignored."""

    def __init__(self, prefix: str = "/", globs: Iterable[str] | None = None, ignore: Iterable[str] = ()):
        self.prefix = prefix.rstrip("/") or "/"
        self.globs = [glob_to_regex(g) for g in globs] if globs else None
        self.ignore = IgnoreMatcher(ignore)

    def under_prefix(self, path: str) -> bool:
        return self.prefix == "/" or path == self.prefix or path.startswith(self.prefix + "/")

    def relative(self, path: str) -> str:
        return path[1:] if self.prefix == "/" else path[len(self.prefix) + 1 :]

    def __call__(self, path: str, kind: str = "file") -> bool:
        """Does the entry at `path` pass? Give `kind` ("dir", "delete", ...) for change entries."""
        if not self.under_prefix(path):
            return False
        if self.ignore.ignores(path, kind):
            return False
        if self.globs is None:
            return True
        rel = self.relative(path)
        return any(g.match(rel) for g in self.globs)
