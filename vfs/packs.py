"""Append-only pack files: chunk bytes beside the store, outside SQLite.

A big write through SQLite pays for its bytes three times: BLOB inserts
into 4 KiB pages, the WAL write of every page, and the checkpoint that
copies them into the database file (issue 14: ~300 MB/s). A pack file takes
them once, at the speed of an append. The catalogue (hash, size, which pack,
where) stays in the store's `chunks` table, so a chunk is found, shared and
deleted by SQL as before; this module only appends, syncs, reads and drops
files, in the directory `STORE.db-packs/` (`00000001.pack`, ...).

Crash safety rests on three rules, kept by `vfs.chunkstore.PackedChunks`:

- Appends happen only inside a write transaction, so SQLite's write lock
  makes one appender at a time across processes, and an append goes to the
  pack's end as it is at that moment (`fstat`): bytes a crashed writer left
  there are skipped, never overwritten while something could reference them.
- The bytes a transaction appended are made durable (`fdatasync`, and the
  directory's `fsync` when it created the pack) before its COMMIT. With
  `synchronous=NORMAL` the WAL is not synced at commit, and the kernel may
  write it back at any time, so nothing weaker orders the bytes before a
  commit that could survive a power loss. `sync_file_range` starts the
  writeback every few MiB while the write goes on, so the final sync waits
  for the tail only.
- A pack is unlinked only when no committed row names it and every commit
  so far is durable (the WAL synced), under the write lock.

Bytes nobody references (a rolled-back or killed transaction, chunks `gc`
deleted) are reclaimed by compaction (`vfs.chunkstore.PackedChunks.compact`).

A big upload may instead append to a pack of its own outside any transaction
(`StagedPack`, a `staged-*.tmp` file no one else writes), made durable before
the one transaction that renames it into a numbered pack and catalogues its
chunks (`PackedChunks.adopt`). Until then no row names it; a staged file whose
writer is gone (its `flock` free) is deleted by the next compaction.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import os
import re
import tempfile

PACK_LIMIT = 1 << 30  # a pack takes appends until it holds this many bytes
_WRITEBACK_EVERY = 8 << 20  # start the kernel's writeback of each 8 MiB as it is appended
_NAME = re.compile(r"^(\d{8})\.pack$")
_STAGED = re.compile(r"^staged-.*\.tmp$")


def _load_sync_file_range():  # type: ignore[no-untyped-def]
    """`sync_file_range(2)` through libc (Python does not expose it); None where absent."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        call = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    call.restype = ctypes.c_int
    return call


_SYNC_FILE_RANGE = _load_sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2


def pack_dir(store_path: str) -> str:
    return store_path + "-packs"


