"""Names: mkdir, symlink, link, rename, unlink, rmdir, rm, chmod, utime, stat, readdir.

Each method mirrors the Linux system call it is named after, errno for
errno; the differential test in tests/ holds it to that. Removing or
replacing a file records its deletion in `versions`; moving one records its
version at the new path.

    content, sync, fileobj  ->  namespace  ->  versions, db
"""

from __future__ import annotations

import errno
import time

from vfs import listing
from vfs.db import Db, Node, Resolved, Tx
from vfs.errors import fs_error
from vfs.paths import is_within, join, parent_of
from vfs.nodes import KIND_OF_IFMT
from vfs.schema import KIND_DIR, KIND_FILE, KIND_NAMES, KIND_SYMLINK, SPECIAL_KINDS
from vfs.types import DirEntry, Stat
from vfs.versions import Versions

# `dparent`, `dname`: a directory's own name, kept in its node too (schema v8, `vfs.tree`).
# The row written is built from these values and `lastrowid`, not read back with RETURNING (an
# ephemeral b-tree and pager per statement in SQLite: ~15 % of a create's instructions, callgrind).
_INSERT_NODE = (
    "INSERT INTO nodes(kind, mode, size, hash, chunks, mtime_ns, ctime_ns, atime_ns, uid, gid, nlink, target, rev, rdev, "
    "vrev, vauthor, dparent, dname, subdirs) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, 0)"
)
_INSERT_NODE_INO = (  # the same with the inode number given (see `Namespace.reserve_ino`)
    "INSERT INTO nodes(kind, mode, size, hash, chunks, mtime_ns, ctime_ns, atime_ns, uid, gid, nlink, target, rev, rdev, "
    "vrev, vauthor, dparent, dname, subdirs, ino) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, 0, ?)"
)
# `linked`: a name found by inode (a hard-linked file's; schema v7, `vfs.tree`)
_INSERT_NAME = "INSERT INTO dirents(parent, name, ino, linked) VALUES(?, ?, ?, ?)"
_SUBDIRS = "UPDATE nodes SET subdirs = subdirs + ? WHERE ino = ?"  # (usually folded into `Db.touch_dir`)
_SET_ATTRS = "UPDATE nodes SET mode = ?, uid = ?, gid = ?, atime_ns = ?, mtime_ns = ?, ctime_ns = ?, rev = ?, vrev = NULL WHERE ino = ?"
# A node took a new name: a directory keeps it in its row too.
_RENAMED = (
    f"UPDATE nodes SET ctime_ns = ?, rev = ?, vrev = ?, vauthor = ?, vorigin = ?, "
    f"dparent = CASE WHEN kind = {KIND_DIR} THEN ? END, dname = CASE WHEN kind = {KIND_DIR} THEN ? END WHERE ino = ?"
)


