"""File content: write, read, positional write, truncate, copy.

Writes stream through the content-defined chunker into the chunk store
inside one transaction, so memory stays bounded for any size and a crash
leaves the old content whole. Positional writes and truncation re-chunk only
the neighbourhood of the edit and keep every other chunk id. Every content
change records the path's new version (`versions`).

    history, sync, search, fileobj  ->  content  ->  namespace, versions, db
"""

from __future__ import annotations

import errno
import io
import time
from bisect import bisect_right
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import blake3

from vfs.chunks import (
    EMPTY_HASH, MAX_CHUNK, MIN_CHUNK, RECORD_SIZE, ChunkEntry, as_reader, cut, cut_stream, offsets, pack, unpack,
)
from vfs.chunkreader import open_chunks
from vfs.chunkstore import adopt_staged
from vfs.db import NODE_COLUMNS, Db, Node, Resolved, Tx
from vfs.errors import PreconditionFailed, fs_error
from vfs.namespace import Namespace
from vfs.paths import join, parent_of
from vfs.schema import KIND_DIR, KIND_FILE, SPECIAL_KINDS
from vfs.types import Stat
from vfs.versions import Versions

if TYPE_CHECKING:
    from vfs.packs import StagedPack

MAX_FILE_SIZE = 1 << 40  # 1 TiB: beyond it writes fail with EFBIG
# Zero-extension re-cuts the old tail with this many zeros (so the cuts
# there stay content-defined), then appends the one shared all-zero chunk
# of MAX_CHUNK bytes (what FastCDC cuts zeros into) as often as needed:
# extending by a GiB stores no new bytes and hashes at most 1 MiB.
_ZERO_HEAD = 1 << 20

# Chunks stored per `put_many` call: one dedup query, one write, one insert
# per batch. A stream's batch holds copies of its chunks (at most 16 x 256 KiB).
_PUT_BATCH = 128
_STREAM_BATCH = 16

_HASH_BESIDE = 8 << 20  # buffers at least this big get their content id hashed in a thread


def _hash_beside(data: object) -> Future[bytes]:
    """BLAKE3 of `data`, computed on a helper thread."""
    return _HASHER.submit(lambda: blake3.blake3(data).digest())  # type: ignore[arg-type]


_HASHER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wsfs-hash")


@dataclass(frozen=True)
class StoredChunks:
    """Content whose chunks are already in this store: what `put_file` takes when the
    caller stored them as they arrived (`put_objects`, in batches) and hashed the whole.

    A server receiving a big upload cuts, hashes and stores it while the rest of
    the body is still on its way, then commits the file in one short transaction
    that only points the path at these chunks (`chunks`: (raw hash, size) in file
    order, cut as `vfs.chunks.cut` cuts the whole; `digest`: BLAKE3 of the whole).
    The caller vouches for `digest` (it hashed the same bytes), the store for the
    chunks: a chunk missing by commit time (collected meanwhile) fails the write
    with EAGAIN and nothing is committed.

    With `staged` the chunks are not in the store yet but in the upload's own pack
    file (`vfs.packs.StagedPack`, at `positions`, synced by the caller), appended
    outside the write lock; the commit adopts that file and catalogues them
    (`vfs.chunkstore.adopt_staged`) in the same transaction as the file. Then the
    caller vouches for the chunks' hashes too: only an in-process caller that
    hashed the bytes it appended (the server's `_Arriving`), never hashes that
    came with the bytes. The caller closes `staged` after the write, whatever
    its outcome (an adopted file is then a pack; an unadopted one is deleted).
    """

    chunks: tuple[tuple[bytes, int], ...]
    digest: bytes
    staged: StagedPack | None = None
    positions: tuple[int, ...] = ()

    @property
    def size(self) -> int:
        return sum(size for _, size in self.chunks)

# The row written is built from the row read in the same transaction and these values, not read
# back with RETURNING (an ephemeral b-tree and pager per statement in SQLite, see `vfs.namespace`).
_UPDATE_CONTENT = (
    "UPDATE nodes SET size = ?, hash = ?, chunks = ?, mtime_ns = ?, ctime_ns = ?, rev = ?, "
    "mode = ?, vrev = ?, vauthor = ?, vorigin = NULL WHERE ino = ?"
)


def seconds_to_ns(seconds: float | None) -> int | None:
    return None if seconds is None else round(float(seconds) * 1e9)


