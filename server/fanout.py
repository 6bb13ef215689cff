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
`await` and no task switch.

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
    if raw is None:
        return None

    def write(frame: bytes) -> bool:
        if not raw.ready:
            return False
        raw.transport.write(frame)
        return True

    return write


class Fanout:
    """The parked subscriptions of one workspace and the task that serves them."""

    def __init__(self, handle: Any):
        self.handle = handle
        self.parked: dict[Any, None] = {}  # insertion-ordered set of Subscription
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.sent = 0  # messages delivered from here (tests, metrics)
        self.handed_back = 0  # subscriptions given back to their own task

    def park(self, sub: Any) -> bool:
        """Register a caught-up subscription waiting for commits; False if it must wait on its own."""
        if sub.session.write_frame is None or self.handle.closed:
            return False
        self.parked[sub] = None
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
        head = self.handle.head()
        feed = self.handle.feed
        pages: dict[Any, Any] = {}
        budget = SLICE
        for sub in list(self.parked):
            if budget <= 0:
                await asyncio.sleep(0)  # other work (replies, other workspaces) runs between slices
                budget = SLICE
            if sub not in self.parked:
                continue  # handed back or gone while we yielded: its own task has it
            budget -= 1
            session = sub.session
            while sub.cursor.rev < head:  # (a subscription parked after this commit has nothing to do)
                key = (sub.spec, sub.cursor)
                page = pages.get(key, _MISSING)
                if page is _MISSING:
                    page = pages[key] = feed.page_nowait(sub.spec, sub.filt, sub.cursor)
                # the page's frame, written only if the socket takes it now; else (full, closing, gone)
                # the subscription's own task sends it the ordinary way, or ends itself
                if page is None or page.cursor.rev <= sub.cursor.rev or not session.push_page(page, sub):
                    self._hand_back(sub)
                    break
                self.sent += 1
                if page.more:
                    self._hand_back(sub)  # a long way behind: its own task reads on
                    break
