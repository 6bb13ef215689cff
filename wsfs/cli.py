"""The `wsfs` command.

Only a dispatcher: each package registers its own subcommands, so the
server and the client never import each other. `serve` and `token` come
from `server.cli`; `sync`, `ls`, `cat`, `put`, ... from `client_py.cli`;
`mount` and `umount` from `client_py.mount.cli`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that contribute subcommands, each exposing `register(subparsers)`.
COMMAND_MODULES = ("server.cli", "client_py.cli", "client_py.mount.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wsfs",
        description="wsfs: a live workspace filesystem (SQLite stores, WebSocket change streams, live replicas).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
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
