"""`wsfs serve`, and the tokens of a data dir.

`register_serve(subparsers)` adds `serve` to the `wsfs` argparse tree; its
`func` returns the exit status. `token_list`, `token_create` and
`token_revoke` work directly on a data dir (`DATA/server.db`), so they need
no running server and no admin token: `wsfs token ... --data DIR` uses them
(the `token` family is assembled in `wsfs/tokens.py`, which also knows the
remote half). `register(subparsers)` is the tree of `python -m server`:
`serve` and the local `token create|list|revoke`.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import socket
import sys
from pathlib import Path
from typing import Any

DEFAULT_DATA = "./wsfs-data"


def _size(text: str) -> int:
    """`512M`, `4G`, `1048576` -> bytes."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    t = text.strip().lower().removesuffix("b").removesuffix("i")
    if t and t[-1] in units:
        return int(float(t[:-1]) * units[t[-1]])
    return int(t)


def register_serve(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser("serve", help="run the workspace server",
                                  description="Serve the workspaces of a data directory over HTTP and WebSocket, "
                                              "with the browser demo at /. Prints a demo URL with a working token.")
    serve.add_argument("--data", default=DEFAULT_DATA, help=f"data directory (default {DEFAULT_DATA})")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default: %(default)s, this machine only; 0.0.0.0 for every "
                            "interface, then put a TLS proxy in front)")
    serve.add_argument("--port", type=int, default=8765, help="TCP port (default: %(default)s; 0 picks a free one)")
    serve.add_argument("--max-upload", type=_size, default=None, help="largest PUT body, e.g. 4G")
    serve.add_argument("--max-big-uploads", type=int, default=None, metavar="N",
                       help="PUTs of 8 MiB or more received at once, ~16 MiB of memory each (default 16; "
                            "one more is answered 503 with Retry-After)")
    serve.add_argument("--max-file-size", type=_size, default=None,
                       help="largest file a write may make (413 EFBIG past it; default 16G), e.g. 64G")
    serve.add_argument("--quota", type=_size, default=None,
                       help="logical bytes per workspace, as `du /` counts them (507 EDQUOT past it; default none)")
    serve.add_argument("--writers", type=int, default=4,
                       help="writer threads shared by every workspace (default: %(default)s; one workspace's "
                            "writes always run in order, one at a time)")
    serve.add_argument("--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug", "trace"),
                       help="uvicorn's log level (default: %(default)s; info logs every request)")
    serve.add_argument("--ws-ping-interval", type=float, default=30.0,  # server/keepalive.py INTERVAL
                       help="seconds between WebSocket pings (default: %(default)s; none to a client heard from "
                            "within it); a client silent for interval+timeout is dropped")
    serve.add_argument("--ws-ping-timeout", type=float, default=15.0,  # server/keepalive.py TIMEOUT
                       help="seconds for a ping's answer, or any other bytes (default: %(default)s)")
    serve.add_argument("--http", choices=("h11", "httptools"), default=None,
                       help="uvicorn's HTTP/1.1 parser (default: $WSFS_HTTP, else httptools if installed; "
                            "docs/server.md)")
    serve.add_argument("--loop", choices=("asyncio", "uvloop"), default=None,
                       help="the event loop (default: $WSFS_LOOP, else uvloop if installed; "
                            "docs/server.md)")
    serve.add_argument("--no-seed", dest="seed", action="store_false",
                       help="leave a new demo workspace empty (default: a few example files)")
    cluster = serve.add_argument_group("cluster mode (SPEC §6, docs/cluster.md)")
    cluster.add_argument("--cluster", metavar="REDIS_URL",
                         help="join a cluster: leases, presence and tokens on this Redis, e.g. redis://127.0.0.1:6379/0")
    cluster.add_argument("--replicate", metavar="S3_URL",
                         help="replicate every workspace to s3://BUCKET/PREFIX (credentials from AWS_ACCESS_KEY_ID "
                              "and AWS_SECRET_ACCESS_KEY)")
    cluster.add_argument("--s3-endpoint", metavar="URL", help="the S3 endpoint (default: AWS)")
    cluster.add_argument("--advertise", metavar="URL",
                         help="this node's URL for the other nodes (default: http://HOST:PORT)")
    cluster.add_argument("--node-id", help="this node's id (default: from --advertise)")
    cluster.add_argument("--fence-window", type=float, default=None, metavar="SECONDS",
                         help="how long a manifest check covers later syncs (default 0.5; 0: check after every "
                              "sync, for VMs whose clock may stop while frozen; docs/cluster.md)")
    cluster.add_argument("--cluster-chunks", choices=("objects", "sqlite"), default=None,
                         help="where chunk bytes beyond a transaction's first 64 KiB go: objects (S3 objects, so a "
                              "failover restores only the catalogue; the default) or sqlite (inside the replicated "
                              "store file)")
    cluster.add_argument("--chunk-grace", type=float, default=None, metavar="SECONDS",
                         help="how long the chunk collector spares an unnamed object (default 60)")
    cluster.add_argument("--chunk-cache-mb", type=float, default=None, metavar="MIB",
                         help="this node's on-disk cache of S3 chunk objects (default 1024)")
    serve.add_argument("--switch-interval", type=float, default=None, help=argparse.SUPPRESS)
    # seconds of quiet before a store closes / sleeps (60 / 20): shorter in tests and bench/bench_scale.py
    serve.add_argument("--idle-close", type=float, default=None, help=argparse.SUPPRESS)
    serve.add_argument("--idle-readers", type=float, default=None, help=argparse.SUPPRESS)
    serve.set_defaults(func=cmd_serve)


