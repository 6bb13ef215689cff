"""`wsfs serve` and `wsfs token create|list|revoke`.

`register(subparsers)` adds the commands to the `wsfs` argparse tree; each
sets `func`, which `wsfs.cli` calls with the parsed arguments and whose
return value is the exit status. Token commands work directly on the data
dir (`DATA/server.db`), so they need no running server and no admin token.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path

DEFAULT_DATA = "./wsfs-data"


def _size(text: str) -> int:
    """`512M`, `4G`, `1048576` -> bytes."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    t = text.strip().lower().removesuffix("b").removesuffix("i")
    if t and t[-1] in units:
        return int(float(t[:-1]) * units[t[-1]])
    return int(t)


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser("serve", help="run the workspace server")
    serve.add_argument("--data", default=DEFAULT_DATA, help=f"data directory (default {DEFAULT_DATA})")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    serve.add_argument("--max-upload", type=_size, default=None, help="largest PUT body, e.g. 4G")
    serve.add_argument("--log-level", default="warning")
    serve.add_argument("--ws-ping-interval", type=float, default=20.0,
                       help="seconds between WebSocket pings; a client silent for interval+timeout is dropped")
    serve.add_argument("--ws-ping-timeout", type=float, default=20.0)
    serve.add_argument("--no-seed", dest="seed", action="store_false",
                       help="leave a new demo workspace empty (default: a few example files)")
    serve.add_argument("--switch-interval", type=float, default=None, help=argparse.SUPPRESS)
    serve.set_defaults(func=cmd_serve)

    token = subparsers.add_parser("token", help="create, list or revoke access tokens")
    tsub = token.add_subparsers(dest="token_command", required=True)
    create = tsub.add_parser("create", help="mint a token (printed once)")
    create.add_argument("workspace", nargs="?", help="the workspace the token is scoped to")
    scope = create.add_mutually_exclusive_group(required=True)
    scope.add_argument("--read", dest="scope", action="store_const", const="read")
    scope.add_argument("--write", dest="scope", action="store_const", const="write")
    scope.add_argument("--admin", dest="scope", action="store_const", const="admin", help="an admin token (no workspace)")
    create.add_argument("--name", default="", help="a label shown in `token list` and as change author")
    create.add_argument("--data", default=DEFAULT_DATA)
    create.set_defaults(func=cmd_token_create)
    lst = tsub.add_parser("list", help="list tokens (never their secrets)")
    lst.add_argument("--data", default=DEFAULT_DATA)
    lst.set_defaults(func=cmd_token_list)
    revoke = tsub.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("id")
    revoke.add_argument("--data", default=DEFAULT_DATA)
    revoke.set_defaults(func=cmd_token_revoke)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def cmd_serve(args: argparse.Namespace) -> int:
    from server.app import create_app
    from server.auth import TokenStore, ensure_admin, ensure_demo_token
    from server.runner import WsfsServer, bind, make_config

    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    data = Path(args.data)
    data.mkdir(parents=True, exist_ok=True)
    tokens = TokenStore(data)
    admin = ensure_admin(tokens)
    demo = ensure_demo_token(tokens, data)
    tokens.close()
    app = create_app(data, max_upload=args.max_upload, seed_demo=args.seed)
    sock = bind(args.host, args.port)
    port = sock.getsockname()[1]
    base = f"http://{_url_host(args.host)}:{port}"
    if admin is not None:
        print(f"wsfs: created the admin token (shown only now; keep it safe): {admin}", flush=True)
    if not _is_loopback(args.host):
        print(f"wsfs: WARNING: listening on {args.host} without TLS: tokens and data travel in clear text; "
              "put a TLS proxy in front", file=sys.stderr, flush=True)
    print(f"wsfs: serving {data.resolve()} on {base}", flush=True)
    print(f"wsfs: open the demo: {base}/?token={demo}", flush=True)
    server = WsfsServer(make_config(app, log_level=args.log_level, ws_ping_interval=args.ws_ping_interval,
                                    ws_ping_timeout=args.ws_ping_timeout))
    server.run(sockets=[sock])
    return 0


def _workspace_exists(data: Path, name: str) -> bool:
    from vfs.wire import valid_workspace_name

    return valid_workspace_name(name) and (data / "workspaces" / f"{name}.db").exists()


def cmd_token_create(args: argparse.Namespace) -> int:
    from server.auth import TokenStore

    data = Path(args.data)
    if args.scope == "admin":
        workspace = None
    else:
        if not args.workspace:
            print("wsfs token create: a workspace is required with --read/--write", file=sys.stderr)
            return 2
        if not _workspace_exists(data, args.workspace):
            print(f"wsfs token create: no workspace {args.workspace!r} in {data}", file=sys.stderr)
            return 1
        workspace = args.workspace
    tokens = TokenStore(data)
    try:
        principal, secret = tokens.create(workspace, args.scope, args.name)
    finally:
        tokens.close()
    print(secret)
    print(f"id {principal.id}, scope {principal.scope}, workspace {principal.workspace or '*'}", file=sys.stderr)
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    from server.auth import TokenStore

    tokens = TokenStore(Path(args.data))
    try:
        rows = tokens.list()
    finally:
        tokens.close()
    print(f"{'ID':<14}{'SCOPE':<7}{'WORKSPACE':<20}NAME")
    for r in rows:
        print(f"{r['id']:<14}{r['scope']:<7}{(r['workspace'] or '*'):<20}{r['name']}")
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    from server.auth import TokenStore

    tokens = TokenStore(Path(args.data))
    try:
        ok = tokens.revoke(args.id)
    finally:
        tokens.close()
    if not ok:
        print(f"wsfs token revoke: no token {args.id!r}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m server ...`: the same commands without the `wsfs` entry point."""
    parser = argparse.ArgumentParser(prog="python -m server")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)
