"""vfs: the embeddable SQLite workspace filesystem.

`Workspace` is the store; the value types and errors below are what its
methods take and return. Nothing in this package does network I/O.
`Workspace` is imported on first use: `vfs.wire`, the value types and the
errors load without the store and sqlite3 (what clients and the CLI import).
"""

from typing import TYPE_CHECKING, Any

from vfs.errors import BadObject, CursorTooOld, MissingObjects, PreconditionFailed, StoreBusy, fs_error
from vfs.types import (
    ApplyResult,
    Change,
    TimedChange,
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
    "TimedChange",
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

if TYPE_CHECKING:
    from vfs.workspace import Workspace


def __getattr__(name: str) -> Any:
    if name == "Workspace":
        from vfs.workspace import Workspace

        return Workspace
    raise AttributeError(f"module 'vfs' has no attribute {name!r}")
