"""The chunk store seam: where a store keeps the bytes of its chunks.

Every store keeps its chunk *catalogue* in SQLite (`chunks`: id, BLAKE3
hash, size, and since schema v6 the pack and position of bytes kept
outside): content lists chunks by catalogue id, dedup and gc are SQL. Since
v11 a chunk's id is derived from its hash, so the catalogue needs no hash
index (`vfs.chunkids`). Where
the *bytes* live is the store's backend, chosen when the store is created
and kept in `meta.chunk_backend`:

- `"sqlite"`: every chunk's bytes in `chunk_data`, inside the store file.
  One file holds everything, which is what Litestream replicates in a
  cluster (`docs/cluster.md`); stores made before v6 are this.
- `"packs"`: a transaction's first `SPILL` bytes of new chunks still go to
  `chunk_data` (a small write stays one SQLite commit, with no extra
  `fdatasync`); the rest are appended to pack files beside the store
  (`vfs.packs`), made durable before the commit that references them.

Whatever the backend, a chunk of at most `TINY_CHUNK` bytes stored inline
keeps its bytes in its catalogue row (`chunks.data`, schema v10) rather than
in `chunk_data`: one page less per commit of a tiny file. Readers look in
both (rows written before v10 keep theirs in `chunk_data`).

Both backends offer the one interface the store uses (`ChunkBackend`):
put, read (one chunk or a run of them), ids of present hashes, delete, the
commit hooks, and compaction. A cluster's object store is a third one
(`server/cluster/objectchunks.py`, handed in as a `BackendFactory`: this
layer imports no S3 or HTTP code); a store recording it opens only through
such a factory.

    content, sync, history, db  ->  chunkstore  ->  packs, chunks
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Protocol

import blake3

from vfs import chunkids
from vfs.chunks import ChunkEntry
from vfs.packs import Packs, StagedPack, pack_dir, sync_wal

SQLITE, PACKS = "sqlite", "packs"
BACKENDS = (SQLITE, PACKS)
DEFAULT_BACKEND = PACKS  # for a new store on disk (measured: docs/architecture.md, issue 14)
SPILL = 1 << 20  # new chunk bytes a transaction keeps inside SQLite before it appends to a pack
# Chunks this small keep their bytes in their catalogue row (`chunks.data`, schema v10), not in
# `chunk_data`: a tiny file's create then writes one page less (its `chunk_data` leaf), ~8 us of
# a ~90 us commit here. Small enough that a catalogue page still holds several rows.
TINY_CHUNK = 1024
RUN_MAX = 1 << 20  # bytes one streamed read fetches with one pread at most (a server streams each piece)
_LOCATE_BATCH = 500


class ChunkBackend(Protocol):
    """What the store needs from wherever chunk bytes live."""

    backend: str

    def put(self, data: bytes | memoryview, digest: bytes | None = None) -> ChunkEntry: ...
    def put_many(self, items: Iterable[tuple[bytes, bytes | memoryview]]) -> list[ChunkEntry]: ...
    def read(self, chunk_id: int) -> bytes: ...
    def small_by_hash(self, digests: list[bytes], small: int) -> dict[bytes, tuple[int, bytes | None]]: ...
    def read_runs(self, entries: list[ChunkEntry], run_max: int = RUN_MAX) -> Iterator[bytes]: ...
    def hash_of(self, entries: list[ChunkEntry]) -> bytes: ...
    def ids_for(self, digests: Iterable[bytes]) -> dict[bytes, tuple[int, int]]: ...
    def delete(self, ids: list[int]) -> None: ...
    def begin_write(self, data_version: int) -> None: ...
    def before_commit(self) -> None: ...
    def after_transaction(self, *, committed: bool) -> None: ...
    def compact(self, transaction: Callable[[], AbstractContextManager[object]]) -> int: ...
    def close(self) -> None: ...


# A backend made by the opener rather than named (a cluster's object store, `docs/cluster.md`):
# called with the store's connection and path once the store is open; the store records its
# `backend` name in `meta.chunk_backend` like any other.
BackendFactory = Callable[[sqlite3.Connection, str], ChunkBackend]


class SqliteChunks:
    """Chunk bytes inside the store file (`chunk_data`), catalogue in `chunks`."""

    backend = SQLITE

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn
        self._dml = conn.cursor().execute  # inserts, on one kept cursor (as `Db.dml`)
        self._displaced = True  # `chunk_ids` may name a chunk: until `begin_write` finds it empty
        self._checked_at: int | None = None  # the data_version `_displaced` was found at

    # -- writing (inside a transaction) -------------------------------------------

    def put(self, data: bytes | memoryview, digest: bytes | None = None) -> ChunkEntry:
        """Store one chunk unless already present; must run inside a transaction."""
        digest = digest or blake3.blake3(data).digest()
        size = len(data)
        if size <= TINY_CHUNK:  # bytes in the catalogue row: one page less
            return ChunkEntry(digest, size, self._catalogue(digest, size, "data", (data,))[0])
        chunk_id, new = self._catalogue(digest, size, "", ())
        if new:
            self._conn.execute("INSERT INTO chunk_data(id, data) VALUES(?, ?)", (chunk_id, data))
        return ChunkEntry(digest, size, chunk_id)

    def _catalogue(self, digest: bytes, size: int, extra: str, values: tuple) -> tuple[int, bool]:
        """The chunk's catalogue row: (its id, True) when written now, (its id, False) when the hash
        was catalogued already (dedup). Usually one statement: the row at its hash's id (`vfs.chunkids`)."""
        row = (chunkids.natural_id(digest), digest, size, time.time(), *values)
        if not self._displaced:
            try:
                return row[0], self._dml(chunkids.UNGUARDED_ONE[extra], row).rowcount == 1
            except sqlite3.IntegrityError:  # another hash holds the id: a collision
                self._displaced = True
                return chunkids.place(self._conn, self._dml, extra, row), True
        if self._dml(chunkids.GUARDED[extra], row).rowcount == 1:
            return row[0], True
        found = chunkids.find(self._conn, digest)
        if found is not None:
            return found, False
        self._displaced = True
        return chunkids.place(self._conn, self._dml, extra, row), True

    def begin_write(self, data_version: int) -> None:
        """Called after BEGIN of a write transaction with the connection's `PRAGMA data_version`.

        Whether `chunk_ids` names any chunk decides how a new row is inserted
        (`_catalogue`): when it names none, a row at its hash's id needs no check
        that the hash was displaced (~7k instructions of a ~300k create). It is
        asked again only when another connection committed since (our own
        commits add to it only through `_catalogue`, which notes it)."""
        if data_version != self._checked_at:
            self._displaced = chunkids.any_displaced(self._conn)
            self._checked_at = data_version

    def put_many(self, items: Iterable[tuple[bytes, bytes | memoryview]]) -> list[ChunkEntry]:
        """Store (digest, bytes) pairs whose digests the caller verified."""
        return [self.put(data, digest) for digest, data in items]

    def _existing(self, digest: bytes, size: int) -> ChunkEntry:
        chunk_id = chunkids.find(self._conn, digest)
        assert chunk_id is not None, digest.hex()
        return ChunkEntry(digest, size, chunk_id)

    def _insert_outside(self, digest: bytes, size: int, pack: int, pos: int) -> int | None:
        """A catalogue row for bytes kept outside `chunk_data` (`pack`, `pos`: where the backend keeps
        them); its id, or None when the hash is already catalogued (the caller then writes nothing)."""
        chunk_id, new = self._catalogue(digest, size, "pack", (pack, pos))
        return chunk_id if new else None

    def _split_known(self, batch: list[tuple[bytes, bytes | memoryview]]
                     ) -> tuple[dict[bytes, int], dict[bytes, bytes | memoryview]]:
        """A batch's digests already catalogued (digest -> id, one dedup query) and its new chunks."""
        known = {digest: chunk_id for digest, (chunk_id, _) in self.ids_for(d for d, _ in batch).items()}
        fresh: dict[bytes, bytes | memoryview] = {}
        for digest, data in batch:
            if digest not in known:
                fresh.setdefault(digest, data)
        return known, fresh

    def _insert_outside_many(self, fresh: dict[bytes, bytes | memoryview], pack: int,
                             positions: list[int]) -> dict[bytes, int]:
        """Catalogue rows for new chunks kept outside (one `executemany`, each at its hash's id; one
        whose id another hash holds goes where `vfs.chunkids.place` puts it); digest -> id."""
        now = time.time()
        return self._insert_rows([(chunkids.natural_id(digest), digest, len(data), now, pack, positions[n])
                                  for n, (digest, data) in enumerate(fresh.items())])

    def _insert_rows(self, rows: list[tuple[int, bytes, int, float, int, int]]) -> dict[bytes, int]:
        """`_insert_outside_many` of (natural id, digest, size, created, pack, position) rows."""
        ids = {row[1]: row[0] for row in rows}
        if self._conn.executemany(chunkids.UNGUARDED["pack"], rows).rowcount != len(rows):
            for row in rows:
                if self._conn.execute("SELECT hash FROM chunks WHERE id = ?", (row[0],)).fetchone()[0] != row[1]:
                    ids[row[1]] = chunkids.place(self._conn, self._dml, "pack", row)
        return ids

    def delete(self, ids: list[int]) -> None:
        """Forget chunks (gc): catalogue rows and inline bytes; pack bytes wait for compaction."""
        for statement in chunkids.DELETE:  # (`chunk_ids` first: it finds the row's hash in `chunks`)
            self._conn.executemany(statement, [(i,) for i in ids])

    def before_commit(self) -> None:
        """Called just before COMMIT: make bytes kept outside SQLite durable."""

    def after_transaction(self, *, committed: bool) -> None:
        """Called after COMMIT or ROLLBACK of the outermost transaction."""

    def compact(self, transaction: Callable[[], AbstractContextManager[object]]) -> int:
        """Reclaim bytes nobody references; returns the bytes freed (none to do here:
        SQLite reuses the pages of deleted rows)."""
        return 0

    def close(self) -> None:
        pass

    # -- reading ---------------------------------------------------------------------

    def read(self, chunk_id: int) -> bytes:
        # blobopen reads stay at GB/s where SELECT of large BLOBs can fall to
        # ~1 GB/s with glibc heap churn (reference/limits.md).
        try:
            with self._conn.blobopen("chunk_data", "data", chunk_id, readonly=True) as blob:
                return blob.read()
        except sqlite3.OperationalError:  # no `chunk_data` row: a tiny chunk's bytes are in its catalogue row
            row = self._conn.execute("SELECT data FROM chunks WHERE id = ?", (chunk_id,)).fetchone()
            if row is None or row[0] is None:
                raise
            return row[0]

    def read_sized(self, chunk_id: int, size: int) -> bytes:
        """`read` of a chunk whose size the caller knows: a tiny one is looked for in its catalogue
        row first (stores before v10 keep tiny chunks in `chunk_data` too)."""
        if size <= TINY_CHUNK:
            row = self._conn.execute("SELECT data FROM chunks WHERE id = ?", (chunk_id,)).fetchone()
            if row is not None and row[0] is not None:
                return row[0]
        return SqliteChunks.read(self, chunk_id)

    def small_by_hash(self, digests: list[bytes], small: int) -> dict[bytes, tuple[int, bytes | None]]:
        """Each of `digests` present -> (row id, its bytes if at most `small` and kept inside the store,
        else None), in one statement: a peer fetching many small chunks by hash gets the lookup and the
        bytes in one pass. Chunks kept elsewhere (packs, objects) or bigger: read them with `read`."""
        if not digests:
            return {}
        columns = "c.hash, c.id, CASE WHEN c.size <= ? THEN coalesce(c.data, " \
                  "(SELECT d.data FROM chunk_data d WHERE d.id = c.id)) END"
        wanted = set(digests)
        rows = self._conn.execute(chunkids.by_hash_sql(columns, len(digests)),
                                  chunkids.by_hash_params(digests, (small,)))
        return {digest: (chunk_id, data) for digest, chunk_id, data in rows if digest in wanted}

    def read_runs(self, entries: list[ChunkEntry], run_max: int = RUN_MAX) -> Iterator[bytes]:
        """The bytes of `entries` in order, as pieces that each end on a chunk boundary."""
        for entry in entries:
            yield self.read_sized(entry.id, entry.size)

    def hash_of(self, entries: list[ChunkEntry]) -> bytes:
        """BLAKE3 of the content a chunk list lists, read chunk by chunk (bounded memory)."""
        hasher = blake3.blake3()
        last_id, data = -1, b""
        for entry in entries:
            if entry.id != last_id:  # runs of one chunk (zero-extension) are read once
                last_id, data = entry.id, self.read(entry.id)
            hasher.update(data)
        return hasher.digest()

    def ids_for(self, digests: Iterable[bytes]) -> dict[bytes, tuple[int, int]]:
        """Map each present digest to (row id, size); absent ones are left out."""
        found: dict[bytes, tuple[int, int]] = {}
        batch: list[bytes] = []
        for digest in digests:
            batch.append(digest)
            if len(batch) == 500:
                found.update(self._lookup(batch))
                batch = []
        if batch:
            found.update(self._lookup(batch))
        return found

    def _lookup(self, batch: list[bytes]) -> dict[bytes, tuple[int, int]]:
        wanted = set(batch)
        rows = self._conn.execute(chunkids.by_hash_sql("c.hash, c.id, c.size", len(batch)),
                                  chunkids.by_hash_params(batch))
        return {h: (i, s) for h, i, s in rows if h in wanted}


