"""Node rows and the `Stat` users see of them.

A node row becomes a `Stat` here. A file whose content id a positional
write left to derive (NULL `hash`, see `Content._commit_edit`) becomes a
`DerivedHashStat`, whose `hash` is computed on first access by a callable
the store passes in (`Db.stat`), so a caller that never reads the id never
pays for hashing the file.

    db  ->  nodes
"""

from __future__ import annotations

import stat as stat_mod
from collections.abc import Callable
from typing import NamedTuple

from vfs.schema import (
    KIND_BLOCK, KIND_CHAR, KIND_DIR, KIND_FIFO, KIND_FILE, KIND_NAMES, KIND_SOCKET, KIND_SYMLINK,
)  # fmt: skip
from vfs.types import Stat

S_IFMT = {
    KIND_FILE: stat_mod.S_IFREG, KIND_DIR: stat_mod.S_IFDIR, KIND_SYMLINK: stat_mod.S_IFLNK,
    KIND_FIFO: stat_mod.S_IFIFO, KIND_SOCKET: stat_mod.S_IFSOCK, KIND_CHAR: stat_mod.S_IFCHR, KIND_BLOCK: stat_mod.S_IFBLK,
}  # fmt: skip
KIND_OF_IFMT = {ifmt: kind for kind, ifmt in S_IFMT.items()}


class Node(NamedTuple):
    ino: int
    kind: int
    mode: int
    size: int
    mtime_ns: int
    ctime_ns: int
    nlink: int
    hash: bytes | None
    chunks: bytes | None
    target: str | None
    rev: int
    atime_ns: int
    uid: int
    gid: int
    subdirs: int
    rdev: int
    vrev: int | None = None  # the revision of content not yet recorded in `versions` (`Versions.supersede`)


def stat_of(node: Node) -> Stat:
    """The public `Stat` of a node row whose content id is known (see `Db.stat` for any node)."""
    digest = node.hash
    if digest is None and node.kind == KIND_FILE:
        raise RuntimeError(f"inode {node.ino}: content id not derived yet; use Db.stat")
    return Stat(*_stat_args(node, None if digest is None else digest.hex()))


def stat_fields(node: Node) -> tuple | None:
    """`Stat(*stat_fields(node))` is `stat_of(node)`; None while the node's content id is still to derive."""
    digest = node.hash
    if digest is None and node.kind == KIND_FILE:
        return None
    return _stat_args(node, None if digest is None else digest.hex())


def make_stat(cls: type[Stat], node: Node, hash_hex: str | None, **extra) -> Stat:
    """A `Stat` (or subclass) of a node with the given content id and extra constructor arguments."""
    return cls(*_stat_args(node, hash_hex), **extra)


def _stat_args(node: Node, hash_hex: str | None) -> tuple:
    # Positional, in `Stat`'s field order: a keyword call of 16 fields costs
    # a microsecond more, a tenth of a warm stat.
    kind, mtime_ns, ctime_ns, atime_ns = node.kind, node.mtime_ns, node.ctime_ns, node.atime_ns
    nlink, size = node.nlink, node.size
    if kind == KIND_DIR:
        nlink = 2 + node.subdirs
    elif kind == KIND_SYMLINK:
        size = len(node.target.encode("utf-8"))  # type: ignore[union-attr]
    return (
        KIND_NAMES[kind], S_IFMT[kind] | node.mode, size, mtime_ns / 1e9, ctime_ns / 1e9, node.ino, nlink,
        node.rev, hash_hex, node.target, atime_ns / 1e9, mtime_ns, ctime_ns, atime_ns, node.uid, node.gid, node.rdev,
    )  # fmt: skip


_STAT_ORDER = ("kind", "mode", "size", "mtime", "ctime", "ino", "nlink", "rev", "hash", "target",
               "atime", "mtime_ns", "ctime_ns", "atime_ns", "uid", "gid", "rdev")  # fmt: skip
if tuple(Stat.__dataclass_fields__) != _STAT_ORDER:
    raise ImportError("vfs.types.Stat's fields changed: update vfs.nodes._stat_args to match")


_HASH_SLOT = Stat.__dict__["hash"]  # the slot under Stat.hash, for the subclass below


class DerivedHashStat(Stat):
    """A `Stat` of a file whose content id a positional write left to derive.

    `write_range` keeps per-chunk hashes but does not re-read the whole file
    to hash it; the exact BLAKE3 of the content is derived from the chunk
    list the first time anyone reads `hash` (then kept, in the node row too).
    Equal to a plain `Stat` with the same fields. The store derives every
    one still alive when it closes, so `hash` stays readable afterwards.
    """

    __slots__ = ("_derive", "__weakref__")

    def __init__(self, *args, derive: Callable[[], bytes] | None = None, **fields) -> None:
        self._derive = derive
        super().__init__(*args, **fields)

    @property  # type: ignore[override]
    def hash(self) -> str | None:
        value = _HASH_SLOT.__get__(self)
        derive = getattr(self, "_derive", None)
        if value is None and derive is not None:
            value = derive().hex()
            _HASH_SLOT.__set__(self, value)
            self._derive = None
        return value

    @hash.setter
    def hash(self, value: str | None) -> None:
        _HASH_SLOT.__set__(self, value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Stat):
            return NotImplemented
        return _fields_of(self) == _fields_of(other)

    __hash__ = Stat.__hash__

    def __reduce__(self) -> tuple:
        """Pickled and copied as the plain `Stat` it equals (its id derived first)."""
        return (Stat, _fields_of(self))


def _fields_of(st: Stat) -> tuple:
    return tuple(getattr(st, name) for name in Stat.__dataclass_fields__)
