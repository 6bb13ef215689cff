"""The `wsfs` command.

Only a dispatcher: each package registers its own subcommands, so the
server and the client never import each other. `serve` comes from
`server.cli`; `sync`, `ls`, `cat`, `put`, ... from `client_py.cli`;
`mount` and `umount` from `client_py.mount.cli`; `store convert` (a
store's chunk bytes between pack files and SQLite, for joining a cluster)
from `server.cluster.convert`; the `token` family, which
works on a data dir (server side) or over a server (client side), from
`wsfs.tokens`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that contribute subcommands, with the function that registers them.
COMMAND_MODULES = (("server.cli", "register_serve"), ("wsfs.tokens", "register"), ("client_py.cli", "register"),
                   ("client_py.mount.cli", "register"), ("server.cluster.convert", "register"))


CLIENT_MODULE = ("client_py.cli", "register")  # most commands, and the ones run most often (`sync`, `ls`, ...)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; for a `command` the client registers (`sync`, `ls`, ...) only the client's
    part: the store, the mount (ctypes) and the cluster are then never imported (~15 ms of start-up)."""
    parser = argparse.ArgumentParser(
        prog="wsfs",
        description="wsfs: a live workspace filesystem (SQLite stores, WebSocket change streams, live replicas).",
        epilog="Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 permission, 5 conflict, 6 server unreachable "
               "(docs/client.md). `wsfs COMMAND --help` describes each command.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = COMMAND_MODULES
    if command is not None and not command.startswith("-"):
        _register(subparsers, CLIENT_MODULE)
        if command in subparsers.choices:
            return parser
        modules = tuple(m for m in COMMAND_MODULES if m != CLIENT_MODULE)
    for module in modules:
        _register(subparsers, module)
    return parser


def _register(subparsers: argparse._SubParsersAction, module: tuple[str, str]) -> None:
    module_name, function = module
    getattr(importlib.import_module(module_name), function)(subparsers)


def main(argv: list[str] | None = None) -> int:
    if argv is None and sys.argv[1:2] == ["serve"]:
        from server.allocator import reexec_on_system_malloc

        reexec_on_system_malloc()  # before any import: a server gives memory back on the C allocator
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
