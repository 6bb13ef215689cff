"""The object-store chunk backend of a cluster node: chunk bytes as immutable S3 objects.

Litestream replicates a store's SQLite file only. With every chunk inside it,
a new owner restored the whole workspace before serving it (70 s at 1 GiB).
Here a transaction's first `SPILL_OBJECTS` (64 KiB) of new chunk bytes
still stay inside SQLite (a small write stays one commit with no extra round
trip, as with pack files, whose spill is 1 MiB); beyond that each new chunk is PUT as its own object, and the
catalogue row (`chunks`: hash, size, `pack = OBJECT`, `pos = tag`) is what
the SQLite file, and so Litestream, carries. A new owner restores the
catalogue only and reads chunks lazily, through the node's bounded cache.

Keys: `<root>/ws/<workspace>/chunks/e<epoch>g<gen>/<BLAKE3 hex>`. The tag
(`e<epoch>g<gen>`, kept in the row's `pos` as `epoch << 32 | gen`) names
the ownership epoch and the *upload generation* that wrote the object:
every key is written by one owner in one generation only, and a generation
is closed to uploads before the collector judges its objects. That is what
makes collection safe against a paused ex-owner (docs/cluster.md, "Why the
chunk collector is safe"):

1. a commit is written only after every object it references is in S3
   (`before_commit` waits for the PUTs): Litestream never carries a row
   whose object is missing;
2. the collector (`compact`, run after the store's gc on the writer) closes
   the upload generation and reads the catalogue, both under the write
   lock, then makes every commit so far durable *and* fenced (a
   `DurableAcks` round: the same proof that makes an acknowledgement safe
   makes this catalogue the one every later owner restores or descends
   from), then deletes only objects of older tags of its own epoch or
   earlier that this catalogue does not name and that are older than the
   grace;
3. no later state of any owner can name such an object: rows added after
   the generation closed carry newer tags (this owner's) or a later
   epoch (a later owner's), rows never change their tag, and every row
   restored comes from a catalogue that descends from the judged one.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import re
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import blake3

from server.cluster.chunkobjects import ChunkObjects
from vfs.chunks import ChunkEntry
from vfs.chunkstore import RUN_MAX, SqliteChunks
from vfs.errors import fs_error

log = logging.getLogger("wsfs.server.cluster")

OBJECTS = "objects"  # the backend's name in `meta.chunk_backend`
OBJECT = -1  # `chunks.pack` of a chunk whose bytes are an object in the object store (`pos` holds its tag)
PENDING_MAX = 64  # uploads in flight per writer (64 x 256 KiB at most held in memory)
READ_AHEAD = 16  # chunks fetched ahead of a streamed read
# New chunk bytes a transaction keeps inside SQLite before it PUTs objects. Smaller than the pack
# files' SPILL (1 MiB): every inline byte is restored at failover, while a PUT costs only a parallel
# round trip before the commit; a write of up to 64 KiB (most source files) stays one commit.
SPILL_OBJECTS = 64 * 1024
GRACE = 60.0  # seconds: a collector spares objects younger than this (WSFS_CLUSTER_CHUNK_GRACE)
_KEY = re.compile(r"/chunks/e(\d+)g(\d+)/([0-9a-f]{64})$")


def tag_of(epoch: int, gen: int) -> int:
    return epoch << 32 | gen


def key_suffix(tag: int, digest: bytes) -> str:
    return f"e{tag >> 32}g{tag & 0xFFFFFFFF}/{digest.hex()}"


def parse_key(key: str) -> tuple[int, bytes] | None:
    """(tag, digest) of a chunk object's key; None for anything else."""
    found = _KEY.search(key)
    if found is None:
        return None
    return tag_of(int(found[1]), int(found[2])), bytes.fromhex(found[3])


