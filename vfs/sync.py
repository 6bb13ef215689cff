"""Object exchange and conflict-aware apply: the receiving half of sync.

`apply_changes` never lets the last writer silently win: with a `base` (what
the writer had seen of this store), an entry whose path also changed here
after that base is handed back as a `Conflict` and left unapplied, and a
directory is never deleted from under changes made here.

    workspace  ->  sync  ->  content, namespace, db
"""

from __future__ import annotations

import errno
import time
from collections.abc import Iterable, Iterator

import blake3

from vfs.chunks import ChunkEntry, MAX_CHUNK, content_hash
from vfs.content import Content, seconds_to_ns
from vfs.db import Db, Node, Resolved, Tx
from vfs.errors import BadObject, MissingObjects, fs_error
from vfs.namespace import Namespace
from vfs.paths import depth, normalize, parent_of, prefix_bounds, split
from vfs.schema import KIND_CODES, KIND_DIR, KIND_NAMES, KIND_SYMLINK, ROOT_INO, SPECIAL_KINDS
from vfs.surface import Base
from vfs.types import ApplyResult, Change, Conflict, Cursor, TimedChange

MAX_OBJECT = 16 * MAX_CHUNK  # generous: peers may chunk differently, but not unboundedly

_APPLIED, _UNCHANGED = "applied", "unchanged"
# Kinds whose node is replaced, not updated, when an entry changes them (no content to edit).
_REPLACED_WHOLE = (KIND_SYMLINK, *SPECIAL_KINDS)


def _hex(digest: bytes | None) -> str | None:
    return digest.hex() if digest is not None else None


def _raw(hex_hash: str) -> bytes:
    try:
        raw = bytes.fromhex(hex_hash)
    except (ValueError, TypeError):
        raise ValueError(f"invalid object id {hex_hash!r}: expected 64 hex digits") from None
    if len(raw) != 32:
        raise ValueError(f"invalid object id {hex_hash!r}: expected 64 hex digits")
    return raw



def verify_object(data: bytes, expected: str | None = None) -> bytes:
    """An object's raw id (BLAKE3); `BadObject` if it is too big or hashes to anything but `expected`.

    Pure: a server can check an upload as it arrives and store it later, in a batch.
    """
    if len(data) > MAX_OBJECT:
        raise BadObject(f"object of {len(data)} bytes exceeds the {MAX_OBJECT}-byte limit")
    digest = blake3.blake3(data).digest()
    if expected is not None and _raw(expected) != digest:
        raise BadObject(f"object bytes hash to {digest.hex()}, not {expected}")
    return digest


def _given(data: bytes, expected: str | None) -> bytes:
    """The raw id a trusted caller computed for `data` (`put_objects(hashed=True)`); the size limit still holds."""
    if len(data) > MAX_OBJECT:
        raise BadObject(f"object of {len(data)} bytes exceeds the {MAX_OBJECT}-byte limit")
    if expected is None:
        raise ValueError("put_objects(hashed=True) needs the id of every object")
    return _raw(expected)


