"""`wsfs workspaces` and the remote half of `wsfs token` (the other half works on a data dir: server/cli.py).

The `token` family itself (its options and its one output format) is
assembled by `wsfs/tokens.py`, the only place that may see both halves.
"""

from __future__ import annotations

import argparse
from typing import Any

from client_py.cli.common import UsageError, client, print_json


async def cmd_workspaces(args: argparse.Namespace) -> int:
    async with client(args) as c:
        if args.action == "list":
            for name in await c.workspaces():
                if args.json:
                    print_json({"name": name})
                else:
                    print(name)
            return 0
        if not args.name:
            raise UsageError(f"workspaces {args.action} needs a NAME")
        if args.action == "create":
            created = (await c.create_workspace(args.name)).get("created")
            print(f"{args.name} {'created' if created else 'already exists'}")
        else:
            await c.delete_workspace(args.name)
            print(f"{args.name} deleted")
    return 0


async def remote_token_list(args: argparse.Namespace) -> list[dict[str, Any]]:
    async with client(args) as c:
        return await c.tokens()


async def remote_token_create(args: argparse.Namespace, workspace: str | None, scope: str, name: str) -> tuple[dict[str, Any], str]:
    """(the token's listing row, its secret)."""
    if scope == "admin":
        raise UsageError("admin tokens are minted on the server's machine: wsfs token create --admin --data DIR")
    async with client(args) as c:
        made = await c.create_token(workspace or "", scope, name or None)
    secret = made.pop("token")
    return made, secret


async def remote_token_revoke(args: argparse.Namespace, token_id: str) -> None:
    async with client(args) as c:
        await c.revoke_token(token_id)
