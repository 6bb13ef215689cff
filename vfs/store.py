"""`Workspace`: the store, assembled from one mixin per concern.

- `vfs.core`       connection, transactions, revisions, path resolution
- `vfs.namespace`  names: mkdir, link, symlink, rename, remove, stat, readdir
- `vfs.content`    bytes: write, read, positional write, truncate, copy
- `vfs.history`    past versions, restore, garbage collection
- `vfs.changelog`  the change stream and cursors
- `vfs.sync`       object exchange and conflict-aware apply
- `vfs.search`     walk, find, ls, grep, du
"""

from __future__ import annotations

from vfs.fileobj import open_file
from vfs.search import SearchOps
from vfs.sync import SyncOps


class Workspace(SyncOps, SearchOps):
    """One workspace: a SQLite file holding a whole filesystem and its change log.

    Not thread-safe: use one Workspace object per thread (several may open
    the same file; SQLite's WAL lets readers run beside the writer).
    """

    def open(self, path: str, mode: str = "rb"):
        """A binary file object (`rb`, `wb`, `ab`, `xb`, `r+b` and `+` variants)."""
        return open_file(self, path, mode)

    def __repr__(self) -> str:
        return f"<vfs.Workspace {self.path!r}>"
