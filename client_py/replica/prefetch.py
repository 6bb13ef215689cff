"""Prefetch: the chunks of the next batch are asked for while this one is written to disk.

A catch-up is a sequence of batches, and each one used to run in two steps
that never overlapped: gather (find every file's content; `get` what no
local source has, then wait for it) and commit (write the files and their
rows). While the server read the chunks the client sat idle, and while the
client wrote files the server had nothing to do: on a 10,000-file first sync
the gets took ~0.6 s of wall time for ~0.25 s of the client's CPU.

Now, once a batch has all its bytes, the loop hands the next batch (already
queued by the subscription) to `Prefetcher.start`; the chunks its files will
need are asked for at once and received into memory while the current
batch's files are written, and the next `Downloader.fetch` takes them from
here first. Only bytes are fetched early: every decision about the next
batch (stale or not, already here, conflicts) is still made when it is
applied, against the state as it is then. Bounded: at most
`PREFETCH_BYTES` in memory; chunks the state already knows a local copy of
are not asked for; every chunk is verified on receipt like any other, and a
prefetch that fails or is not used costs its bytes and nothing else.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Iterable

from client_py.replica.state import State
from client_py.session import Session
from vfs.types import Change

log = logging.getLogger("client_py.replica")

PREFETCH_BYTES = 8 << 20  # chunk bytes asked for ahead of the batch that needs them, at most
GROUP_BYTES = 1 << 20  # bytes per `get` request
GROUP_HASHES = 4096  # hashes per `get` request (the protocol's limit)


class Prefetcher:
    """One prefetch at a time; its chunks wait here until the next fetch takes them."""

    def __init__(self, state: State, on_bytes: Callable[[int], None]):
        self.state = state
        self.on_bytes = on_bytes  # counts what arrives, used or not
        self._task: asyncio.Task[None] | None = None
        self._chunks: dict[str, bytes | memoryview] = {}

    async def start(self, session: Session, changes: Iterable[Change], exclude: set[str]) -> None:
        """Ask for the chunks of `changes` (files the next batch may download), up to `PREFETCH_BYTES`.

        Returns once the requests are sent (so the server works on them while the
        caller writes files); a task receives the chunks. `exclude`: chunks the
        current batch brings, soon on disk and in the index. Nothing starts while
        an earlier prefetch is still receiving.
        """
        if self._task is not None and not self._task.done():
            return
        self._chunks = {}
        sizes: dict[str, int] = {}
        total = 0
        for change in changes:
            for h, size in change.chunks:
                if h in sizes or h in exclude:
                    continue
                if total + size > PREFETCH_BYTES:
                    break
                sizes[h] = size
                total += size
            if total >= PREFETCH_BYTES:
                break
        if sizes:
            local = self.state.chunk_locations_many(list(sizes))
            wanted = [h for h in sizes if h not in local]
            if wanted:
                gets = [await session.start_get(group) for group in get_groups(wanted, sizes)]
                self._task = asyncio.ensure_future(self._receive(session, gets))

    async def take(self) -> dict[str, bytes | memoryview]:
        """The chunks prefetched so far (after the prefetch under way has finished); the store is emptied."""
        if self._task is not None:
            try:
                await asyncio.shield(self._task)
            except asyncio.CancelledError:
                if not self._task.cancelled():
                    raise  # we were cancelled, not the prefetch
        self._task = None
        chunks, self._chunks = self._chunks, {}
        return chunks

    def cancel(self) -> None:
        """Drop the prefetch (the session is going away)."""
        if self._task is not None:
            self._task.cancel()
        self._task = None
        self._chunks = {}

    async def _receive(self, session: Session, gets: list[Any]) -> None:
        try:
            for get in gets:
                async for h, data in session.iter_get(get):
                    self._chunks[h] = data
                    self.on_bytes(len(data))
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - the fetch proper asks again and reports
            log.debug("prefetch failed: %s", e)


def get_groups(hashes: list[str], sizes: dict[str, int]) -> list[list[str]]:
    """`hashes` in `get`-sized groups (at most `GROUP_BYTES` or `GROUP_HASHES` each)."""
    groups: list[list[str]] = [[]]
    total = 0
    for h in hashes:
        if groups[-1] and (total + sizes[h] > GROUP_BYTES or len(groups[-1]) >= GROUP_HASHES):
            groups.append([])
            total = 0
        groups[-1].append(h)
        total += sizes[h]
    return groups
