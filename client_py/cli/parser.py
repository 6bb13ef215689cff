"""Every client subcommand's options, each with its help text.

Every command takes `--url` (or `$WSFS_URL`), `--token` (or `$WSFS_TOKEN`)
and `-w/--workspace` (or `$WSFS_WORKSPACE`); `sync` takes the URL and the
workspace as positionals, as in the SPEC. Listing commands take `--json`:
one JSON object per line.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Callable, Coroutine

from client_py.cli import admin, conflicts, files, queries, sync, transfer
from client_py.cli.common import DEFAULT_URL, run

Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


def connection_options(*, inherited: bool = False) -> argparse.ArgumentParser:
    """`--url` and `--token`, shared with the `token` family.

    `inherited=True` is for a sub-action's copy of options its command also
    takes (`wsfs conflicts -w proj resolve ...`): no defaults of its own, so
    a value given before the action is not reset by the action's default.
    """
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--url", default=argparse.SUPPRESS if inherited else os.environ.get("WSFS_URL", DEFAULT_URL),
                   help=f"server URL (default: $WSFS_URL or {DEFAULT_URL})")
    p.add_argument("--token", default=argparse.SUPPRESS if inherited else None,
                   help="access token (default: $WSFS_TOKEN)")
    return p


def common_options(*, inherited: bool = False) -> argparse.ArgumentParser:
    """The connection and `-w/--workspace`."""
    p = argparse.ArgumentParser(add_help=False, parents=[connection_options(inherited=inherited)])
    p.add_argument("-w", "--workspace",
                   default=argparse.SUPPRESS if inherited else os.environ.get("WSFS_WORKSPACE", "demo"),
                   help="workspace name (default: $WSFS_WORKSPACE or demo)")
    return p


def json_options(*, inherited: bool = False) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS if inherited else False,
                   help="one JSON object per line")
    return p


def register(subparsers: argparse._SubParsersAction) -> None:
    common = common_options()
    json_option = json_options()

    def add(name: str, help: str, func: Command, *, listing: bool = False, into=subparsers):
        parents = [common, json_option] if listing else [common]
        p = into.add_parser(name, help=help, description=help, parents=parents)
        p.set_defaults(func=lambda args: run(func, args))
        return p

    _sync(subparsers)
    _files(add)
    _transfer(add)
    _queries(add)
    p = add("workspaces", "list, create or delete workspaces on a server (admin)", admin.cmd_workspaces, listing=True)
    p.add_argument("action", nargs="?", choices=("list", "create", "delete"), default="list",
                   help="what to do (default: list)")
    p.add_argument("name", nargs="?", default=None, help="the workspace to create or delete")
    _conflicts(subparsers)


def _sync(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sync", help="mirror a workspace into a local directory (live; --once to converge and exit)",
        description="Mirror WORKSPACE of the server at URL into DIR, both ways. Runs until interrupted (Ctrl-C "
                    "prints what the run did); --once converges once and exits. State lives in DIR/.wsfs/ "
                    "(never synced). Rides out server restarts.",
    )
    p.add_argument("url", metavar="URL", help="the server, e.g. http://127.0.0.1:8765")
    p.add_argument("workspace", metavar="WORKSPACE", help="the workspace to mirror")
    p.add_argument("dir", metavar="DIR", help="the local directory (created if missing)")
    p.add_argument("--once", action="store_true", help="converge once, print a summary, exit")
    p.add_argument("--token", default=None, help="access token (default: $WSFS_TOKEN)")
    p.add_argument("--ignore", action="append", default=[], metavar="PATTERN",
                   help="gitignore-style pattern to leave alone both ways (repeatable; also read from DIR/.wsfsignore)")
    p.add_argument("--host", default=None, help="name used in conflict copies (default: this host's name)")
    p.add_argument("--reconcile", type=float, default=600.0, metavar="SECONDS",
                   help="seconds between stat-only rescans while live, behind the watcher (default: %(default)s)")
    p.add_argument("--durability", choices=("auto", "file", "batch", "none"), default="auto",
                   help="when written files are flushed to disk (default: %(default)s; 'none' as rsync)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    p.add_argument("-v", "--verbose", action="store_true", help="also log every deletion, refusal and reconnect")
    p.set_defaults(func=lambda args: run(sync.cmd_sync, args))


def _files(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("ls", "list a directory of a workspace", files.cmd_ls, listing=True)
    p.add_argument("path", nargs="?", default="/", help="directory or file (default: /)")
    p.add_argument("-l", "--long", action="store_true", help="mode bits, size, mtime, and where a symlink points")
    p.add_argument("-R", "--recursive", action="store_true", help="every path below PATH")

    p = add("tree", "draw the tree below a directory", files.cmd_tree, listing=True)
    p.add_argument("path", nargs="?", default="/", help="the top (default: /)")
    p.add_argument("-L", "--max-depth", type=int, default=None, metavar="N", help="descend at most N levels")

    p = add("stat", "show the metadata of a workspace path as JSON", files.cmd_stat)
    p.add_argument("path", metavar="PATH", help="the path to describe")
    p.add_argument("-L", "--follow", action="store_true", help="follow a final symlink")

    p = add("cat", "print files of a workspace to stdout", files.cmd_cat)
    p.add_argument("paths", nargs="+", metavar="PATH", help="files to print, in order")
    p.add_argument("--rev", type=int, default=None, help="the version committed at this revision")

    p = add("rm", "remove files or directories of a workspace", files.cmd_rm)
    p.add_argument("paths", nargs="+", metavar="PATH", help="paths to remove")
    p.add_argument("-r", "--recursive", action="store_true", help="remove directories and what they hold")
    p.add_argument("-f", "--force", action="store_true", help="a missing path is not an error")

    for name, help, func in (("mv", "rename or move files and directories (into DST if it is a directory)", files.cmd_mv),
                             ("cp", "copy on the server: the copy shares the source's chunks, no bytes travel", files.cmd_cp)):
        p = add(name, help, func)
        p.add_argument("src", nargs="+", metavar="SRC", help="what to move or copy")
        p.add_argument("dst", metavar="DST", help="the new name, or an existing directory to put SRC in")
        p.add_argument("-T", "--no-target-directory", action="store_true", help="treat DST as a name even if it is a directory")
        if name == "cp":
            p.add_argument("-r", "--recursive", action="store_true", help="copy directories and what they hold")

    p = add("ln", "make a hard link (or with -s a symbolic link) in a workspace", files.cmd_ln)
    p.add_argument("target", metavar="TARGET", help="the existing file (hard link) or the text of the symlink")
    p.add_argument("link", metavar="LINK", help="the new name, or an existing directory to put it in")
    p.add_argument("-s", "--symbolic", action="store_true", help="a symbolic link (TARGET need not exist)")
    p.add_argument("-T", "--no-target-directory", action="store_true", help="treat LINK as a name even if it is a directory")

    p = add("mkdir", "make directories in a workspace", files.cmd_mkdir)
    p.add_argument("paths", nargs="+", metavar="PATH", help="directories to make")
    p.add_argument("-p", "--parents", action="store_true", help="make missing parents; an existing directory is fine")

    p = add("chmod", "change mode bits (octal 755 or symbolic u+x,go-w)", files.cmd_chmod)
    p.add_argument("mode", metavar="MODE", help="octal (644, 0755) or symbolic clauses as chmod(1): u+x, go-w, a=rX")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or directories")
    p.add_argument("-R", "--recursive", action="store_true", help="also everything below a directory (symlinks skipped)")


def _transfer(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("put", "upload a local file or (with -r) directory, or - for stdin, to a workspace", transfer.cmd_put)
    p.add_argument("src", metavar="LOCAL", help="local file, directory (-r) or - for stdin")
    p.add_argument("dst", metavar="PATH", nargs="?", default=None,
                   help="destination (default: /BASENAME of LOCAL; into it if it is a directory)")
    p.add_argument("-r", "--recursive", action="store_true", help="upload a directory and everything below it")
    p.add_argument("-p", "--parents", action="store_true", help="create missing parent directories")
    p.add_argument("--if-match", default=None, metavar="HASH", help="only replace this content id ('' = must not exist)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    p = add("get", "download a workspace file or (with -r) directory, or - for stdout", transfer.cmd_get)
    p.add_argument("src", metavar="PATH", help="workspace file, or directory with -r")
    p.add_argument("dst", metavar="LOCAL", nargs="?", default=None,
                   help="destination (default: ./BASENAME of PATH; into it if it is a directory; - for stdout)")
    p.add_argument("-r", "--recursive", action="store_true", help="download a directory and everything below it")
    p.add_argument("--rev", type=int, default=None, help="the version committed at this revision")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _queries(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("find", "list paths below a directory, optionally by name glob and kind", queries.cmd_find, listing=True)
    p.add_argument("path", nargs="?", default="/", help="where to look (default: /)")
    p.add_argument("--name", "-name", default=None, metavar="GLOB",
                   help="without '/': matches the name at any depth, as find -name ('*.md'); "
                        "with '/': matches the path relative to PATH ('docs/*.md'; '**' crosses directories)")
    p.add_argument("--type", "-type", "-t", choices=("f", "d", "l", "p", "s", "c", "b", "file", "dir", "symlink",
                                                    "fifo", "socket", "char", "block"), default=None,
                   help="only files (f), directories (d), symlinks (l), FIFOs (p), sockets (s), "
                        "character (c) or block (b) devices, as find(1)'s -type")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="stop after N paths")

    p = add("grep", "search text files for a string or regex", queries.cmd_grep, listing=True)
    p.add_argument("pattern", metavar="PATTERN", help="a plain string (or a Python regex with -E)")
    p.add_argument("paths", nargs="*", metavar="PATH", help="files or directories to search (default: /)")
    p.add_argument("-E", "--regex", action="store_true", help="PATTERN is a regular expression")
    p.add_argument("-i", "--ignore-case", action="store_true", help="match regardless of case")
    p.add_argument("--include", default=None, metavar="GLOB", help="only files whose name (or relative path) matches")
    p.add_argument("-C", "--context", type=int, default=0, metavar="N", help="N lines of context around each match")
    p.add_argument("-l", "--files-with-matches", action="store_true", help="print only the names of matching files")
    p.add_argument("-n", "--line-number", action="store_true", help="accepted for grep(1) habits: lines are always numbered")
    p.add_argument("-r", "--recursive", action="store_true", help="accepted for grep(1) habits: directories are always searched")
    p.add_argument("-m", "--max-count", type=int, default=None, metavar="N", help="stop after N matches")

    p = add("du", "bytes used below paths (hard links counted once)", queries.cmd_du, listing=True)
    p.add_argument("paths", nargs="*", metavar="PATH", help="files or directories (default: /)")
    p.add_argument("-d", "--max-depth", type=int, default=0, metavar="N",
                   help="also each directory down to N levels below PATH (as du -d)")
    p.add_argument("-a", "--all", action="store_true", help="with -d, files too, not only directories")
    p.add_argument("-H", "--human", action="store_true", help="sizes in KiB, MiB, GiB")

    p = add("history", "list the retained versions of a file (followed across renames and links), with authors",
            queries.cmd_history, listing=True)
    p.add_argument("path", metavar="PATH", help="a file (its versions are kept after it is deleted)")

    p = add("restore", "bring back the content and mode a file had at REV (a REV listed by history)",
            queries.cmd_restore)
    p.add_argument("path", metavar="PATH", help="the file to restore (recreated if deleted)")
    p.add_argument("rev", metavar="REV", type=int, help="a revision listed by `wsfs history PATH`")

    p = add("watch", "print changes under a prefix as they happen (rides out server restarts)", queries.cmd_watch)
    p.add_argument("prefix", nargs="?", default="/", help="only changes at or below this path (default: /)")
    p.add_argument("--after", default="now", metavar="CURSOR",
                   help="resume after this cursor (default 'now'; '' = everything from the start)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--count", type=int, default=None, metavar="N", help="exit after N events")
    p.add_argument("--ignore", action="append", default=[], metavar="PATTERN",
                   help="gitignore-style pattern of paths to leave out (repeatable)")


def _conflicts(subparsers: argparse._SubParsersAction) -> None:
    top = subparsers.add_parser("conflicts", parents=[common_options(), json_options()],
                                help="list, compare and resolve conflict copies (NAME.conflict-HOST-STAMP.EXT)",
                                description="Conflict copies hold 'mine' (the edit that lost); the file beside "
                                            "them holds 'theirs'. Without an action: list every copy.")
    top.set_defaults(func=lambda args: run(conflicts.cmd_conflicts_list, args), path="/")
    actions = top.add_subparsers(dest="conflicts_action", metavar="ACTION")
    common = common_options(inherited=True)
    p = actions.add_parser("list", parents=[common, json_options(inherited=True)],
                           help="list the conflict copies below PATH")
    p.add_argument("path", nargs="?", default="/", help="where to look (default: /)")
    p.set_defaults(func=lambda args: run(conflicts.cmd_conflicts_list, args))
    p = actions.add_parser("diff", parents=[common], help="show how mine (the copy) differs from theirs (the file)")
    p.add_argument("copy", metavar="COPY", help="a conflict copy")
    p.set_defaults(func=lambda args: run(conflicts.cmd_conflicts_diff, args))
    p = actions.add_parser("resolve", parents=[common], help="keep mine, theirs or both")
    p.add_argument("copies", nargs="*", metavar="COPY", help="conflict copies to resolve")
    p.add_argument("--keep", required=True, choices=("mine", "theirs", "both"),
                   help="mine: the copy replaces the file; theirs: the copy goes; both: the copy stays, renamed "
                        "without its conflict marker")
    p.add_argument("--all", action="store_true", help="every conflict copy in the workspace")
    p.set_defaults(func=lambda args: run(_resolve_checked, args))


async def _resolve_checked(args: argparse.Namespace) -> int:
    from client_py.cli.common import UsageError

    if bool(args.copies) == bool(args.all):
        raise UsageError("conflicts resolve needs COPY... or --all (not both)")
    return await conflicts.cmd_conflicts_resolve(args)