class Namespace:
    """The tree of names of one store: nodes, directory entries, metadata."""

    __slots__ = ("_db", "_last_ino", "_versions")

    def __init__(self, db: Db, versions: Versions):
        self._db = db
        self._versions = versions
        # The highest inode number handed out, once `reserve_ino` has been called
        # (None before): from then on every new node takes its number from here.
        self._last_ino: int | None = None

    def reserve_ino(self) -> int:
        """An inode number no node has or will get, for a node created later (`insert_node(ino=)`).

        Only for the store's exclusive writer (a local FUSE mount, `Workspace.reserve_ino`
        checks): the counter lives in this object, seeded from the highest number in
        the store, so a second writer could take the same number. Once reservations
        start, every insert takes its number from the counter: SQLite's own choice
        (the highest + 1) could be a number reserved but not inserted yet."""
        if self._last_ino is None:
            self._last_ino = self._db.conn.execute("SELECT coalesce(max(ino), 0) FROM nodes").fetchone()[0]
        self._last_ino += 1
        return self._last_ino

    # -- create ----------------------------------------------------------------

    def mkdir(self, path: str, *, parents: bool = False, exist_ok: bool = False, mode: int = 0o755) -> Stat | None:
        """mkdir(2) (`parents`: os.makedirs). The new directory's `Stat` (a FUSE mount
        answers the getattr that follows from it); None when it existed already."""
        with self._db.tx() as tx:
            if parents:
                return self.makedirs(tx, path, mode, exist_ok)
            return self._mkdir_one(tx, path, mode)

    def _mkdir_one(self, tx: Tx, path: str, mode: int) -> Stat:
        found = self._db.resolve(path, follow=False)
        if found.node is not None:
            raise fs_error(errno.EEXIST, path)
        return self._db.stat(self.insert_node(tx, found, KIND_DIR, mode & 0o7777))

    def makedirs(self, tx: Tx, path: str, mode: int, exist_ok: bool) -> Stat | None:
        """os.makedirs, step for step: missing ancestors get the default mode,
        only the leaf gets `mode`, and errors are the ones Python raises.
        The leaf's new `Stat`, None if it existed."""
        leaf = self._db.normalize(path)
        missing: list[str] = []
        probe = leaf
        while probe != "/" and not self.exists(parent_of(probe)):
            probe = parent_of(probe)
            missing.append(probe)
        for ancestor in reversed(missing):
            try:
                self._mkdir_one(tx, ancestor, 0o755)
            except FileExistsError:
                pass
            except OSError:
                if not self._db.is_dir(ancestor):
                    raise
        try:
            return self._mkdir_one(tx, leaf, mode)
        except OSError:
            if not exist_ok or not self._db.is_dir(leaf):
                raise
        return None

    def insert_node(
        self,
        tx: Tx,
        found: Resolved,
        kind: int,
        mode: int,
        *,
        target: str | None = None,
        mtime_ns: int | None = None,
        content: tuple[int, bytes | None, bytes] | None = None,
        rdev: int = 0,
        ino: int | None = None,
        created_ns: int | None = None,
        ctime_ns: int | None = None,
        atime_ns: int | None = None,
        pending: tuple[int, str | None] = (None, None),  # type: ignore[assignment]
    ) -> Node:
        """Insert a node and its name; log the new path; the row written (built here: no second read).

        The parent directory's mtime and ctime become the new node's ctime (one clock
        reading): a FUSE mount updates the parent's cached attributes from it.

        `content`: a file's (size, hash or None to derive, chunk list); `pending`: its
        version's (revision, author), kept in the node until superseded (`Versions.supersede`).
        `ino`: a number from `reserve_ino`. `created_ns`: when the node was made,
        for one committed later than that (a mount's file created at open, stored
        at close): its atime, default ctime, and its parent's times, which never
        move back (another entry may have changed the parent since)."""
        if found.parent_ino is None:
            raise fs_error(errno.EEXIST, "/")
        now = time.time_ns() if created_ns is None else created_ns
        uid, gid = self._db.owner
        size, digest, chunks = content if content is not None else (0, None, None)
        if ino is None and self._last_ino is not None:
            ino = self.reserve_ino()
        mtime_ns = now if mtime_ns is None else mtime_ns
        ctime_ns = now if ctime_ns is None else ctime_ns
        atime_ns = now if atime_ns is None else atime_ns
        rev = tx.rev
        values = (kind, mode, size, digest, chunks, mtime_ns, ctime_ns, atime_ns, uid, gid, target, rev,
                  rdev, *pending, *((found.parent_ino, found.name) if kind == KIND_DIR else (None, None)))  # fmt: skip
        if ino is None:
            ino = self._db.dml(_INSERT_NODE, values).lastrowid
        else:
            self._db.dml(_INSERT_NODE_INO, (*values, ino))
        node = Node(ino, kind, mode, size, mtime_ns, ctime_ns, 1, digest, chunks, target, rev, atime_ns, uid, gid, 0,
                    rdev, pending[0])  # the row as written (NODE_COLUMNS' order)
        self._db.dml(_INSERT_NAME, (found.parent_ino, found.name, ino, 0))
        gained = int(kind == KIND_DIR)  # the parent's subdirectory count (its link count: 2 + it)
        if created_ns is None:  # the parent's mtime and ctime become the node's ctime
            self._db.touch_dir(found.parent_ino, now=now, subdirs=(gained, 0))
        else:
            self._db.touch_dirs_since([(found.parent_ino, now)])
            if gained:
                self._db.dml(_SUBDIRS, (gained, found.parent_ino))
        self._db.log(tx, found.real, node.ino)
        return node

    def symlink(self, target: str, path: str) -> None:
        if "\x00" in target:
            raise fs_error(errno.EINVAL, path, "symlink target contains a NUL byte")
        if not target:
            raise fs_error(errno.ENOENT, path)
        if len(target.encode("utf-8")) >= 4096:
            raise fs_error(errno.ENAMETOOLONG, path)
        with self._db.tx() as tx:
            found = self._db.resolve(path, follow=False)
            if found.node is not None:
                raise fs_error(errno.EEXIST, path)
            self.insert_node(tx, found, KIND_SYMLINK, 0o777, target=target)

    def mknod(self, path: str, mode: int, rdev: int = 0) -> None:
        """mknod(2): a FIFO, socket, or char/block device node (`mode` carries its S_IF* type).

        A special file has no content in the store; what it is for (a pipe, a
        socket, a device) lives in the kernel of whoever opens it through a
        mount. Regular files and directories have their own calls (EINVAL
        here, as for an unknown type); `rdev` is kept for device nodes only.
        """
        kind = KIND_OF_IFMT.get(mode & 0o170000)
        if kind not in SPECIAL_KINDS:
            raise fs_error(errno.EINVAL, path, "mknod makes FIFOs, sockets and device nodes only")
        with self._db.tx() as tx:
            found = self._db.resolve(path, follow=False)
            if found.node is not None:
                raise fs_error(errno.EEXIST, path)
            device = rdev if KIND_NAMES[kind] in ("char", "block") else 0
            self.insert_node(tx, found, kind, mode & 0o7777, rdev=device)

    def readlink(self, path: str) -> str:
        node = self._db.existing(path, follow=False).node
        if node.kind != KIND_SYMLINK:
            raise fs_error(errno.EINVAL, path)
        return node.target

    def link(self, existing: str, new: str, *, at_ns: int | None = None) -> Stat:
        """link(2); the file's new `Stat` (its link count and ctime moved). Its ctime is
        the clock reading the new name's directory gets as mtime and ctime
        (`Workspace.dir_times_ns`). `at_ns`: when the link was made, for one stored
        later (a mount's pending file): neither time then moves back."""
        with self._db.tx() as tx:
            # link(2) on Linux does not follow a final symlink: it links the symlink itself.
            named = self._db.existing(existing, follow=False)
            source, found = named.node, self._db.resolve(new, follow=False)
            if found.node is not None:
                raise fs_error(errno.EEXIST, new)
            if source.kind == KIND_DIR:
                raise fs_error(errno.EPERM, existing)
            # Both names are found by inode from now on (`vfs.tree.paths_of`).
            self._db.dml(_INSERT_NAME, (found.parent_ino, found.name, source.ino, 1))
            self._db.dml(
                "UPDATE dirents SET linked = 1 WHERE parent = ? AND name = ?", (named.parent_ino, named.name)
            )
            now = time.time_ns() if at_ns is None else at_ns
            self._versions.supersede(tx, named.real, source)  # (a file with two names is recorded at once)
            s, ctime_ns = source, now if at_ns is None else max(now, source.ctime_ns)  # (the row read in this tx)
            node = Node(s.ino, s.kind, s.mode, s.size, s.mtime_ns, ctime_ns, s.nlink + 1, s.hash, s.chunks, s.target,
                        tx.rev, s.atime_ns, s.uid, s.gid, s.subdirs, s.rdev, None)  # fmt: skip
            self._db.dml("UPDATE nodes SET nlink = ?, ctime_ns = ?, rev = ?, vrev = NULL WHERE ino = ?",
                         (node.nlink, ctime_ns, tx.rev, s.ino))  # fmt: skip
            if at_ns is None:
                self._db.touch_dir(found.parent_ino, now=now)
            else:
                self._db.touch_dirs_since([(found.parent_ino, now)])
            self._db.log(tx, found.real, source.ino)
            if source.kind == KIND_FILE:
                self._versions.record_link(tx, named.real, found.real, source.ino)
            return self._db.stat(node)

    # -- metadata ----------------------------------------------------------------

    def chmod(self, path: str, mode: int) -> Stat:
        """chmod(2); the node's new `Stat` (what a caller would `stat` next)."""
        return self._update_node(path, follow=True, mode=mode & 0o7777)

    def chown(self, path: str, uid: int, gid: int, *, follow_symlinks: bool = True) -> Stat:
        """Change owner and group; -1 leaves either unchanged (as os.chown). The node's new `Stat`."""
        return self._update_node(path, follow=follow_symlinks, uid=uid, gid=gid)

    def utime(
        self,
        path: str,
        mtime: float | None = None,
        *,
        atime: float | None = None,
        ns: tuple[int, int] | None = None,
        follow_symlinks: bool = True,
    ) -> Stat:
        """Set modification (and access) times; no times at all means now, as os.utime. The new `Stat`."""
        if ns is not None:
            atime_ns, mtime_ns = ns
        elif mtime is None and atime is None:
            atime_ns = mtime_ns = time.time_ns()
        else:
            mtime_ns = None if mtime is None else _seconds_to_ns(mtime)
            atime_ns = None if atime is None else _seconds_to_ns(atime)
        return self.set_times(path, atime_ns=atime_ns, mtime_ns=mtime_ns, follow_symlinks=follow_symlinks)

    def set_times(
        self, path: str, *, atime_ns: int | None = None, mtime_ns: int | None = None, follow_symlinks: bool = True
    ) -> Stat:
        """utimensat(2): nanosecond times; None leaves that time as it is (UTIME_OMIT). The new `Stat`.

        OverflowError (as os.utime's) for a time the store cannot keep: it keeps int64
        nanoseconds, years 1678-2262.
        """
        for value in (atime_ns, mtime_ns):
            if value is not None and not -(2**63) <= value < 2**63:
                raise OverflowError(f"timestamp {value} ns out of range: the store keeps int64 nanoseconds "
                                    "(years 1678-2262)")
        return self._update_node(path, follow=follow_symlinks, atime_ns=atime_ns, mtime_ns=mtime_ns)

    def set_attrs(
        self, path: str, *, mode: int | None = None, uid: int = -1, gid: int = -1, atime_ns: int | None = None,
        mtime_ns: int | None = None, ctime_ns: int | None = None,
    ) -> Stat:
        """chmod, chown and utimensat of one node (never following a final symlink) as one
        change: a FUSE mount holds a directory's (`tar -x` sets all three at its end) and
        stores them together. `ctime_ns`: when the last of them was made (default now).
        The node's new `Stat`."""
        for value in (atime_ns, mtime_ns):
            if value is not None and not -(2**63) <= value < 2**63:
                raise OverflowError(f"timestamp {value} ns out of range")
        return self._update_node(path, follow=False, mode=None if mode is None else mode & 0o7777, uid=uid, gid=gid,
                                 atime_ns=atime_ns, mtime_ns=mtime_ns, ctime_ns=ctime_ns)  # fmt: skip

    def _update_node(self, path: str, *, follow: bool, mode: int | None = None, uid: int = -1, gid: int = -1,
                     atime_ns: int | None = None, mtime_ns: int | None = None, ctime_ns: int | None = None) -> Stat:
        """Change the metadata of the node at `path` (None, -1: unchanged): one revision, ctime
        moves (to `ctime_ns` when given: a change made earlier and stored now).

        Returns the row as written (built from the row read in this transaction, no RETURNING),
        as a `Stat`: a FUSE mount answers the getattr that follows every chmod/chown/utimens from it."""
        with self._db.tx() as tx:
            found = self._db.existing(path, follow=follow)
            self._versions.supersede(tx, found.real, found.node)  # a pending version keeps its mode and times
            o = found.node
            node = Node(o.ino, o.kind, o.mode if mode is None else mode, o.size, o.mtime_ns if mtime_ns is None else mtime_ns,
                        time.time_ns() if ctime_ns is None else ctime_ns, o.nlink, o.hash, o.chunks, o.target, tx.rev,
                        o.atime_ns if atime_ns is None else atime_ns, o.uid if uid < 0 else uid,
                        o.gid if gid < 0 else gid, o.subdirs, o.rdev, None)  # fmt: skip
            self._db.dml(_SET_ATTRS, (node.mode, node.uid, node.gid, node.atime_ns, node.mtime_ns,
                                      node.ctime_ns, tx.rev, o.ino))  # fmt: skip
            self._db.log_node(tx, o.ino, found.real, o.nlink)
            return self._db.stat(node)

    def stat(self, path: str) -> Stat:
        st = self._db.stat_path(path, follow=True)
        if st is None:
            raise fs_error(errno.ENOENT, path)
        return st

    def lstat(self, path: str) -> Stat:
        st = self._db.stat_path(path, follow=False)
        if st is None:
            raise fs_error(errno.ENOENT, path)
        return st

    def lstat_if_exists(self, path: str) -> Stat | None:
        """`lstat`, but None when the last component does not exist.

        For hot lookups that often miss (a third of the stat calls git makes
        through a FUSE mount are misses), where raising costs more than the
        lookup. A missing or non-directory parent still raises.
        """
        return self._db.stat_path(path, follow=False)

    def exists(self, path: str) -> bool:
        try:
            return self._db.resolve(path, follow=True).node is not None
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return False
            raise

    def readdir(self, path: str = "/", *, limit: int | None = None, offset: int = 0) -> list[DirEntry]:
        """The entries of a directory in name order (`limit` of them from `offset`).

        A whole listing is kept beside the warm stats (`vfs.statcache`, same
        validation, same memory bound); after a commit it is patched from the
        change log (`vfs.listing.current`). Pages are cut from a kept listing, or read alone."""
        token = self._db.cache_token()
        kept = token[1].get(("readdir", path)) if token is not None else None
        paged = limit is not None or offset
        if token is None or (kept is None and paged) or offset < 0 or (limit is not None and limit < 0):
            return listing.entries(self._db.conn, self._dir(path).node.ino, limit, offset)
        if kept.__class__ is not listing.Listing:  # none, or one read before a commit (`statcache.Stale`)
            found = self._dir(path)
            kept = listing.current(self._db.conn, found.node.ino, found.real, getattr(kept, "value", None))
            self._db.stats.put(token, ("readdir", path), kept, kept.weight, carry=True)
        return listing.build(kept.cols, limit, offset)

    def listdir(self, path: str = "/") -> list[str]:
        token = self._db.cache_token()
        kept = token[1].get(("readdir", path)) if token is not None else None
        if kept.__class__ is listing.Listing:
            return list(kept.cols[0])
        return listing.names(self._db.conn, self._dir(path).node.ino)

    def _dir(self, path: str) -> Resolved:
        found = self._db.existing(path, follow=True)
        if found.node.kind != KIND_DIR:
            raise fs_error(errno.ENOTDIR, path)
        return found

    # -- remove ------------------------------------------------------------------

    def unlink(self, path: str) -> None:
        with self._db.tx() as tx:
            found = self._db.existing(path, follow=False)
            if found.node.kind == KIND_DIR:
                raise fs_error(errno.EISDIR, path)
            self.remove_name(tx, found)

    def rmdir(self, path: str) -> None:
        with self._db.tx() as tx:
            found = self._db.existing(path, follow=False)
            if found.node.kind != KIND_DIR:
                raise fs_error(errno.ENOTDIR, path)
            if found.parent_ino is None:
                raise fs_error(errno.EBUSY, path)
            if self._has_children(found.node.ino):
                raise fs_error(errno.ENOTEMPTY, path)
            self.remove_name(tx, found)

    def rm(self, path: str, *, recursive: bool = False, force: bool = False) -> None:
        """Remove a file, symlink or (with `recursive`) a whole tree, like `rm -r[f]`."""
        if self._db.normalize(path) == "/":
            raise fs_error(errno.EPERM, path, "refusing to remove /")
        with self._db.tx() as tx:
            try:
                found = self._db.existing(path, follow=False)
            except (FileNotFoundError, NotADirectoryError):
                if force:  # as coreutils rm -f: "nonexistent" covers ENOTDIR too
                    return
                raise
            if found.node.kind == KIND_DIR:
                # As the reference (and `rm -d`): an empty directory goes without `recursive`.
                if not recursive and self._has_children(found.node.ino):
                    raise fs_error(errno.ENOTEMPTY, path)
                self.remove_tree(tx, found)
            else:
                self.remove_name(tx, found)

    def _has_children(self, dir_ino: int) -> bool:
        row = self._db.conn.execute("SELECT 1 FROM dirents WHERE parent = ? LIMIT 1", (dir_ino,)).fetchone()
        return row is not None

    def remove_name(self, tx: Tx, found: Resolved) -> None:
        """Drop one name; the node goes when its last name does. A node that keeps other
        names gets the parent's new times as its ctime (one clock reading: a FUSE mount
        updates the other names' cached stats from `Workspace.dir_times_ns`)."""
        node = found.node
        now = time.time_ns()
        self._db.dml("DELETE FROM dirents WHERE parent = ? AND name = ?", (found.parent_ino, found.name))
        if node.kind == KIND_FILE:
            self._versions.record_removal(tx, found.real, node)  # (while the node is there to read)
        self._drop_link(tx, node, now)
        self._db.touch_dir(found.parent_ino, now=now, subdirs=(-int(node.kind == KIND_DIR), 0))
        self._db.log(tx, found.real, None)
        if node.kind != KIND_FILE:  # the directory cache holds directories and paths resolved through symlinks, never files
            self._db.forget_directories()

    def _drop_link(self, tx: Tx, node: Node, now: int) -> None:
        if node.kind != KIND_DIR and node.nlink > 1:
            self._db.dml(
                "UPDATE nodes SET nlink = nlink - 1, ctime_ns = ?, rev = ? WHERE ino = ?", (now, tx.rev, node.ino)
            )
        else:
            self._db.dml("DELETE FROM nodes WHERE ino = ?", (node.ino,))

    def remove_tree(self, tx: Tx, found: Resolved) -> None:
        """Remove a directory and everything below it; a tombstone per path."""
        below = self._db.subtree(found.node.ino)
        tombstones = [(found.real, None)] + [(join(found.real, rel), None) for _, rel, _ in below]
        files = [(join(found.real, rel), ino) for ino, rel, kind in below if kind == KIND_FILE]
        self._versions.supersede_many(files, clear=False)  # (before their nodes go)
        inos = [found.node.ino] + [ino for ino, _, _ in below]
        self._db.conn.executemany("DELETE FROM dirents WHERE parent = ?", [(ino,) for ino in inos])
        self._db.dml("DELETE FROM dirents WHERE parent = ? AND name = ?", (found.parent_ino, found.name))
        # A file hard-linked from outside the tree keeps its other names.
        self._db.conn.executemany(
            "UPDATE nodes SET nlink = nlink - 1 WHERE ino = ? AND kind != ?", [(ino, KIND_DIR) for ino in inos]
        )
        self._db.conn.executemany(
            "DELETE FROM nodes WHERE ino = ? AND (kind = ? OR nlink <= 0)", [(ino, KIND_DIR) for ino in inos]
        )
        self._db.touch_dir(found.parent_ino, subdirs=(-1, 0))
        self._db.log_many(tx, tombstones)
        self._versions.record_deletion(tx, [path for path, _ in files])
        self._db.forget_directories()

    # -- rename ------------------------------------------------------------------

    def rename(self, src: str, dst: str, *, noreplace: bool = False, exchange: bool = False) -> None:
        """POSIX rename(2): atomic, replaces a file or an empty directory.

        `noreplace` and `exchange` are renameat2's RENAME_NOREPLACE (EEXIST
        if `dst` exists) and RENAME_EXCHANGE (swap two existing names).
        """
        if noreplace and exchange:
            raise fs_error(errno.EINVAL, src, "noreplace and exchange are exclusive")
        with self._db.tx() as tx:
            # As rename(2): both parent directories are resolved before the source's name is looked up.
            source = self._db.resolve(src, follow=False)
            target = self._db.resolve(dst, follow=False)
            if source.node is None:
                raise fs_error(errno.ENOENT, src)
            if source.parent_ino is None or target.parent_ino is None:
                raise fs_error(errno.EBUSY, src if source.parent_ino is None else dst)
            if noreplace and target.node is not None:
                raise fs_error(errno.EEXIST, dst)
            if exchange:
                self._exchange(tx, source, target, dst)
                return
            if source.real == target.real:
                return
            moving_dir = source.node.kind == KIND_DIR
            if moving_dir and is_within(target.real, source.real):
                raise fs_error(errno.EINVAL, dst)
            if target.node is not None and is_within(source.real, target.real):
                raise fs_error(errno.ENOTEMPTY, dst)
            if target.node is not None:
                if target.node.ino == source.node.ino:
                    return
                self._check_replace(source.node, target.node, dst)
            self._move(tx, source, target)

    def _exchange(self, tx: Tx, source: Resolved, target: Resolved, dst: str) -> None:
        """Swap two names in one transaction; both subtrees change paths."""
        if target.node is None:
            raise fs_error(errno.ENOENT, dst)
        if source.real == target.real or source.node.ino == target.node.ino:
            return
        if is_within(target.real, source.real) or is_within(source.real, target.real):
            raise fs_error(errno.EINVAL, dst)
        for found, other in ((source, target.node), (target, source.node)):
            linked = other.kind != KIND_DIR and other.nlink > 1  # (the flag goes with the inode: `vfs.tree`)
            self._db.dml(
                "UPDATE dirents SET ino = ?, linked = ? WHERE parent = ? AND name = ?",
                (other.ino, linked, found.parent_ino, found.name),
            )
        rows: list[tuple[str, int | None]] = []
        moves = ((source, target.real), (target, source.real))
        for found, _ in moves:  # every old path is gone ...
            rows += [(join(found.real, rel), None) for _, rel, _ in self._subtree_of(found.node)]
        for found, new_root in moves:  # ... unless the other side brings a node there
            rows.append((new_root, found.node.ino))
            rows += [(join(new_root, rel), ino) for ino, rel, _ in self._subtree_of(found.node)]
        self._versions.record_moves(tx, [move for found, new_root in moves for move in self._file_moves(found, new_root)])
        now = time.time_ns()
        for found, other in ((source, target), (target, source)):
            self._db.dml(
                _RENAMED, (now, tx.rev, None, None, None, other.parent_ino, other.name, found.node.ino)
            )  # `found`'s directory now holds `other`'s node:
            gained = int(other.node.kind == KIND_DIR) - int(found.node.kind == KIND_DIR)
            self._db.touch_dir(found.parent_ino, subdirs=(gained, 0))
        self._db.log_many(tx, rows)
        self._db.forget_directories()

    def _subtree_of(self, node: Node) -> list[tuple[int, str, int]]:
        return self._db.subtree(node.ino) if node.kind == KIND_DIR else []

    def _file_moves(self, found: Resolved, new_root: str) -> list[tuple[str, str, int]]:
        """(old path, new path, ino) of every file that moving `found` to `new_root` renames (history follows them)."""
        if found.node.kind == KIND_FILE:
            return [(found.real, new_root, found.node.ino)]
        return [
            (join(found.real, rel), join(new_root, rel), ino)
            for ino, rel, kind in self._subtree_of(found.node) if kind == KIND_FILE
        ]

    def _check_replace(self, moving: Node, replaced: Node, dst: str) -> None:
        if moving.kind == KIND_DIR and replaced.kind != KIND_DIR:
            raise fs_error(errno.ENOTDIR, dst)
        if moving.kind != KIND_DIR and replaced.kind == KIND_DIR:
            raise fs_error(errno.EISDIR, dst)
        if replaced.kind == KIND_DIR and self._has_children(replaced.ino):
            raise fs_error(errno.ENOTEMPTY, dst)

    def _move(self, tx: Tx, source: Resolved, target: Resolved) -> None:
        """Re-point one dirent; log every old path as gone and every new path as live."""
        node = source.node
        now = time.time_ns()  # (one reading: the moved node's ctime, a replaced node's, both directories')
        if target.node is not None:
            self._db.dml("DELETE FROM dirents WHERE parent = ? AND name = ?", (target.parent_ino, target.name))
            if target.node.kind == KIND_FILE:
                self._versions.record_removal(tx, target.real, target.node)
            self._drop_link(tx, target.node, now)
        self._db.dml(
            "UPDATE dirents SET parent = ?, name = ? WHERE parent = ? AND name = ?",
            (target.parent_ino, target.name, source.parent_ino, source.name),
        )
        # A file with one name: its arrival stays pending in its node, as a new file's content does.
        single = node.kind == KIND_FILE and node.nlink == 1
        if single:  # (its pending version recorded and its departure marked: one statement)
            pending = self._versions.record_departure(tx, source.real, target.real, node)
        else:
            self._versions.supersede(tx, source.real, node)  # (a directory has none; its files: `record_moves`)
            pending = (None, None, None)
        self._db.dml(_RENAMED, (now, tx.rev, *pending, target.parent_ino, target.name, node.ino))
        moved = int(node.kind == KIND_DIR)
        replaced = int(target.node is not None and target.node.kind == KIND_DIR)
        self._db.touch_dir(source.parent_ino, target.parent_ino, now=now, subdirs=(-moved, moved - replaced))
        rows: list[tuple[str, int | None]] = [(source.real, None), (target.real, node.ino)]
        if node.kind == KIND_DIR:
            for ino, rel, _ in self._db.subtree(node.ino):
                rows.append((join(source.real, rel), None))
                rows.append((join(target.real, rel), ino))
        if not single:
            self._versions.record_moves(tx, self._file_moves(source, target.real), superseded=node.kind == KIND_FILE)
        self._db.log_many(tx, rows)
        if node.kind != KIND_FILE or (target.node is not None and target.node.kind != KIND_FILE):
            self._db.forget_directories()  # it holds directories and symlink resolutions, never files


def _seconds_to_ns(seconds: float) -> int:
    """Seconds as nanoseconds; ValueError for NaN and OverflowError past int64, as os.utime raises."""
    if seconds != seconds:
        raise ValueError("Invalid value NaN (not a number)")
    if not -9.2e9 < seconds < 9.2e9:
        raise OverflowError(f"timestamp {seconds} s out of range: the store keeps int64 nanoseconds "
                            "(years 1678-2262)")
    return round(seconds * 1e9)