class PackedChunks(SqliteChunks):
    """Small transactions' chunks inline as before; bulk bytes appended to pack files."""

    backend = PACKS

    def __init__(self, conn: sqlite3.Connection, store_path: str):
        super().__init__(conn)
        self._path = store_path
        self.packs = Packs(pack_dir(store_path))
        self._inline = 0  # new bytes this transaction kept inline so far

    def put(self, data: bytes | memoryview, digest: bytes | None = None) -> ChunkEntry:
        size = len(data)
        if self._inline + size <= SPILL and not self.packs.appending:
            entry = super().put(data, digest)
            self._inline += size
            return entry
        digest = digest or blake3.blake3(data).digest()
        number, position = self.packs.next_position(size)
        chunk_id = self._insert_outside(digest, size, number, position)
        if chunk_id is None:
            return self._existing(digest, size)
        self.packs.append(data)  # the row names these bytes; both stand or fall with the transaction
        return ChunkEntry(digest, size, chunk_id)

    def put_many(self, items: Iterable[tuple[bytes, bytes | memoryview]]) -> list[ChunkEntry]:
        """A batch of (digest, bytes): one dedup query, a `pwritev` per 16 chunks, one `executemany`.

        New chunks stay inline while the transaction's new bytes fit in `SPILL`."""
        batch = list(items)
        known, fresh = self._split_known(batch)
        fresh_bytes = sum(len(data) for data in fresh.values())
        if fresh and not self.packs.appending and self._inline + fresh_bytes <= SPILL:
            for digest, data in fresh.items():  # a small edit of a big file stays one SQLite commit
                known[digest] = SqliteChunks.put(self, data, digest).id
            self._inline += fresh_bytes
        elif fresh:
            number, positions = self.packs.append_many(list(fresh.values()))
            known.update(self._insert_outside_many(fresh, number, positions))
        return [ChunkEntry(digest, len(data), known[digest]) for digest, data in batch]

    def adopt(self, staged: StagedPack, chunks: list[tuple[bytes, int, int]]) -> dict[bytes, int]:
        """Catalogue an upload's chunks from its staged pack (`vfs.packs.StagedPack`), inside a
        transaction: (digest, size, position in the staged file) each; digest -> chunk id.

        The caller synced the staged file before this transaction (so the pack is durable before
        the commit that names it, the packs' rule) and vouches for the digests: they are its own
        BLAKE3 of the bytes it appended (`vfs.content.StoredChunks`). Chunks already catalogued
        keep their rows; if every one was, the staged file is left to its owner to drop."""
        known = {digest: hit[0] for digest, hit in self.ids_for(digest for digest, _, _ in chunks).items()}
        fresh: dict[bytes, tuple[int, int]] = {}
        for digest, size, position in chunks:
            if digest not in known:
                fresh.setdefault(digest, (size, position))
        if fresh:
            number = self.packs.adopt(staged)
            now = time.time()
            known.update(self._insert_rows([(chunkids.natural_id(digest), digest, size, now, number, position)
                                            for digest, (size, position) in fresh.items()]))
        return known

    def before_commit(self) -> None:
        self.packs.sync()

    def after_transaction(self, *, committed: bool) -> None:
        self._inline = 0
        self.packs.finish(committed=committed)

    # -- reading ---------------------------------------------------------------------

    def read(self, chunk_id: int) -> bytes:
        row = self._conn.execute("SELECT pack, pos, size, data FROM chunks WHERE id = ?", (chunk_id,)).fetchone()
        if row is not None and row[3] is not None:
            return row[3]
        if row is None or row[0] is None:
            return super().read(chunk_id)
        return self._read_packed(chunk_id, *row[:3])

    def _read_packed(self, chunk_id: int, number: int, position: int, size: int) -> bytes:
        try:
            return self.packs.read(number, position, size)
        except FileNotFoundError:
            # Compaction moved the chunk and dropped its pack after we looked it up: look again.
            self.packs.forget_reader(number)
            number, position, size = self._conn.execute(
                "SELECT pack, pos, size FROM chunks WHERE id = ?", (chunk_id,)
            ).fetchone()
            return self.packs.read(number, position, size)

    def read_runs(self, entries: list[ChunkEntry], run_max: int = RUN_MAX) -> Iterator[bytes]:
        """Chunks stored back to back in one pack are read with one `pread` per run."""
        where = self._locate({e.id for e in entries})
        run: list[ChunkEntry] = []
        pack, start, end = None, 0, 0
        for entry in entries:
            number, position, tiny = where.get(entry.id, (None, 0, None))
            if run and (number != pack or position != end or end - start + entry.size > run_max):
                yield from self._read_run(run, pack, start, end)
                run = []
            if number is None:
                yield tiny if tiny is not None else super().read(entry.id)
                continue
            if not run:
                pack, start, end = number, position, position
            run.append(entry)
            end += entry.size
        if run:
            yield from self._read_run(run, pack, start, end)

    def _read_run(self, run: list[ChunkEntry], number: int | None, start: int, end: int) -> Iterator[bytes]:
        assert number is not None
        try:
            data = self.packs.read(number, start, end - start)
        except FileNotFoundError:  # compaction moved these chunks since we looked: one by one, looked up again
            self.packs.forget_reader(number)
            for entry in run:
                yield self.read(entry.id)
            return
        yield data

    def _locate(self, ids: set[int]) -> dict[int, tuple[int | None, int, bytes | None]]:
        """Where each chunk is: (pack, position, None), or (None, 0, its bytes) for a tiny chunk kept in
        its catalogue row, or (None, 0, None) for one in `chunk_data`."""
        found: dict[int, tuple[int | None, int, bytes | None]] = {}
        pending = list(ids)
        for lo in range(0, len(pending), _LOCATE_BATCH):
            batch = pending[lo : lo + _LOCATE_BATCH]
            marks = ",".join("?" * len(batch))
            for chunk_id, number, position, tiny in self._conn.execute(
                f"SELECT id, pack, pos, data FROM chunks WHERE id IN ({marks})", batch
            ):
                found[chunk_id] = (number, position, tiny)
        return found

    # -- compaction --------------------------------------------------------------------

    def compact(self, transaction: Callable[[], AbstractContextManager[object]]) -> int:
        """Rewrite packs that are at least half garbage, then drop packs nobody references.

        `transaction()` opens a write transaction of the store (whose commit
        syncs the pack appended to, `before_commit`). A pack is unlinked only
        after every commit so far is durable (`sync_wal`), under the write lock.
        """
        self.packs.drop_stale_staged()  # uploads' staged files whose writer is gone (never named by a row)
        live = dict(self._conn.execute("SELECT pack, sum(size) FROM chunks WHERE pack IS NOT NULL GROUP BY pack"))
        numbers = self.packs.numbers()
        wasteful = [n for n in numbers if live.get(n, 0) * 2 <= self.packs.size_of(n)]
        if numbers and wasteful and wasteful[-1] == numbers[-1] and self.packs.size_of(numbers[-1]):
            self.packs.seal()  # the newest pack takes no more appends, so it can be compacted too
        elif numbers and wasteful and wasteful[-1] == numbers[-1]:
            wasteful.pop()  # the newest, empty: appends go there
        freed = 0
        doomed = []
        for number in wasteful:
            size = self.packs.size_of(number)
            with transaction():
                self._move_live(number)
            freed += size - live.get(number, 0)
            doomed.append(number)
        if not doomed:
            return 0
        sync_wal(self._path)  # the moves and the deletions before them survive a power loss from here on
        with transaction():  # the write lock: no one appends or adds a row meanwhile
            for number in doomed:
                if self._conn.execute("SELECT 1 FROM chunks WHERE pack = ? LIMIT 1", (number,)).fetchone() is None:
                    self.packs.remove(number)
        return freed

    def _move_live(self, number: int) -> None:
        rows = self._conn.execute("SELECT id, pos, size FROM chunks WHERE pack = ? ORDER BY pos", (number,)).fetchall()
        for chunk_id, position, size in rows:
            data = self.packs.read(number, position, size)
            target, at = self.packs.next_position(size)
            self.packs.append(data)
            self._conn.execute("UPDATE chunks SET pack = ?, pos = ? WHERE id = ?", (target, at, chunk_id))

    def close(self) -> None:
        self.packs.close()


