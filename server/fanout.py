"""Live delivery of a commit to every caught-up subscription of a workspace, from one task.

Without this, a commit wakes one task per subscription (an `Event.set`, a
loop callback, a task step, a page lookup and a message build each); at
hundreds of subscribers that overhead, not the socket writes, is what
saturates the loop. Here a subscription that is caught up and waiting
**parks** itself. A commit then kicks one task, which walks the parked
subscriptions, takes each group's page once from the feed (the shared cache
or the commit's delta), and writes the same pre-built message to every
socket that can take it: the frame's bytes are built once per page and written
to each transport directly (`frame_writer`), with no per-socket encoding, no
`await` and no task switch. A run of subscriptions at one place (same cursor
object, same interned spec, same id) shares one page and one frame found by
identity (`_Run`): per socket, a few attribute reads and one `write`.

Backpressure is unchanged: a parked subscription is served here only if its
socket is writable (uvicorn's own flow-control flag, the one its `send`
waits on), so a send from this task never waits and one slow client never
delays the others. Any subscription this task cannot serve at once — socket
full, page not in memory (a store read is needed), more pages to follow —
is handed back to its own task, which does exactly what it did before.
Servers other than uvicorn (no writable flag) simply never park.

The hub hears of a commit two loop turns after it and wakes the task, which
runs a turn later, so the reply to the write that caused the commit is sent
before the fan-out, not after it (at 5,000 subscribers a fan-out takes tens
of ms). A fan-out of more than `SLICE` subscriptions yields to the loop
before it starts and after every `SLICE` sends, so other workspaces' work
interleaves (and a commit made meanwhile gets its reply out first).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from server.rawsocket import RawSocket

log = logging.getLogger("wsfs.server")

_MISSING: Any = object()
SLICE = 128  # sends between two yields to the loop: a writer's reply never waits for a whole fan-out


def frame_writer(send: Any) -> Callable[[bytes], bool] | None:
    """`(frame) -> bool`: write a whole pre-built WebSocket frame to the socket now, if it can take it
    without waiting (False: it cannot, or the connection is closing). None if the server does not
    let us (not uvicorn's WebSocket protocol, or an extension such as permessage-deflate is on).

    This is what uvicorn's `send` does for a text message once its checks pass (`writable`, not
    disconnected, no close sent, the connection open), minus the per-socket re-encoding and
    framing: the frame of a page is built once and the same bytes go to every transport.
    """
    raw = RawSocket.of(send)  # the same checks as co-editing's relay (server/rawsocket.py)
    return None if raw is None else raw.write


class Fanout:
    """The parked subscriptions of one workspace and the task that serves them."""

    def __init__(self, handle: Any):
        self.handle = handle
        self.parked: dict[Any, Any] = {}  # Subscription -> its spec, interned (insertion-ordered)
        self._specs: dict[Any, Any] = {}  # equal specs -> one object: a group is found by identity
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.sent = 0  # messages delivered from here (tests, metrics)
        self.handed_back = 0  # subscriptions given back to their own task

    def park(self, sub: Any) -> bool:
        """Register a caught-up subscription waiting for commits; False if it must wait on its own."""
        if sub.session.write_frame is None or self.handle.closed:
            return False
        if len(self._specs) > 2 * len(self.parked) + 64:  # distinct specs come and go: bounded
            self._specs = {spec: spec for spec in self.parked.values()}
        self.parked[sub] = self._specs.setdefault(sub.spec, sub.spec)
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())
        return True

    def unpark(self, sub: Any) -> None:
        self.parked.pop(sub, None)

    def kick(self) -> None:
        """A commit passed: serve the parked subscriptions (idempotent until the task runs)."""
        self._kick.set()

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for sub in list(self.parked):
            self._hand_back(sub)

    def _hand_back(self, sub: Any) -> None:
        self.parked.pop(sub, None)
        self.handed_back += 1
        sub.wake.set()

    async def _run(self) -> None:
        while True:
            await self._kick.wait()
            self._kick.clear()
            try:
                await self._deliver()
            except Exception:  # noqa: BLE001 - never lose a subscriber to a bug here
                log.exception("fan-out failed; subscriptions fall back to their own tasks")
                for sub in list(self.parked):
                    self._hand_back(sub)

    async def _deliver(self) -> None:
        if len(self.parked) > SLICE:
            # a fan-out that yields between slices may find the next commit's kick already set when
            # it is done, and would run at once: let that commit's reply go out first
            await asyncio.sleep(0)
        # (otherwise the hub heard of the commit two loop turns after it (`WorkspaceHandle._publish`)
        # and woke this task, which runs a turn later still: the third turn, after the reply of an
        # inline write (the same turn), a pool write (the next) and a pipelined push (the second))
        run = _Run(self.handle.head(), self.handle.feed)
        budget = SLICE
        try:
            for sub, spec in list(self.parked.items()):
                if budget <= 0:
                    self.sent += run.flush()
                    await asyncio.sleep(0)  # other work (replies, other workspaces) runs between slices
                    budget = SLICE
                if sub not in self.parked:
                    continue  # handed back or gone while we yielded: its own task has it
                budget -= 1
                if not run.serve(sub, spec):
                    self._hand_back(sub)
        finally:
            self.sent += run.flush()


class _Run:
    """One fan-out pass: the page and frame of the group being served, kept while the next
    subscription stands at the same place.

    Parked subscriptions mostly stand at one cursor (the fan-out moved them all to the same page's
    cursor object), with one spec (interned at `park`) and one id: a run of them shares one page and
    one frame, found by identity, so each is served with a few attribute reads and one
    `transport.write`. Anything else falls back to the per-pass page table and the page's frames.
    """

    __slots__ = ("head", "feed", "pages", "spec", "cursor", "page", "sid", "frame", "counters",
                 "messages", "bytes", "entries")

    def __init__(self, head: int, feed: Any):
        self.head, self.feed = head, feed
        self.pages: dict[Any, Any] = {}
        self.spec: Any = _MISSING
        self.cursor: Any = _MISSING
        self.page: Any = None
        self.sid: Any = _MISSING
        self.frame = b""
        self.counters: Any = None
        self.messages = self.bytes = self.entries = 0

    def serve(self, sub: Any, spec: Any) -> bool:
        """Send `sub` every page it lacks up to the head from memory; False: hand it back to its own
        task (page not in memory, more to read, socket full or closing, session gone)."""
        session = sub.session
        while sub.cursor.rev < self.head:  # (a subscription parked after this commit has nothing to do)
            cursor = sub.cursor
            if cursor is not self.cursor or spec is not self.spec:
                self._group(sub, spec, cursor)
            page = self.page
            if page is None or page.cursor.rev <= cursor.rev:
                return False
            sid = sub.id
            if sid is not self.sid and (type(sid) is not type(self.sid) or sid != self.sid):
                self.sid, self.frame = sid, page.frame(sid, cursor)
            # the page's frame, written only if the socket takes it now; else (full, closing, gone)
            # the subscription's own task sends it the ordinary way, or ends itself
            if session.closed or not session.write_frame(self.frame):
                return False
            sub.cursor = page.cursor
            self.messages += 1
            self.bytes += len(self.frame)
            self.entries += page.count
            if self.counters is None:
                self.counters = session.st.metrics.ws
            if page.more:
                return False  # a long way behind: its own task reads on
        return True

    def _group(self, sub: Any, spec: Any, cursor: Any) -> None:
        key = (spec, cursor)
        page = self.pages.get(key, _MISSING)
        if page is _MISSING:
            page = self.pages[key] = self.feed.page_nowait(spec, sub.filt, cursor)
        self.spec, self.cursor, self.page, self.sid = spec, cursor, page, _MISSING

    def flush(self) -> int:
        """Add the messages sent so far to the session counters; returns how many."""
        sent = self.messages
        if self.counters is not None and sent:
            self.counters.messages_out += sent
            self.counters.bytes_out += self.bytes
            self.counters.entries += self.entries
        self.messages = self.bytes = self.entries = 0
        return sent
