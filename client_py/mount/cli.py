"""`wsfs mount` and `wsfs umount`."""

from __future__ import annotations

import argparse
import logging
import os
import sys


def register(subparsers) -> None:
    mount = subparsers.add_parser(
        "mount",
        help="mount a workspace with FUSE",
        usage="wsfs mount STORE.db MOUNTPOINT | URL WORKSPACE MOUNTPOINT [--background] [--cache DIR] [--token T] "
              "[--api lowlevel|path] [--commit-idle S] [--commit-max-age S]",
        description=(
            "wsfs mount STORE.db MOUNTPOINT mounts a local store; "
            "wsfs mount URL WORKSPACE MOUNTPOINT mounts a remote workspace through a local cache store."
        ),
    )
    add_mount_arguments(mount)
    mount.set_defaults(func=run_mount)
    umount = subparsers.add_parser("umount", help="unmount a wsfs mount, flushing everything")
    umount.add_argument("mountpoint", metavar="MOUNTPOINT",
                        help="the directory a `wsfs mount` is mounted on")
    umount.add_argument("--lazy", action="store_true", help="detach now even if busy (fusermount3 -z)")
    umount.set_defaults(func=run_umount)


def add_mount_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("targets", nargs="+", metavar="ARG", help="STORE.db MOUNTPOINT, or URL WORKSPACE MOUNTPOINT")
    parser.add_argument("--background", action="store_true", help="daemonize once the mount is live")
    parser.add_argument("--cache", metavar="DIR", help="remote mode: directory of the local cache store")
    parser.add_argument("--token", default=os.environ.get("WSFS_TOKEN"), help="remote mode: API token ($WSFS_TOKEN)")
    parser.add_argument("--log", metavar="FILE", help="with --background: append the daemon's log here")
    parser.add_argument("--debug", action="store_true", help="log every FUSE call")
    parser.add_argument("--commit-idle", type=_seconds, default=None, metavar="SECONDS",
                        help="local mode: commit a burst of changes once it pauses this long (default 0.01)")
    parser.add_argument("--commit-max-age", type=_seconds, default=None, metavar="SECONDS",
                        help="local mode: commit a burst once it is this old (default 0.1): the most a crash "
                        "of the machine can lose, as fsync commits at once")
    parser.add_argument("--api", choices=("path", "lowlevel"), default=None,
                        help="libfuse's low-level inode API or its path API (mfusepy); default $WSFS_MOUNT_API "
                        "or lowlevel")


def _seconds(text: str) -> float:
    """A positive number of seconds (argparse names the option on error)."""
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: not a positive number of seconds")
    return value


def run_mount(args: argparse.Namespace) -> int:
    from client_py.mount import runner

    *source, mountpoint = args.targets
    api = args.api or runner.default_api()
    if len(source) not in (1, 2):
        print("usage: wsfs mount STORE.db MOUNTPOINT | wsfs mount URL WORKSPACE MOUNTPOINT", file=sys.stderr)
        return 2
    commit = {"idle": args.commit_idle, "max_age": args.commit_max_age}
    if len(source) == 2 and any(commit.values()):
        print("wsfs mount: --commit-idle and --commit-max-age are for a local store "
              "(a remote mount pushes what the server acknowledges)", file=sys.stderr)
        return 2
    if not os.path.isdir(mountpoint):
        print(f"wsfs mount: {mountpoint}: not a directory", file=sys.stderr)
        return 1
    if args.background:
        if len(source) == 1 and not _local_store_free(source[0]):
            return 1
        pid = runner.start_background(_rebuild(args), mountpoint, args.log)
        print(f"mounted at {mountpoint} (daemon pid {pid})")
        return 0
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.DEBUG if args.debug else logging.WARNING)
    if len(source) == 1:
        import vfs

        try:
            runner.mount_local(source[0], mountpoint, debug=args.debug, api=api,
                               commit={k: v for k, v in commit.items() if v is not None})
        except vfs.StoreBusy as exc:
            return _busy(exc)
        return 0
    from client_py.mount import remote_backend
    from vfs.wire import ProtocolError

    try:
        remote_backend.mount_remote(source[0], source[1], mountpoint, cache=args.cache, token=args.token, debug=args.debug,
                                    api=api)
    except (ConnectionError, OSError, ProtocolError) as exc:
        print(f"wsfs mount: {exc}", file=sys.stderr)
        return 1
    return 0


def _local_store_free(store: str) -> bool:
    """Say why now, in the foreground, if the daemon could not take the store
    (its own stderr may go nowhere)."""
    import vfs

    try:
        vfs.Workspace(store, exclusive=True).close()
    except vfs.StoreBusy as exc:
        _busy(exc)
        return False
    return True


def _busy(exc: OSError) -> int:
    """Say why the store cannot be mounted (its message names the way out); exit status 1."""
    print(f"wsfs mount: {exc.filename}: {exc.strerror}", file=sys.stderr)
    return 1


def _rebuild(args: argparse.Namespace) -> list[str]:
    """The daemon's own argv (`python -m client_py.mount ...`), without --background."""
    argv = ["mount", *args.targets]
    if args.cache:
        argv += ["--cache", args.cache]
    if args.token:
        argv += ["--token", args.token]
    if args.debug:
        argv.append("--debug")
    if args.api:
        argv += ["--api", args.api]
    for option, value in (("--commit-idle", args.commit_idle), ("--commit-max-age", args.commit_max_age)):
        if value is not None:
            argv += [option, repr(value)]
    return argv


def run_umount(args: argparse.Namespace) -> int:
    from client_py.mount import runner

    runner.unmount(args.mountpoint, lazy=args.lazy)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wsfs")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)
