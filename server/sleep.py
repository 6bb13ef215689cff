"""What a quiet workspace keeps, and what gives it back (`WorkspaceHandle.sleep`).

A workspace that stays open because someone subscribes, but sees no
operation for a while, closes every SQLite connection (about seven
descriptors and ~400 KiB of page cache and schema each time) and keeps one
shared store lock, so a local mount still cannot take it. Its files are
stamped when it closes them: an outside commit changes the stamp, its own
closing checkpoint does not, so the outside-commit watch wakes it only for
news. Memory freed by closing goes back to the system (`release_memory`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path
from typing import Any


def files_stamp(path: Path) -> tuple[Any, ...]:
    """What the store's files (the database and its WAL) look like now: size, mtime, inode."""
    stamp: list[Any] = []
    for suffix in ("", "-wal"):
        try:
            st = os.stat(f"{path}{suffix}")
            stamp.append((st.st_size, st.st_mtime_ns, st.st_ino))
        except FileNotFoundError:
            stamp.append(None)
    return tuple(stamp)


def release_memory() -> None:
    """Give freed heap back to the system (glibc keeps it otherwise: RSS stayed at its peak after
    1,000 stores closed). A no-op where there is no `malloc_trim`."""
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
