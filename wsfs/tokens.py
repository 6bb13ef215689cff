"""`wsfs token create|list|revoke`: one command family, on a data dir or over a server.

- `--data DIR`: works on the data dir's token store directly (no server
  needed, no admin token; the only way to mint an admin token);
- `--url URL` (or `$WSFS_URL`): asks that server, with an admin token
  (`--token` or `$WSFS_TOKEN`);
- neither: the data dir `./wsfs-data` if it exists here, else the server at
  the default URL.

Both ways print the same thing: `list` a table (or `--json`, one object per
line), `create` the secret on stdout and what it grants on stderr, `revoke`
one line. This module is the only one that sees both halves (`server.cli`
for the data dir, `client_py.cli.admin` for the server), which must not
import each other.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from client_py.cli import admin as remote
from client_py.cli.common import UsageError, print_json, run
from server import cli as local
from server.cli import DEFAULT_DATA


def register(subparsers: argparse._SubParsersAction) -> None:
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--data", default=None, metavar="DIR",
                       help=f"work on this data dir directly (default when --url and $WSFS_URL are unset and "
                            f"{DEFAULT_DATA} exists)")
    where.add_argument("--url", default=None, help="ask this server (default: $WSFS_URL)")
    where.add_argument("--token", default=None, help="an admin token for --url (default: $WSFS_TOKEN)")

    token = subparsers.add_parser("token", help="create, list or revoke access tokens (on a data dir or a server)",
                                  description=__doc__.split("\n\n")[1] if __doc__ else None,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")

    create = actions.add_parser("create", parents=[where], help="mint a token (its secret is printed once)")
    create.add_argument("workspace", nargs="?", help="the workspace the token is scoped to (not with --admin)")
    scope = create.add_mutually_exclusive_group(required=True)
    scope.add_argument("--read", dest="scope", action="store_const", const="read", help="may read the workspace")
    scope.add_argument("--write", dest="scope", action="store_const", const="write", help="may read and write it")
    scope.add_argument("--admin", dest="scope", action="store_const", const="admin",
                       help="an admin token, for every workspace (only with --data)")
    create.add_argument("--name", default="", help="a label shown by `token list` and as the author of changes")
    create.set_defaults(func=lambda args: run(_create, args))

    listing = actions.add_parser("list", parents=[where], help="list tokens (never their secrets)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(func=lambda args: run(_list, args))

    revoke = actions.add_parser("revoke", parents=[where], help="revoke a token by id (its sessions close at once)")
    revoke.add_argument("id", help="the token's id, from `token list`")
    revoke.set_defaults(func=lambda args: run(_revoke, args))


def data_dir(args: argparse.Namespace) -> Path | None:
    """The data dir to use, or None to ask the server."""
    if args.data is not None:
        if args.url:
            raise UsageError("give --data (this machine's data dir) or --url (a server), not both")
        return Path(args.data)
    if args.url or os.environ.get("WSFS_URL"):
        return None
    return Path(DEFAULT_DATA) if Path(DEFAULT_DATA, "server.db").exists() else None


def _remote_args(args: argparse.Namespace) -> argparse.Namespace:
    from client_py.cli.common import DEFAULT_URL

    url = args.url or os.environ.get("WSFS_URL") or DEFAULT_URL
    return argparse.Namespace(**{**vars(args), "url": url, "workspace": None})


async def _list(args: argparse.Namespace) -> int:
    data = data_dir(args)
    rows = local.token_list(data) if data else await remote.remote_token_list(_remote_args(args))
    if args.json:
        for r in rows:
            print_json({k: r.get(k) for k in ("id", "scope", "workspace", "name", "created")})
        return 0
    print(f"{'ID':<14}{'SCOPE':<7}{'WORKSPACE':<20}NAME")
    for r in rows:
        print(f"{r['id']:<14}{r['scope']:<7}{(r.get('workspace') or '*'):<20}{r.get('name') or ''}")
    return 0


async def _create(args: argparse.Namespace) -> int:
    if args.scope == "admin" and args.workspace:
        raise UsageError("an admin token has no workspace")
    if args.scope != "admin" and not args.workspace:
        raise UsageError("a workspace is required with --read/--write")
    data = data_dir(args)
    row: dict[str, Any]
    if data:
        row, secret = local.token_create(data, args.workspace, args.scope, args.name)
    else:
        row, secret = await remote.remote_token_create(_remote_args(args), args.workspace, args.scope, args.name)
    print(secret)
    print(f"id {row['id']}, scope {row['scope']}, workspace {row.get('workspace') or '*'}, name {row.get('name') or ''}",
          file=sys.stderr)
    return 0


async def _revoke(args: argparse.Namespace) -> int:
    data = data_dir(args)
    if data:
        local.token_revoke(data, args.id)
    else:
        await remote.remote_token_revoke(_remote_args(args), args.id)
    print(f"revoked {args.id}")
    return 0
