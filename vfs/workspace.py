"""`Workspace`: the store's public face, one method per operation.

Each operation is the method of the concern that owns it, reached through
`forward` (the signature and docstring are the concern's, written once);
the facade holds no logic of its own. The concerns are plain objects over one `Db`, composed here, each
calling only the ones below it:

    workspace   this facade (and `open()`, `open_ino()` through `vfs.fileobj`)
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

import io
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from operator import attrgetter
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from vfs.changelog import ChangeLog
from vfs.coedit_log import CoeditLog
from vfs.chunkstore import BackendFactory
from vfs.content import Content
from vfs.db import Db
from vfs.fileobj import open_file, open_ino
from vfs.history import History
from vfs.namespace import Namespace
from vfs.newfiles import NewFiles
from vfs.paths import PATH_MAX
from vfs.search import Search
from vfs.sync import Sync
from vfs.types import Cursor
from vfs.versions import Versions

P = ParamSpec("P")
R = TypeVar("R", covariant=True)


class forward(Generic[P, R]):  # noqa: N801 - used like a decorator, named like one
    """A facade method that *is* a concern's method.

    `Workspace().stat` is the bound `Namespace.stat` of that workspace's
    namespace object, found by one C-level attribute lookup: no wrapper
    call, and the signature and docstring users see (`help`, IDEs, type
    checkers) are the concern's own, so they are written once.
    """

    def __init__(self, concern: str, function: Callable[Concatenate[Any, P], R]) -> None:
        self.function = function
        self.__doc__ = function.__doc__
        self.__wrapped__ = function
        self._bound = attrgetter(f"{concern}.{function.__name__}")
        self._name = ""  # the attribute it serves (`__set_name__`): where `__get__` keeps the bound method

    def __set_name__(self, owner: type, name: str) -> None:
        if self._name and self._name != name:
            raise TypeError(f"one forward per name: {name!r} reuses {self._name!r}'s")
        self._name = name

    @overload
    def __get__(self, workspace: None, owner: type | None = None) -> Callable[Concatenate[Any, P], R]: ...

    @overload
    def __get__(self, workspace: object, owner: type | None = None) -> Callable[P, R]: ...

    def __get__(self, workspace: object | None, owner: type | None = None) -> Callable[..., R]:
        if workspace is None:
            return self.function  # on the class: the function itself, for help() and inspect
        # Kept in the workspace's own dict: the next lookup finds it there, no call of this
        # descriptor (~0.3 us a call, timeit). A workspace's concerns never change.
        bound = workspace.__dict__[self._name] = self._bound(workspace)
        return bound


class _AuthorScope:
    """`Workspace.as_author`'s block: a class, not a `@contextmanager` generator (a server enters
    one per write; the generator, its wrapper and two `next` calls cost ~1 us more)."""

    __slots__ = ("_versions", "_author", "_previous")

    def __init__(self, versions: Versions, author: str | None) -> None:
        self._versions, self._author = versions, author

    def __enter__(self) -> None:
        self._previous, self._versions.author = self._versions.author, self._author

    def __exit__(self, *_: object) -> None:
        self._versions.author = self._previous


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
        path_max: int | None = PATH_MAX,
        chunk_backend: str | BackendFactory | None = None,
        checkpoints: bool | str = True,
    ):
        """`exclusive`: be the store's only writer (a local FUSE mount; see
        `vfs.storelock`). Writable opens otherwise share the store; a
        conflicting open raises `StoreBusy`. Read-only opens never conflict.
        `path_max`: the longest whole path (ENAMETOOLONG); None limits only
        each name to 255 bytes, for a mount, where the kernel limits what
        the caller passes relative to its own directory.
        `chunk_backend`: where chunk bytes live (`vfs.chunkstore`): "packs"
        (pack files beside the store: the default for a new store on disk) or
        "sqlite" (inside the store file, as a cluster's Litestream needs);
        None keeps the store's own choice.
        `checkpoints`: True (or "commit") is SQLite's automatic checkpoint,
        inside whichever COMMIT takes the WAL past 1,000 pages; "background"
        runs them on a thread of this store's own (`vfs.checkpointer`: no
        committing call waits for one; a long-lived writer such as a mount or
        a server); False (or "none") stops this connection's checkpoints, for
        a store whose WAL another process reads and checkpoints: a cluster
        node's Litestream (docs/cluster.md, "Checkpoints belong to Litestream")."""
        db = self._db = Db(path, readonly=readonly, exclusive=exclusive, path_max=path_max, chunk_backend=chunk_backend,
                            checkpoints=checkpoints)
        versions = self._versions = Versions(db, keep=history_keep, days=history_days)
        names = self._names = Namespace(db, versions)
        content = self._content = Content(db, names, versions)
        self._new_files = NewFiles(db, content, versions)
        changelog = self._changelog = ChangeLog(db)
        self._history = History(db, content, versions, changelog, tombstone_revs=tombstone_revs)
        self._sync = Sync(db, names, content)
        self._search = Search(db, content)
        # The only writer of this store: a flock held exclusively, or a private in-memory store.
        self._sole_writer = not readonly and (exclusive or db.path in ("", ":memory:"))

    # -- lifecycle and settings ------------------------------------------------------

    @property
    def path(self) -> str:
        """The store file (or `:memory:`)."""
        return self._db.path

    @property
    def readonly(self) -> bool:
        return self._db.readonly

    def reserve_ino(self) -> int:
        """An inode number for a file created later by `write_file(..., ino=)`.

        A FUSE mount shows a created file at once and stores it with its content
        at close, one store call instead of two. Only the store's exclusive writer
        may reserve (`exclusive=True`, enforced by `vfs.storelock`; or `:memory:`):
        the counter lives in this object, so another writer could hand out the
        same number. ValueError otherwise."""
        if not self._sole_writer:
            raise ValueError("reserve_ino needs the store's exclusive writer (Workspace(..., exclusive=True))")
        return self._names.reserve_ino()

    @property
    def dir_times_ns(self) -> int:
        """The mtime and ctime (ns) the last write call through this object gave the
        directories whose entries it changed (0: it changed none). A FUSE mount, this
        store's only writer, updates its cached parent stats with it instead of reading
        them again."""
        return self._db.dir_times_ns

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

    @property
    def coedit_log(self) -> CoeditLog:
        """The co-edited documents and their update logs in this store (`vfs.coedit_log`)."""
        return CoeditLog(self._db)

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

    @property
    def author(self) -> str | None:
        """Who versions recorded from now on name as their writer (history shows it); None: nobody,
        as a local write. A caller that already runs each write inside its own try/finally (a
        server's write job) sets it and sets it back there: a plain attribute, no block."""
        return self._versions.author

    @author.setter
    def author(self, value: str | None) -> None:
        self._versions.author = value

    def as_author(self, author: str | None) -> AbstractContextManager[None]:
        """Versions recorded inside the block name `author` as their writer (history shows it).

        A server sets it per write to whoever it authenticated; a local write names nobody.
        """
        return _AuthorScope(self._versions, author)

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

    mkdir = forward("_names", Namespace.mkdir)
    symlink = forward("_names", Namespace.symlink)
    mknod = forward("_names", Namespace.mknod)
    readlink = forward("_names", Namespace.readlink)
    link = forward("_names", Namespace.link)
    chmod = forward("_names", Namespace.chmod)
    chown = forward("_names", Namespace.chown)
    utime = forward("_names", Namespace.utime)
    set_times = forward("_names", Namespace.set_times)
    set_attrs = forward("_names", Namespace.set_attrs)
    stat = forward("_names", Namespace.stat)
    lstat = forward("_names", Namespace.lstat)
    lstat_if_exists = forward("_names", Namespace.lstat_if_exists)
    exists = forward("_names", Namespace.exists)
    readdir = forward("_names", Namespace.readdir)
    listdir = forward("_names", Namespace.listdir)
    unlink = forward("_names", Namespace.unlink)
    rmdir = forward("_names", Namespace.rmdir)
    rm = forward("_names", Namespace.rm)
    rename = forward("_names", Namespace.rename)

    # -- content -----------------------------------------------------------------------

    write_file = forward("_content", Content.write_file)
    put_file = forward("_content", Content.put_file)
    write_new_files = forward("_new_files", NewFiles.write_new_files)
    read_file = forward("_content", Content.read_file)
    read_text = forward("_content", Content.read_text)
    read_range = forward("_content", Content.read_range)
    iter_file = forward("_content", Content.iter_file)
    write_range = forward("_content", Content.write_range)
    truncate = forward("_content", Content.truncate)
    copy = forward("_content", Content.copy)

    def open(self, path: str, mode: str = "rb"):
        """A binary file object (`rb`, `wb`, `ab`, `xb`, `r+b` and `+` variants)."""
        return open_file(self._names, self._content, path, mode)

    def open_ino(self, ino: int) -> io.BufferedReader:
        """A reader of inode `ino`'s content, as `open(path, "rb")` of a path naming it
        (a regular file: ENOENT if no such inode, EISDIR for a directory, EINVAL otherwise)."""
        return open_ino(self._db, ino)

    # -- history -----------------------------------------------------------------------

    history = forward("_history", History.history)
    authors = forward("_history", History.authors)
    restore = forward("_history", History.restore)
    gc = forward("_history", History.gc)

    # -- the change log ------------------------------------------------------------------

    changes = forward("_changelog", ChangeLog.changes)
    changes_page = forward("_changelog", ChangeLog.changes_page)
    commit_changes = forward("_changelog", ChangeLog.commit_changes)
    entry = forward("_changelog", ChangeLog.entry)
    compact_tombstones = forward("_changelog", ChangeLog.compact_tombstones)

    # -- sync: objects and apply -----------------------------------------------------------

    has_objects = forward("_sync", Sync.has_objects)
    read_objects = forward("_sync", Sync.read_objects)
    put_object = forward("_sync", Sync.put_object)
    put_objects = forward("_sync", Sync.put_objects)
    apply_changes = forward("_sync", Sync.apply_changes)

    # -- search ------------------------------------------------------------------------

    find = forward("_search", Search.find)
    walk = forward("_search", Search.walk)
    ls = forward("_search", Search.ls)
    du = forward("_search", Search.du)
    grep = forward("_search", Search.grep)