def register(subparsers: argparse._SubParsersAction) -> None:
    """`python -m server`: serve, and tokens on a data dir."""
    register_serve(subparsers)
    token = subparsers.add_parser("token", help="create, list or revoke access tokens")
    tsub = token.add_subparsers(dest="token_command", required=True)
    create = tsub.add_parser("create", help="mint a token (printed once)")
    create.add_argument("workspace", nargs="?", help="the workspace the token is scoped to")
    scope = create.add_mutually_exclusive_group(required=True)
    scope.add_argument("--read", dest="scope", action="store_const", const="read", help="may read the workspace")
    scope.add_argument("--write", dest="scope", action="store_const", const="write", help="may read and write it")
    scope.add_argument("--admin", dest="scope", action="store_const", const="admin", help="an admin token (no workspace)")
    create.add_argument("--name", default="", help="a label shown in `token list` and as change author")
    create.add_argument("--data", default=DEFAULT_DATA, help=f"data directory (default {DEFAULT_DATA})")
    create.set_defaults(func=cmd_token_create)
    lst = tsub.add_parser("list", help="list tokens (never their secrets)")
    lst.add_argument("--data", default=DEFAULT_DATA, help=f"data directory (default {DEFAULT_DATA})")
    lst.set_defaults(func=cmd_token_list)
    revoke = tsub.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("id", help="the token's id (from token list)")
    revoke.add_argument("--data", default=DEFAULT_DATA, help=f"data directory (default {DEFAULT_DATA})")
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


def reachable_hosts(host: str) -> list[str]:
    """The addresses other machines can use when listening on every interface (as Jupyter prints them).

    This machine's names resolve to some; the source address of a route to a
    public address (a UDP "connect" sends no packet) finds the main interface.
    """
    if host not in ("0.0.0.0", "", "::"):
        return [_url_host(host)]
    found: list[str] = []
    try:
        found += [str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)]
    except OSError:
        pass
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed anywhere, nothing is sent
            found.append(probe.getsockname()[0])
        except OSError:
            pass
    return ["127.0.0.1"] + [a for a in dict.fromkeys(found) if not a.startswith("127.") and a != "0.0.0.0"]


def _port_in_use(args: argparse.Namespace, data: Path) -> str:
    """What to say when the port is taken: most often README's first command, run a second time."""
    try:
        demo = (data / "demo-token").read_text().strip()
    except OSError:
        demo = ""
    already = (f" If it is a wsfs serve already running on {data.resolve()}, its demo is at "
               f"http://{_url_host(args.host)}:{args.port}/?token={demo} ." if demo else "")
    return (f"wsfs serve: port {args.port} on {args.host} is already in use.{already} "
            f"Stop the other server, or pick another port: --port {args.port + 1} (or --port 0 for any free one).")


def cmd_serve(args: argparse.Namespace) -> int:
    from server import gcpolicy
    from server.app import create_app
    from server.auth import TokenStore, ensure_admin, ensure_demo_token
    from server.runner import WsfsServer, bind, make_config

    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    data = Path(args.data)
    try:
        sock = bind(args.host, args.port)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            print(_port_in_use(args, data), file=sys.stderr)
        else:
            print(f"wsfs serve: cannot listen on {args.host}:{args.port}: {e.strerror or e}", file=sys.stderr)
        return 1
    data.mkdir(parents=True, exist_ok=True)
    port = sock.getsockname()[1]
    try:
        cluster = _cluster_setup(args, port)
    except ValueError as e:
        print(f"wsfs serve: {e}", file=sys.stderr)
        return 2
    tokens = TokenStore(data) if cluster is None else cluster.tokens
    try:
        admin = ensure_admin(tokens)
        demo = ensure_demo_token(tokens, data)
    except Exception as e:  # noqa: BLE001 - in cluster mode: the shared token store (Redis) did not answer
        if cluster is None:
            raise
        print(f"wsfs serve: cannot reach the cluster's Redis at {args.cluster}: {e}", file=sys.stderr)
        return 1
    if cluster is None:
        tokens.close()
    app = create_app(data, max_upload=args.max_upload, seed_demo=args.seed, max_file_size=args.max_file_size,
                     quota=args.quota, writers=max(1, args.writers), cluster=cluster,
                     max_big_uploads=args.max_big_uploads)
    store = app.state.wsfs.config.store
    store.idle_close = args.idle_close if args.idle_close is not None else store.idle_close
    store.idle_readers = args.idle_readers if args.idle_readers is not None else store.idle_readers
    bases = [f"http://{h}:{port}" for h in reachable_hosts(args.host)]
    if admin is not None:
        print(f"wsfs: created the admin token (shown only now; keep it safe): {admin}", flush=True)
    if not _is_loopback(args.host):
        print(f"wsfs: WARNING: listening on {args.host} without TLS: tokens and data travel in clear text; "
              "put a TLS proxy in front", file=sys.stderr, flush=True)
    print(f"wsfs: serving {data.resolve()} on {bases[0]}", flush=True)
    if cluster is not None:
        print(f"wsfs: cluster node {cluster.node.node} (advertised at {cluster.node.advertise}), "
              f"replicating to {args.replicate}", flush=True)
    print(f"wsfs: open the demo: {bases[0]}/?token={demo}", flush=True)
    for other in bases[1:]:
        print(f"wsfs:            or: {other}/?token={demo}", flush=True)
    stack = {k: v for k, v in (("http", args.http), ("loop", args.loop)) if v}
    server = WsfsServer(make_config(app, log_level=args.log_level, ws_ping_interval=args.ws_ping_interval,
                                    ws_ping_timeout=args.ws_ping_timeout, **stack))
    gcpolicy.install()  # full garbage collections on the sweep's schedule, not mid-request
    server.run(sockets=[sock])
    return 0


