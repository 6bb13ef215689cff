"""`wsfs conflicts`: find the conflict copies a replica or a mount made, compare them, resolve them.

A copy `notes.conflict-HOST-STAMP.md` holds "mine" (the edit that lost the
race); the path `notes.md` holds "theirs" (the server's version). Resolving
is one server-side operation: keep mine (the copy replaces the file), keep
theirs (the copy goes), keep both (the copy loses its conflict marker and
stays as `notes.HOST-STAMP.md`). Names come from `client_py/conflicts.py`.
"""

from __future__ import annotations

import argparse
import difflib
import errno
import sys
from typing import Any

from client_py.cli.common import client, print_json
from client_py.conflicts import CONFLICT_GLOB, ConflictCopy, kept_name, parse_conflict_name
from vfs.errors import fs_error


async def conflict_copies(ws: Any, top: str) -> list[ConflictCopy]:
    found = [parse_conflict_name(p) for p in await ws.find(top, CONFLICT_GLOB, kind="file")]
    return [c for c in found if c is not None]


async def cmd_conflicts_list(args: argparse.Namespace) -> int:
    async with client(args) as c:
        ws = c.workspace(args.workspace)
        copies = await conflict_copies(ws, args.path)
        originals = {c.original: await ws.exists(c.original) for c in copies}
    for copy in copies:
        if args.json:
            print_json({"path": copy.path, "original": copy.original, "host": copy.host, "stamp": copy.stamp,
                        "original_exists": originals[copy.original]})
        else:
            gone = "" if originals[copy.original] else " (deleted since)"
            print(f"{copy.path}\tcopy of {copy.original}{gone}\tfrom {copy.host} at {copy.stamp}")
    if not args.json and sys.stderr.isatty() and copies:
        print("resolve with: wsfs conflicts resolve COPY --keep mine|theirs|both", file=sys.stderr)
    return 0


def _parsed(path: str) -> ConflictCopy:
    copy = parse_conflict_name(path)
    if copy is None:
        raise fs_error(errno.EINVAL, path, f"{path} is not a conflict copy (NAME.conflict-HOST-STAMP.EXT)")
    return copy


async def cmd_conflicts_resolve(args: argparse.Namespace) -> int:
    async with client(args) as c:
        ws = c.workspace(args.workspace)
        copies = await conflict_copies(ws, "/") if args.all else [_parsed(p) for p in args.copies]
        for copy in copies:
            if args.keep == "mine":
                await ws.rename(copy.path, copy.original)
                print(f"{copy.original}: kept mine (from {copy.path})")
            elif args.keep == "theirs":
                await ws.unlink(copy.path)
                print(f"{copy.original}: kept theirs (removed {copy.path})")
            else:
                kept = kept_name(copy)
                await ws.rename(copy.path, kept)
                print(f"{copy.original}: kept both (mine is now {kept})")
    return 0


async def cmd_conflicts_diff(args: argparse.Namespace) -> int:
    copy = _parsed(args.copy)
    async with client(args) as c:
        ws = c.workspace(args.workspace)
        mine = await ws.read_file(copy.path)
        theirs = await ws.read_file(copy.original) if await ws.exists(copy.original) else b""
    if b"\0" in mine[:8192] or b"\0" in theirs[:8192]:
        print(f"binary files differ: {copy.original} ({len(theirs)} bytes) and {copy.path} ({len(mine)} bytes)")
        return 0 if mine == theirs else 1
    lines = difflib.unified_diff(theirs.decode("utf-8", "replace").splitlines(keepends=True),
                                 mine.decode("utf-8", "replace").splitlines(keepends=True),
                                 fromfile=f"{copy.original} (theirs)", tofile=f"{copy.path} (mine)")
    text = "".join(lines)
    sys.stdout.write(text)
    return 1 if text else 0  # diff(1): 1 when they differ
