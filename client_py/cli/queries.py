"""Commands that read the tree or its past: find, grep, du, history, restore, watch."""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import sys
import time
from typing import Any

from client_py.cli.common import UsageError, client, human, print_json
from vfs.errors import fs_error

EXIT_NO_MATCH = 1  # grep(1)'s convention: ran fine, found nothing

_KINDS = {"f": "file", "d": "dir", "l": "symlink", "p": "fifo", "s": "socket", "c": "char", "b": "block"}
_KINDS.update({kind: kind for kind in list(_KINDS.values())})


async def cmd_find(args: argparse.Namespace) -> int:
    async with client(args) as c:
        paths = await c.workspace(args.workspace).find(args.path, args.name, kind=_KINDS.get(args.type or ""),
                                                       limit=args.limit)
    for path in paths:
        if args.json:
            print_json({"path": path})
        else:
            print(path)
    return 0


async def cmd_grep(args: argparse.Namespace) -> int:
    found = 0
    async with client(args) as c:
        ws = c.workspace(args.workspace)
        for top in args.paths or ["/"]:
            matches = await ws.grep(args.pattern, top, regex=args.regex, ignore_case=args.ignore_case,
                                    include=args.include, context=args.context, limit=args.max_count)
            found += len(matches)
            _print_matches(args, matches)
    return 0 if found else EXIT_NO_MATCH


def _print_matches(args: argparse.Namespace, matches: list[Any]) -> None:
    if args.files_with_matches:
        for path in dict.fromkeys(m.path for m in matches):
            if args.json:
                print_json({"path": path})
            else:
                print(path)
        return
    for i, m in enumerate(matches):
        if args.json:
            print_json({"path": m.path, "line_number": m.line_number, "line": m.line, "context": list(m.context)})
            continue
        if not args.context:
            print(f"{m.path}:{m.line_number}:{m.line}")
            continue
        if i:
            print("--")
        before = min(args.context, m.line_number - 1, len(m.context))
        for k, text in enumerate(m.context[:before]):
            print(f"{m.path}-{m.line_number - before + k}-{text}")
        print(f"{m.path}:{m.line_number}:{m.line}")
        for k, text in enumerate(m.context[before:], start=1):
            print(f"{m.path}-{m.line_number + k}-{text}")


async def cmd_du(args: argparse.Namespace) -> int:
    """As du(1): the total of each PATH, after the directories below it down to `-d N` (`-a`: files too)."""
    async with client(args) as c:
        ws = c.workspace(args.workspace)
        for top in args.paths or ["/"]:
            rows: list[tuple[str, int]] = []
            if args.max_depth and (await ws.stat(top)).kind == "dir":
                rows = await _du_below(ws, top, args.max_depth, args.all)
            rows.append((top, await ws.du(top)))
            for path, size in rows:
                if args.json:
                    print_json({"path": path, "bytes": size})
                else:
                    print(f"{human(size) if args.human else size}\t{path}")
    return 0


async def _du_below(ws: Any, top: str, depth: int, files_too: bool) -> list[tuple[str, int]]:
    """(path, bytes) of what lies below `top` down to `depth` levels, children before their parent (du's order)."""
    rows: list[tuple[str, int]] = []
    for e in await ws.readdir(top):
        path = f"{top.rstrip('/')}/{e.name}"
        if e.kind == "dir":
            if depth > 1:
                rows += await _du_below(ws, path, depth - 1, files_too)
            rows.append((path, await ws.du(path)))
        elif files_too:
            rows.append((path, e.size))
    return rows


async def cmd_history(args: argparse.Namespace) -> int:
    async with client(args) as c:
        ws = c.workspace(args.workspace)
        versions = await ws.history(args.path)
        if not versions:
            st = await ws.lstat(args.path)  # raises ENOENT: nothing there and nothing kept
            if st.kind == "dir":
                raise fs_error(errno.EISDIR, args.path, f"{args.path} is a directory: history lists the versions of a file")
    for v in versions:
        if args.json:
            print_json({"path": v.path, "rev": v.rev, "kind": v.kind, "size": v.size, "hash": v.hash,
                        "mtime": v.mtime, "author": v.author, "origin": v.origin})
        else:
            print(_history_line(v))
    return 0


def _history_line(v: Any) -> str:
    """One version: rev, kind, size, time, author, content id, and the path it had or went to when that differs."""
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(v.mtime))
    where = f"  {v.path}"
    if v.kind == "move":
        where = f"  {v.path} -> {v.origin}"
    elif v.origin:
        where = f"  {v.path} (from {v.origin})"
    digest = (v.hash or "")[:16]
    return f"{v.rev:>8}  {v.kind:<7} {v.size:>12}  {when}  {(v.author or '-'):<12} {digest:<16}{where}".rstrip()


async def cmd_restore(args: argparse.Namespace) -> int:
    async with client(args) as c:
        st = await c.workspace(args.workspace).restore(args.path, args.rev)
    print(f"{args.path} restored from rev {args.rev}: {st.size} bytes, mode {st.mode & 0o7777:o}, now rev {st.rev}")
    return 0


async def cmd_watch(args: argparse.Namespace) -> int:
    from vfs.types import Cursor

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="wsfs watch: %(message)s")
    after = None if args.after == "" else args.after
    seen = 0
    async with client(args) as c:  # first, fail fast (exit 3, 4, 6) if there is nothing to watch yet
        current = await c.workspace(args.workspace).cursor()
    async with client(args, long_running=True) as c:
        ws = c.workspace(args.workspace)
        if after not in (None, "now"):
            try:
                wanted = Cursor.parse(after)
            except ValueError as e:
                raise UsageError(str(e)) from None
            if current < wanted:
                raise UsageError(f"cursor {after} is ahead of workspace {args.workspace!r} (now at {current}): "
                                 "it was not given by this server; use --after now, or '' for everything")
        stream = ws.watch(args.prefix, after=after, ignore=args.ignore)
        async with contextlib.aclosing(stream):  # --count stops early: close the connection now
            async for ev in stream:
                if args.json:
                    print_json({"path": ev.path, "kind": ev.kind, "rev": ev.rev, "cursor": ev.cursor, "size": ev.size,
                                "hash": ev.hash, "author": ev.author})
                else:
                    print(f"{ev.cursor}\t{ev.kind}\t{ev.path}" + (f"\t{ev.author}" if ev.author else ""))
                sys.stdout.flush()
                seen += 1
                if args.count is not None and seen >= args.count:
                    break
    return 0
