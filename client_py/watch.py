"""`watch()`: an endless, self-healing iterator over a workspace's changes.

The server's stream is resumable by cursor (§5.3 of docs/protocol.md), so
surviving a dropped connection is bookkeeping: remember where the consumer
is, reconnect with backoff and jitter, subscribe again `after` that cursor.
The position advances only when an event has been handed to the consumer
(and to the batch cursor once the whole batch has been), so a reconnect
neither skips nor repeats anything.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AsyncIterator, Mapping

from client_py.errors import ConnectionLost, ServerUnreachable
from vfs.wire import CaughtUp, Changes, change_from_wire, entry_data
from vfs.types import Change, Cursor

if TYPE_CHECKING:
    from client_py.client import Client

log = logging.getLogger("client_py.watch")


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change: the path's state after it (`kind == "delete"`: the path is gone)."""

    path: str
    kind: str  # "file" | "dir" | "symlink" | "fifo" | "socket" | "char" | "block" | "delete"
    rev: int
    cursor: str
    mode: int = 0
    mtime: float = 0.0
    size: int = 0
    hash: str | None = None
    target: str | None = None
    data: bytes | None = None  # inlined content (small files, when inline_max asked for it)
    author: str | None = None
    coalesced: bool = False  # earlier states of this path may have been skipped
    chunks: tuple[tuple[str, int], ...] = ()
    rdev: int = 0  # the device number of a "char" or "block" node

    @classmethod
    def from_wire(cls, d: Mapping[str, Any], coalesced: bool, floor: int | None = None) -> WatchEvent:
        """`floor`: the page's (a listing below the tombstone horizon), so that resuming from this
        event's cursor goes on with the listing as resuming from the page's cursor would."""
        c = change_from_wire(d)
        cursor = str(d.get("cursor") or c.cursor)
        if floor is not None:
            at = Cursor.parse(cursor)
            cursor = str(Cursor(at.rev, at.path, floor))
        return cls(
            path=c.path, kind=c.kind, rev=c.rev, cursor=cursor, mode=c.mode, mtime=c.mtime,
            size=c.size, hash=c.hash, target=c.target, data=entry_data(d), author=d.get("author"),
            coalesced=coalesced, chunks=c.chunks, rdev=c.rdev,
        )

    @property
    def change(self) -> Change:
        return Change(path=self.path, kind=self.kind, rev=self.rev, mode=self.mode, mtime=self.mtime,  # type: ignore[arg-type]
                      size=self.size, hash=self.hash, chunks=self.chunks, target=self.target, rdev=self.rdev)


RETRYABLE = (ConnectionLost, ServerUnreachable)


async def watch(client: Client, workspace: str, after: Cursor | str | None, **filters: Any) -> AsyncIterator[WatchEvent]:
    """The loop behind `RemoteWorkspace.watch`, which documents its arguments.

    `filters` (prefix, globs, ignore, inline_max) go unchanged to every subscription, the first and each one
    after a reconnect: iterables among them must be lists, which can be read more than once.
    """
    position: str | None = None if after is None else str(after)
    delays = client.backoff.delays()
    outage = False  # said "lost" once; say "back" once
    while True:
        try:
            session = await client.connect(workspace)
        except ServerUnreachable as e:
            delay = next(delays, None)
            if delay is None:
                raise
            outage = outage or _lost(client, workspace, e, position)
            await asyncio.sleep(delay)
            continue
        try:
            sub = await session.subscribe(after=position, **filters)
            position = sub.start or position  # "now" becomes a real cursor: a reconnect must not skip
            delays = client.backoff.delays()  # connected: the retry budget starts afresh
            if outage:
                log.warning("reconnected to %s; resuming %s after %s", client.url, workspace, position)
                outage = False
            async for msg in sub:
                if isinstance(msg, Changes):
                    floor = Cursor.parse(msg.cursor).floor  # a listing below the tombstone horizon
                    for entry in msg.entries:
                        event = WatchEvent.from_wire(entry, msg.coalesced, floor)
                        yield event
                        position = event.cursor
                    position = msg.cursor
                elif isinstance(msg, CaughtUp):
                    position = msg.cursor if _later(msg.cursor, position) else position
        except RETRYABLE as e:
            delay = next(delays, None)
            if delay is None:
                raise ServerUnreachable(client.url, e) from None
            outage = outage or _lost(client, workspace, e, position)
            await asyncio.sleep(delay)
        finally:
            await session.close()


def _lost(client: Client, workspace: str, reason: object, position: str | None) -> bool:
    """Say once per outage that the stream is waiting (a warning: a person watching needs to know)."""
    retrying = "until it is back" if client.backoff.retries is None else f"up to {client.backoff.retries} times"
    log.warning("lost the connection to %s (%s); retrying %s, then resuming %s after %s",
                client.url, reason, retrying, workspace, position or "the start")
    return True


def _later(a: str, b: str | None) -> bool:
    return b is None or b == "now" or Cursor.parse(a) > Cursor.parse(b)
