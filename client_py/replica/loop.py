"""The replica's life: connect, catch up, push, then settle (once) or stay live; disconnect.

The server's change stream is state-based and resumable, so the loop is
simple:

- connect: two sessions, one for requests (`get`, `has`, chunk uploads,
  `push`) and one carrying the subscription, which starts after the
  persisted watermark (or from a snapshot when there is none, when the
  ignore patterns changed, or when the server has compacted past it);
- catch up: apply batches until the server says `caught_up`;
- push: a rescan finds what changed here, and while a long push runs the
  batches the subscription has queued meanwhile are applied between push
  batches, so its socket keeps being read;
- `once`: wait until the stream has echoed our own pushes, then stop;
  `forever`: switch to a subscription that inlines small files and react to
  both the stream and `watchfiles` events, with a stat-only rescan every
  `reconcile_interval` seconds (10 minutes by default: the safety net for
  what the watcher missed, never the way edits are found). A lost
  connection is retried with backoff; every attempt resumes from the
  watermark.

At rest the loop costs what the watcher costs: `watchfiles` polls its event
queue every `WATCH_STEP_MS` (10 ms cost 0.36 CPU-s per minute here, 200 ms
0.03), and the rescan's cost (a stat per path) is spread over the interval.

Only this loop's task mutates the directory and the state, so applying
remote changes and pushing local ones never race.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from typing import Any, Callable, Iterable

from client_py.backoff import Backoff
from client_py.client import Client
from client_py.errors import ConnectionLost, ServerUnreachable
from client_py.replica.localfs import STATE_DIR, is_temp_name
from client_py.replica.pull import Puller
from client_py.replica.push import Pusher
from client_py.replica.workdir import Workdir
from client_py.session import Session, Subscription
from vfs.errors import CursorTooOld
from vfs.types import Cursor
from vfs.wire import CaughtUp, Changes

log = logging.getLogger("client_py.replica")

SETTLE_TIMEOUT = 30.0  # `once`: how long to wait for the echo of its own pushes
WATCH_STEP_MS = 200  # how often the watcher looks at its event queue (a local edit waits at most about this)
WATCH_DEBOUNCE_MS = 400  # the longest a burst of local events is held before it is handed over
CATCHUP_INLINE_MAX = 64 * 1024  # catch-up: files up to this size come inside the change entries
FALLBACK_RECONCILE = 30.0  # seconds between rescans once the watcher has failed (e.g. out of inotify watches)
# CursorTooOld from a live subscription: the log was compacted under it; the next connect finds
# the watermark too old and resyncs from a snapshot.
RETRYABLE = (ConnectionLost, ServerUnreachable, CursorTooOld)


class SyncLoop:
    """Connects a `Workdir` to a workspace and drives its `Puller` and `Pusher`."""

    def __init__(
        self, client: Client, workspace: str, workdir: Workdir, puller: Puller, pusher: Pusher, *,
        inline_max: int, batch_max: int, reconcile_interval: float, after_batch: Callable[[], None],
        watch: bool = True,
    ):
        self.client = client
        self.workspace = workspace
        self.workdir = workdir
        self.puller = puller
        self.pusher = pusher
        self.inline_max = inline_max
        self.batch_max = batch_max
        self.reconcile_interval = reconcile_interval
        self.watch = watch  # False: local edits are found by the periodic rescan only
        self.after_batch = after_batch  # called after each batch from the stream is applied (progress)
        self.connected = asyncio.Event()
        self._requests: Session | None = None
        self._stream: Session | None = None
        self._sub: Subscription | None = None
        self._cursor: str | None = None  # how far the subscription has been applied
        self._wake = asyncio.Event()  # set by the watcher when `pending` has new paths
        self._watcher: asyncio.Future[Any] | None = None

    # -- the two sequences ------------------------------------------------------------

    async def once(self) -> None:
        """Pull everything after the watermark, push local changes, settle, disconnect (retrying)."""
        delays = Backoff(base=0.2, cap=2.0, retries=8).delays()
        self.puller.installed = {}  # what this run installs: the rescan below need not lstat it again
        try:
            while True:
                try:
                    await self.connect()
                    await self.catch_up()
                    await self.push(self.pusher.scan("/", self.puller.installed))
                    await self.settle()
                    return
                except RETRYABLE as e:
                    delay = next(delays, None)
                    if delay is None:
                        raise
                    log.warning("sync of %s: %s; resuming in %.1fs", self.workdir.tree.root, e, delay)
                    await asyncio.sleep(delay)
                finally:
                    await self.disconnect()
        finally:
            self.puller.installed = None

    async def forever(self, backoff: Backoff, ready: asyncio.Event) -> None:
        """Stay live until cancelled; `ready` is set once the first catch-up and rescan are done."""
        watcher = asyncio.ensure_future(self._watch_local() if self.watch else asyncio.Event().wait())
        watcher.add_done_callback(self._watcher_ended)
        self._watcher = watcher
        delays = backoff.delays()
        try:
            while True:
                try:
                    await self.connect()
                    await self.catch_up()
                    self.workdir.pending.clear()  # the rescan below looks at everything
                    await self.push(self.pusher.scan("/"))
                    await self.go_live()
                    ready.set()
                    delays = backoff.delays()
                    await self._live()
                except RETRYABLE as e:
                    delay = next(delays)
                    log.warning("replica %s: %s; retrying in %.1fs", self.workdir.tree.root, e, delay)
                    await self.disconnect()
                    await asyncio.sleep(delay)
        finally:
            watcher.cancel()
            try:
                await watcher
            except (asyncio.CancelledError, Exception):
                pass
            await self.disconnect()

    # -- connection -------------------------------------------------------------------

    async def connect(self) -> None:
        state, rules = self.workdir.state, self.workdir.rules
        self._requests = await self.client.connect(self.workspace)
        self._stream = await self.client.connect(self.workspace)
        patterns = "\n".join(rules.wire_patterns())
        after = state.get_meta("watermark")
        if state.get_meta("ignore") != patterns:
            after = None  # different filters: paths hidden before may now be wanted
        # A snapshot listing cut short goes on from its watermark and still sweeps at the end.
        resume = after is not None and state.listing_snapshot()
        try:
            self._sub = await self._subscribe(after)
        except CursorTooOld:
            log.warning("watermark %s is older than the server's horizon; resyncing from a snapshot", after)
            after, resume = None, False
            self._sub = await self._subscribe(None)
        # nothing to sweep in a fresh replica
        self.puller.begin_subscription(snapshot=resume or (after is None and state.count() > 0), resume=resume)
        state.set_meta("ignore", patterns)
        self._cursor = self._sub.start
        self.connected.set()

    async def _subscribe(self, after: str | None, *, inline: bool = False) -> Subscription:
        """Catch-up inlines files up to `CATCHUP_INLINE_MAX`: with base64 decoded by pybase64, 64 KiB
        cost ~8 % less client CPU than 16 KiB in two sets of 5 alternating runs (256 KiB: no better;
        with binascii 0-64 KiB were all within the noise); live subscriptions inline up to
        `inline_max` to save the `get` round trip."""
        assert self._stream is not None
        return await self._stream.subscribe(
            after=after, ignore=self.workdir.rules.wire_patterns(), inline_max=self.inline_max if inline else CATCHUP_INLINE_MAX,
            batch_max=self.batch_max, queue_size=4 if inline else 2,  # catch-up holds 2 more ahead
        )

    async def go_live(self) -> None:
        """Switch the caught-up subscription to one that inlines small files."""
        assert self._stream is not None and self._sub is not None
        if not self.inline_max:
            return
        await self._stream.unsubscribe(self._sub)
        self._sub = await self._subscribe(self._cursor, inline=True)

    async def disconnect(self) -> None:
        self.connected.clear()
        self.puller.downloader.prefetcher.cancel()
        for session in (self._stream, self._requests):
            if session is not None:
                await session.close()
        self._stream = self._requests = None
        self._sub = None

    def _session(self) -> Session:
        assert self._requests is not None, "not connected"
        return self._requests

    # -- remote -> local --------------------------------------------------------------

    async def catch_up(self) -> None:
        """Apply batches until the server says we are caught up; then sweep after a snapshot."""
        assert self._sub is not None
        ahead: deque[Changes | CaughtUp] = deque()  # received, not yet applied (at most the queue's size)
        while True:
            msg = ahead.popleft() if ahead else await self._sub.next()
            if isinstance(msg, CaughtUp):
                self._cursor = msg.cursor
                break
            if not ahead:
                try:
                    ahead.extend(self._sub.drain_nowait())
                except Exception:  # noqa: BLE001 - the subscription failed: `next` raises it after this batch
                    pass
            await self._apply_batch(msg, ahead=ahead[0] if ahead and isinstance(ahead[0], Changes) else None)
        self.puller.sweep_unseen()
        self.puller.remove_stale_temp_files()

    async def _apply_message(self, msg: Changes | CaughtUp) -> None:
        if isinstance(msg, Changes):
            await self._apply_batch(msg)
        else:
            self._cursor = msg.cursor

    async def _apply_batch(self, msg: Changes, *, ahead: Changes | None = None) -> None:
        await self.puller.apply_message(msg, self._session(), ahead=ahead)
        self._cursor = msg.cursor
        self.after_batch()

    async def _apply_queued(self) -> None:
        """Apply the remote batches already queued, without waiting for more."""
        sub = self._sub
        while sub is not None and (messages := sub.drain_nowait()):
            for msg in messages:
                await self._apply_message(msg)

    async def _stop_waiting(self, next_msg: asyncio.Future[Any]) -> None:
        """Cancel a pending `sub.next()`, applying its message if it already had one."""
        if not next_msg.done():
            next_msg.cancel()
            try:
                await next_msg
            except asyncio.CancelledError:
                return
        if not next_msg.cancelled():
            await self._apply_message(next_msg.result())

    async def settle(self) -> None:
        """Apply changes until the subscription has passed the last revision we pushed."""
        target = self.pusher.last_rev
        deadline = time.monotonic() + SETTLE_TIMEOUT
        assert self._sub is not None
        while self._cursor is not None and Cursor.parse(self._cursor).rev < target:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                msg = await asyncio.wait_for(self._sub.next(), remaining)
            except asyncio.TimeoutError:
                break
            await self._apply_message(msg)

    # -- local -> remote --------------------------------------------------------------

    async def push(self, paths: Iterable[str]) -> None:
        """Push `paths`, applying what the subscription queues between push batches."""
        await self.pusher.push(paths, self._session(), between_batches=self._apply_queued)

    async def _watch_local(self) -> None:
        """Feed local filesystem events into `pending` (the loop decides what they mean)."""
        import watchfiles

        root = self.workdir.tree.root
        state_dir = os.path.join(root, STATE_DIR)

        def keep(_change: Any, path: str) -> bool:
            if path == state_dir or path.startswith(state_dir + os.sep):
                return False
            return not is_temp_name(os.path.basename(path))

        async for events in watchfiles.awatch(root, watch_filter=keep, debounce=WATCH_DEBOUNCE_MS,
                                              step=WATCH_STEP_MS,
                                              recursive=True, ignore_permission_denied=True):
            for _change, abs_path in events:
                rel = os.path.relpath(abs_path, root)
                if rel.startswith(".."):
                    continue
                self.workdir.pending.add("/" + rel.replace(os.sep, "/") if rel != "." else "/")
            self._wake.set()

    def _watcher_ended(self, watcher: asyncio.Future[Any]) -> None:
        if not watcher.cancelled() and watcher.exception() is not None:
            log.warning("the watcher of %s failed (%s); rescanning every %.0f s instead",
                        self.workdir.tree.root, watcher.exception(), self._interval())

    def _interval(self) -> float:
        """Seconds between rescans: the configured interval, shorter once a wanted watcher has failed."""
        if not self.watch or (self._watcher is not None and not self._watcher.done()):
            return self.reconcile_interval
        return min(self.reconcile_interval, FALLBACK_RECONCILE)

    async def _live(self) -> None:
        """React to the stream and to local events until the connection fails."""
        assert self._sub is not None
        next_msg: asyncio.Future[Any] = asyncio.ensure_future(self._sub.next())
        wake = asyncio.ensure_future(self._wake.wait())
        last_reconcile = time.monotonic()
        try:
            while True:
                interval = self._interval()
                timeout = max(0.0, last_reconcile + interval - time.monotonic())
                done, _ = await asyncio.wait({next_msg, wake}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if next_msg in done:
                    await self._apply_message(next_msg.result())
                    next_msg = asyncio.ensure_future(self._sub.next())
                local = wake in done or bool(self.workdir.pending)
                reconcile = time.monotonic() - last_reconcile >= interval
                if not (local or reconcile):
                    continue
                # Pushing may take long: stop waiting on the subscription (no message is lost:
                # a cancelled queue get leaves its item queued) so `push` can drain it itself.
                await self._stop_waiting(next_msg)
                if local:
                    self._wake.clear()
                    wake = asyncio.ensure_future(self._wake.wait())
                    if "/.wsfsignore" in self.workdir.pending and self.workdir.rules.reload():
                        log.info("ignore rules changed; resubscribing")
                        raise ConnectionLost("ignore rules changed")
                    await self.push(self.pusher.expand(self.workdir.take_pending()))
                if reconcile:
                    await self.push(self.pusher.scan("/"))
                    last_reconcile = time.monotonic()
                next_msg = asyncio.ensure_future(self._sub.next())
        finally:
            next_msg.cancel()
            wake.cancel()
