"""Public value types of the store.

They are plain frozen dataclasses so that every layer (the store, the wire
codec in `vfs.wire`, the server, the client) can pass them around and
compare them without knowing where they came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import total_ordering
from typing import Literal

# "fifo", "socket", "char", "block": special files made through a mount (mknod,
# mkfifo, bind); no content, a device node's device number in `rdev`.
Kind = Literal["file", "dir", "symlink", "fifo", "socket", "char", "block"]
ChangeKind = Literal["file", "dir", "symlink", "fifo", "socket", "char", "block", "delete"]
SPECIAL_KINDS = ("fifo", "socket", "char", "block")


@total_ordering
@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in the change stream: everything up to `(rev, path)` has been seen.

    `path=None` means the whole of `rev` has been seen, so it sorts after every
    path of the same revision. The string form (`"12"` or `"12:/a/b"`) is what
    travels on the wire and what replicas persist as their watermark.

    `floor` is set only on the cursors of a listing that started at the very
    beginning and is still below the tombstone horizon (a snapshot of a log
    whose old deletions were compacted): the horizon when that page was read,
    written `"2~15:/a/b"`. Such a listing may go on below the horizon as long
    as no deletion was compacted since (`ChangeLog` checks). It takes no part
    in ordering or equality.
    """

    rev: int
    path: str | None = None
    floor: int | None = field(default=None, compare=False)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Cursor):
            return NotImplemented
        return _path_order_key(self) < _path_order_key(other)

    def __str__(self) -> str:
        rev = str(self.rev) if self.floor is None else f"{self.rev}~{self.floor}"
        return rev if self.path is None else f"{rev}:{self.path}"

    @classmethod
    def parse(cls, text: str | int | Cursor | None) -> Cursor:
        """Parse `"12"`, `"12:/path"`, `"12~15:/path"`, an int, or `None` (the very beginning)."""
        if text is None:
            return cls(0, None)
        if isinstance(text, Cursor):
            return text
        if isinstance(text, int):
            return cls(text, None)
        rev_text, sep, path = text.partition(":")
        rev_text, tilde, floor_text = rev_text.partition("~")
        try:
            rev = int(rev_text)
            floor = int(floor_text) if tilde else None
        except ValueError:
            raise ValueError(f"invalid cursor {text!r}: expected REV or REV:/PATH") from None
        if rev < 0 or (floor is not None and floor < 0) or (sep and not path.startswith("/")):
            raise ValueError(f"invalid cursor {text!r}: expected REV or REV:/PATH")
        return cls(rev, path if sep else None, floor)


def _path_order_key(cursor: Cursor) -> tuple[int, int, bytes]:
    # Paths order by their UTF-8 bytes everywhere (SQLite's BINARY collation does
    # the same), so the in-memory order and the SQL order can never disagree.
    if cursor.path is None:
        return (cursor.rev, 1, b"")
    return (cursor.rev, 0, cursor.path.encode("utf-8", "surrogatepass"))


@dataclass(slots=True, unsafe_hash=True)  # not frozen: a frozen __init__ of 17 fields is a third of a stat()
class Stat:
    kind: Kind
    mode: int  # full st_mode, file-type bits included, as os.stat gives it
    size: int
    mtime: float
    ctime: float
    ino: int
    nlink: int
    rev: int
    hash: str | None  # BLAKE3 hex of the whole content, files only
    target: str | None = None  # symlink target (lstat only)
    atime: float = 0.0
    mtime_ns: int = 0  # exact times, as os.stat_result's st_*_ns
    ctime_ns: int = 0
    atime_ns: int = 0
    uid: int = 0
    gid: int = 0
    rdev: int = 0  # device number of a char/block device node (os.makedev), else 0


@dataclass(slots=True, unsafe_hash=True)  # not frozen: frozen __init__ is 3x slower, and readdir/changes build thousands
class DirEntry:
    name: str
    kind: Kind
    size: int
    mtime: float
    ino: int = 0


@dataclass(frozen=True, slots=True)
class ChunkRef:
    hash: str
    size: int


@dataclass(slots=True, unsafe_hash=True)  # not frozen: frozen __init__ is 3x slower, and readdir/changes build thousands
class Change:
    """The current state of one path that changed after some cursor.

    `kind == "delete"` is a tombstone: the path no longer exists.
    """

    path: str
    kind: ChangeKind
    rev: int
    mode: int = 0
    mtime: float = 0.0
    size: int = 0
    hash: str | None = None
    chunks: tuple[tuple[str, int], ...] = ()
    target: str | None = None
    rdev: int = 0  # device nodes only

    @property
    def cursor(self) -> Cursor:
        return Cursor(self.rev, self.path)


@dataclass(slots=True, unsafe_hash=True)
class TimedChange(Change):
    """A directory or file entry to apply that sets its mtime too (wire field `set_mtime`; a file's
    only to a server listing `file_set_mtime`).

    An applied entry of a directory the store has changes its mode only, so a
    replica, whose directories' mtimes move with every file it writes, never
    moves the server's. A mount asks for it (utimensat of a directory, `tar -x`
    at its end: one HTTP `utime` per directory before); `vfs.sync` sets the
    mtime after the batch's other entries, as utimensat after the children's
    creation on a disk.
    """

    set_mtime: bool = True


@dataclass(frozen=True, slots=True)
class ChangePage:
    """One page of the change stream.

    `cursor` is where the next page starts. It can be ahead of the last entry
    (ignored or filtered paths still advance it), so readers persist this
    rather than the last entry's cursor.
    """

    entries: list[Change]
    cursor: Cursor
    more: bool


@dataclass(frozen=True, slots=True)
class Conflict:
    """An incoming entry that was not applied because the path changed here too."""

    path: str
    local_kind: str | None  # None when the path does not exist here
    local_rev: int
    local_hash: str | None
    remote_kind: str
    remote_rev: int
    remote_hash: str | None
    reason: str


@dataclass(slots=True)
class ApplyResult:
    applied: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    rev: int = 0  # the store's revision after the batch


@dataclass(frozen=True, slots=True)
class Version:
    """One recorded version of a file, as `history` lists it.

    `path` is the path the file had at that version (history follows a file
    across renames and hard links). `kind` "move" marks the file leaving
    `path` for `origin`; a file version recorded by a rename or a link names
    in `origin` the path the file came from. `author` is who the server said
    made the write (None for a local write or a store older than schema v4).
    """

    path: str
    rev: int
    kind: Kind | Literal["delete", "move"]
    size: int
    hash: str | None
    mtime: float
    author: str | None = None
    origin: str | None = None


@dataclass(frozen=True, slots=True)
class GcStats:
    chunks_removed: int
    bytes_removed: int
    chunks_kept: int
    versions_pruned: int


@dataclass(frozen=True, slots=True)
class GrepMatch:
    path: str
    line_number: int
    line: str
    context: tuple[str, ...] = ()
