"""Path globs and the path filter of a subscription.

Kept in the wire layer (not in the server) so a client can apply exactly the
filter the server applies to what it already holds.
"""

from __future__ import annotations

import re
from typing import Iterable



def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """Compile a path glob: `*` and `?` stay inside one component, `**` spans any.

    `**/` also matches zero directories, so `**/*.md` matches `a.md` and `x/y/a.md`.
    `[...]` is a character class as in fnmatch. The match is against the whole
    relative path (no leading `/`).
    """
    i, n, out = 0, len(pattern), []
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                    out.append("(?:.*/)?")
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i + 2)
            if j == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : j]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


class PathFilter:
    """The path filter of a subscription: under `prefix`, matching any glob, not ignored.

    `ignore` takes gitignore-style patterns, exactly as `Workspace.changes` does.

    Kept here (not in the server) so a client can apply exactly the same filter
    to what it already holds.
    """

    def __init__(self, prefix: str = "/", globs: Iterable[str] | None = None, ignore: Iterable[str] = ()):
        self.prefix = prefix.rstrip("/") or "/"
        from vfs.changelog import compile_ignore, is_ignored  # the store's own matcher, so both agree

        self._is_ignored = is_ignored

        self.globs = [glob_to_regex(g) for g in globs] if globs else None
        self.ignore = compile_ignore(ignore)

    def under_prefix(self, path: str) -> bool:
        return self.prefix == "/" or path == self.prefix or path.startswith(self.prefix + "/")

    def relative(self, path: str) -> str:
        return path[1:] if self.prefix == "/" else path[len(self.prefix) + 1 :]

    def __call__(self, path: str, kind: str = "file") -> bool:
        """Does the entry at `path` pass? Give `kind` ("dir", "delete", ...) for change entries:
        directory patterns (`build/`) also drop a directory or a tombstone of that name, as the store does."""
        if not self.under_prefix(path):
            return False
        if self.ignore is not None and self._is_ignored(self.ignore, path, kind):
            return False
        if self.globs is None:
            return True
        rel = self.relative(path)
        return any(g.match(rel) for g in self.globs)
