"""The workspace surface, declared once as protocols.

Several things look like a workspace: the store (`vfs.Workspace`), the
async client (`client_py.workspace.RemoteWorkspace`, which mirrors the store
method for method with `await`), and the backends of the FUSE mount (a
local store, or `client_py.mount.remote_backend.RemoteBackend` over a server).
These protocols say what each of them promises, so each can be type-checked
against one declaration instead of against the others:

- `ReadableFile`: what `open(path, "rb")` gives a reader.
- `MountBackend`: the synchronous subset the FUSE operations call; the
  store and `RemoteBackend` follow it. (The operations also look for two
  optional members, which a protocol cannot express: `transaction()` and
  `dir_times_ns` (the times the last call stamped on the directories it
  changed), only on a local store, and `commit_file()`, only on the remote
  backend; it looks them up with `getattr`. `LocalMountBackend.open_ino` is
  looked up the same way.)
- `WorkspaceSurface`: the whole synchronous store (`vfs.Workspace`).
- `AsyncWorkspaceSurface`: the same operations, awaited: what
  `RemoteWorkspace` and the store have in common. Where the store returns
  None (mkdir, chmod, ...), the client returns the new `Stat`: both fit
  `Stat | None`.

This module declares; it imports nothing of the store's machinery, so any
layer may import it. `tests/typecheck_surfaces.py` has mypy hold the
implementations to it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Protocol, Self, Union

from vfs.types import ApplyResult, Change, ChangePage, Cursor, DirEntry, GcStats, GrepMatch, Stat, Version

# What a writer had seen of the store it pushes to: a cursor, or the revision
# of each path it last synced (see `Workspace.apply_changes`).
Base = Union[Cursor, Mapping[str, int], None]

# A cursor as callers may spell it: a Cursor, its string form, or a bare revision.
CursorLike = Union[Cursor, str, int, None]


class ReadableFile(Protocol):
    """A seekable binary reader (`io.BufferedReader`, the mount's chunk reader)."""

    def read(self, size: int = -1, /) -> bytes: ...

    def seek(self, offset: int, whence: int = 0, /) -> int: ...

    def close(self) -> None: ...


class MountBackend(Protocol):
    """What the FUSE operations (`client_py.mount.ops`) need from a workspace."""

    @property
    def path(self) -> str:
        """Where the workspace lives (logged at mount and unmount)."""
        ...

    @property
    def rev(self) -> int: ...

    def close(self) -> None: ...

    def as_owner(self, uid: int, gid: int) -> AbstractContextManager[None]: ...

    # -- reads --
    def stat(self, path: str) -> Stat: ...

    def lstat(self, path: str) -> Stat: ...

    def lstat_if_exists(self, path: str) -> Stat | None: ...

    def exists(self, path: str) -> bool: ...

    def readdir(self, path: str = "/") -> list[DirEntry]: ...

    def readlink(self, path: str) -> str: ...

    def find(self, path: str = "/", pattern: str | None = None, *, kind: str | None = None) -> list[str]: ...

    def open(self, path: str, mode: str = "rb") -> ReadableFile: ...

    # -- writes --
    def write_file(
        self, path: str, data: object, *, mode: int | None = None, if_match: str | None = None,
        mtime_ns: int | None = None, ctime_ns: int | None = None,
    ) -> Stat: ...

    def truncate(self, path: str, size: int) -> object: ...

    def mkdir(self, path: str, *, mode: int = 0o755) -> Stat | None:
        """The new directory's `Stat` (a local store; None where a backend has none to give)."""
        ...

    def rmdir(self, path: str) -> None: ...

    def unlink(self, path: str) -> None: ...

    def symlink(self, target: str, path: str) -> None: ...

    def mknod(self, path: str, mode: int, rdev: int = 0) -> None: ...

    def link(self, existing: str, new: str) -> Stat | None:
        """The file's new `Stat` (a local store; None where a backend has none to give)."""
        ...

    def rename(self, src: str, dst: str, *, noreplace: bool = False, exchange: bool = False) -> None: ...

    def chmod(self, path: str, mode: int) -> Stat:
        """The node's new `Stat` (a mount answers the next getattr from it)."""
        ...

    def chown(self, path: str, uid: int, gid: int, *, follow_symlinks: bool = True) -> Stat: ...

    def set_times(
        self, path: str, *, atime_ns: int | None = None, mtime_ns: int | None = None, follow_symlinks: bool = True
    ) -> Stat: ...


class LocalMountBackend(MountBackend, Protocol):
    """What a mount of a local store uses beyond `MountBackend` (it asks `defers_close` /
    `holds` before calling these): files kept pending past their close stored in one call,
    a directory's held attributes as one change, a kept link with its time."""

    def link(self, existing: str, new: str, *, at_ns: int | None = None) -> Stat | None: ...

    def set_attrs(
        self, path: str, *, mode: int | None = None, uid: int = -1, gid: int = -1, atime_ns: int | None = None,
        mtime_ns: int | None = None, ctime_ns: int | None = None,
    ) -> Stat:
        """chmod + chown + utimensat of one node as one change, with a given ctime."""
        ...

    def write_new_files(self, files: list[dict]) -> list[Stat]:
        """Several new files, each as `write_file(..., if_match="")` would create it; all or nothing."""
        ...

    def open_ino(self, ino: int) -> ReadableFile:
        """A reader of inode `ino`'s content, as `open(path, "rb")` of a name of it gives: a mount's
        open file read by the inode it opened, with no path walk. The mount looks it up with
        `getattr`: only a local store has it (a remote mount snapshots a file's chunk list at its
        open, by path, one request; the walk there is the server's)."""
        ...


class WorkspaceSurface(LocalMountBackend, Protocol):
    """The whole synchronous store: everything `vfs.Workspace` offers."""

    @property
    def readonly(self) -> bool: ...

    owner: tuple[int, int]
    history_keep: int
    history_days: float
    tombstone_revs: int | None

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...

    # -- revisions, commits, transactions --
    def cursor(self) -> Cursor: ...

    def on_commit(self, callback: Callable[[int], None]) -> Callable[[], None]: ...

    def transaction(self) -> AbstractContextManager[None]: ...

    # -- names --
    def mkdir(self, path: str, *, parents: bool = False, exist_ok: bool = False, mode: int = 0o755) -> Stat | None: ...

    def utime(
        self,
        path: str,
        mtime: float | None = None,
        *,
        atime: float | None = None,
        ns: tuple[int, int] | None = None,
        follow_symlinks: bool = True,
    ) -> Stat: ...

    def readdir(self, path: str = "/", *, limit: int | None = None, offset: int = 0) -> list[DirEntry]: ...

    def listdir(self, path: str = "/") -> list[str]: ...

    def rm(self, path: str, *, recursive: bool = False, force: bool = False) -> None: ...

    # -- content --
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
    ) -> Stat: ...

    def read_file(self, path: str, *, rev: int | None = None) -> bytes: ...

    def read_text(self, path: str, encoding: str = "utf-8") -> str: ...

    def read_range(self, path: str, offset: int, size: int) -> bytes: ...

    def iter_file(
        self, path: str, offset: int = 0, size: int | None = None, *, rev: int | None = None
    ) -> Iterator[bytes]: ...

    def write_range(self, path: str, offset: int, data: bytes) -> Stat: ...

    def truncate(self, path: str, size: int) -> Stat: ...

    def copy(self, src: str, dst: str) -> Stat: ...

    # -- history --
    def history(self, path: str) -> list[Version]: ...

    def restore(self, path: str, *, rev: int) -> Stat: ...

    def gc(self, *, grace: float = 0.0) -> GcStats: ...

    # -- the change log --
    def changes(
        self, after: CursorLike = None, *, prefix: str = "/", ignore: Iterable[str] = (), limit: int | None = None
    ) -> list[Change]: ...

    def changes_page(
        self, after: CursorLike = None, *, prefix: str = "/", ignore: Iterable[str] = (), limit: int | None = None
    ) -> ChangePage: ...

    def commit_changes(self, rev: int, *, limit: int) -> list[Change] | None: ...

    def entry(self, path: str) -> Change | None: ...

    def compact_tombstones(self, through_rev: int) -> int: ...

    # -- objects and apply --
    def has_objects(self, hashes: Iterable[str]) -> set[str]: ...

    def read_objects(self, hashes: Iterable[str]) -> Iterator[tuple[str, bytes]]: ...

    def put_object(self, data: bytes, expected_hash: str | None = None) -> str: ...

    def put_objects(self, items: Iterable[tuple[str | None, bytes]], *, hashed: bool = False) -> list[str]: ...

    def apply_changes(self, changes: Iterable[Change], *, base: Base = None) -> ApplyResult: ...

    # -- search --
    def find(
        self, path: str = "/", pattern: str | None = None, *, kind: str | None = None, limit: int | None = None
    ) -> list[str]: ...

    def walk(self, path: str = "/") -> Iterator[tuple[str, list[str], list[str]]]: ...

    def ls(self, prefix: str = "/") -> list[str]: ...

    def du(self, path: str = "/") -> int: ...

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
    ) -> list[GrepMatch]: ...


