"""Remote mode: the chunk cache, and the chunks written through the mount saved to it by a thread of their own.

A remote mount keeps chunk bytes in a local `vfs.Workspace` used as a
content-addressed cache (`--cache DIR`). What is read is fetched once and put
there; what is written here (a closed file's chunks, queued for the push) is
kept in memory and saved to it many chunks per transaction, so reading it back
never needs the server.

Those saves ran in the FUSE thread, at the close that crossed the batch size:
a Django untar paid 13 of them, 0.24-0.62 s of its wall time (the SQLite
commit, the pack file's append and `fdatasync`) for 0.09-0.13 s of CPU, while
tar waited for its close. A thread of its own saves them now; the FUSE thread
only hands a full batch over (and waits only when the saver is a whole batch
behind, as for a full page cache). Until a chunk is committed it is served
from memory (`get`).

`lock` serializes the cache's one connection: the saver's transaction and the
FUSE thread's reads and writes of it (`vfs.Workspace` is not thread-safe).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

import vfs

log = logging.getLogger("wsfs.mount")

SAVE_CHUNKS = 512  # chunks per save (one transaction: one commit, one append and fdatasync of the pack)
SAVE_BYTES = 16 << 20  # ... or bytes, whichever comes first


class WrittenChunks:
    """Chunks written through the mount, in memory until the saver thread has them in the cache."""

    def __init__(self, cache: vfs.Workspace) -> None:
        self.cache = cache
        self.lock = threading.Lock()  # the cache's connection: one user at a time
        self._moved = threading.Condition()  # guards `_fresh` and `_saving`; notified when a save ends
        self._fresh: dict[str, bytes] = {}  # written, not handed to the saver yet
        self._fresh_bytes = 0
        # Handed to the saver and not committed yet. Never changed once handed over (replaced
        # by a new dict), so `get` reads it without the lock.
        self._saving: dict[str, bytes] = {}
        self._thread: threading.Thread | None = None
        self._closed = False
        self.saves = 0  # batches saved (the log says how many at unmount)

    def add(self, chunks: Iterable[tuple[str, bytes]]) -> None:
        """Keep `chunks` (hash, bytes) until saved; a full batch goes to the saver thread.
        Each hash must be this process's own BLAKE3 of its bytes (`_queue_content` cut and
        hashed them): the saver stores them as given (`put_objects(hashed=True)`)."""
        with self._moved:
            fresh = self._fresh
            for digest, piece in chunks:
                if digest not in fresh:
                    fresh[digest] = piece
                    self._fresh_bytes += len(piece)
            if len(fresh) < SAVE_CHUNKS and self._fresh_bytes < SAVE_BYTES:
                return
            while self._saving:  # the saver is a whole batch behind: wait for it
                self._moved.wait()
            self._saving, self._fresh, self._fresh_bytes = fresh, {}, 0
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="wsfs-cache-save", daemon=True)
                self._thread.start()
            self._moved.notify_all()

    def get(self, digest: str) -> bytes | None:
        """A chunk written here and not in the cache yet (None: look in the cache)."""
        data = self._fresh.get(digest)
        return data if data is not None else self._saving.get(digest)

    def _run(self) -> None:
        while True:
            with self._moved:
                while not self._saving and not self._closed:
                    self._moved.wait()
                if not self._saving:
                    return  # (closed)
                batch = self._saving
            try:
                with self.lock:
                    self.cache.put_objects(list(batch.items()), hashed=True)
            except Exception:  # noqa: BLE001 - a cache: the bytes stay in memory, saved with the next batch
                log.exception("could not save %d written chunk(s) to the cache", len(batch))
                with self._moved:
                    for digest, piece in batch.items():
                        if digest not in self._fresh:
                            self._fresh[digest] = piece
                            self._fresh_bytes += len(piece)
            else:
                self.saves += 1
            with self._moved:
                self._saving = {}
                self._moved.notify_all()

    def close(self) -> None:
        """Everything written in the cache (unmount): wait for the saver, save the rest here, stop the thread."""
        with self._moved:
            while self._saving:
                self._moved.wait()
            batch, self._fresh, self._fresh_bytes = self._fresh, {}, 0
            self._closed = True
            self._moved.notify_all()
        if self._thread is not None:
            self._thread.join()
        if batch:
            with self.lock:
                self.cache.put_objects(list(batch.items()), hashed=True)
            self.saves += 1
