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

from functools import lru_cache
from typing import TYPE_CHECKING, Any, Iterable

import re2

from vfs.wire.limits import MAX_PATTERN

if TYPE_CHECKING:
    import pathspec

# Kinds for which a directory pattern (`build/`) also matches: a directory,
# and a tombstone or an unknown kind, since a deleted path no longer says
# what it was.
_MAYBE_DIR = frozenset({"dir", "delete", None})


def _options(*, ignore_case: bool = False) -> re2.Options:
    """RE2 options: UTF-8 text, `.` matches newlines (names may hold them), no parse errors on stderr."""
    options = re2.Options()
    options.dot_nl = True
    options.case_sensitive = not ignore_case
    options.log_errors = False
    return options


def _literal(char: str) -> str:
    """One character as an RE2 literal, whatever it is (RE2 reads `\\x{...}` everywhere, classes included)."""
    return char if char.isalnum() else f"\\x{{{ord(char):x}}}"


def _check_text(what: str, text: str) -> None:
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(f"{what} {text!r} is not valid UTF-8") from None
    if size > MAX_PATTERN:
        raise ValueError(f"{what} longer than {MAX_PATTERN} bytes")


@lru_cache(maxsize=256)
def glob_to_regex(pattern: str) -> Any:
    """Compile a path glob, matched (`.match`) against a whole relative path (no leading `/`).

    `**/` also matches zero directories, so `**/*.md` matches `a.md` and `x/y/a.md`.
    The result is an RE2 pattern: matching runs in time linear in the path
    whatever the glob (`*a*a*a*a*b` cannot backtrack). Every glob translates;
    ValueError only for text that is not UTF-8 or longer than `MAX_PATTERN`.
    """
    _check_text("glob", pattern)
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
            out.append(_literal(pattern[i]))
            i += 1
    try:
        return re2.compile("(?:" + "".join(out) + ")\\z", _options())
    except re2.error as e:  # e.g. past RE2's program size: the glob is refused, never a 500
        raise ValueError(f"glob {pattern[:80]!r} is too complex: {_reason(e)}") from None


def _character_class(pattern: str, start: int, out: list[str]) -> int:
    """Translate the `[...]` at `start` as fnmatch does; return the index after it.

    A `]` right after `[` or `[!` belongs to the class; an unclosed `[` is
    literal; `a-z` is a range and an empty range (`z-a`) matches nothing.
    Every member is written as a literal, so nothing in a class is special.
    """
    j = start + 1
    negate = j < len(pattern) and pattern[j] == "!"
    if negate:
        j += 1
    if j < len(pattern) and pattern[j] == "]":
        j += 1
    end = pattern.find("]", j)
    if end == -1:
        out.append(_literal("["))
        return start + 1
    body = pattern[start + (2 if negate else 1) : end]
    members: list[str] = []
    k = 0
    while k < len(body):
        if k + 2 < len(body) and body[k + 1] == "-":
            low, high = body[k], body[k + 2]
            if low <= high:
                members.append(f"{_literal(low)}-{_literal(high)}")
            k += 3
        else:
            members.append(_literal(body[k]))
            k += 1
    if not members:  # only empty ranges: matches no character (negated: any character)
        out.append("[^/]" if negate else "[^\\x00-\\x{10ffff}]")
    else:
        out.append(("[^" if negate else "[") + "".join(members) + "]")
    return end + 1


def check_glob(pattern: str) -> str:
    """`pattern` if it is a glob the matcher takes, else ValueError saying why."""
    glob_to_regex(pattern)
    return pattern


def check_ignore(pattern: str) -> str:
    """`pattern` if pathspec accepts it as a gitignore line, else ValueError saying why."""
    _check_text("ignore pattern", pattern)
    try:
        _gitignore([pattern])
    except Exception as e:  # noqa: BLE001 - pathspec raises several kinds; each means "not a pattern"
        raise ValueError(f"ignore pattern {pattern!r} is not a gitignore pattern: {e}") from None
    return pattern


def user_regex(pattern: str, *, regex: bool, ignore_case: bool = False) -> Any:
    """The matcher of a user's search pattern (`grep`): RE2, linear in the text searched.

    `regex=False` matches `pattern` literally. ValueError names what RE2
    cannot compile (syntax it does not support: lookaround, backreferences).
    """
    _check_text("pattern", pattern)
    source = pattern if regex else "".join(_literal(c) for c in pattern)
    try:
        return re2.compile(source, _options(ignore_case=ignore_case))
    except re2.error as e:
        raise ValueError(f"pattern {pattern[:200]!r} is not a regular expression RE2 supports: {_reason(e)}") from None


def _reason(error: Exception) -> str:
    """RE2's own words for a compile error (it reports them as bytes)."""
    arg = error.args[0] if error.args else ""
    return arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)


def _gitignore(patterns: Iterable[str]) -> pathspec.GitIgnoreSpec:
    """gitignore lines matched by pathspec's RE2 backend: linear time, like the globs. pathspec is
    imported here, on first use: ~12 ms of every client start-up otherwise, most never match one."""
    import pathspec

    return pathspec.GitIgnoreSpec.from_lines(patterns, backend="re2")


def _utf8(text: str) -> str:
    """`text` as RE2 can take it: a name read from a local disk may hold lone surrogates."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


class IgnoreMatcher:
    """gitignore-style patterns (`*.tmp`, `build/`, `!keep.tmp`) over workspace paths (`/a/b`)."""

    __slots__ = ("patterns", "_spec")

    def __init__(self, patterns: Iterable[str] = ()):
        self.patterns: tuple[str, ...] = tuple(p for p in patterns if p and p.strip())
        self._spec = _gitignore(self.patterns) if self.patterns else None

    def __bool__(self) -> bool:
        return self._spec is not None

    def ignores(self, path: str, kind: str | None = None) -> bool:
        """Does a pattern exclude `path`? `kind` is "file", "symlink", "dir", "delete" or None.

        A directory pattern (`build/`) matches a directory and, since a tombstone
        no longer knows its kind, a deleted or unknown path of that name too.
        """
        if self._spec is None or path == "/":
            return False
        relative = _utf8(path).lstrip("/")
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
        rel = _utf8(self.relative(path))
        return any(g.match(rel) for g in self.globs)