@dataclass
class ChunkSpace:
    """One workspace's chunk objects on this node: where they go, which tag new uploads carry,
    and how the collector makes the catalogue durable and fenced (`durable`, blocking)."""

    workspace: str
    prefix: str  # <root>/ws/<workspace>/chunks
    objects: ChunkObjects
    epoch: Callable[[], int | None]  # the epoch this node owns the workspace at (None: not owned)
    durable: Callable[[], None]  # blocks until every commit so far is replicated and fenced; raises if not
    grace: float = GRACE
    spill: int = SPILL_OBJECTS
    _gen: tuple[int, int] = (0, 0)  # (epoch, generation) of uploads now
    _checked: bool = False  # the store was found free of pack files
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def tag(self) -> int:
        """The tag of an upload now (EAGAIN when this node does not own the workspace)."""
        epoch = self.epoch()
        if epoch is None:
            raise fs_error(errno.EAGAIN, self.workspace, "workspace not owned by this node: no chunk upload")
        with self._lock:
            if self._gen[0] != epoch:
                self._gen = (epoch, 1)
            return tag_of(*self._gen)

    def next_generation(self) -> int:
        """Close the current generation to uploads (the collector, before it judges); the new tag."""
        self.tag()
        with self._lock:
            self._gen = (self._gen[0], self._gen[1] + 1)
            return tag_of(*self._gen)

    def key(self, tag: int, digest: bytes) -> str:
        return f"{self.prefix}/{key_suffix(tag, digest)}"

    def __call__(self, conn: sqlite3.Connection, path: str) -> ObjectChunks:
        """The `vfs.chunkstore.BackendFactory`: this workspace's backend on one connection."""
        if not self._checked:  # once per workspace and node (a scan of the catalogue): no store restored
            # in a cluster has pack files, only one made by a plain `wsfs serve` on this disk can
            packed = conn.execute("SELECT count(*) FROM chunks WHERE pack >= 0").fetchone()[0]
            if packed:
                raise ValueError(f"{path} keeps {packed} chunks in pack files no other node can read: convert "
                                 "it first (`wsfs store convert --chunks sqlite STORE.db`, docs/cluster.md)")
            self._checked = True
        return ObjectChunks(conn, path, self)


