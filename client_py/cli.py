"""The client's `wsfs` subcommands: sync, ls, cat, put, get, rm, mv, mkdir, stat,
watch, history, restore, and the remote admin helpers `workspaces` and `tokens`.

`wsfs/cli.py` calls `register(subparsers)`. Every command takes `--url`
(or `WSFS_URL`), `--token` (or `WSFS_TOKEN`) and `-w/--workspace` (or
`WSFS_WORKSPACE`); `sync` takes the URL and workspace as positionals, as
in the SPEC. Exit codes: 0 ok, 1 error (one line on stderr), 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import stat as statmod
import sys
import time
from typing import Any, AsyncIterator, Awaitable, Callable

import orjson

DEFAULT_URL = "http://127.0.0.1:8765"


def register(subparsers: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=os.environ.get("WSFS_URL", DEFAULT_URL),
                        help="server URL (default: $WSFS_URL or %(default)s)")
    common.add_argument("--token", default=None, help="access token (default: $WSFS_TOKEN)")
    common.add_argument("-w", "--workspace", default=os.environ.get("WSFS_WORKSPACE", "demo"),
                        help="workspace name (default: $WSFS_WORKSPACE or %(default)s)")

    def add(name: str, help: str, func: Callable[[argparse.Namespace], Awaitable[int]], *, parents=(common,)):
        p = subparsers.add_parser(name, help=help, description=help, parents=list(parents))
        p.set_defaults(func=lambda args: _run(func, args))
        return p

    p = subparsers.add_parser(
        "sync", help="mirror a workspace into a local directory (live; --once to converge and exit)",
        description="Mirror WORKSPACE of the server at URL into DIR, both ways. Runs until interrupted; "
                    "--once converges once and exits. State lives in DIR/.wsfs/ (never synced).",
    )
    p.add_argument("url", metavar="URL")
    p.add_argument("workspace", metavar="WORKSPACE")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--once", action="store_true", help="converge once, print a summary, exit")
    p.add_argument("--token", default=None, help="access token (default: $WSFS_TOKEN)")
    p.add_argument("--ignore", action="append", default=[], metavar="PATTERN",
                   help="gitignore-style pattern to leave alone both ways (repeatable; also read from DIR/.wsfsignore)")
    p.add_argument("--host", default=None, help="name used in conflict copies (default: this host's name)")
    p.add_argument("--reconcile", type=float, default=30.0, metavar="SECONDS",
                   help="seconds between full rescans while live (default: %(default)s)")
    p.add_argument("--durability", choices=("auto", "file", "batch", "none"), default="auto",
                   help="when written files are flushed to disk (default: %(default)s; 'none' as rsync)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    p.add_argument("-v", "--verbose", action="store_true", help="log every conflict, refusal and reconnect")
    p.set_defaults(func=lambda args: _run(cmd_sync, args))

    p = add("ls", "list a directory of a workspace", cmd_ls)
    p.add_argument("path", nargs="?", default="/")
    p.add_argument("-l", "--long", action="store_true", help="kind, mode, size, mtime")
    p.add_argument("-R", "--recursive", action="store_true", help="every file below PATH")

    p = add("cat", "print files of a workspace to stdout", cmd_cat)
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--rev", type=int, default=None, help="the version committed at this revision")

    p = add("put", "upload a local file (or - for stdin) to a workspace path", cmd_put)
    p.add_argument("src", metavar="LOCAL")
    p.add_argument("dst", metavar="PATH", nargs="?", default=None, help="default: /BASENAME of LOCAL")
    p.add_argument("-p", "--parents", action="store_true", help="create missing parent directories")
    p.add_argument("--if-match", default=None, metavar="HASH", help="only replace this content id ('' = must not exist)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    p = add("get", "download a workspace file to a local file (or - for stdout)", cmd_get)
    p.add_argument("src", metavar="PATH")
    p.add_argument("dst", metavar="LOCAL", nargs="?", default=None, help="default: ./BASENAME of PATH")
    p.add_argument("--rev", type=int, default=None, help="the version committed at this revision")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    p = add("rm", "remove files or directories of a workspace", cmd_rm)
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("-r", "--recursive", action="store_true")
    p.add_argument("-f", "--force", action="store_true", help="a missing path is not an error")

    p = add("mv", "rename a file or directory of a workspace", cmd_mv)
    p.add_argument("src", metavar="SRC")
    p.add_argument("dst", metavar="DST")

    p = add("mkdir", "make a directory in a workspace", cmd_mkdir)
    p.add_argument("path", metavar="PATH")
    p.add_argument("-p", "--parents", action="store_true")

    p = add("stat", "show the metadata of a workspace path as JSON", cmd_stat)
    p.add_argument("path", metavar="PATH")
    p.add_argument("-L", "--follow", action="store_true", help="follow a final symlink")

    p = add("watch", "print changes under a prefix as they happen", cmd_watch)
    p.add_argument("prefix", nargs="?", default="/")
    p.add_argument("--after", default="now", metavar="CURSOR", help="resume after this cursor ('now' default; '' = from the start)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--count", type=int, default=None, metavar="N", help="exit after N events")
    p.add_argument("--ignore", action="append", default=[], metavar="PATTERN")

    p = add("history", "list the retained versions of a file", cmd_history)
    p.add_argument("path", metavar="PATH")
    p.add_argument("--json", action="store_true")

    p = add("restore", "bring back the version of a file committed at REV", cmd_restore)
    p.add_argument("path", metavar="PATH")
    p.add_argument("rev", metavar="REV", type=int)

    p = add("workspaces", "list, create or delete workspaces on a server (admin)", cmd_workspaces)
    p.add_argument("action", nargs="?", choices=("list", "create", "delete"), default="list")
    p.add_argument("name", nargs="?", default=None)

    p = add("tokens", "list, create or revoke tokens on a server (admin)", cmd_tokens)
    p.add_argument("action", nargs="?", choices=("list", "create", "revoke"), default="list")
    p.add_argument("target", nargs="?", default=None, help="create: WORKSPACE; revoke: token id")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--read", dest="scope", action="store_const", const="read")
    scope.add_argument("--write", dest="scope", action="store_const", const="write")
    p.add_argument("--name", default=None, help="a name for the new token")


# ---------------------------------------------------------------- running


def _run(func: Callable[[argparse.Namespace], Awaitable[int]], args: argparse.Namespace) -> int:
    """Run a command; any failure becomes one line on stderr and exit code 1."""
    try:
        return asyncio.run(func(args))
    except KeyboardInterrupt:
        return 130
    except _UsageError as e:
        print(f"wsfs {args.command}: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - the CLI's contract is a one-line message, not a traceback
        print(f"wsfs {args.command}: error: {_message(e)}", file=sys.stderr)
        return 1


class _UsageError(Exception):
    pass


def _message(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror}: {e.filename}" if e.filename else e.strerror
    text = str(e) or type(e).__name__
    return text.splitlines()[0]


def _client(args: argparse.Namespace):
    from client_py.backoff import Backoff
    from client_py.client import Client

    return Client(args.url, token=args.token, backoff=Backoff(base=0.1, cap=1.0, retries=3))


def _progress(enabled: bool, total: int | None, description: str):
    """A rich progress bar on stderr, or a no-op when quiet or not on a terminal."""
    if not enabled or not sys.stderr.isatty():
        return None
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
    from rich.console import Console

    progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                        console=Console(stderr=True), transient=True)
    progress.add_task(description, total=total)
    return progress


# ---------------------------------------------------------------- commands


async def cmd_sync(args: argparse.Namespace) -> int:
    from client_py.replica import Replica

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    display = _SyncDisplay(enabled=not args.quiet)
    replica = Replica(args.url, args.workspace, args.dir, token=args.token, ignore=args.ignore, host=args.host,
                      reconcile_interval=args.reconcile, durability=args.durability, on_progress=display.update)
    try:
        with display:
            if args.once:
                summary = await replica.sync_once()
            else:
                await replica.run()
                return 0
    finally:
        await replica.close()
    print(f"synced {args.workspace} -> {args.dir}: {summary}")
    for path, reason in summary.refused:
        print(f"refused {path}: {reason}", file=sys.stderr)
    return 0


class _SyncDisplay:
    """Live "files / bytes / speed" line while a replica transfers (total unknown in advance)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and sys.stderr.isatty()
        self.progress = None
        self.started = time.monotonic()

    def __enter__(self) -> _SyncDisplay:
        if self.enabled:
            from rich.console import Console
            from rich.progress import DownloadColumn, Progress, SpinnerColumn, TextColumn, TransferSpeedColumn

            self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), DownloadColumn(),
                                     TransferSpeedColumn(), console=Console(stderr=True), transient=True)
            self.task = self.progress.add_task("syncing", total=None)
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def update(self, summary: Any) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=summary.bytes_received + summary.bytes_sent,
                                 description=f"{summary.downloaded} in, {summary.uploaded} out")


