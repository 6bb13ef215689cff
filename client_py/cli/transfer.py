"""`put` and `get`: files and whole directories between this machine and a workspace.

A directory needs `-r`, as with scp. One progress bar covers the whole
transfer (total known before the first byte: sizes come from the local
tree or the server's listing). An uploaded file keeps its local mode bits.
A downloaded file appears under its final
name only once complete (`NAME.wsfs-part`, then a rename).
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from typing import Any, AsyncIterator

from client_py.cli.common import UsageError, client, human, progress
from client_py.cli.files import into_directory
from vfs.errors import fs_error


class _Bar:
    """The progress bar, or nothing; counts what went through either way."""

    def __init__(self, enabled: bool, total: int | None, description: str):
        self.rich = progress(enabled, total, description)
        self.files = 0
        self.bytes = 0

    def __enter__(self) -> _Bar:
        if self.rich:
            self.rich.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.rich:
            self.rich.stop()

    def advance(self, n: int) -> None:
        self.bytes += n
        if self.rich:
            self.rich.advance(self.rich.task_ids[0], n)

    def describe(self, text: str) -> None:
        if self.rich:
            self.rich.update(self.rich.task_ids[0], description=text)


async def cmd_put(args: argparse.Namespace) -> int:
    if args.src == "-":
        if args.dst is None:
            raise UsageError("put from stdin needs a destination PATH")
        async with client(args) as c:
            st = await c.workspace(args.workspace).write_file(args.dst, _reading(sys.stdin.buffer, None),
                                                                 parents=args.parents, if_match=args.if_match)
        print(f"{args.dst} {st.size} bytes {st.hash}")
        return 0
    local_is_dir = os.path.isdir(args.src)
    if local_is_dir and not args.recursive:
        raise fs_error(errno.EISDIR, args.src, f"{args.src} is a directory (use -r)")
    async with client(args) as c:
        ws = c.workspace(args.workspace)
        base = os.path.basename(os.path.abspath(args.src))
        dst = await into_directory(ws, base, args.dst) if args.dst else "/" + base
        if not local_is_dir:
            with _Bar(not args.quiet, os.path.getsize(args.src), f"put {dst}") as bar:
                st = await _upload(ws, args.src, dst, bar, parents=args.parents, if_match=args.if_match)
            print(f"{dst} {st.size} bytes {st.hash}")
            return 0
        plan = _local_tree(args.src)
        total = sum(size for _, _, size in plan)
        await ws.mkdir(dst, parents=args.parents, exist_ok=True)
        with _Bar(not args.quiet, total, f"put {dst}") as bar:
            for rel, kind, _ in plan:
                target = f"{dst.rstrip('/')}/{rel}"
                local = os.path.join(args.src, rel)
                bar.describe(f"put {target}")
                if kind == "dir":
                    await ws.mkdir(target, exist_ok=True)
                elif kind == "symlink":
                    await _replace_symlink(ws, os.readlink(local), target)
                else:
                    await _upload(ws, local, target, bar)
    print(f"{dst}: {_count(bar.files)}, {human(bar.bytes)}")
    return 0


def _count(files: int) -> str:
    return f"{files} file{'' if files == 1 else 's'}"


def _local_tree(top: str) -> list[tuple[str, str, int]]:
    """(relative path, kind, size) of everything below `top`, parents first; symlinks are not followed."""
    plan: list[tuple[str, str, int]] = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, top)
        for name in sorted(dirnames) + sorted(filenames):
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                plan.append((rel, "symlink", 0))
            elif name in dirnames:
                plan.append((rel, "dir", 0))
            elif os.path.isfile(path):
                plan.append((rel, "file", os.path.getsize(path)))
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
    return sorted(plan, key=lambda item: item[0].split("/"))


async def _replace_symlink(ws: Any, target: str, path: str) -> None:
    if await ws.exists(path) or await _is_link(ws, path):
        await ws.unlink(path)
    await ws.symlink(target, path)


async def _is_link(ws: Any, path: str) -> bool:
    try:
        return (await ws.lstat(path)).kind == "symlink"
    except FileNotFoundError:
        return False


async def _upload(ws: Any, local: str, dst: str, bar: _Bar, *, parents: bool = False, if_match: str | None = None) -> Any:
    with open(local, "rb") as f:
        st = await ws.write_file(dst, _reading(f, bar), parents=parents, if_match=if_match)
        mode = os.fstat(f.fileno()).st_mode & 0o7777
    if mode != st.mode & 0o7777:  # an executable script stays executable
        st = await ws.chmod(dst, mode)
    bar.files += 1
    return st


async def _reading(f: Any, bar: _Bar | None) -> AsyncIterator[bytes]:
    while piece := f.read(1 << 20):
        if bar:
            bar.advance(len(piece))
        yield piece


async def cmd_get(args: argparse.Namespace) -> int:
    async with client(args) as c:
        ws = c.workspace(args.workspace)
        st = await ws.stat(args.src)
        if args.dst == "-":
            if st.kind == "dir":
                raise fs_error(errno.EISDIR, args.src, f"{args.src} is a directory: it cannot go to stdout")
            async for piece in ws.iter_file(args.src, rev=args.rev):
                sys.stdout.buffer.write(piece)
            sys.stdout.buffer.flush()
            return 0
        name = os.path.basename(args.src.rstrip("/")) or args.workspace
        dst = args.dst or name
        if os.path.isdir(dst):
            dst = os.path.join(dst, name)
        if st.kind != "dir":
            with _Bar(not args.quiet, st.size, f"get {args.src}") as bar:
                await _download(ws, args.src, dst, bar, rev=args.rev)
            return 0
        if not args.recursive:
            raise fs_error(errno.EISDIR, args.src, f"{args.src} is a directory (use -r)")
        if args.rev is not None:
            raise UsageError("--rev applies to one file, not a directory")
        plan = await _remote_tree(ws, args.src)
        os.makedirs(dst, exist_ok=True)
        with _Bar(not args.quiet, sum(size for _, _, size in plan), f"get {args.src}") as bar:
            for rel, kind, _ in plan:
                local = os.path.join(dst, *rel.split("/"))
                remote = f"{args.src.rstrip('/')}/{rel}"
                bar.describe(f"get {remote}")
                if kind == "dir":
                    os.makedirs(local, exist_ok=True)
                elif kind == "symlink":
                    if os.path.lexists(local):
                        os.unlink(local)
                    os.symlink(await ws.readlink(remote), local)
                else:
                    await _download(ws, remote, local, bar)
    print(f"{dst}: {_count(bar.files)}, {human(bar.bytes)}")
    return 0


async def _remote_tree(ws: Any, top: str) -> list[tuple[str, str, int]]:
    """(relative path, kind, size) of everything below `top`, parents first, from one readdir per directory."""
    plan: list[tuple[str, str, int]] = []
    root = top.rstrip("/")
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        for e in await ws.readdir(f"{root}/{rel_dir}" if rel_dir else top):
            rel = f"{rel_dir}/{e.name}" if rel_dir else e.name
            plan.append((rel, e.kind, e.size if e.kind == "file" else 0))
            if e.kind == "dir":
                pending.append(rel)
    return sorted(plan, key=lambda item: item[0].split("/"))


async def _download(ws: Any, src: str, dst: str, bar: _Bar, *, rev: int | None = None) -> None:
    tmp = f"{dst}.wsfs-part"
    try:
        with open(tmp, "wb") as f:
            async for piece in ws.iter_file(src, rev=rev):
                f.write(piece)
                bar.advance(len(piece))
        os.replace(tmp, dst)  # never a half-written file under the final name
        bar.files += 1
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