class Sync:
    """The receiving half of sync for one store: chunk objects in, change entries applied."""

    __slots__ = ("_db", "_names", "_content", "_chunks", "_dirs")

    def __init__(self, db: Db, names: Namespace, content: Content):
        self._db = db
        self._names = names
        self._content = content
        self._chunks = db.chunks
        # Within one `apply_changes`: directory path -> inode, as `_resolve_physical` found it (no
        # symlink followed). A batch's entries share their directories (an untar's push: ~100 files
        # in a handful of them), and walking every path from the root again was half of a push's
        # CPU (Django untar, 5-7 levels: a lookup per level per entry). Only directories that
        # exist are kept; removing anything (`_remove`) forgets them all.
        self._dirs: dict[str, int] = {}

    # -- objects ------------------------------------------------------------------

    def has_objects(self, hashes: Iterable[str]) -> set[str]:
        """The subset of `hashes` this store holds."""
        return {h.hex() for h in self._chunks.ids_for(_raw(h) for h in hashes)}

    def read_objects(self, hashes: Iterable[str]) -> Iterator[tuple[str, bytes]]:
        """(hash, bytes) for each requested chunk this store holds, in request order.

        One statement per `_BY_HASH` hashes finds the chunks and brings the bytes of the small ones
        kept inside the store with them (`small_by_hash`: at most `READ_AHEAD_BYTES` held at once);
        the rest are read one by one. Looking all ids up first and the bytes by id after took two
        passes over the same rows: 10k small chunks cost 72-106 ms of CPU that way, 41-53 now."""
        wanted = [_raw(h) for h in hashes]
        for start in range(0, len(wanted), _BY_HASH):
            batch = wanted[start : start + _BY_HASH]
            found = self._chunks.small_by_hash(batch, READ_AHEAD_CHUNK)
            for raw in batch:
                hit = found.get(raw)
                if hit is not None:
                    yield raw.hex(), hit[1] if hit[1] is not None else self._chunks.read(hit[0])

    def put_object(self, data: bytes, expected_hash: str | None = None) -> str:
        """Store one chunk; with `expected_hash`, refuse bytes that hash to anything else."""
        return self.put_objects([(expected_hash, data)])[0]

    def put_objects(self, items: Iterable[tuple[str | None, bytes]], *, hashed: bool = False) -> list[str]:
        """Store many chunks in one transaction (ids verified); returns their hashes.

        Chunks already stored count as stored now: an upload is followed by the
        push or commit that names its chunks, and `gc(grace=)` must spare them in
        between even when an older, unnamed copy was already here.

        `hashed=True`: every id is this process's own BLAKE3 of its bytes (the remote
        mount's written chunks, hashed as they were cut) and is taken as given, not
        hashed again (~21 ms of a Django untar's 44 MB). Only for such a caller: never
        for ids that arrived with their bytes (an upload, a peer's push), since a wrong
        id would be served to every reader of that chunk.
        """
        if hashed:
            verified = [(_given(data, expected), data) for expected, data in items]
        else:
            verified = [(verify_object(data, expected), data) for expected, data in items]
        now = time.time()
        with self._db.tx():
            entries = self._chunks.put_many(verified)  # one batch: with pack files, one append and one insert
            # only rows older than this call are written: the ones just inserted carry `now` or later
            self._db.conn.executemany("UPDATE chunks SET created = ? WHERE id = ? AND created < ?",
                                      [(now, entry.id, now) for entry in entries])
        return [digest.hex() for digest, _ in verified]

    # -- apply --------------------------------------------------------------------

    def apply_changes(self, changes: Iterable[Change], *, base: Base = None) -> ApplyResult:
        """Apply another store's change entries as one transaction (one revision).

        Idempotent: entries equal to the local state are `unchanged` and an
        all-unchanged batch does not advance the revision. Raises
        MissingObjects (applying nothing) when a file's chunks are absent.
        An entry of a directory that exists changes its mode only, unless it
        carries `set_mtime` (`vfs.types.TimedChange`, a mount's utimensat): then
        its mtime too, set after the batch's other entries (`_set_mtime`). A file
        entry with `set_mtime` whose content and mode the store has already is
        applied when its mtime differs (one `utime` call each before).
        """
        batch = [self._validated(change) for change in changes]
        result = ApplyResult()
        self._dirs = {}
        try:
            return self._apply_batch(batch, base, result)
        finally:
            self._dirs = {}

    def _apply_batch(self, batch: list[Change], base: Base, result: ApplyResult) -> ApplyResult:
        with self._db.tx() as tx:
            chunk_ids = self._require_objects(batch)
            deletes = sorted((c for c in batch if c.kind == "delete"), key=lambda c: (-depth(c.path), c.path))
            lives = sorted((c for c in batch if c.kind != "delete"), key=lambda c: (depth(c.path), c.path))
            timed: list[Change] = []
            for change in deletes + lives:
                outcome = self._apply_one(tx, change, base, chunk_ids)
                if isinstance(outcome, Conflict):
                    result.conflicts.append(outcome)
                    continue
                if isinstance(change, TimedChange) and change.set_mtime:
                    timed.append(change)
                if outcome == _APPLIED:
                    result.applied.append(change.path)
                else:
                    result.unchanged.append(change.path)
            for change in timed:  # after the batch's children: utimensat after their creation wins
                if self._set_mtime(tx, change) and change.path in result.unchanged:
                    result.unchanged.remove(change.path)
                    result.applied.append(change.path)
            result.rev = tx.rev if tx.wrote else self._db.rev
        return result

    def _set_mtime(self, tx: Tx, change: Change) -> bool:
        """An entry's `set_mtime` (`vfs.types.TimedChange`, a directory's or a file's): the node's
        mtime is the entry's, whatever the batch's other entries did to it. False: already so."""
        found, _ = self._resolve_physical(change.path)
        node = found.node if found else None
        mtime_ns = seconds_to_ns(change.mtime)
        if node is None or node.kind != KIND_CODES[change.kind] or node.mtime_ns == mtime_ns:
            return False
        self._db.conn.execute("UPDATE nodes SET mtime_ns = ?, ctime_ns = max(ctime_ns, ?), rev = ? WHERE ino = ?",
                              (mtime_ns, time.time_ns(), tx.rev, node.ino))
        self._db.log(tx, found.real, node.ino)
        return True

    @staticmethod
    def _validated(change: Change) -> Change:
        path = normalize(change.path)
        if change.kind not in KIND_CODES:
            raise fs_error(errno.EINVAL, path, f"unknown change kind {change.kind!r}")
        if change.kind == "symlink" and not change.target:
            raise fs_error(errno.EINVAL, path, "symlink entry without a target")
        if path == "/" and change.kind != "dir":
            raise fs_error(errno.EPERM, path, "the root can only be a directory")
        return change if path == change.path else type(change)(**{**_fields(change), "path": path})

    def _require_objects(self, batch: list[Change]) -> dict[bytes, tuple[int, int]]:
        wanted = {_raw(h) for c in batch if c.kind == "file" for h, _ in c.chunks}
        found = self._chunks.ids_for(wanted)
        missing = [h.hex() for h in wanted if h not in found]
        if missing:
            raise MissingObjects(missing)
        return found

    def _apply_one(self, tx: Tx, change: Change, base: Base, chunk_ids: dict) -> str | Conflict:
        found, blocker = self._resolve_physical(change.path)
        node = found.node if found else None
        if blocker is not None:
            if change.kind == "delete":
                return _UNCHANGED  # nothing lives at that real path here
            # The sender has a directory where we have a file or symlink. A
            # parent's entry can come after its child's (a chmod restamps it),
            # so this may simply be the sender's replacement still on its way:
            # if the sender had seen our node, it replaced it; else conflict.
            in_the_way = self._db.resolve(blocker, follow=False)
            if self._changed_since(blocker, in_the_way.node, base):
                return self._conflict(change, None, f"{blocker} is not a directory here")
            self._remove(tx, in_the_way)
            found = None
        if self._same_state(node, change):
            return _UNCHANGED
        if self._changed_since(change.path, node, base):
            return self._conflict(change, node, "changed on both sides since base")
        if change.kind == "file" and self._same_state(node, change, times=False):
            return _UNCHANGED  # (only the mtime of a file entry with `set_mtime`: `_set_mtime` sets it)
        if change.kind == "delete":
            return self._apply_delete(tx, change, found, base)
        if found is None:
            self._names.makedirs(tx, parent_of(change.path), 0o755, exist_ok=True)
            found, _ = self._resolve_physical(change.path)
            node = found.node
        if node is not None and (node.kind != KIND_CODES[change.kind] or node.kind in _REPLACED_WHOLE):
            if node.kind == KIND_DIR and self._subtree_changed(change.path, base):
                return self._conflict(change, node, "directory holds changes made since base")
            self._remove(tx, found)
            found, _ = self._resolve_physical(change.path)
        self._apply_live(tx, change, found, chunk_ids)
        return _APPLIED

    def _resolve_physical(self, path: str) -> tuple[Resolved | None, str | None]:
        """Resolve a change-stream path without following any symlink.

        Change-stream paths are real paths, so an entry must land exactly
        there, never through a symlink that exists only on this side.
        Returns (where it lands, None), or (None, None) when a parent is
        missing, or (None, blocking ancestor) when an ancestor here is a file
        or a symlink.
        """
        if path == "/":
            return Resolved(None, "", "/", self._db.node(ROOT_INO)), None
        parent, _, last = path.rpartition("/")
        ino = self._dirs.get(parent) if parent else ROOT_INO
        if ino is None:
            ino, real = ROOT_INO, ""
            for name in split(parent):
                real = f"{real}/{name}"
                known = self._dirs.get(real)
                if known is not None:
                    ino = known
                    continue
                node = self._db.lookup(ino, name)
                if node is None:
                    return None, None
                if node.kind != KIND_DIR:
                    return None, real
                ino = self._dirs[real] = node.ino
        return Resolved(ino, last, path, self._db.lookup(ino, last)), None

    def _same_state(self, node: Node | None, change: Change, *, times: bool = True) -> bool:
        """Does the store hold `change` already? A directory's or file's mtime counts only when
        the entry sets it (`set_mtime`; `times=False`: not even then)."""
        if change.kind == "delete":
            return node is None
        if node is None or KIND_NAMES[node.kind] != change.kind:
            return False
        if change.kind == "symlink":
            return node.target == change.target
        same_mode = node.mode == (change.mode & 0o7777)
        if times and isinstance(change, TimedChange) and change.set_mtime:
            same_mode = same_mode and node.mtime_ns == seconds_to_ns(change.mtime)
        if change.kind == "dir":
            return same_mode
        if node.kind in SPECIAL_KINDS:
            return same_mode and node.rdev == change.rdev
        digest = self._db.node_hash(node)
        return same_mode and digest is not None and digest.hex() == change.hash

    def _local_rev(self, path: str) -> int:
        row = self._db.conn.execute("SELECT rev FROM pathlog WHERE path = ?", (path,)).fetchone()
        return row[0] if row else 0

    def _changed_since(self, path: str, node: Node | None, base: Base) -> bool:
        if base is None:
            return False
        local_rev = self._local_rev(path)
        if isinstance(base, Cursor):
            return local_rev > 0 and Cursor(local_rev, path) > base
        seen = base.get(path)
        return node is not None if seen is None else local_rev > seen

    def _subtree_changed(self, path: str, base: Base) -> bool:
        """Did anything now live below `path` change here after `base`?"""
        if base is None:
            return False
        low, high = prefix_bounds(path) or ("/", "0")
        rows = self._db.conn.execute(
            "SELECT path, rev FROM pathlog WHERE path >= ? AND path < ? AND ino IS NOT NULL", (low, high)
        )
        if isinstance(base, Cursor):
            return any(Cursor(rev, p) > base for p, rev in rows)
        return any(rev > base.get(p, 0) for p, rev in rows)

    def _conflict(self, change: Change, node: Node | None, reason: str) -> Conflict:
        return Conflict(
            path=change.path,
            local_kind=KIND_NAMES[node.kind] if node else None,
            local_rev=self._local_rev(change.path),
            local_hash=_hex(self._db.node_hash(node)) if node is not None else None,
            remote_kind=change.kind,
            remote_rev=change.rev,
            remote_hash=change.hash,
            reason=reason,
        )

    def _apply_delete(self, tx: Tx, change: Change, found: Resolved | None, base: Base) -> str | Conflict:
        if found is None or found.node is None:
            return _UNCHANGED
        if found.node.kind == KIND_DIR and self._subtree_changed(change.path, base):
            return self._conflict(change, found.node, "directory holds changes made since base")
        self._remove(tx, found)
        return _APPLIED

    def _remove(self, tx: Tx, found: Resolved) -> None:
        self._dirs.clear()  # (a directory removed, or a file where a directory may be made next)
        if found.node.kind == KIND_DIR:
            self._names.remove_tree(tx, found)
        else:
            self._names.remove_name(tx, found)

    def _apply_live(self, tx: Tx, change: Change, found: Resolved, chunk_ids: dict) -> None:
        node = found.node
        if change.kind == "dir":
            if node is None:
                mtime_ns = seconds_to_ns(change.mtime or None)
                self._names.insert_node(tx, found, KIND_DIR, change.mode & 0o7777, mtime_ns=mtime_ns)
            else:
                self._db.conn.execute(
                    "UPDATE nodes SET mode = ?, rev = ? WHERE ino = ?", (change.mode & 0o7777, tx.rev, node.ino)
                )
                self._db.log(tx, found.real, node.ino)
            return
        if change.kind == "symlink":
            self._names.insert_node(
                tx, found, KIND_SYMLINK, 0o777, target=change.target, mtime_ns=seconds_to_ns(change.mtime or None)
            )
            return
        kind = KIND_CODES[change.kind]
        if kind in SPECIAL_KINDS:
            mtime_ns = seconds_to_ns(change.mtime or None)
            self._names.insert_node(tx, found, kind, change.mode & 0o7777, mtime_ns=mtime_ns, rdev=change.rdev)
            return
        entries = []
        for hex_hash, size in change.chunks:
            chunk_id, stored_size = chunk_ids[_raw(hex_hash)]
            if stored_size != size:
                raise fs_error(errno.EINVAL, change.path, f"chunk {hex_hash} has {stored_size} bytes, not {size}")
            entries.append(ChunkEntry(_raw(hex_hash), size, chunk_id))
        digest = self._verified_digest(change, entries)
        size = sum(e.size for e in entries)
        self._content.set_content(
            tx, found, entries, size, digest, mode=change.mode, mtime_ns=seconds_to_ns(change.mtime or None)
        )

    def _verified_digest(self, change: Change, entries: list[ChunkEntry]) -> bytes:
        """The content id, recomputed: a peer cannot make us serve a wrong ETag."""
        if len(entries) == 1:
            digest = entries[0].hash
        else:
            digest = content_hash(self._content.iter_chunks(entries)) if entries else content_hash([])
        if change.hash is not None and change.hash != digest.hex():
            raise fs_error(errno.EINVAL, change.path, f"content id {change.hash} does not match its chunks")
        return digest


def _fields(change: Change) -> dict:
    return {name: getattr(change, name) for name in change.__dataclass_fields__}


READ_AHEAD_CHUNK = 64 * 1024  # chunks this small come with their lookup (`read_objects`)
READ_AHEAD_BYTES = 4 * 1024 * 1024  # bytes of small chunks held ahead at most
_BY_HASH = READ_AHEAD_BYTES // READ_AHEAD_CHUNK  # hashes looked up per statement