async def cmd_ls(args: argparse.Namespace) -> int:
    async with _client(args) as c:
        ws = c.workspace(args.workspace)
        if args.recursive:
            for path in await ws.find(args.path):
                print(path)
            return 0
        st = await ws.stat(args.path)
        if st.kind != "dir":
            print(_long(args.path.rsplit("/", 1)[-1], st.kind, st.size, st.mtime, st.mode) if args.long else args.path)
            return 0
        for e in await ws.readdir(args.path):
            name = e.name + ("/" if e.kind == "dir" else "")
            print(_long(name, e.kind, e.size, e.mtime, None) if args.long else name)
    return 0


def _long(name: str, kind: str, size: int, mtime: float, mode: int | None) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(mtime))
    perms = statmod.filemode(mode) if mode else {"dir": "d", "symlink": "l"}.get(kind, "-")
    return f"{perms:<10} {size:>12} {when} {name}"


async def cmd_cat(args: argparse.Namespace) -> int:
    out = sys.stdout.buffer
    async with _client(args) as c:
        ws = c.workspace(args.workspace)
        for path in args.paths:
            async for piece in ws.iter_file(path, rev=args.rev):
                out.write(piece)
    out.flush()
    return 0


async def cmd_put(args: argparse.Namespace) -> int:
    dst = args.dst or "/" + os.path.basename(args.src.rstrip("/"))
    if args.src == "-":
        if args.dst is None:
            raise _UsageError("put from stdin needs a destination PATH")
        source: Any = sys.stdin.buffer
        total = None
    else:
        source = open(args.src, "rb")
        total = os.fstat(source.fileno()).st_size
    progress = _progress(not args.quiet, total, f"put {dst}")
    try:
        async with _client(args) as c:
            ws = c.workspace(args.workspace)
            body = _reading(source, progress)
            if progress:
                progress.start()
            st = await ws.write_file(dst, body, parents=args.parents, if_match=args.if_match)
    finally:
        if progress:
            progress.stop()
        if source is not sys.stdin.buffer:
            source.close()
    print(f"{dst} {st.size} bytes {st.hash}")
    return 0