def _by_row_id(entries: list[ChunkEntry]) -> list[tuple[int, int]]:
    """A chunk list as `chunkreader` reads it from this store: (row id, size) pairs."""
    return [(e.id, e.size) for e in entries]


class Content:
    """File bytes of one store: chunked writes, ranged reads, edits in place, copies."""

    __slots__ = ("_db", "_names", "_versions", "_chunks")

    def __init__(self, db: Db, names: Namespace, versions: Versions):
        self._db = db
        self._names = names
        self._versions = versions
        self._chunks = db.chunks

    # -- whole-file writes -------------------------------------------------------

    def write_file(self, path: str, data: object, **options: Any) -> Stat:
        """Create or replace a file. `data`: bytes, str, iterable of bytes or a file object.

        `if_match` makes the write conditional on the current content id
        (`""`: the file must not exist); the check and the write are one
        transaction, so two writers with the same `if_match` cannot both win.
        `mtime` (seconds) or `mtime_ns` (exact, as a FUSE mount keeps it)
        sets the modification time; the default is now. `ctime_ns` stamps
        the change time of an existing file instead of now (never earlier
        than its current one): a mount commits buffered writes later than
        they happened, and the kernel keeps the ctime it was told then.
        `ino` (from `Workspace.reserve_ino`) and `created_ns` apply when the
        write creates the file: its inode number, and when it was created
        (its atime unless `atime_ns`, and default ctime; its parent's times, never moved back). A
        mount shows a created file at once and stores it with its content at
        close, one call (pass `if_match=""`: the name must still be free).
        The options are `put_file`'s keywords (`mode`, `parents`, `if_match`, `mtime`, `mtime_ns`,
        `ctime_ns`, `ino`, `created_ns`, `atime_ns`).
        """
        return self.put_file(path, data, **options)[0]

    def put_file(
        self,
        path: str,
        data: object,
        *,
        mode: int | None = None,
        parents: bool = False,
        if_match: str | None = None,
        mtime: float | None = None,
        mtime_ns: int | None = None,
        ctime_ns: int | None = None,
        ino: int | None = None,
        created_ns: int | None = None,
        atime_ns: int | None = None,
    ) -> tuple[Stat, bool]:
        """`write_file`, also saying whether the file was created (True) or replaced: an HTTP PUT
        answers 201 or 200 from it without a lookup of its own before the write."""
        if mtime_ns is None and mtime is not None:
            mtime_ns = seconds_to_ns(mtime)
        with self._db.tx() as tx:
            found = self.writable_target(path, parents)
            if if_match is not None:
                self.check_precondition(path, found, if_match)
            entries, size, digest = self._store_stream(data, found.node)
            node = self.set_content(tx, found, entries, size, digest, mode=mode, mtime_ns=mtime_ns,
                                    ctime_ns=ctime_ns, ino=ino, created_ns=created_ns, atime_ns=atime_ns)
            return self._db.stat(node), found.node is None

    def writable_target(self, path: str, parents: bool) -> Resolved:
        try:
            found = self._db.resolve(path, follow=True)
        except FileNotFoundError:
            if not parents:
                raise
            self._names.mkdir(parent_of(self._db.normalize(path)), parents=True, exist_ok=True)
            found = self._db.resolve(path, follow=True)
        if found.node is not None and found.node.kind == KIND_DIR:
            raise fs_error(errno.EISDIR, path)
        if found.node is not None and found.node.kind in SPECIAL_KINDS:
            raise fs_error(errno.EINVAL, path, "a FIFO, socket or device node has no content to write")
        if found.parent_ino is None:
            raise fs_error(errno.EISDIR, path)
        return found

    def check_precondition(self, path: str, found: Resolved, if_match: str | None) -> None:
        if if_match is None:
            return
        digest = self._db.node_hash(found.node) if found.node is not None else None
        current = digest.hex() if digest is not None else None
        if (if_match == "" and current is not None) or (if_match != "" and if_match != current):
            raise PreconditionFailed(path, if_match, current)

    def _store_stream(self, data: object, previous: Node | None = None, digest: bytes | None = None,
                      ) -> tuple[list[ChunkEntry], int, bytes]:
        """Chunk, hash and store `data`; return its chunk list, size and content id.

        A buffer whose bytes are exactly the file's (an identical rewrite,
        `_whole_id_if_same_start`) is hashed once and not cut; any other buffer is
        hashed whole beside the chunking, and not at all when its chunk
        list is the one the file already has (the packed list holds every
        chunk's hash, so equal lists are equal content). A stream is hashed
        in the same pass, since its bytes are gone once chunked. `digest`: a buffer's BLAKE3,
        taken by the caller of these very bytes, used for one under `MIN_CHUNK` (a bigger one
        is cut and hashed as always).
        """
        if isinstance(data, str):
            data = data.encode("utf-8")
        if isinstance(data, StoredChunks):
            return self._stored(data, previous)
        reader = None if data.__class__ is bytes else as_reader(data)
        if reader is None and memoryview(data).nbytes < MIN_CHUNK:  # type: ignore[arg-type]
            # One chunk or none: its hash is the content id (most files, and every create);
            # skip the chunker and the second hash. (`bytes` of a bytes object is that object.)
            small = bytes(data)  # type: ignore[arg-type]
            if not small:
                return [], 0, EMPTY_HASH
            if digest is None:
                digest = blake3.blake3(small).digest()
            if previous is not None and digest == previous.hash:  # an identical rewrite: its chunks stand
                return unpack(previous.chunks), previous.size, digest
            return [self._chunks.put(small, digest)], len(small), digest
        if reader is None:
            if memoryview(data).nbytes > MAX_FILE_SIZE:  # type: ignore[arg-type]
                raise fs_error(errno.EFBIG, None)
            whole_id = self._whole_id_if_same_start(data, previous)  # type: ignore[arg-type]
            if whole_id is not None and previous is not None and whole_id == previous.hash:
                return unpack(previous.chunks), previous.size, whole_id  # identical bytes: nothing to cut
            # The content id of a big buffer is hashed on another core meanwhile
            # (BLAKE3 releases the GIL): the chunking below is the critical path.
            beside = None
            if whole_id is None and memoryview(data).nbytes >= _HASH_BESIDE:  # type: ignore[arg-type]
                beside = _hash_beside(data)
            entries = []
            batch: list[tuple[bytes, memoryview]] = []
            for piece in cut(data):  # type: ignore[arg-type]
                batch.append((blake3.blake3(piece).digest(), piece))
                if len(batch) == _PUT_BATCH:
                    entries += self._chunks.put_many(batch)
                    batch = []
            entries += self._chunks.put_many(batch)
            size = sum(e.size for e in entries)
            if previous is not None and previous.hash is not None and previous.chunks == pack(entries):
                return entries, size, previous.hash
            if whole_id is not None:
                return entries, size, whole_id
            return entries, size, beside.result() if beside else blake3.blake3(data).digest()  # type: ignore[arg-type]
        whole = blake3.blake3()
        entries, pending, size = [], [], 0
        for piece in cut_stream(reader):  # each view is valid until the next: a batch keeps copies
            whole.update(piece)
            pending.append((blake3.blake3(piece).digest(), bytes(piece)))
            size += len(piece)
            if size > MAX_FILE_SIZE:
                raise fs_error(errno.EFBIG, None)
            if len(pending) == _STREAM_BATCH:
                entries += self._chunks.put_many(pending)
                pending = []
        entries += self._chunks.put_many(pending)
        return entries, size, whole.digest()

    def store_content(self, data: object, digest: bytes | None = None) -> tuple[list[ChunkEntry], int, bytes]:
        """A new file's content stored (`_store_stream`: nothing to compare with); `digest` as
        there (a local mount hashes a closed file where it lies, for the stat it answers with)."""
        return self._store_stream(data, None, digest)

    def _stored(self, data: StoredChunks, previous: Node | None) -> tuple[list[ChunkEntry], int, bytes]:
        """The chunk list of content stored beforehand (`StoredChunks`), looked up by hash."""
        if data.size > MAX_FILE_SIZE:
            raise fs_error(errno.EFBIG, None)
        if previous is not None and previous.hash == data.digest:
            return unpack(previous.chunks), previous.size, data.digest  # identical bytes: keep its list
        if data.staged is not None:
            ids = adopt_staged(self._chunks, data.staged,
                               [(digest, size, at) for (digest, size), at in zip(data.chunks, data.positions)])
            return [ChunkEntry(digest, size, ids[digest]) for digest, size in data.chunks], data.size, data.digest
        found = self._chunks.ids_for(digest for digest, _ in data.chunks)
        entries = []
        for digest, size in data.chunks:
            hit = found.get(digest)
            if hit is None or hit[1] != size:
                raise fs_error(errno.EAGAIN, None, f"chunk {digest.hex()} of the upload is no longer stored; retry")
            entries.append(ChunkEntry(digest, size, hit[0]))
        return entries, data.size, data.digest

    @staticmethod
    def _whole_id_if_same_start(data: bytes | bytearray | memoryview, previous: Node | None) -> bytes | None:
        """BLAKE3 of the whole buffer when it may be the file's own content (same size, same first
        chunk), else None.

        Rewriting identical bytes is what editors do on save. One BLAKE3 of
        the buffer (64 MiB: ~14 ms here), equal to the file's exact id, says
        so; cutting and hashing it chunk by chunk took ~70 ms (FastCDC and
        1000 small hashes) plus a dedup query per batch. The gate costs one
        hash of at most 256 KiB, so new content pays nothing noticeable, and
        when the gate passes but the bytes differ the hash is the new content
        id anyway. The list kept for identical bytes may differ from a fresh
        cut (edits in place re-cut only near the edit): both name exactly
        these bytes.
        """
        if previous is None or previous.hash is None or not previous.chunks:
            return None
        view = memoryview(data)
        if view.ndim != 1 or view.format != "B":
            view = view.cast("B")
        if previous.size != view.nbytes:
            return None
        first = unpack(previous.chunks[:RECORD_SIZE])[0]
        if blake3.blake3(view[: first.size]).digest() != first.hash:
            return None
        return blake3.blake3(view).digest()

    def set_content(
        self,
        tx: Tx,
        found: Resolved,
        entries: list[ChunkEntry],
        size: int,
        digest: bytes | None,
        *,
        mode: int | None,
        mtime_ns: int | None,
        ctime_ns: int | None = None,
        ino: int | None = None,
        created_ns: int | None = None,
        atime_ns: int | None = None,
    ) -> Node:
        """Point a path at new content (creating the file if needed); log it and keep a version.

        Returns the node row as written. `digest` None: the content id is
        left to derive from `entries` on first read. `ctime_ns`: the change
        time of an existing file (default now)."""
        now = time.time_ns()
        mtime_ns = now if mtime_ns is None else mtime_ns
        blob = pack(entries)
        if found.node is None:
            new_mode = 0o644 if mode is None else mode & 0o7777
            content = (size, digest, blob)
            # (`ctime_ns` is the new file's only with `created_ns`: a plain create keeps one clock reading)
            node = self._names.insert_node(tx, found, KIND_FILE, new_mode, mtime_ns=mtime_ns, content=content, ino=ino,
                                           created_ns=created_ns, ctime_ns=ctime_ns if created_ns is not None else None,
                                           atime_ns=atime_ns if created_ns is not None else None,
                                           pending=self._versions.pending(tx))
            tx.new_files[found.real] = node.ino  # (its path's pruning waits for a later transaction)
            return node
        # One name: the old content is recorded now, the new stays pending in the node
        # (`Versions.supersede`); several names: the new version under each, at once.
        single = found.node.nlink <= 1
        if single:
            self._versions.supersede(tx, found.real, found.node, rewriting=True)
        vrev, vauthor = self._versions.pending(tx) if single else (None, None)
        old = found.node  # read in this transaction: the row as it is
        ctime_ns = max(now if ctime_ns is None else ctime_ns, old.ctime_ns)
        mode = old.mode if mode is None else mode & 0o7777
        self._db.dml(_UPDATE_CONTENT, (size, digest, blob, mtime_ns, ctime_ns, tx.rev, mode, vrev, vauthor, old.ino))
        node = Node(old.ino, old.kind, mode, size, mtime_ns, ctime_ns, old.nlink, digest, blob, old.target, tx.rev,
                    old.atime_ns, old.uid, old.gid, old.subdirs, old.rdev, vrev)  # the row as written
        self._db.log_node(tx, node.ino, found.real, found.node.nlink)
        if not single:
            self._versions.record_current(tx, found.real, node.ino, prune=True, nlink=found.node.nlink)
        elif found.real not in tx.new_files:
            self._versions.prune(found.real, time.time(), pending=True)
        return node

    # -- reads -------------------------------------------------------------------

    def read_file(self, path: str, *, rev: int | None = None) -> bytes:
        # One piece per run of chunks stored back to back: a file written in
        # one go into a pack is one `pread` into the one buffer returned.
        entries = self.file_chunks(path, rev)
        return b"".join(self._chunks.read_runs(entries, run_max=1 << 62))

    def read_text(self, path: str, encoding: str = "utf-8") -> str:
        return self.read_file(path).decode(encoding)

    def read_range(self, path: str, offset: int, size: int) -> bytes:
        if offset < 0 or size < 0:
            raise fs_error(errno.EINVAL, path)
        return b"".join(self.iter_file(path, offset, size))

    def iter_file(self, path: str, offset: int = 0, size: int | None = None, *, rev: int | None = None) -> Iterator[bytes]:
        """Stream a file's bytes chunk by chunk (a consistent snapshot of its content)."""
        entries = self.file_chunks(path, rev)
        return self.iter_chunks(entries, offset, size)

    def file_chunks(self, path: str, rev: int | None) -> list[ChunkEntry]:
        if rev is not None:
            return self._versions.chunks(path, rev)
        node = self._db.existing(path, follow=True).node
        if node.kind == KIND_DIR:
            raise fs_error(errno.EISDIR, path)
        return unpack(node.chunks)

    def iter_chunks(self, entries: list[ChunkEntry], offset: int = 0, size: int | None = None) -> Iterator[bytes]:
        """The bytes of a chunk list of this store, from `offset`, at most `size` of them.

        Read in runs (`ChunkBackend.read_runs`: chunks stored back to back come
        in one read of at most a few MiB), so memory stays bounded."""
        starts = offsets(entries)
        end = starts[-1] if size is None else min(starts[-1], offset + size)
        if offset >= end:
            return
        first = bisect_right(starts, offset) - 1
        last = bisect_right(starts, end - 1) - 1
        position = starts[first]
        for piece in self._chunks.read_runs(entries[first : last + 1]):
            lo, hi = max(offset - position, 0), min(len(piece), end - position)
            yield piece if lo == 0 and hi == len(piece) else piece[lo:hi]
            position += len(piece)

    def open_reader(self, path: str) -> io.BufferedReader:
        """A seekable reader of the file's content as it is now (chunks are immutable)."""
        return open_chunks(_by_row_id(self.file_chunks(path, None)), self._chunks.read, path)

    # -- positional writes ---------------------------------------------------------

    def write_range(self, path: str, offset: int, data: bytes) -> Stat:
        """pwrite(2): overwrite bytes at `offset`; writing past EOF zero-fills the gap."""
        if offset < 0:
            raise fs_error(errno.EINVAL, path)
        if offset + len(data) > MAX_FILE_SIZE:
            raise fs_error(errno.EFBIG, path)
        if not data:  # a zero-length pwrite touches nothing, not even mtime
            return self._db.stat(self._existing_file(path).node)
        with self._db.tx() as tx:
            found = self._existing_file(path)
            entries = unpack(found.node.chunks)
            if offset > found.node.size:  # the gap reads as zeros: extend first, in bounded memory
                entries = self._zero_extend(entries, found.node.size, offset)
            entries = self._splice(entries, offset, bytes(data))
            return self._commit_edit(tx, found, entries)

    def truncate(self, path: str, size: int) -> Stat:
        if size < 0:
            raise fs_error(errno.EINVAL, path)
        if size > MAX_FILE_SIZE:
            raise fs_error(errno.EFBIG, path)
        with self._db.tx() as tx:
            found = self._existing_file(path)
            entries = unpack(found.node.chunks)
            current = found.node.size
            if size < current:
                entries = self._cut_at(entries, size)
            elif size > current:
                entries = self._zero_extend(entries, current, size)
            return self._commit_edit(tx, found, entries)

    def _existing_file(self, path: str) -> Resolved:
        found = self._db.existing(path, follow=True)
        if found.node.kind == KIND_DIR:
            raise fs_error(errno.EISDIR, path)
        if found.node.kind in SPECIAL_KINDS:
            raise fs_error(errno.EINVAL, path, "a FIFO, socket or device node has no content to write")
        return found

    def _commit_edit(self, tx: Tx, found: Resolved, entries: list[ChunkEntry]) -> Stat:
        """Commit an edited chunk list. The content id is left to derive (NULL):
        re-hashing the whole file here would make a 1-byte pwrite cost the
        file's size; `Db.stat`, `Db.node_hash` and the change log derive the
        exact id from the chunk list when someone reads it."""
        size = sum(e.size for e in entries)
        digest: bytes | None = None
        if len(entries) <= 1:  # nothing to re-read: the one chunk's hash is the content id
            digest = entries[0].hash if entries else EMPTY_HASH
        return self._db.stat(self.set_content(tx, found, entries, size, digest, mode=None, mtime_ns=None))

    def _zero_extend(self, entries: list[ChunkEntry], current: int, size: int) -> list[ChunkEntry]:
        """Chunk list of the content followed by zeros up to `size`, writing no run of zeros.

        The first `_ZERO_HEAD` zeros are spliced as data, then every further
        MAX_CHUNK zeros are one more entry of the same stored chunk.
        """
        head = min(size - current, _ZERO_HEAD)
        entries = self._splice(entries, current, bytes(head))
        full, tail = divmod(size - current - head, MAX_CHUNK)
        if full:
            zero = self._chunks.put(bytes(MAX_CHUNK))
            entries.extend([zero] * full)
        if tail:
            entries.append(self._chunks.put(bytes(tail)))
        return entries

    def _splice(self, entries: list[ChunkEntry], offset: int, data: bytes) -> list[ChunkEntry]:
        """Chunk list after writing `data` at `offset`, re-chunking only near the edit.

        Re-chunking starts at the boundary of the chunk holding `offset` and
        stops at the first new cut that lands on an old boundary past the
        edit: from there on content-defined cuts are the same as before, so
        every later chunk is reused as is. If none has come two chunks past
        the edit, the stretch ends at the next old boundary anyway.
        """
        starts = offsets(entries)
        old_size = starts[-1]
        end = offset + len(data)
        if not entries:
            return [self._chunks.put(p) for p in cut(bytes(offset) + data)]
        first = min(bisect_right(starts, offset) - 1, len(entries) - 1)
        last = max(first, min(bisect_right(starts, end - 1) - 1, len(entries) - 1))
        buffer = bytearray(b"".join(self._chunks.read(e.id) for e in entries[first : last + 1]))
        base = starts[first]
        if offset > old_size:
            buffer.extend(bytes(offset - old_size))
        buffer[offset - base : end - base] = data
        result = entries[:first]
        following = last + 1
        while True:
            at_eof = following >= len(entries)
            pieces = list(cut(buffer))
            consumed = 0
            for number, piece in enumerate(pieces):
                if number == len(pieces) - 1 and not at_eof:
                    break  # the buffer's end is not a real cut: carry it over
                result.append(self._chunks.put(piece))
                consumed += len(piece)
                resync = self._old_boundary(starts, base + consumed, last + 1, following)
                if resync is not None and not at_eof:
                    return result + entries[resync:]
            if at_eof:
                return result
            base += consumed
            buffer = bytearray(buffer[consumed:])
            if base > end + 2 * MAX_CHUNK:
                # Well past the edit and still no shared cut (a run of zeros
                # never has one): end the re-chunked stretch on the old
                # boundary the buffer reaches, so an edit costs O(its size).
                result.extend(self._chunks.put(piece) for piece in cut(buffer))
                return result + entries[following:]
            buffer += self._chunks.read(entries[following].id)
            following += 1

    @staticmethod
    def _old_boundary(starts: list[int], position: int, lo: int, hi: int) -> int | None:
        """Index m in [lo, hi) of the old chunk starting exactly at `position`, if any."""
        m = bisect_right(starts, position, lo, hi) - 1
        return m if m >= lo and starts[m] == position else None

    def _cut_at(self, entries: list[ChunkEntry], size: int) -> list[ChunkEntry]:
        """Chunk list of the first `size` bytes."""
        starts = offsets(entries)
        index = bisect_right(starts, size) - 1
        kept = entries[:index]
        if index < len(entries) and size > starts[index]:
            head = self._chunks.read(entries[index].id)[: size - starts[index]]
            kept.append(self._chunks.put(head))
        return kept

    # -- copy ----------------------------------------------------------------------

    def copy(self, src: str, dst: str) -> Stat:
        """Copy a file with its mode and mtime; the copy shares every chunk."""
        with self._db.tx() as tx:
            source = self._existing_file(src).node
            target = self.writable_target(dst, parents=False)
            if target.node is not None and target.node.ino == source.ino:
                raise fs_error(errno.EINVAL, dst, "source and destination are the same file")
            node = self.set_content(
                tx,
                target,
                unpack(source.chunks),
                source.size,
                source.hash,
                mode=source.mode,
                mtime_ns=source.mtime_ns,
            )
            return self._db.stat(node)
