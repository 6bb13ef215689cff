"""The change stream across reconnects: `messages()`, a batch at a time, and `watch()`, an event per entry.

The server's stream is resumable by cursor (§5.3 of docs/protocol.md), so
surviving a dropped connection is bookkeeping: remember where the consumer
is, reconnect with backoff and jitter, subscribe again `after` that cursor.
`messages` does that once, for `watch` (`RemoteWorkspace.watch`) and for the
remote mount (`client_py/mount/remote_stream.py`), which applies a message
at a time. The position advances only when the consumer has taken a message
(asked for the next), so a reconnect neither skips nor repeats anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AsyncGenerator, AsyncIterator, Mapping

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


@dataclass(frozen=True, slots=True)
class Lost:
    """Yielded by `messages` once per outage: the connection is gone (or could not be made)
    and it is waiting to try again, to resume after `position` (None: from the start)."""

    reason: BaseException
    position: str | None


@dataclass(frozen=True, slots=True)
class Resumed:
    """Yielded by `messages` once at the end of an outage: subscribed again after `position`."""

    position: str | None


Message = Changes | CaughtUp | Lost | Resumed


async def messages(client: Client, workspace: str, after: Cursor | str | None, **filters: Any) -> AsyncGenerator[Message, None]:
    """The stream's messages, a batch (`Changes`) at a time, across reconnects: the one
    reconnect loop under `watch` (an event per entry) and the remote mount (a message at a time).

    It remembers the cursor of the last message the consumer took back from it (a `Changes`'
    once the consumer asks for the next one; a later `CaughtUp`'s), and on a lost connection,
    or a connect that fails after the client's own retries, waits the next `client.backoff`
    delay, connects and subscribes again after that cursor: nothing skipped, nothing repeated.
    A successful subscribe starts the budget afresh; once it is spent, `ServerUnreachable`.
    The outage is yielded as `Lost` then `Resumed`, each once, so that each consumer says it
    its own way. `filters` (prefix, globs, ignore, inline_max) go to every subscription:
    iterables among them must be lists, which can be read more than once.
    """
    position: str | None = None if after is None else str(after)
    delays = client.backoff.delays()
    outage = False
    while True:
        session = None
        lost: BaseException | None = None
        try:
            session = await client.connect(workspace)
            sub = await session.subscribe(after=position, **filters)
            position = sub.start or position  # "now" becomes a real cursor: a reconnect must not skip
            delays = client.backoff.delays()  # connected: the retry budget starts afresh
            if outage:
                outage = False
                yield Resumed(position)
            async for msg in sub:
                yield msg
                if isinstance(msg, Changes):
                    position = msg.cursor  # (the consumer is done with it: it asked for the next)
                elif isinstance(msg, CaughtUp) and _later(msg.cursor, position):
                    position = msg.cursor
        except RETRYABLE as e:
            lost = e
        finally:
            if session is not None:
                await session.close()
        if lost is None:
            continue
        delay = next(delays, None)
        if delay is None:
            if isinstance(lost, ServerUnreachable):
                raise lost
            raise ServerUnreachable(client.url, lost) from None
        if not outage:
            outage = True
            yield Lost(lost, position)
        await asyncio.sleep(delay)


async def watch(client: Client, workspace: str, after: Cursor | str | None, **filters: Any) -> AsyncIterator[WatchEvent]:
    """The loop behind `RemoteWorkspace.watch`, which documents its arguments: an event per
    entry of `messages`, whose outages it logs (a warning: a person watching needs to know).
    Closing it closes the connection at once (`aclosing`: not when `messages` is collected)."""
    async with contextlib.aclosing(messages(client, workspace, after, **filters)) as stream:
        async for msg in stream:
            if isinstance(msg, Changes):
                floor = Cursor.parse(msg.cursor).floor  # a listing below the tombstone horizon
                for entry in msg.entries:
                    yield WatchEvent.from_wire(entry, msg.coalesced, floor)
            elif isinstance(msg, Lost):
                _lost(client, workspace, msg.reason, msg.position)
            elif isinstance(msg, Resumed):
                log.warning("reconnected to %s; resuming %s after %s", client.url, workspace, msg.position)


def _lost(client: Client, workspace: str, reason: object, position: str | None) -> None:
    """Say that the stream is waiting, and for how long it will try."""
    retrying = "until it is back" if client.backoff.retries is None else f"up to {client.backoff.retries} times"
    log.warning("lost the connection to %s (%s); retrying %s, then resuming %s after %s",
                client.url, reason, retrying, workspace, position or "the start")


def _later(a: str, b: str | None) -> bool:
    return b is None or b == "now" or Cursor.parse(a) > Cursor.parse(b)
