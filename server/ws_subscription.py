"""One WebSocket subscription: a cursor, a filter, and a task that pulls pages when the socket
can take them (`server/ws_api.py`'s `Session` owns the socket; `server/fanout.py` sends live
pages to a parked subscription while its socket keeps up)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import vfs
from vfs.wire import CaughtUp, PathFilter, Subscribe, encode

from server.feed import Page, PageSpec

if TYPE_CHECKING:
    from server.ws_api import Session


class _Closed(Exception):
    """The socket is gone; stop quietly."""


class Subscription:
    """One subscription: a cursor, a filter, and a task that pulls pages when the socket can take them."""

    def __init__(self, session: Session, msg: Subscribe, filt: PathFilter, start: vfs.Cursor):
        self.session = session
        self.id = msg.id
        self.spec = PageSpec(filt.prefix, msg.globs, msg.ignore, msg.batch_max, msg.inline_max)
        self.filt = filt
        self.cursor = start
        self.wake = asyncio.Event()
        self.task: asyncio.Task[Any] | None = None  # set once its `ok` went out

    def stop(self) -> None:
        """End this subscription now: its task, its place in the fan-out and among live readers."""
        if self.task is not None:
            self.task.cancel()
        self.session.handle.fanout.unpark(self)
        self.session.handle.drop_live(self)

    async def fetch(self, after: vfs.Cursor) -> Page:
        return await self.session.handle.feed.page(self.spec, self.filt, after)

    async def run(self, first: Page) -> None:
        s = self.session
        hub, name, fanout = s.st.hub, s.workspace, s.handle.fanout
        caught_up = False
        page = first
        s.handle.add_live(self, self.spec.inline_max)
        try:
            while not s.closed:
                if page.count or page.cursor != self.cursor:
                    # the send waits while the socket is full: no page is read ahead of the client
                    if not await s.send_page(page, self):
                        return
                if not page.more:
                    # caught_up only at the log's end as known now, never at a page read earlier
                    if not caught_up and self.cursor.rev >= hub.head(name):
                        caught_up = True
                        await s.send_json(encode(CaughtUp(sub=self.id, cursor=str(self.cursor))))
                    self.wake.clear()
                    if hub.head(name) <= self.cursor.rev:
                        # caught up: park with the workspace's fan-out, which sends live pages
                        # itself while this socket keeps up, and wakes this task otherwise
                        parked = fanout.park(self)
                        try:
                            await self.wake.wait()
                        finally:
                            if parked:
                                fanout.unpark(self)
                    elif not page.count:
                        await asyncio.sleep(0)  # never spin without letting the loop run
                page = await self.fetch(self.cursor)
        except _Closed:
            pass
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - report and end this subscription only
            if s.proto.drop_subscription(self.id) is not None:
                s.st.metrics.subscriptions.dec()
            try:
                await s.send_error(e, self.id)
            except _Closed:
                pass
        finally:
            s.handle.drop_live(self)