class ObjectChunks(SqliteChunks):
    """Small transactions' chunks inline (`spill`); bulk chunks as S3 objects, PUT before the COMMIT naming them."""

    backend = OBJECTS

    def __init__(self, conn: sqlite3.Connection, path: str, space: ChunkSpace):
        super().__init__(conn)
        self._path = path
        self.space = space
        self._objects = space.objects
        self._inline = 0  # new bytes this transaction kept inline so far
        self._pending: deque[Future[None]] = deque()

    # -- writing (inside a transaction) -------------------------------------------

    def put(self, data: bytes | memoryview, digest: bytes | None = None) -> ChunkEntry:
        size = len(data)
        if self._inline + size <= self.space.spill:
            self._inline += size
            return SqliteChunks.put(self, data, digest)
        digest = digest or blake3.blake3(data).digest()
        tag = self.space.tag()
        chunk_id = self._insert_outside(digest, size, OBJECT, tag)
        if chunk_id is None:
            return self._existing(digest, size)
        self._upload(tag, digest, data)
        return ChunkEntry(digest, size, chunk_id)

    def put_many(self, items: Iterable[tuple[bytes, bytes | memoryview]]) -> list[ChunkEntry]:
        """A batch of (digest, bytes): one dedup query; new chunks inline while they fit in the spill,
        else one row each (one `executemany`) and one PUT each, in flight while the caller goes on."""
        batch = list(items)
        known, fresh = self._split_known(batch)
        fresh_bytes = sum(len(data) for data in fresh.values())
        if fresh and self._inline + fresh_bytes <= self.space.spill:
            for digest, data in fresh.items():
                known[digest] = SqliteChunks.put(self, data, digest).id
            self._inline += fresh_bytes
        elif fresh:
            tag = self.space.tag()
            known.update(self._insert_outside_many(fresh, OBJECT, [tag] * len(fresh)))
            for digest, data in fresh.items():
                self._upload(tag, digest, data)
        return [ChunkEntry(digest, len(data), known[digest]) for digest, data in batch]

    def _upload(self, tag: int, digest: bytes, data: bytes | memoryview) -> None:
        while len(self._pending) >= PENDING_MAX:  # bounded memory: wait for the oldest
            self._settle(self._pending.popleft())
        self._pending.append(self._objects.upload(self.space.key(tag, digest), digest, bytes(data)))

    def _settle(self, upload: Future[None]) -> None:
        try:
            upload.result()
        except OSError:
            self._drain()
            raise

    def _drain(self) -> None:
        """Wait for every upload still in flight, whatever its outcome (none outlives its transaction)."""
        while self._pending:
            try:
                self._pending.popleft().result()
            except OSError:
                pass

    def before_commit(self) -> None:
        """Every object this transaction references is in S3 before the COMMIT that names it."""
        while self._pending:
            self._settle(self._pending.popleft())

    def after_transaction(self, *, committed: bool) -> None:
        self._inline = 0
        self._drain()  # a rolled-back transaction's objects are orphans: the collector takes them

    # -- reading ---------------------------------------------------------------------

    def read(self, chunk_id: int) -> bytes:
        row = self._conn.execute("SELECT pack, pos, hash FROM chunks WHERE id = ?", (chunk_id,)).fetchone()
        if row is None or row[0] != OBJECT:
            return SqliteChunks.read(self, chunk_id)
        return self._objects.fetch(self.space.key(row[1], row[2]), row[2])

    def read_runs(self, entries: list[ChunkEntry], run_max: int = RUN_MAX) -> Iterator[bytes]:
        """The chunks in order, object chunks fetched up to `READ_AHEAD` ahead in parallel."""
        where = self._locate({e.id for e in entries})
        ahead: deque[tuple[ChunkEntry, Future[bytes] | None]] = deque()
        for entry in entries:
            tag = where.get(entry.id)
            later = None if tag is None else self._objects.fetch_later(self.space.key(tag, entry.hash), entry.hash)
            ahead.append((entry, later))
            if len(ahead) >= READ_AHEAD:
                yield self._take(*ahead.popleft())
        while ahead:
            yield self._take(*ahead.popleft())

    def _take(self, entry: ChunkEntry, later: Future[bytes] | None) -> bytes:
        return SqliteChunks.read(self, entry.id) if later is None else later.result()

    def _locate(self, ids: set[int]) -> dict[int, int]:
        """Tags of the object chunks among `ids` (inline ones are left out)."""
        found: dict[int, int] = {}
        pending = list(ids)
        for lo in range(0, len(pending), 500):
            batch = pending[lo:lo + 500]
            marks = ",".join("?" * len(batch))
            found.update(self._conn.execute(
                f"SELECT id, pos FROM chunks WHERE pack = {OBJECT} AND id IN ({marks})", batch))
        return found

    # -- collection --------------------------------------------------------------------

    def compact(self, transaction: Callable[[], AbstractContextManager[object]]) -> int:
        """Delete the objects no durable, fenced catalogue of ours names (after the store's gc deleted
        their rows); returns the bytes freed. Any failure only leaves garbage for the next pass."""
        space = self.space
        try:
            listed = list(space.objects.client.listing(space.prefix + "/"))
        except OSError as exc:
            log.warning("chunk collection of %s skipped: %s", space.workspace, exc)
            return 0
        with transaction():  # briefly the write lock: no transaction naming an older tag is still open
            newest = space.next_generation()  # rows added from now on carry this tag or a newer one
            named = set(self._conn.execute("SELECT pos, hash FROM chunks WHERE pack = ?", (OBJECT,)))
        try:  # outside the lock: Litestream may need to write the store while it syncs
            space.durable()  # covers `named`: every later owner restores it or a state descending from it
        except Exception as exc:  # noqa: BLE001 - not durable or not ours: delete nothing
            log.warning("chunk collection of %s skipped: %s", space.workspace, exc)
            return 0
        doomed = _doomed(listed, named, newest, time.time() - space.grace)
        try:
            space.objects.client.delete([key for key, _ in doomed])
        except OSError as exc:
            log.warning("chunk collection of %s incomplete: %s", space.workspace, exc)
            return 0
        if doomed:
            log.info("%s: %d chunk objects collected (%d bytes)", space.workspace, len(doomed),
                     sum(size for _, size in doomed))
        return sum(size for _, size in doomed)


def _doomed(listed: list[tuple[str, int, float]], named: set[tuple[int, bytes]], newest: int,
            older_than: float) -> list[tuple[str, int]]:
    """The listed objects to delete: of an older tag than `newest` (so of our epoch or an earlier
    one, and of a generation closed to uploads), not named by the catalogue, older than the grace."""
    doomed = []
    for key, size, modified in listed:
        parsed = parse_key(key)
        if parsed is None or parsed[0] >= newest or parsed in named or modified > older_than:
            continue
        doomed.append((key, size))
    return doomed


def blocking_durable(loop: asyncio.AbstractEventLoop, make: Callable[[], object], timeout: float
                     ) -> Callable[[], None]:
    """`ChunkSpace.durable` for a writer thread: run the coroutine `make()` on the node's loop and
    wait for it (never called on the loop itself: it would wait for itself)."""

    def durable() -> None:
        if _on_loop(loop):
            raise RuntimeError("chunk collection cannot wait for the event loop from the event loop")
        future: Future[object] = asyncio.run_coroutine_threadsafe(make(), loop)  # type: ignore[arg-type]
        future.result(timeout)

    return durable


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
