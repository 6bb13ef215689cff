"""Push: local changes found by scanning, hashed, uploaded, pushed and recorded.

One local change takes one path through this module:

1. `scan` / `expand` — paths whose local stat differs from the stat recorded
   when they were last synced (only those are read);
2. `_local_changes` — what to push for a path: nothing, its new state (a
   file chunked and hashed exactly as the store does, so the ids match), or
   deletes (a whole subtree's); each with the revision it was last synced
   at, its *base*;
3. `_push_batch` — the chunks the server lacks are uploaded, read back from
   disk and verified, then one `push` with the bases, so the server refuses
   to overwrite anything we had not seen;
4. `_record` — the rows of what was applied, in one state transaction; then
   each conflict is resolved so that nothing is lost: the server's version
   takes the path, ours is kept as a conflict copy and pushed in turn, and a
   deletion never beats an edit.
"""

from __future__ import annotations

import io
import logging
import os
import stat as statmod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Awaitable, Callable, Iterable, Iterator, Mapping

import blake3

from client_py.replica.localfs import STATE_DIR, UnsafePath, is_temp_name, split_path
from client_py.replica.pull import Puller
from client_py.replica.state import Entry
from client_py.replica.workdir import Workdir, join, kind_of, trusted_mtime
from client_py.session import Session
from vfs.errors import MissingObjects
from vfs.types import ApplyResult, Change, Conflict
from vfs.wire import MTIME_MAX

if TYPE_CHECKING:
    from client_py.workspace import RemoteWorkspace

log = logging.getLogger("client_py.replica")

PUSH_ENTRIES = 512  # entries per push
PUSH_BYTES = 64 << 20  # file bytes hashed per push batch


def wire_mtime(mtime: float) -> float:
    """A local mtime as the wire takes it: clamped into [-MTIME_MAX, MTIME_MAX].

    A file dated past what the wire accepts (year 2242) is still pushed, with
    the nearest time the server keeps, rather than refused forever.
    """
    return min(max(mtime, -MTIME_MAX), MTIME_MAX)


def _unchanged_file(st: os.stat_result, row: Entry) -> bool:
    """A regular file exactly as its row left it (what `Workdir.is_clean` says, for files, without a read)."""
    return (row.kind == "file" and statmod.S_ISREG(st.st_mode) and st.st_size == row.size
            and st.st_mtime_ns == row.mtime_ns and st.st_ino == row.ino and (st.st_mode & 0o7777) == (row.mode & 0o7777))


@dataclass
class LocalChange:
    """A local change ready to push."""

    change: Change
    base: int | None  # the revision the replica last synced this path at (None: never)
    stat: os.stat_result | None = None  # the stat the change was read with (recorded once pushed)


