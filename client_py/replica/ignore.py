"""Which paths a replica leaves alone, both ways.

gitignore-style patterns (pathspec's `GitIgnoreSpec`, the same matcher the
store uses for `changes(ignore=...)`), from the replica's options plus the
`.wsfsignore` file at the top of the replica. The patterns are also sent to
the server with `subscribe`, so ignored paths are filtered at the source
and the cursor still moves past them.
"""

from __future__ import annotations

import os
from typing import Iterable

import pathspec

IGNORE_FILE = ".wsfsignore"
ALWAYS = (".wsfs/", ".wsfs-tmp-*", ".wsfs-part-*")  # the replica's own state and in-flight files


class IgnoreRules:
    def __init__(self, root: str, patterns: Iterable[str] = ()):
        self.root = root
        self.extra = [p for p in patterns if p and p.strip()]
        self.reload()

    def reload(self) -> bool:
        """Re-read `.wsfsignore`; True when the rules changed."""
        lines = list(ALWAYS) + self.extra + self._file_lines()
        changed = getattr(self, "patterns", None) != lines
        self.patterns = lines
        self.spec = pathspec.GitIgnoreSpec.from_lines(lines)
        return changed

    def _file_lines(self) -> list[str]:
        path = os.path.join(self.root, IGNORE_FILE)
        try:
            if os.path.islink(path):
                return []
            with open(path, encoding="utf-8", errors="replace") as f:
                return [line.rstrip("\n") for line in f if line.strip() and not line.startswith("#")]
        except OSError:
            return []

    def wire_patterns(self) -> list[str]:
        """The patterns to send with `subscribe` (at most 64, each at most 255 bytes)."""
        return [p for p in self.patterns if len(p.encode()) <= 255][:64]

    def ignored(self, path: str, is_dir: bool = False) -> bool:
        """`path` is a workspace path (`/a/b`)."""
        if path == "/":
            return False
        rel = path[1:] + ("/" if is_dir else "")
        return self.spec.match_file(rel)

    def ignores_entry(self, path: str, kind: str) -> bool:
        """Is an incoming change of `kind` at `path` ignored?

        A tombstone does not say what it was, so a deletion is also tried as a
        directory: `build/` must cover a deleted build directory too.
        """
        return self.ignored(path, kind == "dir") or (kind == "delete" and self.ignored(path, True))
