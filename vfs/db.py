"""The store's core: connection, transactions, revisions, path resolution.

Every other store module works through one `Db`; none of them opens a
transaction, allocates a revision or resolves a path any other way.

Every mutation runs inside `Db.tx()`: one SQLite transaction that takes the
next revision on its first write and commits (or rolls back) as a whole.
Listeners hear about a revision only after it is durable in the WAL.

Where it sits (each module calls only the ones below it):

    workspace  (the facade: `vfs.Workspace`)
    search  sync  history  fileobj
    content
    namespace  changelog
    versions
    db         <- this module (with nodes, txstate, schema, storelock, chunks, paths; content also reads through chunkreader)
"""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import blake3

from vfs import checkpointer as ckpt
from vfs import locking, schema, storelock, tree
from vfs.chunks import EMPTY_HASH, unpack
from vfs.chunkstore import BackendFactory, ChunkBackend, open_backend
from vfs.errors import fs_error
from vfs.paths import PATH_MAX, SYMLINK_MAX_HOPS, join, normalize, split
from vfs.nodes import DerivedHashStat, Node, make_stat, stat_fields, stat_of
from vfs.schema import KIND_DIR, KIND_FILE, KIND_SYMLINK, ROOT_INO
from vfs.statcache import StatCache
from vfs.txstate import CURRENT_REV_SQL, Transaction, Tx
from vfs.types import Stat

__all__ = ["CURRENT_REV_SQL", "Db", "Node", "Resolved", "Tx", "stat_of"]  # from vfs.nodes and vfs.txstate

NODE_COLUMNS = (
    "n.ino, n.kind, n.mode, n.size, n.mtime_ns, n.ctime_ns, n.nlink, n.hash, n.chunks, n.target, n.rev, "
    "n.atime_ns, n.uid, n.gid, n.subdirs, n.rdev, n.vrev"
)

_DERIVED_KEPT = 64  # content ids remembered per connection, by chunk list

_CHECKED_LOOKUP = (
    f"SELECT {NODE_COLUMNS}, (SELECT data_version FROM pragma_data_version) "
    "FROM dirents d JOIN nodes n ON n.ino = d.ino WHERE d.parent = ? AND d.name = ?"
)

_UPSERT_LOG = (
    "INSERT INTO pathlog(path, rev, ino) VALUES(?, ?, ?) "
    "ON CONFLICT(path) DO UPDATE SET rev = excluded.rev, ino = excluded.ino"
)


_TOUCH = "UPDATE nodes SET mtime_ns = ?, ctime_ns = ?, subdirs = subdirs + ? WHERE ino = ?"

_MISSING = object()  # a cached lookup that found no node


class _CacheMoved(Exception):
    """Another connection committed: the directory cache was dropped, resolve again."""


@dataclass(slots=True)
class Resolved:
    """Where a path lands: its parent directory, final name, real path and node."""

    parent_ino: int | None  # None only for `/`
    name: str
    real: str  # the path with every followed symlink replaced by its target
    node: Node | None