async def _reading(f: Any, progress: Any) -> AsyncIterator[bytes]:
    while piece := f.read(1 << 20):
        if progress:
            progress.advance(progress.task_ids[0], len(piece))
        yield piece


async def cmd_get(args: argparse.Namespace) -> int:
    dst = args.dst or os.path.basename(args.src.rstrip("/")) or "download"
    async with _client(args) as c:
        ws = c.workspace(args.workspace)
        size = (await ws.stat(args.src)).size
        progress = _progress(not args.quiet and dst != "-", size, f"get {args.src}")
        if dst == "-":
            async for piece in ws.iter_file(args.src, rev=args.rev):
                sys.stdout.buffer.write(piece)
            sys.stdout.buffer.flush()
            return 0
        tmp = f"{dst}.wsfs-part"
        try:
            if progress:
                progress.start()
            with open(tmp, "wb") as f:
                async for piece in ws.iter_file(args.src, rev=args.rev):
                    f.write(piece)
                    if progress:
                        progress.advance(progress.task_ids[0], len(piece))
            os.replace(tmp, dst)  # never a half-written file under the final name
        finally:
            if progress:
                progress.stop()
            if os.path.exists(tmp):
                os.unlink(tmp)
    return 0


async def cmd_rm(args: argparse.Namespace) -> int:
    async with _client(args) as c:
        ws = c.workspace(args.workspace)
        for path in args.paths:
            await ws.rm(path, recursive=args.recursive, force=args.force)
    return 0


