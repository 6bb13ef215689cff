"""Directory listings of the FUSE operations (`WsfsOperations` mixes this in; it shares that
class's state: the store, the metadata cache, `_dir_inos`).

With `use_ino` (and on the low-level API) the kernel needs each entry's inode number and
type. A local store's listing is answered from the metadata cache when it knows the
directory's every name and each one's stat (`_cached_entries`), else from the store.
"""

from __future__ import annotations

import stat as stat_mod

from client_py.mount.fuseop import fuse_op

IFMT = {
    "file": stat_mod.S_IFREG, "dir": stat_mod.S_IFDIR, "symlink": stat_mod.S_IFLNK, "fifo": stat_mod.S_IFIFO,
    "socket": stat_mod.S_IFSOCK, "char": stat_mod.S_IFCHR, "block": stat_mod.S_IFBLK,
}  # fmt: skip


class ListingOps:
    """readdir, and the inode numbers of directories a listing names ("." and "..")."""

    @fuse_op
    def readdir(self, path: str, fh: int) -> list:
        return self.cache.listing(path, self._listing)

    def _listing(self, path: str) -> list:
        kinds = IFMT
        parent = path.rstrip("/").rpartition("/")[0] or "/"
        entries: list = [
            (".", {"st_mode": stat_mod.S_IFDIR, "st_ino": self._dir_ino(path)}, 0),
            ("..", {"st_mode": stat_mod.S_IFDIR, "st_ino": self._dir_ino(parent)}, 0),
        ]
        base = path.rstrip("/")
        known = self._cached_entries(path, base)
        if known is not None:
            entries.extend(known)
            return entries
        for entry in self.ws.readdir(path):
            # With use_ino the kernel needs each entry's inode number (0 would hide it).
            ino = entry.ino or self.ws.lstat(f"{base}/{entry.name}").ino
            entries.append((entry.name, {"st_mode": kinds[entry.kind], "st_ino": ino}, 0))
            if entry.kind == "dir" and self._dir_inos is not None:
                self._dir_inos[f"{base}/{entry.name}"] = ino
        return entries

    def _cached_entries(self, path: str, base: str) -> list | None:
        """A local store's listing from the metadata cache, when it knows every name of the
        directory (`MetaCache.names`: made here, or listed) and each one's stat; None otherwise.
        After an untar through the mount it knows them all: `git add` then lists the tree's
        3,236 directories without the store (its readdir resolved each path and decoded the
        kept listing, ~100 us a directory)."""
        names = self.cache.names.get(path)
        if names is None:
            return None
        stats, dir_inos, out = self.cache.stats, self._dir_inos, []
        for name in sorted(names):  # (the store's order: by name)
            st = stats.get(f"{base}/{name}")
            if st is None:
                return None
            mode = st.mode & 0o170000
            out.append((name, {"st_mode": mode, "st_ino": st.ino}, 0))
            if mode == stat_mod.S_IFDIR and dir_inos is not None:
                dir_inos[f"{base}/{name}"] = st.ino
        return out

    def _dir_ino(self, path: str) -> int:
        """A directory's inode number; cached for a local store (names of dirs
        change only by rename/rmdir through this mount, which clear the cache)."""
        if self._dir_inos is None:
            return self.ws.stat(path).ino
        ino = self._dir_inos.get(path)
        if ino is None:
            ino = self._dir_inos[path] = self.ws.stat(path).ino
        return ino

    def _forget_dirs(self) -> None:
        if self._dir_inos:
            self._dir_inos.clear()
