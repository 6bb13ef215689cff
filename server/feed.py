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
from dataclasses import dataclass, field
from typing import Any

import orjson

import vfs
from vfs.wire import PathFilter, change_to_wire

from server.rawsocket import text_frame

INLINE_BUDGET = 4 * 1024 * 1024  # inlined content bytes per page
SCAN_LIMIT = 16  # store pages scanned per read looking for an entry that passes the globs
CACHE_ITEMS = 64
CACHE_BYTES = 16 * 1024 * 1024
TEXTS_KEPT = 8  # built messages kept per page (distinct subscription ids beyond that are built each time)


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
    # built messages by (sub id type, sub id, coalesced): subscribers mostly share ids ("changes" of one app)
    texts: dict[tuple[type, Any, bool], tuple[str, int]] = field(default_factory=dict, compare=False, repr=False)
    frames: dict[tuple[type, Any, bool], bytes] = field(default_factory=dict, compare=False, repr=False)

    def message(self, sub: Any, previous: vfs.Cursor) -> bytes:
        """This page as a `changes` message for subscription `sub` standing at `previous`."""
        return self._build(sub, self._coalesced(previous))

    def text(self, sub: Any, previous: vfs.Cursor) -> tuple[str, int]:
        """`message` as the text of a WebSocket frame, and its size in bytes; built once per sub id."""
        coalesced = self._coalesced(previous)
        key = (type(sub), sub, coalesced)
        hit = self.texts.get(key)
        if hit is None:
            raw = self._build(sub, coalesced)
            hit = (raw.decode("utf-8"), len(raw))
            if len(self.texts) < TEXTS_KEPT:
                self.texts[key] = hit
        return hit

    def frame(self, sub: Any, previous: vfs.Cursor) -> bytes:
        """`message` as one whole WebSocket text frame, as a server sends it (unmasked, so the same
        bytes for every socket): what the fan-out writes to each transport. Built once per sub id."""
        coalesced = self._coalesced(previous)
        key = (type(sub), sub, coalesced)
        hit = self.frames.get(key)
        if hit is None:
            hit = text_frame(self._build(sub, coalesced))
            if len(self.frames) < TEXTS_KEPT:
                self.frames[key] = hit
        return hit

    @property
    def newest(self) -> int:
        """The newest revision a reader learns of from this page (its entries', or its cursor's)."""
        return max(self.max_rev, self.cursor.rev)

    def _coalesced(self, previous: vfs.Cursor) -> bool:
        return max(self.max_rev, self.cursor.rev) - previous.rev > 1

    def _build(self, sub: Any, coalesced: bool) -> bytes:
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
        entries = [c for c in page.entries if filt(c.path, c.kind)] if filt.globs is not None else page.entries
        cursor, more = page.cursor, page.more
        if entries or not more:
            break
    if after.rev > ws.rev:  # read after the page: revisions only grow, so `after` was never this store's
        raise vfs.CursorTooOld(after, 0)
    # A catch-up (not a snapshot): authors this process does not remember (it restarted, or they
    # are older than its memory) come from the store's versions. `authors` is the loop's live map:
    # only single lookups here, never a copy or an iteration of it.
    stored: dict[int, str] = {}
    if after.rev:
        found = ws.authors([(c.path, c.rev) for c in entries if authors.get(c.rev) is None])
        stored = {rev: name for (_path, rev), name in found.items()}
    inlined = _inline_contents(ws, entries, spec.inline_max)
    wire = [change_to_wire(c, data=inlined.get(i), author=authors.get(c.rev) or stored.get(c.rev))
            for i, c in enumerate(entries)]
    return Page(len(entries), cursor, more, max((c.rev for c in entries), default=0), orjson.dumps(wire))


def _inline_contents(ws: vfs.Workspace, entries: list[vfs.Change], inline_max: int) -> dict[int, bytes]:
    """The content of the page's small files (by entry index), up to `INLINE_BUDGET` bytes in all.

    Their chunks are read with one `read_objects` for the page (one catalogue
    lookup per 500 chunks, not one per file: a first sync of small files was
    15 % of the server's CPU in per-file lookups); a file with a chunk the
    store no longer has is not inlined (the client fetches it)."""
    if not inline_max:
        return {}
    chosen: list[int] = []
    budget = INLINE_BUDGET
    for i, c in enumerate(entries):
        if c.kind == "file" and c.size <= inline_max and c.size <= budget:
            chosen.append(i)
            budget -= c.size
    contents = _file_contents(ws, [entries[i] for i in chosen])
    return {i: data for i, data in zip(chosen, contents) if data is not None}


def _file_contents(ws: vfs.Workspace, files: list[vfs.Change]) -> list[bytes | None]:
    """Each file's bytes (None when the store lacks one of its chunks), all chunks read with one
    `read_objects` (one statement per 64 chunks finds them and brings the small ones' bytes)."""
    if not files:
        return []
    blobs = dict(ws.read_objects(list(dict.fromkeys(h for c in files for h, _ in c.chunks))))
    return [b"".join(blobs[h] for h, _ in c.chunks) if all(h in blobs for h, _ in c.chunks) else None
            for c in files]


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