def sync_wal(store_path: str) -> None:
    """Make every commit of the store so far durable: with `synchronous=NORMAL`
    SQLite syncs the WAL only before a checkpoint (which syncs what it copies)."""
    try:
        fd = os.open(store_path + "-wal", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Packs:
    """The pack files of one store, as one connection sees and appends to them."""

    def __init__(self, directory: str):
        self.directory = directory
        self._readers: dict[int, int] = {}  # pack number -> read-only descriptor
        # The running append (inside one write transaction), or none.
        self._fd: int | None = None
        self._number = 0
        self._start = 0  # where this transaction's appends began
        self._end = 0  # where the next append goes
        self._synced_to = 0  # writeback started up to here
        self._created = False  # this transaction created the pack (its name must be synced too)

    # -- appending (inside a write transaction) ----------------------------------

    @property
    def appending(self) -> bool:
        return self._fd is not None

    def next_position(self, size: int) -> tuple[int, int]:
        """(pack number, offset) the next append of `size` bytes will land at."""
        if self._fd is None:
            self._begin()
        elif self._end + size > PACK_LIMIT and self._end > self._start:
            self.sync()
            self._close_writer()
            self._begin(new=True)
        return self._number, self._end

    def append(self, data: bytes | memoryview) -> None:
        """Write `data` at `next_position()` (called right after it)."""
        self._write(data)
        assert self._fd is not None
        self._synced_to = _start_writeback(self._fd, self._synced_to, self._end)

    def _write(self, data: bytes | memoryview) -> None:
        """`data` at the pack's end, whole (pwrite may take less than asked)."""
        assert self._fd is not None
        view = memoryview(data)
        while view:
            written = os.pwrite(self._fd, view, self._end)
            view = view[written:]
            self._end += written

    def append_many(self, pieces: list[bytes | memoryview]) -> tuple[int, list[int]]:
        """Append `pieces` back to back in one pack; (pack number, offset of each).

        Measured here, 64 MiB of fresh bytes take ~220 ms as one write (the
        kernel copies big writes much slower), and less CPU and time as
        `pwritev`s of 16 chunks than as one `pwrite` per chunk (`_write_at`)."""
        total = sum(len(p) for p in pieces)
        number, at = self.next_position(total)
        assert self._fd is not None
        self._end = _write_at(self._fd, pieces, self._end)
        self._synced_to = _start_writeback(self._fd, self._synced_to, self._end)
        return number, _positions(pieces, at)

    def sync(self) -> None:
        """Make this transaction's appends durable: before its COMMIT."""
        if self._fd is None:
            return
        if self._end > self._start:
            os.fdatasync(self._fd)
        if self._created:
            self._sync_directory()
            self._created = False
        self._start = self._synced_to = self._end

    def finish(self, *, committed: bool) -> None:
        """End the transaction's append; a rolled-back one takes its bytes back off the tail."""
        if self._fd is None:
            return
        if not committed and os.fstat(self._fd).st_size > self._start:
            # Still under the write lock: nobody else appended after our start,
            # and no committed row points at or past it. (The file's size, not
            # `_end`: an append that failed part-way may have written some.)
            os.ftruncate(self._fd, self._start)
        self._close_writer()

    def _begin(self, new: bool = False) -> None:
        if not os.path.isdir(self.directory):
            os.makedirs(self.directory, exist_ok=True)
            self._sync_directory(os.path.dirname(os.path.abspath(self.directory)))  # the new directory's name
        numbers = self.numbers()
        number = (numbers[-1] if numbers else 0) + (1 if new or not numbers else 0)
        path = self.path_of(number)
        self._created = not os.path.exists(path)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        end = os.fstat(fd).st_size
        if end >= PACK_LIMIT and not new:
            os.close(fd)
            self._begin(new=True)
            return
        self._fd, self._number = fd, number
        self._start = self._end = self._synced_to = end

    def _close_writer(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None

    def _sync_directory(self, directory: str | None = None) -> None:
        fd = os.open(directory or self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- reading -------------------------------------------------------------

    def read(self, number: int, offset: int, size: int) -> bytes:
        """`size` bytes at `offset` of pack `number` (EIO if the pack is shorter)."""
        data = os.pread(self._reader(number), size, offset)
        if len(data) != size:
            raise OSError(errno.EIO, f"pack {self.path_of(number)} holds {len(data)} of {size} bytes at {offset}")
        return data

    def _reader(self, number: int) -> int:
        fd = self._readers.get(number)
        if fd is None:
            fd = self._readers[number] = os.open(self.path_of(number), os.O_RDONLY | os.O_CLOEXEC)
        return fd

    def forget_reader(self, number: int) -> None:
        fd = self._readers.pop(number, None)
        if fd is not None:
            os.close(fd)

    # -- files -----------------------------------------------------------------

    def path_of(self, number: int) -> str:
        return os.path.join(self.directory, f"{number:08d}.pack")

    def numbers(self) -> list[int]:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return sorted(int(m.group(1)) for m in map(_NAME.match, names) if m)

    def size_of(self, number: int) -> int:
        try:
            return os.stat(self.path_of(number)).st_size
        except FileNotFoundError:
            return 0

    def seal(self) -> None:
        """Start a new, empty pack, so later appends stop going to the current one (compaction)."""
        numbers = self.numbers()
        if not numbers or self.size_of(numbers[-1]) == 0:
            return
        os.close(os.open(self.path_of(numbers[-1] + 1), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644))
        self._sync_directory()

    def adopt(self, staged: StagedPack) -> int:
        """Name a durable staged pack as the next numbered one (under the write lock); its number.

        `link` fails rather than replace a pack made meanwhile (`seal` runs outside the lock)."""
        numbers = self.numbers()
        number = (numbers[-1] if numbers else 0) + 1
        while True:
            try:
                os.link(staged.path, self.path_of(number))
                break
            except FileExistsError:
                number += 1
        staged.unlink()
        self._sync_directory()
        return number

    def drop_stale_staged(self) -> int:
        """Delete staged files whose writer is gone (no `flock` held: a crash, a lost upload); how many."""
        try:
            names = [n for n in os.listdir(self.directory) if _STAGED.match(n)]
        except FileNotFoundError:
            return 0
        dropped = 0
        for name in names:
            path = os.path.join(self.directory, name)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.unlink(path)
                dropped += 1
            except (BlockingIOError, FileNotFoundError):
                pass
            finally:
                os.close(fd)
        return dropped

    def remove(self, number: int) -> None:
        self.forget_reader(number)
        try:
            os.unlink(self.path_of(number))
        except FileNotFoundError:
            pass
        self._sync_directory()

    def close(self) -> None:
        self._close_writer()
        for number in list(self._readers):
            self.forget_reader(number)


class StagedPack:
    """One upload's chunk bytes, appended outside any transaction to a file of its own.

    The writer's lock is not held while the bytes go to disk: the appends run
    on the uploader's thread, writeback starts every few MiB, and `sync` (one
    `fdatasync`, before the committing hop) leaves the commit only the rename
    and the catalogue rows (`PackedChunks.adopt`). The file is `flock`ed while
    its writer lives, so compaction tells a live staged file from a dead one."""

    def __init__(self, directory: str):
        if not os.path.isdir(directory):
            os.makedirs(directory, exist_ok=True)
            Packs(directory)._sync_directory(os.path.dirname(os.path.abspath(directory)))  # its name, as `_begin`
        self.fd, self.path = tempfile.mkstemp(prefix="staged-", suffix=".tmp", dir=directory)
        os.fchmod(self.fd, 0o644)  # as a pack made by `Packs` (mkstemp makes 0600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        self.end = 0
        self._synced_to = 0

    def append_many(self, pieces: list[bytes | memoryview]) -> list[int]:
        """Append `pieces` back to back; the offset of each."""
        positions = _positions(pieces, self.end)
        self.end = _write_at(self.fd, pieces, self.end)
        self._synced_to = _start_writeback(self.fd, self._synced_to, self.end)
        return positions

    def read(self, offset: int, size: int) -> bytes:
        data = os.pread(self.fd, size, offset)
        if len(data) != size:
            raise OSError(errno.EIO, f"{self.path} holds {len(data)} of {size} bytes at {offset}")
        return data

    def sync(self) -> None:
        """Make the bytes durable (before the transaction that adopts them)."""
        os.fdatasync(self.fd)

    def unlink(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def close(self) -> None:
        """Drop the file if it was not adopted, and the descriptor (and its lock) with it."""
        if self.fd >= 0:
            if os.path.exists(self.path):
                self.unlink()
            os.close(self.fd)
            self.fd = -1


def _positions(pieces: list[bytes | memoryview], at: int) -> list[int]:
    """The offset of each of `pieces` written back to back from `at`."""
    positions = []
    for piece in pieces:
        positions.append(at)
        at += len(piece)
    return positions


def _start_writeback(fd: int, synced_to: int, end: int) -> int:
    """Start the kernel's writeback of what was appended since `synced_to` once it reaches
    `_WRITEBACK_EVERY` (the final `fdatasync` then waits only for the tail); the new mark."""
    if _SYNC_FILE_RANGE is not None and end - synced_to >= _WRITEBACK_EVERY:
        _SYNC_FILE_RANGE(fd, synced_to, end - synced_to, _SYNC_FILE_RANGE_WRITE)
        return end
    return synced_to


_GROUP = 16  # pieces per `pwritev`: ~1 MiB of chunks per call


def _write_at(fd: int, pieces: list[bytes | memoryview], at: int) -> int:
    """`pieces` back to back from `at`, whole; returns where they end.

    `pwritev` of 16 chunks (~1 MiB) per call rather than one `pwrite` per
    chunk: a 64 MiB write of fresh bytes through the store, both ways
    interleaved in one process (issue 14; 10 and 14 rounds at loads of 7 and
    13), cost 81 / 91 ms of CPU against 116 / 105 ms, and 196 / 358 ms of
    wall time against 228 / 562 ms: the syscalls, not the copying, made the
    difference. (Running the appends on a thread beside the cutting gained
    nothing measurable at those loads and was taken out again.)"""
    for lo in range(0, len(pieces), _GROUP):
        group = pieces[lo : lo + _GROUP]
        want = sum(len(p) for p in group)
        written = os.pwritev(fd, group, at)
        if written < want:  # a short write: the rest piece by piece
            _write_rest(fd, group, at, written)
        at += want
    return at


def _write_rest(fd: int, group: list[bytes | memoryview], at: int, skip: int) -> None:
    """After a short `pwritev` that wrote `skip` bytes of `group` from `at`: the rest, in full."""
    for piece in group:
        view = memoryview(piece)
        if skip >= len(view):
            skip -= len(view)
            at += len(view)
            continue
        view, at, skip = view[skip:], at + skip, 0
        while view:
            written = os.pwrite(fd, view, at)
            view = view[written:]
            at += written
