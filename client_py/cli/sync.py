"""`wsfs sync`: a replica on the command line, with a display a person can follow.

On a terminal: one live line (files in and out, bytes in binary units,
rate), conflicts and refusals printed above it as plain sentences, "up to
date" once the first catch-up is done. Without a terminal (a log file,
systemd): the same events as plain lines, progress at most every few
seconds. Ctrl-C in live mode prints what the run did before exiting.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from typing import Any

from client_py.cli.common import check_workspace_name, human

_PLAIN_EVERY = 5.0  # seconds between progress lines when stderr is not a terminal


async def cmd_sync(args: argparse.Namespace) -> int:
    from client_py.replica import Replica

    check_workspace_name(args.workspace)
    display = SyncDisplay(enabled=not args.quiet, verbose=args.verbose)
    replica = Replica(args.url, args.workspace, args.dir, token=args.token, ignore=args.ignore, host=args.host,
                      reconcile_interval=args.reconcile, durability=args.durability, on_progress=display.update)
    try:
        with display:
            if args.once:
                summary = await replica.sync_once()
            else:
                await _live(replica, display, args)
                return 0
    finally:
        await replica.close()
    print(f"synced {args.workspace} -> {args.dir}: {summary}")
    for path, reason in summary.refused:
        print(f"refused {path}: {reason}", file=sys.stderr)
    if summary.conflicts:
        print(f"{len(summary.conflicts)} conflict cop{'y' if len(summary.conflicts) == 1 else 'ies'} kept beside the "
              "server's version: see `wsfs conflicts`, then `wsfs conflicts resolve COPY --keep mine|theirs|both`",
              file=sys.stderr)
    return 0


async def _live(replica: Any, display: SyncDisplay, args: argparse.Namespace) -> None:
    async def announce_ready() -> None:
        await replica.ready.wait()
        display.up_to_date(f"{args.dir} is up to date with {args.workspace}; watching both sides (Ctrl-C stops)")

    announcer = asyncio.ensure_future(announce_ready())
    try:
        await replica.run()
    except asyncio.CancelledError:  # Ctrl-C: say what this run did, then let asyncio.run finish the interrupt
        display.stop()
        print(f"stopped syncing {args.workspace} <-> {args.dir}: {replica.summary}", file=sys.stderr)
        raise
    finally:
        announcer.cancel()


class SyncDisplay:
    """The progress line (terminal) or throttled progress lines (no terminal), and the replica's warnings."""

    def __init__(self, enabled: bool, verbose: bool = False):
        self.enabled = enabled
        self.tty = enabled and sys.stderr.isatty()
        self.verbose = verbose
        self.progress: Any = None
        self.ready = False
        self._last_plain = 0.0
        self._handler = _DisplayHandler(self)

    def __enter__(self) -> SyncDisplay:
        replica_log = logging.getLogger("client_py")
        replica_log.addHandler(self._handler)
        replica_log.setLevel(logging.INFO if self.verbose else logging.WARNING)
        replica_log.propagate = False
        for noisy in ("httpx", "httpcore", "websockets"):  # one line per request would bury what matters
            logging.getLogger(noisy).setLevel(logging.WARNING)
        if self.tty:
            from rich.console import Console
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeRemainingColumn, TransferSpeedColumn

            self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), _bytes_column(),
                                     TransferSpeedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
                                     transient=True)
            self.task = self.progress.add_task("syncing", total=None)
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        logging.getLogger("client_py").removeHandler(self._handler)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def say(self, line: str) -> None:
        """A sentence above the live line (or a plain line)."""
        if self.progress is not None:
            self.progress.console.print(line, markup=False, highlight=False)
        else:
            print(line, file=sys.stderr, flush=True)

    def up_to_date(self, line: str) -> None:
        self.ready = True
        if self.enabled:
            self.say(line)
        if self.progress is not None:
            self.progress.update(self.task, description="up to date")

    def update(self, summary: Any) -> None:
        counts = f"{summary.downloaded} in, {summary.uploaded} out"
        if self.progress is not None:
            # a summary that knows what the run will move (bytes_expected) gives the bar its total and an ETA
            expected = summary.bytes_expected or None
            self.progress.update(self.task, completed=summary.bytes_received + summary.bytes_sent, total=expected,
                                 description=("up to date · " if self.ready else "") + counts)
        elif self.enabled and time.monotonic() - self._last_plain >= _PLAIN_EVERY:
            self._last_plain = time.monotonic()
            of = f" of {human(summary.bytes_expected)} expected" if summary.bytes_expected else ""
            self.say(f"sync: {counts}, {human(summary.bytes_received)} received, {human(summary.bytes_sent)} sent{of}")


def _bytes_column() -> Any:
    """`12.5 MiB` moved so far, or `12.5 MiB / 40.0 MiB` once the total is known (never `0/? bytes`)."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class BytesColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            done = human(task.completed)
            return Text(f"{done} / {human(task.total)}" if task.total else done, style="progress.download")

    return BytesColumn()


class _DisplayHandler(logging.Handler):
    """The replica's log records as sentences through the display, so they never tear the progress line."""

    def __init__(self, display: SyncDisplay):
        super().__init__()
        self.display = display

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.display.say(("warning: " if record.levelno >= logging.WARNING else "") + record.getMessage())
        except Exception:  # noqa: BLE001 - a log line must never stop a sync
            self.handleError(record)
