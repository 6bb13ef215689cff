"""What every client command shares: running a command, exit codes, the connection, output helpers.

Exit codes (docs/client.md): a script can tell "not there" from "not
allowed" from "someone else changed it" from "no server" without parsing
messages. Each failure prints one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import stat as statmod
import sys
import time
from typing import Any, Callable, Coroutine

import orjson

DEFAULT_URL = "http://127.0.0.1:8765"

EXIT_OK = 0
EXIT_ERROR = 1  # anything not listed below
EXIT_USAGE = 2  # bad arguments (argparse uses 2 too)
EXIT_NOT_FOUND = 3  # no such file, workspace, revision or token
EXIT_PERMISSION = 4  # bad or revoked token, read-only token writing, another workspace's token
EXIT_CONFLICT = 5  # exists, not empty, changed since (If-Match), wrong kind of file
EXIT_UNREACHABLE = 6  # no server at the URL (after retries)
EXIT_BROKEN_PIPE = 141  # the reader went away (`wsfs cat big | head`): quiet, as the shell reports coreutils
EXIT_INTERRUPTED = 130  # Ctrl-C

_EXIT_BY_STATUS = {404: EXIT_NOT_FOUND, 401: EXIT_PERMISSION, 403: EXIT_PERMISSION, 409: EXIT_CONFLICT,
                   412: EXIT_CONFLICT, 400: EXIT_USAGE}


class UsageError(Exception):
    """Arguments that cannot work together: exit 2 with the message."""


def run(func: Callable[[argparse.Namespace], Coroutine[Any, Any, int]], args: argparse.Namespace) -> int:
    """Run a command; a failure becomes one line on stderr and the exit code of its kind."""
    try:
        return asyncio.run(func(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except UsageError as e:
        print(f"wsfs {args.command}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as e:  # noqa: BLE001 - the CLI's contract is a one-line message, not a traceback
        print(f"wsfs {args.command}: error: {message(e)}{_token_hint(e, args)}", file=sys.stderr)
        return exit_code(e)


def _token_hint(e: BaseException, args: argparse.Namespace) -> str:
    """A newcomer's first command has no token: say where one is."""
    from vfs.wire import EAUTH

    if getattr(e, "code", None) != EAUTH or getattr(args, "token", None) or os.environ.get("WSFS_TOKEN"):
        return ""
    return " (give one with --token or $WSFS_TOKEN; the demo's is in wsfs-data/demo-token)"


def _silence_stdout() -> None:
    """Python flushes stdout again at exit and would complain a second time: point it at /dev/null."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is not a real file (under a test's capture)
        pass


def exit_code(e: BaseException) -> int:
    """The exit code of a failure, by the HTTP status its wire error code carries."""
    from client_py.errors import ServerUnreachable
    from vfs.wire import exception_to_error, status_for

    if isinstance(e, ServerUnreachable):
        return EXIT_UNREACHABLE
    if isinstance(e, OSError) and e.errno is None:
        return EXIT_ERROR  # a local I/O problem without an errno
    return _EXIT_BY_STATUS.get(status_for(exception_to_error(e).code), EXIT_ERROR)


def message(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        named = e.filename and str(e.filename) not in e.strerror  # a message that names its path already
        return f"{e.strerror}: {e.filename}" if named else e.strerror
    text = str(e) or type(e).__name__
    return text.splitlines()[0]


def check_workspace_name(name: str) -> str:
    """Refuse a bad `-w` before the server answers something about admin tokens."""
    from vfs.wire import valid_workspace_name

    if not valid_workspace_name(name):
        raise UsageError(f"invalid workspace name {name!r}: 1-64 letters, digits, '.', '_' or '-', "
                         "not starting with '.', '_' or '-'")
    return name


def client(args: argparse.Namespace, *, long_running: bool = False):
    """A `Client` for the command's `--url` and `--token`.

    One-shot commands give up after a few seconds without a server (exit 6);
    long-running ones (`watch`) wait for it forever, with capped backoff, as
    `sync` does, so a server restart is a pause, not an end.
    """
    from client_py.backoff import Backoff
    from client_py.client import Client

    _skip_httpx_cli()
    if getattr(args, "workspace", None) is not None:
        check_workspace_name(args.workspace)
    backoff = Backoff(base=0.2, cap=5.0, retries=None) if long_running else Backoff(base=0.1, cap=1.0, retries=3)
    return Client(args.url, token=args.token, backoff=backoff)


def _skip_httpx_cli() -> None:
    """Keep httpx from importing its own command line when the client first imports httpx.

    httpx's `__init__` imports `httpx._main` (click, rich, pygments) whenever those are installed, as
    rich is here: ~40 ms of CPU at every HTTP command's start for a CLI this process never runs. A
    `None` in `sys.modules` makes that import fail, and httpx falls back to its stub `main`. Only in
    the `wsfs` process, and only if httpx is not loaded already (then it is too late, and harmless)."""
    if "httpx" not in sys.modules:
        sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]


def print_json(value: Any) -> None:
    print(orjson.dumps(value).decode())


def human(n: float) -> str:
    """Sizes in binary units everywhere (`1.5 MiB`), as the sync summary prints them."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def mode_string(kind: str, mode: int) -> str:
    """`-rw-r--r--`, `drwxr-xr-x`, `lrwxrwxrwx`: the file-type bits come from the kind."""
    type_bits = {"dir": statmod.S_IFDIR, "symlink": statmod.S_IFLNK, "fifo": statmod.S_IFIFO,
                 "socket": statmod.S_IFSOCK, "char": statmod.S_IFCHR, "block": statmod.S_IFBLK}.get(kind, statmod.S_IFREG)
    return statmod.filemode(type_bits | (mode & 0o7777))


def long_line(name: str, kind: str, size: int, mtime: float, mode: int, target: str | None = None) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(mtime))
    shown = f"{name} -> {target}" if kind == "symlink" and target is not None else name
    return f"{mode_string(kind, mode)} {size:>12} {when} {shown}"


def progress(enabled: bool, total: int | None, description: str):
    """A rich progress bar on stderr (binary units), or None when quiet or not on a terminal."""
    if not enabled or not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(binary_units=True),
                   TransferSpeedColumn(), TimeRemainingColumn(), console=Console(stderr=True), transient=True)
    bar.add_task(description, total=total)
    return bar
