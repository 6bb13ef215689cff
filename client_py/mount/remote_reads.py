"""Remote mode: metadata answered from the in-memory index (`RemoteBackend`'s reads).

`IndexReads` holds the `RemoteBackend` methods that answer `stat`, `lstat`,
`readdir`, `readlink` and `find` from the index (`index.py`) with the owners
and exact times kept in the session (`attrs.py`), without a round trip. They
run for every getattr the kernel does not answer itself (git's add + commit
of Django: ~130,000, more than half of them absent names), so the common
cases (a FUSE path, which is normal already; an absent name in a known
directory) skip normalising and building errors. A mixin, like
`remote_queued.QueuedChanges`: it uses the backend's index, lock and overlay.
"""

from __future__ import annotations

import errno
import stat as stat_mod

from vfs.errors import fs_error
from vfs.paths import NAME_MAX, normalize
from vfs.types import Change, DirEntry, Stat

IFMT = {
    "file": stat_mod.S_IFREG, "dir": stat_mod.S_IFDIR, "symlink": stat_mod.S_IFLNK, "fifo": stat_mod.S_IFIFO,
    "socket": stat_mod.S_IFSOCK, "char": stat_mod.S_IFCHR, "block": stat_mod.S_IFBLK,
}  # fmt: skip


class IndexReads:
    """The metadata reads of `RemoteBackend` (see the module docstring)."""

    def _entry(self, path: str, *, follow: bool) -> tuple[str, Change]:
        path = normalize(path)
        with self._lock:
            for _ in range(41):
                change = self.index.entries.get(path)
                if change is None:
                    parent = path.rpartition("/")[0] or "/"
                    parent_change = self.index.entries.get(parent)
                    code = errno.ENOTDIR if parent_change is not None and parent_change.kind != "dir" else errno.ENOENT
                    raise fs_error(code, path)
                if change.kind != "symlink" or not follow:
                    return path, change
                target = change.target or ""
                path = normalize(target if target.startswith("/") else f"{path.rpartition('/')[0]}/{target}")
        raise fs_error(errno.ELOOP, path)

    def _stat(self, path: str, change: Change) -> Stat:
        """The `Stat` of an index entry (every getattr of a name the kernel does not hold: git's
        add + commit of Django asks ~130,000 times), built with as few lookups as it takes."""
        index, kind, mtime = self.index, change.kind, change.mtime
        ino = index.inos[path]
        if kind == "dir":
            nlink, size = 2 + index.subdirs.get(path, 0), 0
        else:
            names = index.aliases.get(ino) if index.aliases else None
            nlink = len(names) if names else 1
            size = len((change.target or "").encode()) if kind == "symlink" else change.size
        mtime_ns = store_ns = round(mtime * 1e9)
        extra = self.attrs.get(ino)  # (owners and exact times set here: `attrs.py`)
        if extra is None:
            uid, gid, atime_ns, ctime_ns = self.attrs.default_uid, self.attrs.default_gid, mtime_ns, mtime_ns
        else:
            uid, gid = extra.uid, extra.gid
            if extra.mtime_ns is not None and extra.mtime_float == mtime:
                mtime_ns = extra.mtime_ns
            atime_ns = mtime_ns if extra.atime_ns is None else extra.atime_ns
            ctime_ns = max(store_ns, extra.ctime_ns)
        # No setuid/setgid bit from a server (the mount is nosuid, but `cp -a` out of it as root
        # would keep one); the sticky bit stays: sticky directories restrict rename and unlink.
        # (positional: Stat's field order)
        return Stat(kind, IFMT[kind] | (change.mode & 0o1777), size, mtime, mtime, ino, nlink, change.rev, change.hash,
                    change.target, atime_ns / 1e9, mtime_ns, ctime_ns, atime_ns, uid, gid, change.rdev)

    def lstat(self, path: str) -> Stat:
        with self._lock:
            change = self.index.entries.get(path)  # (FUSE's paths are normal already: the index's keys)
            if change is not None:
                return self._stat(path, change)
            real, change = self._entry(path, follow=False)
            return self._stat(real, change)

    def lstat_if_exists(self, path: str) -> Stat | None:
        """As `vfs.Workspace.lstat_if_exists` (here a miss costs no more than a hit)."""
        with self._lock:
            change = self.index.entries.get(path)
            if change is not None:
                return self._stat(path, change)
            if self._absent(path):
                return None
        try:
            return self.lstat(path)
        except FileNotFoundError:
            return None

    def _absent(self, path: str) -> bool:
        """Is `path`, a normal path as FUSE hands it, a valid name absent from a directory the
        index has? What `lstat` would answer with ENOENT, without building the error: git asks
        for absent names ~70,000 times in Django's add + commit (objects it may already have,
        `.gitignore` in every directory), and the kernel keeps no absent name in remote mode."""
        parent, _, name = path.rpartition("/")
        above = self.index.entries.get(parent or "/")
        if above is None or above.kind != "dir" or name in ("", ".", "..") or "//" in path:
            return False
        try:
            return len(name.encode()) <= NAME_MAX
        except UnicodeEncodeError:
            return False  # (the slow path names the error)

    def stat(self, path: str) -> Stat:
        with self._lock:
            real, change = self._entry(path, follow=True)
            return self._stat(real, change)

    def exists(self, path: str) -> bool:
        try:
            self.stat(path)
            return True
        except OSError:
            return False

    def readdir(self, path: str = "/") -> list[DirEntry]:
        with self._lock:
            real, change = self._entry(path, follow=True)
            if change.kind != "dir":
                raise fs_error(errno.ENOTDIR, path)
            out = []
            base, inos = real.rstrip("/"), self.index.inos
            for name in sorted(self.index.children.get(real, ()), key=lambda n: n.encode()):
                path = f"{base}/{name}"
                child = self.index.entries[path]
                # (with its inode number: the mount's listing needs one per entry, else a stat each)
                out.append(DirEntry(name, child.kind, child.size, child.mtime, inos.get(path, 0)))
            return out

    def readlink(self, path: str) -> str:
        _, change = self._entry(path, follow=False)
        if change.kind != "symlink":
            raise fs_error(errno.EINVAL, path)
        return change.target or ""

    def find(self, path: str = "/", pattern: str | None = None, *, kind: str | None = None) -> list[str]:
        with self._lock:
            return sorted(p for p, c in self.index.entries.items() if p != "/" and (kind is None or c.kind == kind))