def _cluster_setup(args: argparse.Namespace, port: int) -> Any:
    """The cluster half of `wsfs serve --cluster ...` (None without --cluster)."""
    if not args.cluster and not args.replicate:
        return None
    if not (args.cluster and args.replicate):
        raise ValueError("cluster mode needs both --cluster redis://... and --replicate s3://BUCKET/PREFIX")
    import logging

    from server.cluster.node import ClusterConfig
    from server.cluster.serve import ClusterSetup

    level = "DEBUG" if args.log_level == "trace" else args.log_level.upper()
    logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("wsfs").setLevel(level)  # ownership moves are worth a line at info

    advertise = args.advertise or f"http://{_url_host(args.host)}:{port}"
    chosen = {"fence_window": args.fence_window, "chunks": args.cluster_chunks, "chunk_grace": args.chunk_grace,
              "chunk_cache_bytes": None if args.chunk_cache_mb is None else int(args.chunk_cache_mb * 1024 * 1024)}
    given = {name: value for name, value in chosen.items() if value is not None}  # else ClusterConfig's defaults
    return ClusterSetup(ClusterConfig(redis_url=args.cluster, replicate=args.replicate, advertise=advertise,
                                      s3_endpoint=args.s3_endpoint, node_id=args.node_id, **given), Path(args.data))


def _workspace_exists(data: Path, name: str) -> bool:
    from vfs.wire import valid_workspace_name

    return valid_workspace_name(name) and (data / "workspaces" / f"{name}.db").exists()


# ---------------------------------------------------------------- tokens of a data dir


def token_list(data: Path) -> list[dict[str, Any]]:
    """Every token of the data dir (id, name, workspace, scope, created), never a secret."""
    from server.auth import TokenStore

    tokens = TokenStore(data)
    try:
        return tokens.list()
    finally:
        tokens.close()


def token_create(data: Path, workspace: str | None, scope: str, name: str) -> tuple[dict[str, Any], str]:
    """(the new token's listing row, its secret); FileNotFoundError when the workspace does not exist."""
    from server.auth import TokenStore

    if scope == "admin":
        workspace = None
    elif not workspace or not _workspace_exists(data, workspace):
        raise FileNotFoundError(errno.ENOENT, f"no workspace {workspace!r} in {data}", workspace)
    tokens = TokenStore(data)
    try:
        principal, secret = tokens.create(workspace, scope, name)
        row = next(t for t in tokens.list() if t["id"] == principal.id)
    finally:
        tokens.close()
    return row, secret


def token_revoke(data: Path, token_id: str) -> None:
    """FileNotFoundError when there is no such token."""
    from server.auth import TokenStore

    tokens = TokenStore(data)
    try:
        if not tokens.revoke(token_id):
            raise FileNotFoundError(errno.ENOENT, f"no token {token_id!r}", token_id)
    finally:
        tokens.close()


def cmd_token_create(args: argparse.Namespace) -> int:
    if args.scope != "admin" and not args.workspace:
        print("wsfs token create: a workspace is required with --read/--write", file=sys.stderr)
        return 2
    try:
        row, secret = token_create(Path(args.data), args.workspace, args.scope, args.name)
    except FileNotFoundError as e:
        print(f"wsfs token create: {e.strerror}", file=sys.stderr)
        return 1
    print(secret)
    print(f"id {row['id']}, scope {row['scope']}, workspace {row['workspace'] or '*'}", file=sys.stderr)
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    print(f"{'ID':<14}{'SCOPE':<7}{'WORKSPACE':<20}NAME")
    for r in token_list(Path(args.data)):
        print(f"{r['id']:<14}{r['scope']:<7}{(r['workspace'] or '*'):<20}{r['name']}")
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    try:
        token_revoke(Path(args.data), args.id)
    except FileNotFoundError as e:
        print(f"wsfs token revoke: {e.strerror}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m server ...`: the same commands without the `wsfs` entry point."""
    parser = argparse.ArgumentParser(prog="python -m server")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)
