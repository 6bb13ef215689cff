"""vfs: the embeddable SQLite workspace filesystem.

`Workspace` is the store; the value types and errors below are what its
methods take and return. Nothing in this package does network I/O.
"""

from vfs.errors import BadObject, CursorTooOld, MissingObjects, PreconditionFailed, StoreBusy, fs_error
from vfs.workspace import Workspace
from vfs.types import (
    ApplyResult,
    Change,
    ChangePage,
    ChunkRef,
    Conflict,
    Cursor,
    DirEntry,
    GcStats,
    GrepMatch,
    Stat,
    Version,
)

__all__ = [
    "ApplyResult",
    "BadObject",
    "Change",
    "ChangePage",
    "ChunkRef",
    "Conflict",
    "Cursor",
    "CursorTooOld",
    "DirEntry",
    "GcStats",
    "GrepMatch",
    "MissingObjects",
    "PreconditionFailed",
    "Stat",
    "StoreBusy",
    "Version",
    "Workspace",
    "fs_error",
]