def stages_uploads(path: str) -> bool:
    """Whether the store at `path` records the packs backend, so a big upload may append its chunks
    to a staged pack of its own for its commit to adopt (`adopt_staged`). Any other backend would
    get the whole upload's bytes read back and stored inside that one commit; its uploads are
    better stored batch by batch as they arrive. Read from `meta` on a read-only connection."""
    try:
        conn = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)
    except sqlite3.Error:
        return False
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'chunk_backend'").fetchone()
    except sqlite3.Error:
        return False
    finally:
        conn.close()
    return row is not None and row[0] == PACKS


def adopt_staged(backend: ChunkBackend, staged: StagedPack,
                 chunks: list[tuple[bytes, int, int]]) -> dict[bytes, int]:
    """An upload's staged chunks catalogued in `backend`, inside a transaction; digest -> id.
    Packs take the staged file whole (`PackedChunks.adopt`); any other backend gets the bytes
    read back from it and put as usual, 128 chunks at a time."""
    if isinstance(backend, PackedChunks):
        return backend.adopt(staged, chunks)
    ids: dict[bytes, int] = {}
    for lo in range(0, len(chunks), 128):
        batch = [(digest, staged.read(position, size)) for digest, size, position in chunks[lo : lo + 128]]
        ids.update((entry.hash, entry.id) for entry in backend.put_many(batch))
    return ids


