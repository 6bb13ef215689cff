"""Change pages shared by every subscription that stands at the same place.

After a commit, every live subscriber of a workspace wakes at the same
cursor with, usually, the same filter. Reading and encoding the next page
once for all of them turns fan-out from one store read per subscriber into
one read per commit (or per batch of commits), plus a cheap per-subscriber
splice of the pre-encoded entries into that subscriber's message.

A cached page is a consistent snapshot of "what changed after cursor C"; a
subscriber that uses a slightly older snapshot is still correct (the change
stream is state-based: it moves to the page's cursor and reads on from
there), so sharing never loses or duplicates an entry.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson

import vfs
from vfs.protocol import PathFilter, change_to_wire

INLINE_BUDGET = 4 * 1024 * 1024  # inlined content bytes per page
SCAN_LIMIT = 16  # store pages scanned per read looking for an entry that passes the globs
CACHE_ITEMS = 64
CACHE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class PageSpec:
    """What a subscription asks for; equal specs share pages."""

    prefix: str
    globs: tuple[str, ...] | None
    ignore: tuple[str, ...]
    limit: int
    inline_max: int


@dataclass(frozen=True, slots=True)
class Page:
    count: int  # entries in the page
    cursor: vfs.Cursor  # where the reader stands after it
    more: bool  # more entries are already waiting
    max_rev: int  # highest revision among the entries (0 if none)
    entries_json: bytes  # the encoded `entries` array, data and authors included
    step: bool = False  # exactly one commit (from its delta): a valid step even once newer commits exist

    def message(self, sub: Any, previous: vfs.Cursor) -> bytes:
        """This page as a `changes` message for subscription `sub` standing at `previous`."""
        coalesced = max(self.max_rev, self.cursor.rev) - previous.rev > 1
        return b"".join((
            b'{"type":"changes","sub":', orjson.dumps(sub),
            b',"cursor":', orjson.dumps(str(self.cursor)),
            b',"coalesced":', b"true" if coalesced else b"false",
            b',"entries":', self.entries_json, b"}",
        ))


def read_page(ws: vfs.Workspace, spec: PageSpec, filt: PathFilter, after: vfs.Cursor,
              authors: dict[int, str]) -> Page:
    """Runs in a reader thread: the next page after `after` that has entries (or the end), encoded."""
    entries: list[vfs.Change] = []
    cursor, more = after, False
    for _ in range(SCAN_LIMIT):
        page = ws.changes_page(cursor, prefix=spec.prefix, ignore=spec.ignore, limit=spec.limit)
        entries = [c for c in page.entries if filt(c.path)] if filt.globs is not None else page.entries
        cursor, more = page.cursor, page.more
        if entries or not more:
            break
    budget = INLINE_BUDGET
    wire = []
    for c in entries:
        data = None
        if spec.inline_max and c.kind == "file" and c.size <= spec.inline_max and c.size <= budget:
            blobs = dict(ws.read_objects(list(dict.fromkeys(h for h, _ in c.chunks))))
            if all(h in blobs for h, _ in c.chunks):
                data = b"".join(blobs[h] for h, _ in c.chunks)
                budget -= c.size
        wire.append(change_to_wire(c, data=data, author=authors.get(c.rev)))
    return Page(len(entries), cursor, more, max((c.rev for c in entries), default=0), orjson.dumps(wire))


DELTA_LIMIT = 256  # entries of one commit the writer hands over (bigger commits: read the store)
DELTA_INLINE = 64 * 1024  # largest file whose content the writer hands over
DELTA_BUDGET = 1024 * 1024  # total content it hands over per commit


@dataclass(frozen=True, slots=True)
class Delta:
    """What one commit changed, read by the writer thread right after committing.

    It answers "the page after Cursor(rev - 1)" for any filter without a store
    read: the common case of live subscribers that were caught up.
    """

    after: vfs.Cursor
    cursor: vfs.Cursor
    entries: list[vfs.Change]
    data: dict[str, bytes]
    inline_upto: int  # every file entry of at most this size has its content in `data` (-1: none)


def read_delta(ws: vfs.Workspace, rev: int, inline_max: int) -> Delta | None:
    """Runs in the writer thread inside the commit's operation (the connection is free again)."""
    after = vfs.Cursor(rev - 1)
    page = ws.changes_page(after, limit=DELTA_LIMIT)
    if page.more or page.cursor != vfs.Cursor(rev):
        return None  # too big, or another writer committed meanwhile
    upto = min(inline_max, DELTA_INLINE)
    small = [c for c in page.entries if c.kind == "file" and c.size <= upto]
    data: dict[str, bytes] = {}
    if sum(c.size for c in small) > DELTA_BUDGET:
        upto, small = -1, []
    for c in small:
        blobs = dict(ws.read_objects(list(dict.fromkeys(h for h, _ in c.chunks))))
        if not all(h in blobs for h, _ in c.chunks):
            return None
        data[c.path] = b"".join(blobs[h] for h, _ in c.chunks)
    return Delta(after, page.cursor, page.entries, data, upto)