async def cmd_mv(args: argparse.Namespace) -> int:
    async with _client(args) as c:
        await c.workspace(args.workspace).rename(args.src, args.dst)
    return 0


async def cmd_mkdir(args: argparse.Namespace) -> int:
    async with _client(args) as c:
        await c.workspace(args.workspace).mkdir(args.path, parents=args.parents, exist_ok=args.parents)
    return 0


async def cmd_stat(args: argparse.Namespace) -> int:
    from vfs.wire import stat_to_wire

    async with _client(args) as c:
        ws = c.workspace(args.workspace)
        st = await (ws.stat(args.path) if args.follow else ws.lstat(args.path))
    print(orjson.dumps(stat_to_wire(st, args.path), option=orjson.OPT_INDENT_2).decode())
    return 0


async def cmd_watch(args: argparse.Namespace) -> int:
    after = None if args.after == "" else args.after
    seen = 0
    async with _client(args) as c:
        stream = c.workspace(args.workspace).watch(args.prefix, after=after, ignore=args.ignore)
        async with contextlib.aclosing(stream):  # --count stops early: close the connection now
            async for ev in stream:
                if args.json:
                    d = {"path": ev.path, "kind": ev.kind, "rev": ev.rev, "cursor": ev.cursor, "size": ev.size,
                         "hash": ev.hash, "author": ev.author}
                    print(orjson.dumps(d).decode(), flush=True)
                else:
                    print(f"{ev.cursor}\t{ev.kind}\t{ev.path}", flush=True)
                seen += 1
                if args.count is not None and seen >= args.count:
                    break
    return 0


async def cmd_history(args: argparse.Namespace) -> int:
    async with _client(args) as c:
        versions = await c.workspace(args.workspace).history(args.path)
    for v in versions:
        if args.json:
            print(orjson.dumps({"rev": v.rev, "kind": v.kind, "size": v.size, "hash": v.hash, "mtime": v.mtime}).decode())
        else:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(v.mtime))
            print(f"{v.rev:>8}  {v.kind:<7} {v.size:>12}  {when}  {v.hash or ''}")
    return 0


async def cmd_restore(args: argparse.Namespace) -> int:
    async with _client(args) as c:
        st = await c.workspace(args.workspace).restore(args.path, args.rev)
    print(f"{args.path} restored from rev {args.rev}: {st.size} bytes, now rev {st.rev}")
    return 0


async def cmd_workspaces(args: argparse.Namespace) -> int:
    async with _client(args) as c:
        async def create(name: str) -> str:
            created = (await c.create_workspace(name)).get("created")
            return f"{name} {'created' if created else 'already exists'}"

        async def delete(name: str) -> str:
            await c.delete_workspace(name)
            return f"{name} deleted"

        return await _admin(args.action, args.name, f"workspaces {args.action} needs a NAME", c.workspaces,
                            {"create": create, "delete": delete})


async def cmd_tokens(args: argparse.Namespace) -> int:
    async with _client(args) as c:
        async def listing() -> list[str]:
            return [f"{t['id']}\t{t.get('workspace') or '*'}\t{t['scope']}\t{t.get('name') or ''}" for t in await c.tokens()]

        async def create(workspace: str) -> str:
            return (await c.create_token(workspace, args.scope or "read", args.name))["token"]

        async def revoke(token_id: str) -> str:
            await c.revoke_token(token_id)
            return f"revoked {token_id}"

        missing = "tokens create needs a WORKSPACE" if args.action == "create" else "tokens revoke needs a token id"
        return await _admin(args.action, args.target, missing, listing, {"create": create, "revoke": revoke})


async def _admin(action: str, target: str | None, missing: str, listing: Callable[[], Awaitable[list[str]]],
                 actions: dict[str, Callable[[str], Awaitable[str]]]) -> int:
    """What the admin nouns share: `list` prints a line per item; any other action needs a target (else the
    usage error `missing`), runs on it and prints the one line it returns."""
    if action == "list":
        for line in await listing():
            print(line)
        return 0
    if not target:
        raise _UsageError(missing)
    print(await actions[action](target))
    return 0
