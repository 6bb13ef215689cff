"""Pull: a batch of remote changes onto disk, into the state, past the watermark.

One incoming entry takes one path through this module:

1. `accept` — the wire entry is validated (a path that could escape the
   directory or a symlink pointing out of it is refused and reported; its
   mode loses setuid, setgid and sticky) and dropped if the ignore rules
   cover it; a FIFO, socket or device node (made through a mount) is
   skipped: a replica holds files, directories and symlinks only (logged
   once per path, counted in `summary.skipped`; whatever is at the path
   here stays);
2. `IncomingBatch` — the state rows of every path of the batch are read in
   one go; an entry at or below the revision already held is stale;
3. `_gather` — the content of every file: already at its path ("adopted"),
   inline bytes from the message, or a partial download filled from local
   copies of its chunks and then from the server;
4. `_commit` — in one state transaction: each entry `_apply`-ed (a delete,
   or room made, a conflict copy if the local object was edited, then the
   new object installed by a rename and its row written), the watermark,
   and when durability asks for it one `syncfs`; then COMMIT.

Files reach their path only by rename from a finished temp file, and rows
are committed with the watermark after the files are in place, so a kill at
any point replays at most this batch, and what already landed is adopted by
its hash instead of downloaded again.
"""

from __future__ import annotations

import logging
import os
import stat as statmod
from dataclasses import dataclass, field
from typing import Any

import blake3

from client_py.replica.download import Content, Downloader
from client_py.replica.localfs import TempFile, UnsafePath, local_mode, split_path, symlink_stays_inside
from client_py.replica.state import Entry
from client_py.replica.workdir import Workdir, join, kind_of
from client_py.session import Session
from vfs.types import SPECIAL_KINDS, Change
from vfs.wire import Changes, ProtocolError, change_from_wire, entry_data

log = logging.getLogger("client_py.replica")

FSYNC_EACH_MAX = 32  # durability "auto": up to this many files per batch are fsynced one by one
INSTALLED_MAX = 50_000  # files a `sync_once` remembers installing (path -> inode; a few MiB at most)

Incoming = tuple[Change, "bytes | None"]  # an accepted entry and the file bytes inlined with it, if any

def inline_bytes(raw: dict[str, Any]) -> bytes | None:
    """The file bytes inlined in a wire entry (`data`, base64), or None (also when they do not decode:
    the file is then downloaded; whatever decodes is checked against the entry's hash before use)."""
    try:
        return entry_data(raw)
    except ValueError:
        return None


@dataclass
class IncomingBatch:
    """Everything that lives exactly as long as one batch on its way to disk."""

    todo: list[Incoming]  # the entries to apply (stale ones left out)
    rows: dict[str, Entry | None]  # state rows read up front (None: no row); dropped once rewritten
    adopted: set[str] = field(default_factory=set)  # paths already holding their new content
    inline: dict[str, bytes] = field(default_factory=dict)  # content id -> verified bytes from the message
    downloads: dict[str, Content] = field(default_factory=dict)  # content id -> its partial file
    users: dict[str, int] = field(default_factory=dict)  # content id -> paths still to install from its download
    fsync_each: bool = False  # fdatasync each file before its rename (else one syncfs, or none)
    # Paths found empty while gathering (a first sync: nearly all). Applying the entries before one
    # can only make something appear at it by a conflict copy (cleared then) or by an entry for the
    # same path (then the batch keeps none), so `_apply` need not look again.
    absent: set[str] = field(default_factory=set)

    def has_content(self, change: Change) -> bool:
        return change.path in self.adopted or change.hash in self.inline or change.hash in self.downloads

    def count_users(self) -> None:
        """How many paths take each download's bytes: the last one gets the partial file, the others a copy."""
        for change, _ in self.todo:
            if change.kind == "file" and change.hash in self.downloads and change.path not in self.adopted:
                self.users[change.hash] = self.users.get(change.hash, 0) + 1  # type: ignore[index]