class AsyncBinaryFile(Protocol):
    """What the async client's `open()` gives: `async with ws.open(path, "wb") as f: await f.write(...)`."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def read(self, size: int = -1) -> bytes: ...

    async def write(self, data: bytes) -> int: ...

    def seek(self, offset: int, whence: int = 0) -> int: ...

    def tell(self) -> int: ...

    async def close(self) -> None: ...


class AsyncWorkspaceSurface(Protocol):
    """The store's operations, awaited (`client_py.workspace.RemoteWorkspace`).

    Streams (`iter_file`, `walk`, `read_objects`) are async iterators, used
    with `async for` without awaiting the call itself.
    """

    @property
    def rev(self) -> Awaitable[int]: ...

    async def cursor(self) -> Cursor: ...

    # -- content --
    async def write_file(
        self,
        path: str,
        data: object,
        *,
        mode: int | None = None,
        parents: bool = False,
        if_match: str | None = None,
        mtime: float | None = None,
    ) -> Stat: ...

    async def read_file(self, path: str, *, rev: int | None = None) -> bytes: ...

    def iter_file(
        self, path: str, offset: int = 0, size: int | None = None, *, rev: int | None = None
    ) -> AsyncIterator[bytes]: ...

    async def read_range(self, path: str, offset: int, size: int) -> bytes: ...

    async def write_range(self, path: str, offset: int, data: bytes) -> Stat: ...

    async def truncate(self, path: str, size: int) -> Stat: ...

    async def copy(self, src: str, dst: str) -> Stat: ...

    def open(self, path: str, mode: str = "rb") -> AsyncBinaryFile: ...

    # -- names --
    async def mkdir(
        self, path: str, *, parents: bool = False, exist_ok: bool = False, mode: int = 0o755
    ) -> Stat | None: ...

    async def stat(self, path: str) -> Stat: ...

    async def lstat(self, path: str) -> Stat: ...

    async def exists(self, path: str) -> bool: ...

    async def readdir(self, path: str = "/", *, limit: int | None = None, offset: int = 0) -> list[DirEntry]: ...

    async def listdir(self, path: str = "/") -> list[str]: ...

    async def chmod(self, path: str, mode: int) -> Stat | None: ...

    async def utime(self, path: str, mtime: float) -> Stat | None: ...

    async def symlink(self, target: str, path: str) -> Stat | None: ...

    async def readlink(self, path: str) -> str: ...

    async def link(self, existing: str, new: str) -> Stat | None: ...

    async def rename(self, src: str, dst: str) -> Stat | None: ...

    async def unlink(self, path: str) -> None: ...

    async def rmdir(self, path: str) -> None: ...

    async def rm(self, path: str, *, recursive: bool = False, force: bool = False) -> None: ...

    # -- search --
    def walk(self, path: str = "/") -> AsyncIterator[tuple[str, list[str], list[str]]]: ...

    async def find(
        self, path: str = "/", pattern: str | None = None, *, kind: str | None = None, limit: int | None = None
    ) -> list[str]: ...

    async def ls(self, prefix: str = "/") -> list[str]: ...

    async def grep(
        self,
        pattern: str,
        path: str = "/",
        *,
        regex: bool = False,
        ignore_case: bool = False,
        include: str | None = None,
        context: int = 0,
        limit: int | None = None,
    ) -> list[GrepMatch]: ...

    async def du(self, path: str = "/") -> int: ...

    # -- history --
    async def history(self, path: str) -> list[Version]: ...

    async def restore(self, path: str, *, rev: int) -> Stat: ...

    async def gc(self) -> GcStats: ...

    # -- the change log, objects and apply --
    async def changes_page(
        self, after: CursorLike = None, *, prefix: str = "/", ignore: Iterable[str] = (), limit: int | None = None
    ) -> ChangePage: ...

    async def changes(
        self, after: CursorLike = None, *, prefix: str = "/", ignore: Iterable[str] = (), limit: int | None = None
    ) -> list[Change]: ...

    async def entry(self, path: str) -> Change | None: ...

    async def has_objects(self, hashes: Iterable[str]) -> set[str]: ...

    def read_objects(self, hashes: Iterable[str]) -> AsyncIterator[tuple[str, bytes]]: ...

    async def put_object(self, data: bytes, expected_hash: str | None = None) -> str: ...

    async def apply_changes(self, changes: Iterable[Change], *, base: Base = None) -> ApplyResult: ...
