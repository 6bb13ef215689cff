"""Tree queries: walk, find, ls, grep, du.

Each loads the subtree's names with one recursive query and works in
memory, instead of one query per directory.

    workspace  ->  search  ->  content, db
"""

from __future__ import annotations

import errno
from collections import defaultdict, deque
from collections.abc import Iterator
from typing import Any

from vfs.chunks import unpack
from vfs.content import Content
from vfs.db import Db
from vfs.errors import fs_error
from vfs.paths import join
from vfs.schema import KIND_DIR, KIND_FILE, KIND_NAMES, KIND_SYMLINK
from vfs.types import GrepMatch
from vfs.wire.globs import glob_to_regex, user_regex

_BINARY_PROBE = 8192


class Search:
    """Read-only queries over a whole subtree of one store."""

    __slots__ = ("_db", "_content")

    def __init__(self, db: Db, content: Content):
        self._db = db
        self._content = content

    def _tree(self, path: str) -> tuple[str, int, dict[int, list[tuple[str, int, int]]]]:
        """(real path, root ino, children by parent ino sorted by name) of a directory."""
        found = self._db.existing(path, follow=True)
        if found.node.kind != KIND_DIR:
            raise fs_error(errno.ENOTDIR, path)
        rows = self._db.conn.execute(
            """
            WITH RECURSIVE sub(parent, name, ino, kind) AS (
                SELECT d.parent, d.name, d.ino, n.kind FROM dirents d JOIN nodes n ON n.ino = d.ino WHERE d.parent = ?
                UNION ALL
                SELECT d.parent, d.name, d.ino, n.kind
                FROM sub JOIN dirents d ON d.parent = sub.ino JOIN nodes n ON n.ino = d.ino
                WHERE sub.kind = ?
            )
            SELECT parent, name, ino, kind FROM sub
            """,
            (found.node.ino, KIND_DIR),
        ).fetchall()
        children: dict[int, list[tuple[str, int, int]]] = defaultdict(list)
        for parent, name, ino, kind in rows:
            children[parent].append((name, ino, kind))
        for entries in children.values():
            entries.sort(key=lambda e: e[0].encode("utf-8", "surrogatepass"))
        return found.real, found.node.ino, children

    def _depth_first(self, path: str) -> Iterator[tuple[str, str, int, int]]:
        """(absolute path, relative path, ino, kind) depth-first in name order, not into symlinks."""
        real, root, children = self._tree(path)

        def entries_of(dir_ino: int, dir_path: str, dir_rel: str) -> Iterator[tuple[str, str, int, int]]:
            for name, ino, kind in children.get(dir_ino, []):
                yield join(dir_path, name), f"{dir_rel}/{name}" if dir_rel else name, ino, kind

        stack = [entries_of(root, real, "")]
        while stack:
            item = next(stack[-1], None)
            if item is None:
                stack.pop()
                continue
            yield item
            if item[3] == KIND_DIR:
                stack.append(entries_of(item[2], item[0], item[1]))

    def find(
        self, path: str = "/", pattern: str | None = None, *, kind: str | None = None, limit: int | None = None
    ) -> list[str]:
        """Paths below `path`, depth-first in name order, that match `pattern` and `kind`.

        The glob rule (docs/protocol.md, the same over HTTP and in the CLI): a
        pattern without `/` matches the name at any depth, as `find -name`
        does (`*.md` finds `a.md` and `x/y/b.md`); a pattern with `/` matches
        the path relative to `path` (`docs/*.md`; `**` crosses directories).
        """
        regex = glob_to_regex(pattern) if pattern else None
        by_name = pattern is not None and "/" not in pattern
        results: list[str] = []
        for absolute, rel, _, node_kind in self._depth_first(path):
            if kind is not None and KIND_NAMES[node_kind] != kind:
                continue
            if regex is not None and not regex.match(rel.rsplit("/", 1)[-1] if by_name else rel):
                continue
            results.append(absolute)
            if limit is not None and len(results) >= limit:
                break
        return results

    def walk(self, path: str = "/") -> Iterator[tuple[str, list[str], list[str]]]:
        """Like os.walk (top-down, no following of symlinked directories)."""
        try:
            real, root, children = self._tree(path)
        except OSError:
            return
        pending = [(real, root)]
        while pending:
            dir_path, dir_ino = pending.pop(0)
            dirnames, filenames, subdirs = [], [], []
            for name, ino, kind in children.get(dir_ino, []):
                if kind == KIND_DIR:
                    dirnames.append(name)
                    subdirs.append((join(dir_path, name), ino))
                elif kind == KIND_SYMLINK and self._db.is_dir(join(dir_path, name)):
                    dirnames.append(name)
                else:
                    filenames.append(name)
            yield dir_path, dirnames, filenames
            # os.walk lets the caller prune `dirnames` in place.
            pending[0:0] = [(p, i) for p, i in subdirs if p.rsplit("/", 1)[1] in dirnames]

    def ls(self, prefix: str = "/") -> list[str]:
        """Every file under `prefix` (or `prefix` itself if it is a file), sorted; [] when missing."""
        try:
            found = self._db.existing(prefix, follow=True)
        except (FileNotFoundError, NotADirectoryError):
            return []
        if found.node.kind == KIND_FILE:
            return [found.real]
        files = [p for p, _, _, kind in self._depth_first(prefix) if kind == KIND_FILE]
        return sorted(files, key=lambda p: p.encode("utf-8", "surrogatepass"))

    def du(self, path: str = "/") -> int:
        """Logical bytes below `path`, each hard-linked file counted once."""
        found = self._db.existing(path, follow=True)
        if found.node.kind != KIND_DIR:
            return found.node.size
        seen: set[int] = set()
        total = 0
        for _, _, ino, kind in self._depth_first(path):
            if kind == KIND_FILE and ino not in seen:
                seen.add(ino)
                total += self._db.node(ino).size
        return total

    def grep(
        self,
        pattern: str,
        path: str = "/",
        *,
        regex: bool = False,
        ignore_case: bool = False,
        include: str | None = None,
        context: int = 0,
        limit: int | None = None,
    ) -> list[GrepMatch]:
        """Lines matching `pattern` in text files below `path` (binary files skipped).

        A `regex` is RE2 syntax, matched in time linear in each line (no
        lookaround, no backreferences: ValueError names what RE2 refuses).
        """
        matcher = user_regex(pattern, regex=regex, ignore_case=ignore_case)
        include_re = glob_to_regex(include) if include else None
        matches: list[GrepMatch] = []
        for file_path, node in self._grep_targets(path):
            if include_re and not (include_re.match(file_path.rsplit("/", 1)[1]) or include_re.match(file_path[1:])):
                continue
            for match in self._grep_file(file_path, node, matcher, context):
                matches.append(match)
                if limit is not None and len(matches) >= limit:
                    return matches
        return matches

    def _grep_targets(self, path: str) -> Iterator[tuple[str, object]]:
        found = self._db.existing(path, follow=True)
        if found.node.kind == KIND_FILE:
            yield found.real, found.node
            return
        for absolute, _, ino, kind in self._depth_first(path):
            if kind == KIND_FILE:
                yield absolute, self._db.node(ino)

    def _grep_file(self, path: str, node, matcher: Any, context: int) -> Iterator[GrepMatch]:
        lines = self._lines(unpack(node.chunks))
        before: deque[str] = deque(maxlen=context)
        waiting: list[tuple[int, str, list[str], list[str]]] = []  # matches collecting trailing context
        for number, line in enumerate(lines, start=1):
            if line is None:
                return  # binary
            for item in waiting:
                item[3].append(line)
            done = [w for w in waiting if len(w[3]) >= context]
            for w in done:
                waiting.remove(w)
                yield GrepMatch(path, w[0], w[1], tuple(w[2] + w[3]))
            if matcher.search(line):
                if context:
                    waiting.append((number, line, list(before), []))
                else:
                    yield GrepMatch(path, number, line, ())
            before.append(line)
        for w in waiting:
            yield GrepMatch(path, w[0], w[1], tuple(w[2] + w[3]))

    def _lines(self, entries) -> Iterator[str | None]:
        """Decoded lines, streamed chunk by chunk; yields None once if the file looks binary."""
        tail = b""
        first = True
        for piece in self._content.iter_chunks(entries):
            if first and b"\x00" in piece[:_BINARY_PROBE]:
                yield None
                return
            first = False
            data = tail + piece
            parts = data.split(b"\n")
            tail = parts.pop()
            for raw in parts:
                yield raw.decode("utf-8", "replace")
        if tail:
            yield tail.decode("utf-8", "replace")