class Puller:
    """Applies remote batches to the directory (only ever one at a time: the loop's task)."""

    def __init__(self, workdir: Workdir, downloader: Downloader, durability: str):
        self.workdir = workdir
        self.tree = workdir.tree
        self.state = workdir.state
        self.downloader = downloader
        self.durability = durability
        # The subscription lists a snapshot (every live path once): remember what it lists,
        # so that once caught up the paths it did not list can be removed (`sweep_unseen`).
        self.listing_snapshot = False
        self._accepted: tuple[Changes, list[Incoming]] | None = None  # a message looked at ahead
        # Set by `SyncLoop.once`: path -> inode of each file installed during the run (up to
        # INSTALLED_MAX), so the rescan that ends the run need not lstat them (`Pusher.scan`).
        self.installed: dict[str, int] | None = None

    # -- entry points -----------------------------------------------------------------

    async def apply_message(self, msg: Changes, session: Session, *, ahead: Changes | None = None) -> None:
        """Apply a `Changes` message: its acceptable entries, then its cursor as the watermark.

        `ahead`: the message that comes next, already received; the chunks it will
        need are asked for while this one is written (`prefetch`).
        """
        await self.apply_entries(self._accept_all(msg), session, cursor=msg.cursor, ahead=ahead)

    def _accept_all(self, msg: Changes) -> list[Incoming]:
        """The acceptable entries of `msg` (accepted once: a message looked at ahead keeps its list)."""
        if self._accepted is not None and self._accepted[0] is msg:
            entries = self._accepted[1]
            self._accepted = None
            return entries
        entries = []
        for raw in msg.entries:
            change = self.accept(raw)
            if change is not None:
                entries.append((change, inline_bytes(raw) if isinstance(raw, dict) else None))
        return entries

    def accept(self, raw: Any) -> Change | None:
        """Validate one incoming entry; refuse (and report) anything unsafe, drop what is ignored."""
        try:
            change = change_from_wire(raw)
            split_path(change.path)
            if change.path == "/":
                return None
            if change.kind == "symlink" and not symlink_stays_inside(change.path, change.target or ""):
                raise UnsafePath(change.path, f"symlink target {change.target!r} points outside the replica")
            change.mode = local_mode(change.mode)  # permission bits only: no setuid/setgid/sticky from a server
        except (ProtocolError, UnsafePath, KeyError, TypeError, ValueError) as e:
            path = raw.get("path") if isinstance(raw, dict) else None
            self.workdir.refuse(str(path), getattr(e, "reason", None) or str(e))
            return None
        if self.workdir.rules.ignores(change.path, change.kind):
            return None
        if change.kind in SPECIAL_KINDS:
            self.workdir.skip_special(change.path, change.kind)
            return None
        return change

    async def apply_entries(
        self, entries: list[Incoming], session: Session, *, cursor: str | None, force: bool = False,
        ahead: Changes | None = None,
    ) -> None:
        """Apply accepted entries as one batch; `cursor` (if any) becomes the watermark in the same commit.

        `force` applies entries even at a revision we hold already: a push conflict
        brings the server's version of a path we had just synced. `ahead`: see `apply_message`.
        """
        with self.tree.batch():
            batch = self._open(entries, force)
            try:
                await self._gather(batch, session)
                if ahead is not None:
                    await self._prefetch(batch, ahead, session)
            except BaseException:
                self._close_downloads(batch, unlink=False)  # partial files stay for the next attempt
                raise
            try:
                self._commit(batch, entries, cursor)
            finally:
                self._close_downloads(batch, unlink=True)

    async def _prefetch(self, batch: IncomingBatch, ahead: Changes, session: Session) -> None:
        """Ask for the chunks the next message's files may need, while this batch is written."""
        entries = self._accept_all(ahead)
        self._accepted = (ahead, entries)
        exclude = {h for c, _ in batch.todo if c.kind == "file" for h, _ in c.chunks}
        files = (c for c, data in entries if c.kind == "file" and c.size and data is None)
        try:
            await self.downloader.prefetcher.start(session, files, exclude)
        except Exception as e:  # noqa: BLE001 - only an optimisation: the next batch's own gets report it
            log.debug("prefetch not started: %s", e)

    def begin_subscription(self, *, snapshot: bool, resume: bool = False) -> None:
        """A subscription is about to be read; `snapshot`: it lists every live path once.

        `resume`: it continues a listing cut short, whose listed paths the state kept.
        """
        self.listing_snapshot = snapshot
        if snapshot and not resume:
            self.state.start_seen()
        elif not snapshot and self.state.listing_snapshot():
            with self.state.transaction():
                self.state.end_seen()

    def sweep_unseen(self) -> None:
        """After a snapshot: paths we hold that the server no longer lists are gone there."""
        if not self.listing_snapshot:
            return
        paths = self.state.unseen_paths()
        with self.state.transaction():
            for path in paths:
                self._remote_delete(path, self.tree.lstat(path), self.state.get(path))
            self.state.end_seen()
        self.listing_snapshot = False

    def remove_stale_temp_files(self) -> None:
        """Temp files left in `.wsfs/tmp` by an interrupted run (partial downloads beside files stay)."""
        for name in self.tree.tmp_names():
            self.tree.temp_unlink(TempFile(None, name))

    # -- one batch ------------------------------------------------------------------

    def _open(self, entries: list[Incoming], force: bool) -> IncomingBatch:
        paths = [c.path for c, _ in entries]
        found = self.state.get_many(paths)
        batch = IncomingBatch(todo=[], rows={p: found.get(p) for p in paths})
        batch.todo = [(c, d) for c, d in entries if force or not self._stale(batch, c)]
        if len(batch.rows) != len(paths):  # a path twice: its first entry may make what the second finds
            batch.absent = _NoPaths()
        return batch

    def _row(self, batch: IncomingBatch, path: str) -> Entry | None:
        """The state row of `path`, from the batch's prefetch while it is current."""
        if path in batch.rows:
            return batch.rows[path]
        return self.state.get(path)

    def _stale(self, batch: IncomingBatch, change: Change) -> bool:
        """An entry at or below the revision we already hold for the path changes nothing."""
        row = self._row(batch, change.path)
        if row is not None:
            return row.rev >= change.rev
        return change.kind == "delete" and self.tree.lstat(change.path) is None

    async def _gather(self, batch: IncomingBatch, session: Session) -> None:
        """Find the content of every file entry; download the chunks no local source has."""
        rest: list[Change] = []
        for change, data in batch.todo:
            if change.kind != "file" or change.hash is None or batch.has_content(change):
                continue
            if self._already_here(batch, change):
                batch.adopted.add(change.path)
            elif data is not None and len(data) == change.size and blake3.blake3(data).hexdigest() == change.hash:
                batch.inline[change.hash] = data
                self.workdir.summary.bytes_expected += len(data)
                self.workdir.summary.bytes_received += len(data)
            else:
                rest.append(change)
        if not rest:
            return
        to_fetch: list[Content] = []
        self.downloader.lookup(rest)  # local copies of the chunks of what is neither here nor inlined
        for change in rest:
            if batch.has_content(change):  # the same content twice in the batch
                continue
            content = self.downloader.prepare(change)
            batch.downloads[change.hash] = content  # type: ignore[index]
            if content.missing:
                to_fetch.append(content)
        # each distinct missing chunk is fetched once (`Downloader.fetch`): that is what this batch will receive
        fetched = {h: size for content in to_fetch for h, size in content.chunks if h in content.missing}
        self.workdir.summary.bytes_expected += sum(fetched.values())
        if to_fetch:
            await self.downloader.fetch(session, to_fetch)
        batch.count_users()

    def _already_here(self, batch: IncomingBatch, change: Change) -> bool:
        """Is `change`'s content already at its path (e.g. written before a kill, or copied in by hand)?"""
        st = self.tree.lstat(change.path)
        if st is None:
            batch.absent.add(change.path)
            return False
        if not statmod.S_ISREG(st.st_mode) or st.st_size != change.size:
            return False
        row = self._row(batch, change.path)
        if row is not None and row.kind == "file" and row.matches(st) and row.hash == change.hash:
            return True
        return self.workdir.content_id(change.path) == change.hash

    def _commit(self, batch: IncomingBatch, entries: list[Incoming], cursor: str | None) -> None:
        """Install every entry and write its row, then the watermark, in one state transaction."""
        files = sum(1 for c, _ in batch.todo if c.kind == "file")
        batch.fsync_each = self.durability == "file" or (self.durability == "auto" and files <= FSYNC_EACH_MAX)
        sync_after = files and (self.durability == "batch" or (self.durability == "auto" and not batch.fsync_each))
        with self.state.transaction():
            if self.listing_snapshot:
                self.state.mark_seen(c.path for c, _ in entries)
            for change, _ in batch.todo:
                try:
                    self._apply(batch, change)
                except UnsafePath as e:
                    self.workdir.refuse(change.path, e.reason)
                except NotADirectoryError as e:
                    self.workdir.refuse(change.path, f"a parent is not a directory here ({e.filename})")
            if cursor is not None:
                self.state.set_meta("watermark", cursor)
            if sync_after:
                self.tree.syncfs()

    def _close_downloads(self, batch: IncomingBatch, *, unlink: bool) -> None:
        for content in batch.downloads.values():
            self.downloader.close(content)
            if unlink and content.tmp is not None:
                self.tree.temp_unlink(content.tmp)

    # -- one entry ------------------------------------------------------------------

    def _apply(self, batch: IncomingBatch, change: Change) -> None:
        path = change.path
        local = None if path in batch.absent else self.tree.lstat(path)
        row = self._row(batch, path)
        batch.rows.pop(path, None)  # written below: later reads must see the new row
        if change.kind == "delete":
            self._remote_delete(path, local, row)
            return
        if local is not None and statmod.S_ISDIR(local.st_mode) and change.kind != "dir":
            # a directory replaced by a file or link there: drop what was synced below it,
            # and keep anything made here beside it (as a conflict copy)
            if not self._delete_clean_tree(path):
                self.workdir.conflict_copy(path)
                batch.absent.clear()  # the copy's new name may be a later entry's path
            local, row = None, None
        if local is not None and not self.workdir.is_clean(local, row, path):
            if not self._same_as_remote(batch, change, local):
                self.workdir.conflict_copy(path)
                batch.absent.clear()  # the copy's new name may be a later entry's path
        if change.kind == "dir":
            st = self.tree.make_dir(path, change.mode)
        elif change.kind == "symlink":
            st = self.tree.make_symlink(path, change.target or "", change.mtime)
        else:
            st = self._install_file(batch, change)
        self.state.put_fields(path, change.kind, change.rev, change.hash, change.target, change.mode & 0o7777,
                              st.st_size, st.st_mtime_ns, st.st_ino)
        if change.kind == "file":
            self.state.index_chunks(path, change.chunks, fresh=row is None)
            if self.installed is not None and len(self.installed) < INSTALLED_MAX:
                self.installed[path] = st.st_ino
        self.workdir.summary.downloaded += 1

    def _same_as_remote(self, batch: IncomingBatch, change: Change, local: os.stat_result) -> bool:
        """A local edit that already equals the incoming state is adopted; directories always merge."""
        kind = kind_of(local)
        if kind != change.kind:
            return False
        if kind == "file":
            return change.path in batch.adopted
        if kind == "symlink":
            try:
                return self.tree.readlink(change.path) == change.target
            except OSError:
                return False
        return True

    def _install_file(self, batch: IncomingBatch, change: Change) -> os.stat_result:
        path = change.path
        if path in batch.adopted:
            return self.tree.restamp_file(path, change.mode, change.mtime)
        if change.size == 0 or change.hash is None or change.hash in batch.inline:
            data = batch.inline[change.hash] if change.size and change.hash else b""  # type: ignore[index]
            return self.tree.write_file(path, data, change.mode, int(change.mtime * 1e9), fsync=batch.fsync_each)
        content = batch.downloads[change.hash]
        st = self.downloader.finish(content, change.mode, change.mtime, fsync=batch.fsync_each)
        batch.users[change.hash] -= 1
        if batch.users[change.hash] > 0:  # another path of this batch needs the same bytes
            copy, st = self.downloader.copy_for(content, path, fsync=batch.fsync_each)
            return self.tree.install(copy, path, st)
        assert content.tmp is not None
        st = self.tree.install(content.tmp, path, st)
        content.tmp = None  # in place: nothing left to clean up
        return st

    # -- deletions ------------------------------------------------------------------

    def _remote_delete(self, path: str, local: os.stat_result | None, row: Entry | None) -> None:
        """Deleted on the server: remove it here unless it was edited here (then the edit wins)."""
        if local is None:
            self._forget_tree(path)
            return
        if statmod.S_ISDIR(local.st_mode):
            self._delete_clean_tree(path)
            return
        if self.workdir.is_clean(local, row, path):
            self.tree.remove(path)
            self.workdir.summary.deleted_local += 1
        else:
            log.info("kept %s: edited here, deleted on the server (the edit wins)", path)
            self.workdir.pending.add(path)
        self.state.delete(path)

    def _delete_clean_tree(self, path: str) -> bool:
        """Remove what was synced under `path`; keep local edits (they will be pushed). True if gone."""
        empty = True
        for name, st in self.tree.scandir(path):
            child = join(path, name)
            if statmod.S_ISDIR(st.st_mode):
                empty = self._delete_clean_tree(child) and empty
            elif self.workdir.is_clean(st, self.state.get(child), child) or self.workdir.rules.ignores(child, "file"):
                self.tree.remove(child)
                self.state.delete(child)
                self.workdir.summary.deleted_local += 1
            else:
                empty = False
                self.state.delete(child)  # now a local-only file: pushed again
                self.workdir.pending.add(child)
        self.state.delete(path)
        if empty and self.tree.rmdir(path):
            for p in self.state.subtree(path):
                self.state.delete(p)
            return True
        return False

    def _forget_tree(self, path: str) -> None:
        for p in self.state.subtree(path):
            self.state.delete(p)
        self.state.delete(path)


class _NoPaths(set):  # type: ignore[type-arg]
    """A set that keeps nothing: the batch remembers no path as absent."""

    def add(self, _item: object) -> None:
        pass
