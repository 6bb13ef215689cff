"""Which paths a replica leaves alone, both ways.

The rules are the wire's one ignore matcher (`vfs.wire.IgnoreMatcher`, the
same the store uses for `changes(ignore=...)`) over the replica's options
plus the `.wsfsignore` file at the top of the replica. The patterns are also
sent to the server with `subscribe`, so ignored paths are filtered at the
source and the cursor still moves past them.
"""

from __future__ import annotations

import os
import stat
from typing import Iterable

from vfs.wire import MAX_GLOBS, MAX_IGNORE_PATTERN, IgnoreMatcher

IGNORE_FILE = ".wsfsignore"
ALWAYS = (".wsfs/", ".wsfs-tmp-*", ".wsfs-part-*")  # the replica's own state and in-flight files


class IgnoreRules:
    def __init__(self, root: str, patterns: Iterable[str] = ()):
        self.root = root
        self.extra = [p for p in patterns if p and p.strip()]
        self.matcher = IgnoreMatcher()
        self.only_always = False
        self.reload()

    @property
    def patterns(self) -> list[str]:
        return list(self.matcher.patterns)

    def reload(self) -> bool:
        """Re-read `.wsfsignore`; True when the rules changed."""
        matcher = IgnoreMatcher(list(ALWAYS) + self.extra + self._file_lines())
        changed = matcher.patterns != self.matcher.patterns
        self.matcher = matcher
        self.only_always = list(matcher.patterns) == list(ALWAYS)
        return changed

    def _file_lines(self) -> list[str]:
        path = os.path.join(self.root, IGNORE_FILE)
        try:  # a regular file only: never through a symlink, never blocked on a FIFO put there
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return []
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return []
            with open(fd, encoding="utf-8", errors="replace", closefd=False) as f:
                return [line.rstrip("\n") for line in f if line.strip() and not line.startswith("#")]
        except OSError:
            return []
        finally:
            os.close(fd)

    def wire_patterns(self) -> list[str]:
        """The patterns to send with `subscribe` (as many and as long as the wire allows)."""
        return [p for p in self.matcher.patterns if len(p.encode()) <= MAX_IGNORE_PATTERN][:MAX_GLOBS]

    def ignores(self, path: str, kind: str | None) -> bool:
        """Is `path` (a workspace path, `/a/b`) of `kind` ("file", "dir", "delete", ...) ignored?

        With only the built-in rules (the common case, asked for every entry of
        every batch and scan), a path none of whose names starts with `.wsfs`
        cannot match them: answered without the matcher.
        """
        if self.only_always and ".wsfs" not in path:
            return False
        return self.matcher.ignores(path, kind)
