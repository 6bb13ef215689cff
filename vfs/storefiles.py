"""The files one store is made of, and removing them all.

A store is more than its SQLite file: the WAL and shared-memory files beside
it, the lock file a local mount takes (`vfs/storelock.py`), and the pack
files that hold big chunks (`vfs/packs.py`). Whoever deletes or replaces a
store (the server deleting a workspace, a cluster node restoring one)
removes them through here, so a new kind of file is never left behind.
"""

from __future__ import annotations

import os
import shutil

from vfs import shmmap
from vfs.packs import pack_dir

SIBLING_SUFFIXES = ("-wal", "-shm", "-lock")


def remove_store(path: str | os.PathLike[str], *, lock_file: bool = True) -> None:
    """Delete the store at `path` and every file that belongs to it (missing ones are fine).

    `lock_file=False` keeps the `-lock` file, for a caller that holds that lock while it deletes."""
    path = os.fspath(path)
    for suffix in ("", *SIBLING_SUFFIXES):
        if suffix == "-lock" and not lock_file:
            continue
        try:
            os.unlink(path + suffix)
        except FileNotFoundError:
            pass
    shutil.rmtree(pack_dir(path), ignore_errors=True)
    shmmap.release_unlinked()  # the -shm just unlinked, if this process kept it (vfs/shmmap.py)