class Db:
    """One store file: its connection, the write transaction, revisions and path resolution."""

    __slots__ = (
        "path",
        "readonly",
        "conn",
        "chunks",
        "owner",
        "path_max",
        "_lock_fd",
        "_tx_state",
        "_savepoints",
        "_listeners",
        "_listeners_lock",
        "_undetermined",
        "_derived",
        "_dircache",
        "_data_version",
        "_last_rev",
        "stats",
        "dir_times_ns",
        "checkpointer",
        "dml",
    )

    def __init__(
        self,
        path: str | os.PathLike[str] = ":memory:",
        *,
        readonly: bool = False,
        exclusive: bool = False,
        path_max: int | None = PATH_MAX,
        chunk_backend: str | BackendFactory | None = None,
        checkpoints: bool | str = True,
    ):
        """`exclusive`: be the store's only writer (a local FUSE mount; see
        `vfs.storelock`). Writable opens otherwise share the store; a
        conflicting open raises `StoreBusy`. Read-only opens never conflict.
        `path_max`: the limit on a whole path (None: names only; see `paths.normalize`).
        `chunk_backend`: where chunk bytes go (`vfs.chunkstore`; None: the store's own choice).
        `checkpoints`: True (or "commit"): SQLite's own, inside the COMMIT that fills the WAL;
        "background": on a thread of their own (`vfs.checkpointer`), so no committing call waits;
        False (or "none"): left to another process (a cluster's Litestream)."""
        if checkpoints not in (True, False, "commit", "background", "none"):
            raise ValueError(f"checkpoints: True, False, 'commit', 'background' or 'none', not {checkpoints!r}")
        self.path = os.fspath(path)
        self.path_max = path_max
        self.readonly = readonly
        self._lock_fd: int | None = None
        if not readonly and self.path not in ("", ":memory:") and not self.path.startswith("file:"):
            self._lock_fd = storelock.acquire(self.path, exclusive=exclusive)
        try:
            self.conn, created = self._connect()
            if checkpoints in (False, "none"):
                self.conn.execute("PRAGMA wal_autocheckpoint=0")
            self.chunks: ChunkBackend = open_backend(
                self.conn, self.path, readonly=readonly, created=created, requested=chunk_backend
            )
        except BaseException:
            if self._lock_fd is not None:
                storelock.release(self._lock_fd)
            raise
        wal = self.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        self.stats = StatCache(self.path if wal else "")  # warm stats, see stat_node
        self.checkpointer: ckpt.Checkpointer | None = None
        if checkpoints == "background" and wal and not readonly:
            self.conn.execute(f"PRAGMA wal_autocheckpoint={ckpt.LIMIT}")  # the backstop, see vfs.checkpointer
            self.checkpointer = ckpt.Checkpointer(self.path, self.stats.header)
        self._tx_state: Tx | None = None
        # INSERT/UPDATE/DELETE of our transaction run on one kept cursor (`lastrowid`, `rowcount` read
        # at once): `conn.execute` makes and frees a cursor per statement (~1.3k instructions, callgrind).
        # No SELECT: a result left half-read would stay open, and reads may come from other threads.
        self.dml = self.conn.cursor().execute
        self._savepoints = 0
        self._listeners: list[Callable[[int], None]] = []
        self._listeners_lock = threading.Lock()
        # Stats handed out with a content id still to derive (see `stat`).
        self._derived: dict[bytes, bytes] = {}  # BLAKE3 of a packed chunk list -> content id (see derive_hash)
        # Keyed by id(): hashing a Stat would read (and so derive) its `hash`.
        self._undetermined: weakref.WeakValueDictionary[int, DerivedHashStat] = weakref.WeakValueDictionary()
        # Directory-resolution cache: lexical dir path -> (ino, real path).
        # Cleared whenever a name is removed or replaced, and when another
        # connection commits (PRAGMA data_version moves).
        self._dircache: dict[str, tuple[int, str]] = {}
        self._data_version = -1
        # The revision our last commit made, valid while data_version has not
        # moved (no other connection committed since): 0 when unknown.
        self._last_rev = 0
        self.dir_times_ns = 0  # the mtime/ctime `touch_dir` last stamped (see Workspace.dir_times_ns)
        # Owner of nodes this store creates; a FUSE mount sets it per call
        # (`as_owner`) to the uid/gid of the calling process.
        self.owner: tuple[int, int] = (os.getuid(), os.getgid())

    def _connect(self) -> tuple[sqlite3.Connection, bool]:
        if self.readonly and self.path != ":memory:":
            uri = f"file:{self.path}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            schema.upgrade_for_reading(conn, self.path)
        else:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        schema.configure(conn, readonly=self.readonly)
        created = not self.readonly and schema.migrate(conn) == 0
        return conn, created

    # -- lifecycle -------------------------------------------------------

    def close(self) -> None:
        if self.conn is not None:
            for pending in list(self._undetermined.values()):
                pending.hash  # derive while the chunks can still be read  # noqa: B018
            if self.checkpointer is not None:
                self.checkpointer.close()  # before ours, so the store's last connection is ours
            self.conn.close()
            self.chunks.close()
            self.conn = None  # type: ignore[assignment]
            self.stats.close()
        if self._lock_fd is not None:
            storelock.release(self._lock_fd)
            self._lock_fd = None

    @contextmanager
    def as_owner(self, uid: int, gid: int) -> Iterator[None]:
        """Nodes created inside the block belong to uid:gid."""
        previous, self.owner = self.owner, (uid, gid)
        try:
            yield
        finally:
            self.owner = previous

    # -- revisions and commit notification -------------------------------

    @property
    def rev(self) -> int:
        return int(self.conn.execute(CURRENT_REV_SQL).fetchone()[0])

    def on_commit(self, callback: Callable[[int], None]) -> Callable[[], None]:
        """Call `callback(rev)` after every commit that advanced the revision; returns the unsubscriber."""
        with self._listeners_lock:
            self._listeners.append(callback)

        def unsubscribe() -> None:
            with self._listeners_lock:
                if callback in self._listeners:
                    self._listeners.remove(callback)

        return unsubscribe

    def _notify(self, rev: int) -> None:
        with self._listeners_lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(rev)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """`tx()` for callers outside the store: they group mutations, they do not write SQL."""
        with self.tx():
            yield

    def tx(self) -> Transaction:
        """One write transaction (`with db.tx() as tx:`). A nested call runs in a SAVEPOINT
        of the outer one, so a call that fails inside `transaction()` leaves no trace."""
        return Transaction(self)

    def _begin(self) -> Tx:
        # BEGIN and COMMIT go through `locking.execute_retrying` only once they fail: the wrapper's
        # call and its delay tuple cost ~1 us of a ~11 us empty transaction (timeit).
        if self.readonly:
            raise fs_error(errno.EROFS, self.path, "workspace is read-only")
        try:
            self.dml("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            locking.retry_after(self.conn, "BEGIN IMMEDIATE", e, in_transaction=False, run=self.dml)
        self._refresh_cache()
        self.chunks.begin_write(self._data_version)  # (the version is now the one after our BEGIN)
        tx = self._tx_state = Tx(self.conn, self._last_rev)
        return tx

    def _commit(self, tx: Tx) -> None:
        chunks = self.chunks
        try:
            chunks.before_commit()  # bytes outside SQLite are durable before a commit names them
            try:
                self.dml("COMMIT")
            except sqlite3.OperationalError as e:
                locking.retry_after(self.conn, "COMMIT", e, in_transaction=True, run=self.dml)
        except BaseException:
            self._roll_back()
            raise
        self._tx_state = None
        chunks.after_transaction(committed=True)
        if self.checkpointer is not None:
            self.checkpointer.committed()
        # Our own commits do not move PRAGMA data_version (only other
        # connections' do), so the directory cache stays valid.
        rev = tx._rev  # (0: nothing written)
        if rev:
            self._last_rev = rev
            if self._listeners:  # (read without the lock: a listener added meanwhile hears the next commit)
                self._notify(rev)

    def _roll_back(self) -> None:
        self._tx_state = None
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        self.chunks.after_transaction(committed=False)
        self._dircache.clear()

    def _refresh_cache(self) -> bool:
        """Drop the directory cache if another connection committed; True if it did."""
        version = self.conn.execute("PRAGMA data_version").fetchone()[0]
        if version == self._data_version:
            return False
        self._dircache.clear()
        self._data_version = version
        self._last_rev = 0  # another connection committed: ask the log
        return True

    def forget_directories(self) -> None:
        """Drop cached resolutions: a directory or symlink was removed or replaced."""
        self._dircache.clear()

    # -- nodes -------------------------------------------------------------

    def stat(self, node: Node) -> Stat:
        """The public `Stat` of a node; a content id left to derive is derived when read."""
        if node.hash is None and node.kind == KIND_FILE:
            ino, chunks = node.ino, node.chunks
            st = make_stat(DerivedHashStat, node, None, derive=lambda: self.content_id(ino, chunks))
            self._undetermined[id(st)] = st  # type: ignore[assignment]
            return st
        return stat_of(node)

    def node_hash(self, node: Node) -> bytes | None:
        """A node's content id (None for dirs and symlinks), derived now if a positional write left it."""
        if node.hash is None and node.kind == KIND_FILE:
            return self.content_id(node.ino, node.chunks)
        return node.hash

    def content_id(self, ino: int, chunks: bytes | None) -> bytes:
        """The exact BLAKE3 of the content `chunks` lists, kept in the node row if it still lists them."""
        digest = self.derive_hash(chunks)
        self.keep_derived("UPDATE nodes SET hash = ? WHERE ino = ? AND hash IS NULL AND chunks IS ?", (digest, ino, chunks))
        return digest

    def derive_hash(self, chunks: bytes | None) -> bytes:
        """BLAKE3 of the content of a packed chunk list, read chunk by chunk (bounded memory).

        Remembered per packed list: the list holds every chunk's hash, so
        equal lists are equal content, and a read-only connection (which
        cannot keep the id in the row) derives each file once, not per read.
        """
        entries = unpack(chunks)
        if not entries:
            return EMPTY_HASH
        if len(entries) == 1:
            return entries[0].hash  # BLAKE3 of a single chunk is the content id
        key = blake3.blake3(chunks).digest()  # type: ignore[arg-type]  # 32 bytes however long the list
        known = self._derived.get(key)
        if known is None:
            known = self._derived[key] = self.chunks.hash_of(entries)
            while len(self._derived) > _DERIVED_KEPT:
                del self._derived[next(iter(self._derived))]
        return known

    def keep_derived(self, sql: str, params: tuple) -> None:
        """Write a derived content id back, when that costs no waiting.

        The value is a pure function of the row's chunk list (the UPDATE
        checks the list is unchanged), so it moves no revision and logs
        nothing. Inside our write transaction it joins it; inside someone's
        read snapshot, on a read-only store or while another connection
        holds the write lock it is skipped (the next reader derives again).
        """
        if self.readonly or self.conn is None:
            return
        if self._tx_state is not None:
            self.conn.execute(sql, params)
            return
        if self.conn.in_transaction:
            return
        self.conn.execute("PRAGMA busy_timeout=0")
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return  # busy: another writer
        finally:
            self.conn.execute(f"PRAGMA busy_timeout={schema.BUSY_TIMEOUT_MS}")
        try:
            self.conn.execute(sql, params)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def node(self, ino: int) -> Node:
        row = self.conn.execute(f"SELECT {NODE_COLUMNS} FROM nodes n WHERE n.ino = ?", (ino,)).fetchone()
        return Node(*row)

    def lookup(self, parent_ino: int, name: str) -> Node | None:
        row = self.conn.execute(
            f"SELECT {NODE_COLUMNS} FROM dirents d JOIN nodes n ON n.ino = d.ino WHERE d.parent = ? AND d.name = ?",
            (parent_ino, name),
        ).fetchone()
        return Node(*row) if row else None

    # -- path resolution ---------------------------------------------------

    def normalize(self, path: str) -> str:
        """`paths.normalize` under this store's whole-path limit (`path_max`). Every layer above
        uses this, so a store opened without the limit (a local mount) takes the same deep paths
        in each call; and the default limit is not passed, so a path has one cache entry."""
        return normalize(path) if self.path_max == PATH_MAX else normalize(path, self.path_max)

    def resolve(self, path: str, *, follow: bool) -> Resolved:
        """Find where `path` lands. Intermediate symlinks are always followed;
        the last component only when `follow` is true. A missing last
        component is not an error (node=None); a missing directory is."""
        if self._tx_state:  # BEGIN refreshed the cache; our own writes keep it right
            return self._resolve(path, follow, checked=False)
        # Outside a transaction the directory cache is validated by the
        # data_version the final lookup returns with its row (one statement,
        # one snapshot): when another connection committed since the cache
        # was last validated, forget it and resolve again.
        for _ in range(3):
            try:
                return self._resolve(path, follow, checked=True)
            except _CacheMoved:
                continue
            except OSError:
                # A missing or non-directory component may come from a stale
                # cached directory: the error stands only if nothing moved.
                if not self._refresh_cache():
                    raise
        self._refresh_cache()
        return self._resolve(path, follow, checked=False)

    def _resolve(self, path: str, follow: bool, checked: bool) -> Resolved:
        original = path
        path = self.normalize(path)
        hops = 0
        while True:
            if path == "/":
                return Resolved(None, "", "/", self.node(ROOT_INO))
            parent_path, _, name = path.rpartition("/")
            parent_ino, parent_real = self._resolve_dir(parent_path or "/", original, hops)
            node = self._checked_lookup(parent_ino, name) if checked else self.lookup(parent_ino, name)
            if node is None or node.kind != KIND_SYMLINK or not follow:
                return Resolved(parent_ino, name, join(parent_real, name), node)
            hops += 1
            if hops > SYMLINK_MAX_HOPS:
                raise fs_error(errno.ELOOP, original)
            path = self._symlink_destination(node.target, parent_real, original)

    def _checked_lookup(self, parent_ino: int, name: str) -> Node | None:
        """`lookup`, raising `_CacheMoved` (cache cleared) if another connection committed since the last check."""
        row = self.conn.execute(_CHECKED_LOOKUP, (parent_ino, name)).fetchone()
        version = row[-1] if row else self.conn.execute("PRAGMA data_version").fetchone()[0]
        if version != self._data_version:
            self._dircache.clear()
            self._data_version = version
            self._last_rev = 0
            raise _CacheMoved
        return Node(*row[:-1]) if row else None

    def _symlink_destination(self, target: str | None, base_dir: str, original: str) -> str:
        if not target:
            raise fs_error(errno.ENOENT, original)
        return self.normalize(target if target.startswith("/") else join(base_dir, target))

    def _resolve_dir(self, dir_path: str, original: str, hops: int = 0) -> tuple[int, str]:
        """(ino, real path) of the directory at `dir_path`, following symlinks."""
        cached = self._dircache.get(dir_path)
        if cached:
            return cached
        parts = split(dir_path)
        ino, real, done = ROOT_INO, "/", 0
        for k in range(len(parts) - 1, 0, -1):
            hit = self._dircache.get("/" + "/".join(parts[:k]))
            if hit:
                (ino, real), done = hit, k
                break
        while done < len(parts):
            name = parts[done]
            node = self.lookup(ino, name)
            if node is None:
                raise fs_error(errno.ENOENT, original)
            if node.kind == KIND_SYMLINK:
                hops += 1
                if hops > SYMLINK_MAX_HOPS:
                    raise fs_error(errno.ELOOP, original)
                destination = self._symlink_destination(node.target, real, original)
                rest = "/".join(parts[done + 1 :])
                result = self._resolve_dir(join(destination, rest) if rest else destination, original, hops)
                self._dircache[dir_path] = result
                return result
            if node.kind != KIND_DIR:
                raise fs_error(errno.ENOTDIR, original)
            ino, real, done = node.ino, join(real, name), done + 1
            self._dircache["/" + "/".join(parts[:done])] = (ino, real)
        return ino, real

    def stat_path(self, path: str, *, follow: bool) -> Stat | None:
        """The `Stat` at `path` (None: no such last component), from memory
        when no one committed since it was read (`vfs.statcache`).

        Kept per path: the Stat's fields, or the row while its content id
        is still to derive, or that nothing is there."""
        token = self.cache_token()
        if token is None:
            node = self.resolve(path, follow=follow).node
            return None if node is None else self.stat(node)
        key = (path, follow)
        kept = token[1].get(key)
        if kept is None:
            node = self.resolve(path, follow=follow).node
            kept = _MISSING if node is None else stat_fields(node) or node
            self.stats.put(token, key, kept)
        if kept.__class__ is tuple:
            return Stat(*kept)
        return None if kept is _MISSING else self.stat(kept)  # type: ignore[arg-type]

    def cache_token(self) -> tuple | None:
        """The stat cache's token now (`vfs.statcache`; None in a transaction or without a `-shm`)."""
        return None if self._tx_state is not None or self.conn.in_transaction else self.stats.begin()

    def existing(self, path: str, *, follow: bool) -> Resolved:
        """Like `resolve` but the path must exist (ENOENT otherwise)."""
        found = self.resolve(path, follow=follow)
        if found.node is None:
            raise fs_error(errno.ENOENT, path)
        return found

    def is_dir(self, path: str) -> bool:
        """Does `path` resolve (following symlinks) to a directory? Errors count as no."""
        try:
            found = self.resolve(path, follow=True)
        except OSError:
            return False
        return found.node is not None and found.node.kind == KIND_DIR

    def paths_of(self, ino: int) -> list[str]:
        """Every path naming `ino` (a directory, or a file with a second name: `vfs.tree`)."""
        return tree.paths_of(self.conn, ino)

    # -- change log: every mutation stamps the paths it changed -----------------

    def log(self, tx: Tx, path: str, ino: int | None) -> None:
        """Record that `path` changed in this revision (ino None: it is gone)."""
        self.dml(_UPSERT_LOG, (path, tx.rev, ino))

    def log_many(self, tx: Tx, rows: list[tuple[str, int | None]]) -> None:
        self.conn.executemany(_UPSERT_LOG, [(path, tx.rev, ino) for path, ino in rows])

    def log_node(self, tx: Tx, node_ino: int, known_path: str, nlink: int) -> None:
        """Log a change to a node under every name it has (the root has no name row: its link count is 2)."""
        if nlink <= 1 or node_ino == ROOT_INO:
            self.log(tx, known_path, node_ino)
        else:
            self.log_many(tx, [(p, node_ino) for p in self.paths_of(node_ino)])

    def touch_dir(self, dir_ino: int, other_ino: int | None = None, *, now: int | None = None,
                  subdirs: tuple[int, int] = (0, 0)) -> None:
        """A directory's mtime/ctime move when its entries change (as on Linux); `other_ino`: a second one (rename).

        `now`: the time to stamp (a new node's ctime, so a caller holding the
        parent's old `Stat` knows its new times without reading it again). `subdirs`: the
        subdirectories each gained (its link count is 2 + its count; kept here since v12)."""
        now = time.time_ns() if now is None else now
        self.dir_times_ns = now
        same = other_ino == dir_ino
        self.dml(_TOUCH, (now, now, subdirs[0] + (subdirs[1] if same else 0), dir_ino))
        if other_ino is not None and not same:  # (one UPDATE of both rows needs an ephemeral rowset: 2x)
            self.dml(_TOUCH, (now, now, subdirs[1], other_ino))

    def touch_dirs_since(self, stamps: list[tuple[int, int]]) -> None:
        """Directories' mtime/ctime for changes made earlier and stored now: (ino, when) pairs,
        never moving a time back. Their new times are then not known here (`dir_times_ns`)."""
        self.conn.executemany(
            "UPDATE nodes SET mtime_ns = max(mtime_ns, ?), ctime_ns = max(ctime_ns, ?) WHERE ino = ?",
            [(ns, ns, ino) for ino, ns in stamps],
        )
        self.dir_times_ns = 0

    # -- subtrees --------------------------------------------------------------

    def subtree(self, dir_ino: int) -> list[tuple[int, str, int]]:
        """(ino, relative path, kind) of everything below a directory, parents first."""
        return tree.subtree(self.conn, dir_ino)

