"""`Workspace`: the store's public face, one method per operation.

Each method hands the call to the concern that owns it; none holds logic of
its own. The concerns are plain objects over one `Db`, composed here, each
calling only the ones below it:

    workspace   this facade (and `open()` through `vfs.fileobj`)
    search      walk, find, ls, grep, du                      (vfs.search)
    sync        object exchange, conflict-aware apply         (vfs.sync)
    history     versions listed, restore, garbage collection  (vfs.history)
    content     write, read, positional write, truncate, copy  (vfs.content)
    namespace   mkdir, link, symlink, rename, remove, stat     (vfs.namespace)
    changelog   the change stream and cursors                 (vfs.changelog)
    versions    recording versions and deletions, pruning     (vfs.versions)
    db          connection, transactions, revisions, paths    (vfs.db)

`vfs.surface.WorkspaceSurface` declares this class's surface as a protocol.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager

from vfs.changelog import ChangeLog
from vfs.content import Content
from vfs.db import Db
from vfs.fileobj import open_file
from vfs.history import History
from vfs.namespace import Namespace
from vfs.search import Search
from vfs.surface import Base
from vfs.sync import Sync
from vfs.types import ApplyResult, Change, ChangePage, Cursor, DirEntry, GcStats, GrepMatch, Stat, Version
from vfs.versions import Versions


class Workspace:
    """One workspace: a SQLite file holding a whole filesystem and its change log.

    Not thread-safe: use one Workspace object per thread (several may open
    the same file; SQLite's WAL lets readers run beside the writer).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = ":memory:",
        *,
        readonly: bool = False,
        history_keep: int = 20,
        history_days: float = 7.0,
        tombstone_revs: int | None = None,
        exclusive: bool = False,
    ):
        """`exclusive`: be the store's only writer (a local FUSE mount; see
        `vfs.storelock`). Writable opens otherwise share the store; a
        conflicting open raises `StoreBusy`. Read-only opens never conflict."""
        db = self._db = Db(path, readonly=readonly, exclusive=exclusive)
        versions = self._versions = Versions(db, keep=history_keep, days=history_days)
        names = self._names = Namespace(db, versions)
        content = self._content = Content(db, names, versions)
        changelog = self._changelog = ChangeLog(db)
        self._history = History(db, content, versions, changelog, tombstone_revs=tombstone_revs)
        self._sync = Sync(db, names, content)
        self._search = Search(db, content)

    # -- lifecycle and settings ------------------------------------------------------

    @property
    def path(self) -> str:
        """The store file (or `:memory:`)."""
        return self._db.path

    @property
    def readonly(self) -> bool:
        return self._db.readonly

    @property
    def owner(self) -> tuple[int, int]:
        """(uid, gid) of nodes this object creates; see `as_owner`."""
        return self._db.owner

    @owner.setter
    def owner(self, value: tuple[int, int]) -> None:
        self._db.owner = value

    @property
    def history_keep(self) -> int:
        """Versions kept per path whatever their age."""
        return self._versions.keep

    @history_keep.setter
    def history_keep(self, value: int) -> None:
        self._versions.keep = value

    @property
    def history_days(self) -> float:
        """Versions younger than this many days are kept whatever their number."""
        return self._versions.days

    @history_days.setter
    def history_days(self, value: float) -> None:
        self._versions.days = value

    @property
    def tombstone_revs(self) -> int | None:
        """gc() forgets deletions older than this many revisions (None: never)."""
        return self._history.tombstone_revs

    @tombstone_revs.setter
    def tombstone_revs(self, value: int | None) -> None:
        self._history.tombstone_revs = value

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<vfs.Workspace {self.path!r}>"

    def as_owner(self, uid: int, gid: int) -> AbstractContextManager[None]:
        """Nodes created inside the block belong to uid:gid."""
        return self._db.as_owner(uid, gid)

    # -- revisions, commits, transactions ----------------------------------------------

    @property
    def rev(self) -> int:
        return self._db.rev

    def cursor(self) -> Cursor:
        return Cursor(self._db.rev, None)

    def on_commit(self, callback: Callable[[int], None]) -> Callable[[], None]:
        """Call `callback(rev)` after every commit that advanced the revision.

        It runs in the committing thread, after COMMIT returned, so a
        listener that reads the store sees the new state. Returns a function
        that removes the listener.
        """
        return self._db.on_commit(callback)

    def transaction(self) -> AbstractContextManager[None]:
        """Group several mutations into one transaction and one revision.

        Everything inside commits together or not at all; listeners hear one
        revision. A FUSE mount uses it to commit bursts of metadata at once.
        """
        return self._db.transaction()

    # -- names -------------------------------------------------------------------------

    def mkdir(self, path: str, *, parents: bool = False, exist_ok: bool = False, mode: int = 0o755) -> None:
        self._names.mkdir(path, parents=parents, exist_ok=exist_ok, mode=mode)

    def symlink(self, target: str, path: str) -> None:
        self._names.symlink(target, path)

    def readlink(self, path: str) -> str:
        return self._names.readlink(path)

    def link(self, existing: str, new: str) -> None:
        self._names.link(existing, new)

    def chmod(self, path: str, mode: int) -> None:
        self._names.chmod(path, mode)

    def chown(self, path: str, uid: int, gid: int, *, follow_symlinks: bool = True) -> None:
        """Change owner and group; -1 leaves either unchanged (as os.chown)."""
        self._names.chown(path, uid, gid, follow_symlinks=follow_symlinks)

    def utime(
        self,
        path: str,
        mtime: float | None = None,
        *,
        atime: float | None = None,
        ns: tuple[int, int] | None = None,
        follow_symlinks: bool = True,
    ) -> None:
        """Set modification (and access) times; no times at all means now, as os.utime."""
        self._names.utime(path, mtime, atime=atime, ns=ns, follow_symlinks=follow_symlinks)

    def set_times(
        self, path: str, *, atime_ns: int | None = None, mtime_ns: int | None = None, follow_symlinks: bool = True
    ) -> None:
        """utimensat(2): nanosecond times; None leaves that time as it is (UTIME_OMIT)."""
        self._names.set_times(path, atime_ns=atime_ns, mtime_ns=mtime_ns, follow_symlinks=follow_symlinks)

    def stat(self, path: str) -> Stat:
        return self._names.stat(path)

    def lstat(self, path: str) -> Stat:
        return self._names.lstat(path)

    def lstat_if_exists(self, path: str) -> Stat | None:
        """`lstat`, but None when the last component does not exist.

        For hot lookups that often miss (a third of the stat calls git makes
        through a FUSE mount are misses), where raising costs more than the
        lookup. A missing or non-directory parent still raises.
        """
        return self._names.lstat_if_exists(path)

    def exists(self, path: str) -> bool:
        return self._names.exists(path)

    def readdir(self, path: str = "/", *, limit: int | None = None, offset: int = 0) -> list[DirEntry]:
        return self._names.readdir(path, limit=limit, offset=offset)

    def listdir(self, path: str = "/") -> list[str]:
        return self._names.listdir(path)

    def unlink(self, path: str) -> None:
        self._names.unlink(path)

    def rmdir(self, path: str) -> None:
        self._names.rmdir(path)

    def rm(self, path: str, *, recursive: bool = False, force: bool = False) -> None:
        """Remove a file, symlink or (with `recursive`) a whole tree, like `rm -r[f]`."""
        self._names.rm(path, recursive=recursive, force=force)

    def rename(self, src: str, dst: str, *, noreplace: bool = False, exchange: bool = False) -> None:
        """POSIX rename(2): atomic, replaces a file or an empty directory.

        `noreplace` and `exchange` are renameat2's RENAME_NOREPLACE (EEXIST
        if `dst` exists) and RENAME_EXCHANGE (swap two existing names).
        """
        self._names.rename(src, dst, noreplace=noreplace, exchange=exchange)

    # -- content -----------------------------------------------------------------------

    def write_file(
        self,
        path: str,
        data: object,
        *,
        mode: int | None = None,
        parents: bool = False,
        if_match: str | None = None,
        mtime: float | None = None,
        mtime_ns: int | None = None,
    ) -> Stat:
        """Create or replace a file. `data`: bytes, str, iterable of bytes or a file object.

        `if_match` makes the write conditional on the current content id
        (`""`: the file must not exist); the check and the write are one
        transaction, so two writers with the same `if_match` cannot both win.
        `mtime` (seconds) or `mtime_ns` (exact, as a FUSE mount keeps it)
        sets the modification time; the default is now.
        """
        return self._content.write_file(
            path, data, mode=mode, parents=parents, if_match=if_match, mtime=mtime, mtime_ns=mtime_ns
        )

    def read_file(self, path: str, *, rev: int | None = None) -> bytes:
        return self._content.read_file(path, rev=rev)

    def read_text(self, path: str, encoding: str = "utf-8") -> str:
        return self._content.read_text(path, encoding)

    def read_range(self, path: str, offset: int, size: int) -> bytes:
        return self._content.read_range(path, offset, size)

    def iter_file(
        self, path: str, offset: int = 0, size: int | None = None, *, rev: int | None = None
    ) -> Iterator[bytes]:
        """Stream a file's bytes chunk by chunk (a consistent snapshot of its content)."""
        return self._content.iter_file(path, offset, size, rev=rev)

    def write_range(self, path: str, offset: int, data: bytes) -> Stat:
        """pwrite(2): overwrite bytes at `offset`; writing past EOF zero-fills the gap."""
        return self._content.write_range(path, offset, data)

    def truncate(self, path: str, size: int) -> Stat:
        return self._content.truncate(path, size)

    def copy(self, src: str, dst: str) -> Stat:
        """Copy a file with its mode and mtime; the copy shares every chunk."""
        return self._content.copy(src, dst)

    def open(self, path: str, mode: str = "rb"):
        """A binary file object (`rb`, `wb`, `ab`, `xb`, `r+b` and `+` variants)."""
        return open_file(self._names, self._content, path, mode)

    # -- history -----------------------------------------------------------------------

    def history(self, path: str) -> list[Version]:
        """Retained versions of the file at `path`, newest first (deletions included)."""
        return self._history.history(path)

    def restore(self, path: str, *, rev: int) -> Stat:
        """Make the version of `path` as of revision `rev` current again (a new revision)."""
        return self._history.restore(path, rev=rev)

    def gc(self, *, grace: float = 0.0) -> GcStats:
        """Prune old versions, then delete chunks nothing references.

        `grace` spares chunks stored in the last `grace` seconds: a server
        passes a few minutes so chunks uploaded for a push that has not been
        applied yet survive. With `tombstone_revs` set, deletions older than
        that many revisions are compacted too (see `compact_tombstones`).
        """
        return self._history.gc(grace=grace)

    # -- the change log ------------------------------------------------------------------

    def changes(
        self,
        after: Cursor | str | int | None = None,
        *,
        prefix: str = "/",
        ignore: Iterable[str] = (),
        limit: int | None = None,
    ) -> list[Change]:
        return self._changelog.changes(after, prefix=prefix, ignore=ignore, limit=limit)

    def changes_page(
        self,
        after: Cursor | str | int | None = None,
        *,
        prefix: str = "/",
        ignore: Iterable[str] = (),
        limit: int | None = None,
    ) -> ChangePage:
        """One page of changes after `after`, ordered by (rev, path).

        The page's `cursor` is where to resume; when the page is the last
        one it is `(current rev, None)`, so a reader that was filtered out
        of everything still moves forward.
        """
        return self._changelog.changes_page(after, prefix=prefix, ignore=ignore, limit=limit)

    def entry(self, path: str) -> Change | None:
        """The current state of one path as a change entry (None if never seen)."""
        return self._changelog.entry(path)

    def compact_tombstones(self, through_rev: int) -> int:
        """Forget deletions at or before `through_rev`; older cursors get CursorTooOld.

        Returns how many tombstones were removed.
        """
        return self._changelog.compact_tombstones(through_rev)

    # -- sync: objects and apply -----------------------------------------------------------

    def has_objects(self, hashes: Iterable[str]) -> set[str]:
        """The subset of `hashes` this store holds."""
        return self._sync.has_objects(hashes)

    def read_objects(self, hashes: Iterable[str]) -> Iterator[tuple[str, bytes]]:
        """(hash, bytes) for each requested chunk this store holds, in request order."""
        return self._sync.read_objects(hashes)

    def put_object(self, data: bytes, expected_hash: str | None = None) -> str:
        """Store one chunk; with `expected_hash`, refuse bytes that hash to anything else."""
        return self._sync.put_object(data, expected_hash)

    def put_objects(self, items: Iterable[tuple[str | None, bytes]]) -> list[str]:
        """Store many chunks in one transaction (ids verified); returns their hashes."""
        return self._sync.put_objects(items)

    def apply_changes(self, changes: Iterable[Change], *, base: Base = None) -> ApplyResult:
        """Apply another store's change entries as one transaction (one revision).

        Idempotent: entries equal to the local state are `unchanged` and an
        all-unchanged batch does not advance the revision. Raises
        MissingObjects (applying nothing) when a file's chunks are absent.
        """
        return self._sync.apply_changes(changes, base=base)

    # -- search ------------------------------------------------------------------------

    def find(
        self, path: str = "/", pattern: str | None = None, *, kind: str | None = None, limit: int | None = None
    ) -> list[str]:
        """Paths below `path`, depth-first in name order; `pattern` globs the relative path."""
        return self._search.find(path, pattern, kind=kind, limit=limit)

    def walk(self, path: str = "/") -> Iterator[tuple[str, list[str], list[str]]]:
        """Like os.walk (top-down, no following of symlinked directories)."""
        return self._search.walk(path)

    def ls(self, prefix: str = "/") -> list[str]:
        """Every file under `prefix` (or `prefix` itself if it is a file), sorted; [] when missing."""
        return self._search.ls(prefix)

    def du(self, path: str = "/") -> int:
        """Logical bytes below `path`, each hard-linked file counted once."""
        return self._search.du(path)

    def grep(
        self,
        pattern: str,
        path: str = "/",
        *,
        regex: bool = False,
        ignore_case: bool = False,
        include: str | None = None,
        context: int = 0,
        limit: int | None = None,
    ) -> list[GrepMatch]:
        """Lines matching `pattern` in text files below `path` (binary files skipped)."""
        return self._search.grep(
            pattern, path, regex=regex, ignore_case=ignore_case, include=include, context=context, limit=limit
        )