def read_delta(ws: vfs.Workspace, rev: int, inline_max: int, known: tuple[str, bytes] | None = None,
               entries: list[vfs.Change] | None = None) -> Delta | None:
    """Runs in the writer thread inside the commit's operation (the connection is free again).
    `known`: (path, bytes) the job that made this commit wrote at path; that file's content is
    taken from it instead of read back from the store (a small PUT's delta: one statement less).
    `entries`: the commit's entries as its writer captured them (`vfs.commit_handover`); None:
    read back (`commit_changes`, one statement)."""
    if entries is None:
        entries = ws.commit_changes(rev, limit=DELTA_LIMIT)
    if entries is None:
        return None  # too big, or another writer committed meanwhile
    upto = min(inline_max, DELTA_INLINE)
    small = [c for c in entries if c.kind == "file" and c.size <= upto]
    if sum(c.size for c in small) > DELTA_BUDGET:
        upto, small = -1, []
    if known is not None and len(small) == 1 and small[0].path == known[0] and small[0].size == len(known[1]):
        contents: list[bytes | None] = [known[1]]
    else:
        contents = _file_contents(ws, small)
    if any(content is None for content in contents):
        return None
    data = {c.path: content for c, content in zip(small, contents) if content is not None}
    return Delta(vfs.Cursor(rev - 1), vfs.Cursor(rev), entries, data, upto)


def page_from_deltas(deltas: list[Delta], spec: PageSpec, filt: PathFilter, authors: dict[int, str]) -> Page | None:
    """The page `read_page` would return after `deltas[0].after` when the log ends at
    `deltas[-1].cursor`, or None if the deltas cannot tell.

    Several consecutive commits merge as the store would coalesce them: each
    path once, in its latest state, in (rev, path) order (Python orders str
    by code point, as SQLite orders their UTF-8 bytes).
    """
    latest: dict[str, tuple[vfs.Change, Delta]] = {}
    for delta in deltas:
        for c in delta.entries:
            latest[c.path] = (c, delta)
    chosen = sorted((pair for pair in latest.values() if filt(pair[0].path, pair[0].kind)),
                    key=lambda p: (p[0].rev, p[0].path))
    if len(chosen) > spec.limit:
        return None
    budget = INLINE_BUDGET
    wire = []
    for c, delta in chosen:
        data = None
        if spec.inline_max and c.kind == "file" and c.size <= spec.inline_max and c.size <= budget:
            if c.size > delta.inline_upto:
                return None  # content not carried: read the store
            data = delta.data[c.path]
            budget -= c.size
        wire.append(change_to_wire(c, data=data, author=authors.get(c.rev)))
    return Page(len(chosen), deltas[-1].cursor, False, max((c.rev for c, _ in chosen), default=0),
                orjson.dumps(wire), step=True)


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

    def forget(self) -> None:
        """Drop every cached page and delta (the workspace went quiet: its memory goes back; a cache
        only, so the next reader reads the store). Reads in flight stay for their waiters."""
        for key, fut in list(self._pages.items()):
            if fut.done():
                del self._pages[key]
        self._bytes = 0
        self._deltas.clear()

    def page_nowait(self, spec: PageSpec, filt: PathFilter, after: vfs.Cursor) -> Page | None:
        """The page after `after` if it is in memory (a fresh cached page or commit deltas) and may
        be shown now (`WorkspaceHandle.until_durable`), else None."""
        page = self._in_memory(spec, filt, after)
        if page is not None and self.handle.durable_reads and page.newest > self.handle.head():
            return None  # not acknowledged yet: the subscription's own task waits for it
        return page

    def _in_memory(self, spec: PageSpec, filt: PathFilter, after: vfs.Cursor) -> Page | None:
        key = (spec, after)
        fut = self._pages.get(key)
        if fut is not None:
            if not fut.done():
                return None  # a store read is in flight
            if self._fresh(fut) and not self._extends(fut.result()):
                self.hits += 1
                self._pages.move_to_end(key)
                return fut.result()
        page = self._from_deltas(spec, filt, after)
        if page is not None:
            self.delta_pages += 1
            done = asyncio.get_running_loop().create_future()
            done.set_result(page)
            self._store(key, done)
            self._bytes += len(page.entries_json)
        return page

    def _from_deltas(self, spec: PageSpec, filt: PathFilter, after: vfs.Cursor) -> Page | None:
        """One page over every consecutive commit delta from `after` on (a reader a few commits
        behind gets them in one message), or over fewer if that page would be too big."""
        chain: list[Delta] = []
        delta = self._deltas.get(after)
        while delta is not None:
            chain.append(delta)
            delta = self._deltas.get(delta.cursor)
        while chain:
            page = page_from_deltas(chain, spec, filt, self.handle.authors)
            if page is not None or len(chain) == 1:
                return page
            chain.pop()
        return None

    def _extends(self, page: Page) -> bool:
        """A cached step page that newer deltas could carry further (rebuild it longer)."""
        return page.step and page.cursor.rev < self.handle.head() and page.cursor in self._deltas

    async def page(self, spec: PageSpec, filt: PathFilter, after: vfs.Cursor) -> Page:
        """The page after `after` for `spec`: shared with every concurrent or recent equal request.

        Returned once it may be shown: in a cluster, once every revision it tells of is acknowledged.
        """
        page = await self._page(spec, filt, after)
        await self.handle.until_durable(page.newest)
        return page

    async def _page(self, spec: PageSpec, filt: PathFilter, after: vfs.Cursor) -> Page:
        page = self._in_memory(spec, filt, after)
        if page is not None:
            return page
        key = (spec, after)
        fut = self._pages.get(key)
        if fut is None or fut.done():  # none, or a stale final page
            self.reads += 1
            # A task of its own, not the caller's: cancelling one waiting subscription
            # must not cancel the read the others are waiting for.
            fut = asyncio.ensure_future(self._load(key, filt))
            self._store(key, fut)
        else:
            self.hits += 1
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