def open_backend(conn: sqlite3.Connection, path: str, *, readonly: bool, created: bool,
                 requested: str | BackendFactory | None) -> ChunkBackend:
    """The backend of the store on `conn`: the one it records, else `requested`,
    else (a store created by this open) `DEFAULT_BACKEND`, else (an older store) sqlite.

    A store in memory or behind a URI has no place for packs: sqlite. A factory
    (`BackendFactory`) is the opener's own backend and is used as given."""
    if callable(requested):
        backend = requested(conn, path)
        if not readonly:
            _record(conn, backend.backend)
        return backend
    if requested is not None and requested not in BACKENDS:
        raise ValueError(f"unknown chunk backend {requested!r}: expected one of {', '.join(BACKENDS)}")
    row = conn.execute("SELECT value FROM meta WHERE key = 'chunk_backend'").fetchone()
    if row is not None and row[0] not in BACKENDS:
        # made by an opener's own backend (a cluster's object store): its chunks are nowhere else
        raise ValueError(f"{path} keeps chunk bytes in {row[0]!r}, which only its own opener can read "
                         "(a cluster node, docs/cluster.md)")
    on_disk = path not in ("", ":memory:") and not path.startswith("file:")
    chosen = row[0] if row else requested or (DEFAULT_BACKEND if created else SQLITE)
    if not on_disk:
        chosen = SQLITE
    if row is not None and requested is not None and requested != row[0] and on_disk and not readonly:
        if requested == SQLITE and conn.execute("SELECT 1 FROM chunks WHERE pack IS NOT NULL LIMIT 1").fetchone():
            raise ValueError(f"{path} keeps chunks in pack files: it cannot become a sqlite-only store")
        chosen = requested
    if not readonly and (row is None or row[0] != chosen):
        _record(conn, chosen)
    return PackedChunks(conn, path) if chosen == PACKS else SqliteChunks(conn)


def _record(conn: sqlite3.Connection, backend: str) -> None:
    conn.execute(
        "INSERT INTO meta(key, value) VALUES('chunk_backend', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (backend,),
    )