class Pusher:
    """Sends local changes to the server (run by the loop's task, never beside a pull)."""

    def __init__(self, workdir: Workdir, puller: Puller, remote: RemoteWorkspace):
        self.workdir = workdir
        self.tree = workdir.tree
        self.state = workdir.state
        self.rules = workdir.rules
        self.puller = puller  # a conflict brings the server's version in
        self.remote = remote
        self.last_rev = 0  # the newest revision our pushes made: settling waits for its echo

    # -- finding local changes ----------------------------------------------------------

    def scan(self, top: str, installed: Mapping[str, int] | None = None) -> Iterator[str]:
        """Paths under `top` whose local state differs from the recorded one (parents first).

        One directory at a time, against the state rows of that directory
        only, so memory stays bounded by the largest directory.

        `installed`: files the pull of this same run put in place (path -> inode,
        `Puller.installed`). One still at that inode, with its row naming that
        inode, is taken as it was installed without an `lstat`: an edit made to it
        in place since (a few moments ago) goes up with the next scan, as would
        one made just after this scan.
        """
        stack = [top]
        while stack:
            d = stack.pop()
            known = self.state.children(d)
            inodes = None
            if installed:
                inodes = {name: row.ino for name, row in known.items()
                          if row.kind == "file" and installed.get(join(d, name)) == row.ino}
            local = dict(self.tree.scandir_known(d, inodes))
            for name in sorted(local):
                if d == "/" and name == STATE_DIR:
                    continue
                if is_temp_name(name):
                    self.tree.unlink_name(d, name)  # left by an interrupted run (scans never overlap a batch)
                    continue
                st = local[name]
                if st is None:
                    continue  # as this run's pull installed it (see above)
                row = known.get(name)
                if row is not None and _unchanged_file(st, row) and not self.rules.ignores(join(d, name), "file"):
                    continue  # the common case, decided without the general checks below
                path = join(d, name)
                kind = kind_of(st)
                if kind is None or self.rules.ignores(path, kind):
                    continue
                if not self.workdir.is_clean(st, row):
                    yield path
                if kind == "dir":
                    stack.append(path)
            for name in known:
                if name not in local:
                    yield join(d, name)

    def expand(self, paths: Iterable[str]) -> Iterator[str]:
        """Events name paths; a new directory means its whole subtree (inotify misses files in new dirs)."""
        for path in sorted(paths):
            if path == "/":
                yield from self.scan("/")
                continue
            yield path
            st = self.tree.lstat(path)
            if st is not None and statmod.S_ISDIR(st.st_mode):
                yield from self.scan(path)

    def _local_changes(self, path: str) -> list[LocalChange]:
        """What to push for one path: nothing, its new state, or deletes (a whole subtree's)."""
        try:
            split_path(path)
        except UnsafePath:
            return []
        st = self.tree.lstat(path)
        row = self.state.get(path)
        kind = kind_of(st) if st is not None else None
        if kind is not None and self.rules.ignores(path, kind):
            return []
        if kind is None:
            if row is None:
                return []
            subtree = self.state.subtree(path) if row.kind == "dir" else []
            out = [LocalChange(Change(p, "delete", 0), sub.rev) for p in subtree if (sub := self.state.get(p))]
            return out + [LocalChange(Change(path, "delete", row.rev), row.rev)]
        assert st is not None
        if self.workdir.is_clean(st, row):
            return []
        base = row.rev if row is not None else None
        if kind == "dir":
            if row is not None and row.kind == "dir":
                return []  # directory mode changes are not synced (we keep them writable)
            return [LocalChange(Change(path, "dir", base or 0, mode=st.st_mode, mtime=wire_mtime(st.st_mtime)), base, st)]
        if kind == "symlink":
            try:
                target = self.tree.readlink(path)
            except OSError:
                return []
            if row is not None and row.kind == "symlink" and row.target == target:
                self._remember_stat(row, st)
                return []
            return [LocalChange(Change(path, "symlink", base or 0, mode=st.st_mode, mtime=wire_mtime(st.st_mtime), target=target,
                                       size=len(target.encode())), base, st)]
        hashed = self._hash_file(path, base or 0)
        if hashed is None:
            return []  # changing under our feet: its next event (or the next rescan) pushes it
        hashed_st, change = hashed
        if row is not None and row.kind == "file" and row.hash == change.hash and row.mode == (change.mode & 0o7777):
            self._remember_stat(row, hashed_st)
            return []
        return [LocalChange(change, base, hashed_st)]

    def _remember_stat(self, row: Entry, st: os.stat_result) -> None:
        """Same content, new stat (touched, copied over): record it so later scans skip the file."""
        self.state.put(Entry(row.path, row.kind, row.rev, row.hash, row.target, row.mode,
                             st.st_size, trusted_mtime(st), st.st_ino))

    def _hash_file(self, path: str, rev: int) -> tuple[os.stat_result, Change] | None:
        """Chunk and hash a local file exactly as the store does (same CDC, same ids)."""
        from vfs.chunks import cut_stream  # imported on first use: pyfastcdc costs ~10 ms of every start-up

        try:
            with self.tree.open_read(path) as fd:
                before = os.fstat(fd)
                if not statmod.S_ISREG(before.st_mode):
                    return None
                reader = io.BufferedReader(io.FileIO(fd, closefd=False), buffer_size=1 << 20)
                whole = blake3.blake3()
                chunks = []
                for piece in cut_stream(reader):
                    whole.update(piece)
                    chunks.append((blake3.blake3(piece).hexdigest(), len(piece)))
                after = os.fstat(fd)
        except (OSError, UnsafePath):
            return None
        if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns) or sum(s for _, s in chunks) != after.st_size:
            return None
        digest = chunks[0][0] if len(chunks) == 1 else whole.hexdigest()
        return after, Change(path, "file", rev, mode=after.st_mode, mtime=wire_mtime(after.st_mtime), size=after.st_size,
                             hash=digest, chunks=tuple(chunks))

    # -- pushing ----------------------------------------------------------------------

    async def push(
        self, paths: Iterable[str], session: Session, *, between_batches: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """Push the local state of `paths` in batches; resolve conflicts; repeat for conflict copies.

        `between_batches` runs after each full batch: the loop applies what the
        subscription has queued (mostly the echoes of our own pushes), so its
        socket keeps being read during a long push and the server's keepalive
        pings get their pongs.
        """
        for _round in range(3):
            batch: list[LocalChange] = []
            size = 0
            for path in paths:
                for item in self._local_changes(path):
                    batch.append(item)
                    size += item.change.size
                if len(batch) >= PUSH_ENTRIES or size >= PUSH_BYTES:
                    await self._push_batch(batch, session)
                    batch, size = [], 0
                    if between_batches is not None:
                        await between_batches()
            if batch:
                await self._push_batch(batch, session)
            if not self.workdir.pending:
                return
            paths = sorted(self.workdir.take_pending())

    async def _push_batch(self, batch: list[LocalChange], session: Session) -> None:
        batch = await self._upload_chunks(batch, session)
        if not batch:
            return
        base = {item.change.path: item.base for item in batch if item.base is not None}
        try:
            result = await session.push([item.change for item in batch], base)
        except MissingObjects:  # the server lost a chunk since `has` said it had it: send what it lacks now
            batch = await self._upload_chunks(batch, session)
            result = await session.push([item.change for item in batch], base)
        self.last_rev = max(self.last_rev, result.rev)
        await self._record(batch, result, session)

    async def _upload_chunks(self, batch: list[LocalChange], session: Session) -> list[LocalChange]:
        """Send the chunks the server lacks, read back from disk and verified; drop files that changed."""
        sizes = {h: s for item in batch for h, s in item.change.chunks}
        if not sizes:
            return batch
        missing = set(await session.has(list(sizes)))
        if not missing:
            return batch
        self.workdir.summary.bytes_expected += sum(sizes[h] for h in missing)  # what this batch will send
        kept: list[LocalChange] = []
        upload = _Uploads(session)
        for item in batch:
            if item.change.kind != "file" or not any(h in missing for h, _ in item.change.chunks):
                kept.append(item)
                continue
            if await self._upload_file(item, missing, upload):
                kept.append(item)
        await upload.send()
        self.workdir.summary.bytes_sent += upload.sent
        await session.ping()  # a barrier: every upload above is stored before the push
        return kept

    async def _upload_file(self, item: LocalChange, missing: set[str], upload: _Uploads) -> bool:
        """The chunks of `item` the server lacks, read back from disk, verified and queued for upload;
        False when the file changed since it was hashed (its next event pushes it)."""
        try:
            with self.tree.open_read(item.change.path) as fd:
                offset = 0
                for h, size in item.change.chunks:
                    if h in missing:
                        data = os.pread(fd, size, offset)
                        if blake3.blake3(data).hexdigest() != h:
                            return False
                        await upload.add(h, data)
                        missing.discard(h)
                    offset += size
        except (OSError, UnsafePath):
            return False
        return True


    # -- the result -------------------------------------------------------------------

    async def _record(self, batch: list[LocalChange], result: ApplyResult, session: Session) -> None:
        """Write the rows of what the server applied (one transaction), then resolve its conflicts."""
        done = set(result.applied) | set(result.unchanged)
        conflicts = {c.path: c for c in result.conflicts}
        summary = self.workdir.summary
        with self.state.transaction():
            for item in batch:
                c = item.change
                if c.path not in done:
                    continue
                if c.kind == "delete":
                    self.state.delete(c.path)
                    summary.deleted_remote += 1
                    continue
                st = item.stat
                assert st is not None
                self.state.put(Entry(c.path, c.kind, result.rev, c.hash, c.target, c.mode & 0o7777,
                                     st.st_size, trusted_mtime(st), st.st_ino))
                if c.kind == "file":
                    self.state.index_chunks(c.path, c.chunks)
                summary.uploaded += 1
        for item in batch:
            conflict = conflicts.get(item.change.path)
            if conflict is not None:
                await self._resolve_conflict(item, conflict, session)

    async def _resolve_conflict(self, item: LocalChange, conflict: Conflict, session: Session) -> None:
        """The server changed the path since our base: nothing is lost either way."""
        path = item.change.path
        if item.change.kind == "delete":
            log.info("%s: deleted here but changed on the server; the server's version comes back", path)
        elif conflict.local_kind is None:
            # deleted on the server, edited here: the edit wins; push again on top of the tombstone
            self.state.put(Entry(path, item.change.kind, conflict.local_rev, None, None, 0, -1, -1, -1))
            self.workdir.pending.add(path)
            return
        elif item.change.kind == "dir" and conflict.local_kind == "dir":
            pass  # both made the directory: merge
        elif self.tree.lstat(path) is not None:
            self.workdir.conflict_copy(path)
        entry = await self.remote.entry(path)
        if entry is not None:
            await self.puller.apply_entries([(entry, None)], session, cursor=None, force=True)


class _Uploads:
    """Chunks gathered across a batch's files and sent several per frame (`Session.put_chunks`):
    a first sync of 10k small files was one WebSocket frame, one socket send, per file. At most
    `GATHER` bytes are held."""

    GATHER = 1 << 20

    def __init__(self, session: Session):
        self.session = session
        self.chunks: list[tuple[str, bytes]] = []
        self.held = 0
        self.sent = 0

    async def add(self, hash_hex: str, data: bytes) -> None:
        self.chunks.append((hash_hex, data))
        self.held += len(data)
        if self.held >= self.GATHER:
            await self.send()

    async def send(self) -> None:
        if self.chunks:
            chunks, self.chunks, held, self.held = self.chunks, [], self.held, 0
            await self.session.put_chunks(chunks)
            self.sent += held