def page_from_delta(delta: Delta, spec: PageSpec, filt: PathFilter, authors: dict[int, str]) -> Page | None:
    """The page `read_page` would return after `delta.after`, or None if the delta cannot tell."""
    entries = [c for c in delta.entries if filt(c.path)]
    if len(entries) > spec.limit:
        return None
    budget = INLINE_BUDGET
    wire = []
    for c in entries:
        data = None
        if spec.inline_max and c.kind == "file" and c.size <= spec.inline_max and c.size <= budget:
            if c.size > delta.inline_upto:
                return None  # content not carried: read the store
            data = delta.data[c.path]
            budget -= c.size
        wire.append(change_to_wire(c, data=data, author=authors.get(c.rev)))
    return Page(len(entries), delta.cursor, False, max((c.rev for c in entries), default=0), orjson.dumps(wire),
                step=True)


class Feed:
    """The page cache of one workspace (lives on its handle; used from the event loop only)."""

    def __init__(self, handle: Any):
        self.handle = handle
        self._pages: OrderedDict[tuple[PageSpec, vfs.Cursor], asyncio.Future[Page]] = OrderedDict()
        self._bytes = 0
        self._deltas: OrderedDict[vfs.Cursor, Delta] = OrderedDict()
        self.reads = 0  # store reads made (for tests and metrics)
        self.hits = 0
        self.delta_pages = 0  # pages built from a commit's delta, without a store read

    def prime(self, delta: Delta) -> None:
        """Remember what the latest commit changed (called on the loop before subscribers wake)."""
        self._deltas[delta.after] = delta
        while len(self._deltas) > 8:
            self._deltas.popitem(last=False)

    async def page(self, spec: PageSpec, filt: PathFilter, after: vfs.Cursor) -> Page:
        """The page after `after` for `spec`: shared with every concurrent or recent equal request."""
        key = (spec, after)
        fut = self._pages.get(key)
        if fut is not None and fut.done() and not self._fresh(fut):
            fut = None  # a final page read before the last commit: read the newer state instead
        if fut is None:
            delta = self._deltas.get(after)
            page = page_from_delta(delta, spec, filt, self.handle.authors) if delta is not None else None
            if page is not None:
                self.delta_pages += 1
                done = asyncio.get_running_loop().create_future()
                done.set_result(page)
                self._store(key, done)
                self._bytes += len(page.entries_json)
                return page
            self.reads += 1
            # A task of its own, not the caller's: cancelling one waiting subscription
            # must not cancel the read the others are waiting for.
            fut = asyncio.ensure_future(self._load(key, filt))
            self._store(key, fut)
        else:
            self.hits += 1
            self._pages.move_to_end(key)
            if fut.done():
                return fut.result()
        return await asyncio.shield(fut)

    def _store(self, key: tuple[PageSpec, vfs.Cursor], fut: asyncio.Future[Page]) -> None:
        old = self._pages.pop(key, None)
        if old is not None and old.done() and not old.cancelled() and old.exception() is None:
            self._bytes -= len(old.result().entries_json)
        self._pages[key] = fut
        self._evict()

    def _fresh(self, fut: asyncio.Future[Page]) -> bool:
        """Reusable: not the end of the log, or nothing was committed since it was read.

        A final page read before the latest commit is stale: a new subscriber
        would get an old snapshot, then the same paths again. One commit's
        delta page stays reusable: it is the exact step over that commit, what
        a subscriber standing before it should get next anyway.
        """
        if fut.cancelled() or fut.exception() is not None:
            return False
        page = fut.result()
        return page.more or page.step or page.cursor.rev >= self.handle.head()

    async def _load(self, key: tuple[PageSpec, vfs.Cursor], filt: PathFilter) -> Page:
        spec, after = key
        try:
            page = await self.handle.read(read_page, spec, filt, after, self.handle.authors, op="changes")
        except BaseException:
            if self._pages.get(key) is asyncio.current_task():
                del self._pages[key]  # never cache a failure
            raise
        if self._pages.get(key) is asyncio.current_task():
            self._bytes += len(page.entries_json)
        return page

    def _evict(self) -> None:
        while self._pages and (len(self._pages) > CACHE_ITEMS or self._bytes > CACHE_BYTES):
            _, old = self._pages.popitem(last=False)
            if old.done() and not old.cancelled() and old.exception() is None:
                self._bytes -= len(old.result().entries_json)
