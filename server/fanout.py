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
        self.parked: dict[Any, Any] = {}  # Subscription -> its place (spec and id), interned (insertion-ordered)
        self._places: dict[Any, Any] = {}  # equal (spec, id) -> one tuple: a group is found by identity
        self.hushed: set[Any] = set()  # sessions whose commits the hub hands to `kick` (`_hush`)
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.sent = 0  # messages delivered from here (tests, metrics)
        self.handed_back = 0  # subscriptions given back to their own task

    def park(self, sub: Any) -> bool:
        """Register a caught-up subscription waiting for commits; False if it must wait on its own."""
        if sub.session.write_frame is None or self.handle.closed:
            return False
        if len(self._places) > 2 * len(self.parked) + 64:  # distinct places come and go: bounded
            self._places = {(p[0], type(p[1]), p[1]): p for p in self.parked.values()}
        sid = sub.id
        self.parked[sub] = self._places.setdefault((sub.spec, type(sid), sid), (sub.spec, sid))
        self._hush(sub.session)
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())
        return True

    def unpark(self, sub: Any) -> None:
        if self.parked.pop(sub, None) is not None:
            self._unhush(sub.session)

    def kick(self, rev: int = 0) -> None:
        """A commit passed: serve the parked subscriptions (idempotent until the task runs)."""
        self._kick.set()

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for sub in list(self.parked):
            self._hand_back(sub)

    def _hand_back(self, sub: Any) -> None:
        self.unpark(sub)
        self.handed_back += 1
        sub.wake.set()

    def _hush(self, session: Any) -> None:
        """Once every subscription of `session` is parked here, its commits need no call of its own:
        the hub calls `kick` once per commit for all such sessions (`Hub.stand_in`), instead of
        each session's `on_commit`, which would only have kicked this task. Any of them leaving
        (handed back, unsubscribed, gone) makes the session loud again first: a subscription
        waiting on its own task is always woken by the session, as before."""
        if session in self.hushed:
            return
        stand_in = getattr(session.st.hub, "stand_in", None)  # optional in the Hub protocol
        if stand_in is not None and all(s in self.parked for s in session.subs.values()):
            self.hushed.add(session)
            stand_in(self.handle.name, session, self.kick)

    def _unhush(self, session: Any) -> None:
        if session in self.hushed:
            self.hushed.discard(session)
            session.st.hub.stand_in(self.handle.name, session, None)

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
        parked = self.parked
        items = list(parked.items())
        try:
            for start in range(0, len(items), SLICE):
                if start:
                    self.sent += run.flush()
                    await asyncio.sleep(0)  # other work (replies, other workspaces) runs between slices
                for sub, place in items[start:start + SLICE]:
                    if sub not in parked:
                        continue  # handed back or gone while we yielded: its own task has it
                    if not run.serve(sub, place):
                        self._hand_back(sub)
        finally:
            self.sent += run.flush()


class _Run:
    """One fan-out pass: the page and frame of the group being served, kept while the next
    subscription stands at the same place.

    Parked subscriptions mostly stand at one cursor (the fan-out moved them all to the same page's
    cursor object), with one place (spec and id, interned at `park`): a run of them shares one page
    and one frame, found by identity, so each is served with a few attribute reads and one
    `transport.write` (`serve`'s first branch). Anything else (another place, several pages, a page
    not in memory) takes the general walk, with the per-pass page table and the page's frames.
    """

    __slots__ = ("head", "feed", "pages", "place", "cursor", "page", "frame", "single", "next",
                 "run", "counters", "messages", "bytes", "entries")

    def __init__(self, head: int, feed: Any):
        self.head, self.feed = head, feed
        self.pages: dict[Any, Any] = {}
        self.place: Any = _MISSING
        self.cursor: Any = _MISSING
        self.page: Any = None
        self.frame = b""
        self.single = False  # the group's whole way to the head is its one page and frame
        self.next: Any = None  # ... and the cursor it moves a subscription to
        self.run = 0  # subscriptions served by the first branch since the group's counters were added
        self.counters: Any = None
        self.messages = self.bytes = self.entries = 0

    def serve(self, sub: Any, place: Any) -> bool:
        """Send `sub` every page it lacks up to the head from memory; False: hand it back to its own
        task (page not in memory, more to read, socket full or closing, session gone)."""
        if sub.cursor is self.cursor and place is self.place and self.single:
            # the run goes on: the page's frame, written only if the socket takes it now; else (full,
            # closing, gone) the subscription's own task sends it the ordinary way, or ends itself
            session = sub.session
            if session.closed or not session.write_frame(self.frame):
                return False
            sub.cursor = self.next
            self.run += 1
            return True
        return self._walk(sub, place)

    def _walk(self, sub: Any, place: Any) -> bool:
        session = sub.session
        while sub.cursor.rev < self.head:  # (a subscription parked after this commit has nothing to do)
            cursor = sub.cursor
            if cursor is not self.cursor or place is not self.place:
                self._group(sub, place, cursor)
            page = self.page
            if page is None or page.cursor.rev <= cursor.rev:
                return False
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

    def _group(self, sub: Any, place: Any, cursor: Any) -> None:
        self._settle()
        spec, sid = place
        key = (spec, cursor)
        page = self.pages.get(key, _MISSING)
        if page is _MISSING:
            page = self.pages[key] = self.feed.page_nowait(spec, sub.filt, cursor)
        self.place, self.cursor, self.page = place, cursor, page
        ok = page is not None and page.cursor.rev > cursor.rev
        self.frame = page.frame(sid, cursor) if ok else b""
        self.single = ok and cursor.rev < self.head <= page.cursor.rev and not page.more
        self.next = page.cursor if ok else None
        if ok and self.counters is None:
            self.counters = sub.session.st.metrics.ws

    def _settle(self) -> None:
        """Count the first branch's sends of the group being left."""
        if self.run:
            self.messages += self.run
            self.bytes += self.run * len(self.frame)
            self.entries += self.run * self.page.count
            self.run = 0

    def flush(self) -> int:
        """Add the messages sent so far to the session counters; returns how many."""
        self._settle()
        sent = self.messages
        if self.counters is not None and sent:
            self.counters.messages_out += sent
            self.counters.bytes_out += self.bytes
            self.counters.entries += self.entries
        self.messages = self.bytes = self.entries = 0
        return sent
