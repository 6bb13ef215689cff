"""The entries of the commit a write just made, handed over by its writer instead of read back.

A server with live subscribers gives each commit's entries, exactly as
`changes_page(rev - 1)` would, to every caught-up subscriber
(`server/feed.py` `read_delta`). Reading them back after COMMIT
(`Workspace.commit_changes`, one statement) cost 50-100 µs of CPU on a
~200 µs small write across 50 stores (their pages cold in the CPU's caches),
about a tenth of the server's whole CPU per write at 1,000 workspaces. Yet
the writer itself just wrote those rows.

`CommitCapture` learns them as they are written: temporary triggers on the
writer's own connection (no other connection sees them; the store's
`temp_store=MEMORY` keeps them off disk) call back into Python with each
`pathlog` row the transaction writes and each `nodes` row as written (or
deleted), while the capture is armed. After COMMIT, the logged paths with
the last state of their nodes are the commit's entries, built as
`vfs.changelog` builds them and ordered by path, as its statement orders
them. Unarmed, a trigger costs one Python call that returns 0.

The capture is exact only for an armed window that holds at most one
transaction which fails as a whole: rows a savepoint rolled back, or those
of a failed transaction followed by another, would stay in it (SQLite tells
no one of a rollback). So a caller arms it only around one operation it
knows to be one transaction (the server's PUT: one `put_file`), and `take`
answers None, meaning "read the store", whenever it cannot vouch for the
rows: a row was written inside a savepoint, rows came from two transactions, a logged
path's node was not written in the window, a content id is still to
derive, or the tombstone horizon moved.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from vfs.changelog import _to_change
from vfs.db import Db
from vfs.schema import KIND_FILE
from vfs.types import Change

_GONE: Any = ()  # a node deleted in the window (its paths read as deletions, as the log's join says)
_MISSING: Any = object()
_NODE = "NEW.ino, NEW.kind, NEW.mode, NEW.mtime_ns, NEW.size, NEW.hash, NEW.chunks, NEW.target, NEW.rdev"
_TRIGGERS = [
    f"CREATE TEMP TRIGGER IF NOT EXISTS wsfs_handover_{name} AFTER {event} ON main.{table} "
    f"WHEN wsfs_handover_armed() BEGIN SELECT {call}; END"
    for name, event, table, call in (
        ("log_i", "INSERT", "pathlog", "wsfs_handover_log(NEW.path, NEW.rev, NEW.ino)"),
        ("log_u", "UPDATE", "pathlog", "wsfs_handover_log(NEW.path, NEW.rev, NEW.ino)"),
        ("log_d", "DELETE", "pathlog", "wsfs_handover_unlog(OLD.path)"),
        ("node_i", "INSERT", "nodes", f"wsfs_handover_node({_NODE})"),
        ("node_u", "UPDATE", "nodes", f"wsfs_handover_node({_NODE})"),
        ("node_d", "DELETE", "nodes", "wsfs_handover_gone(OLD.ino)"),
        ("meta", "UPDATE", "meta", "wsfs_handover_meta(NEW.key)"),
        ("meta_i", "INSERT", "meta", "wsfs_handover_meta(NEW.key)"),
    )
]


class CommitCapture:
    """What one store connection's transactions log, while armed (module docstring).

    Used from the thread that runs the store's writes (it is the store's connection's own
    callback). `arm()` before the operation, `take(rev)` in the commit's `on_commit`
    callback, `disarm()` after the operation whatever happened."""

    __slots__ = ("_db", "_armed", "_logged", "_nodes", "_tx", "_broken")

    def __init__(self, db: Db):
        self._db = db
        self._armed = False
        self._logged: dict[str, tuple[int, int | None]] = {}
        self._nodes: dict[int, tuple[Any, ...]] = {}
        self._tx: Any = None  # the transaction the rows came from (`Db._tx_state`)
        self._broken = False

    @classmethod
    def install(cls, ws: Any) -> CommitCapture | None:
        """A capture on `ws`'s connection (a writable `vfs.Workspace`), or None if its schema
        does not take the triggers (the server then reads each commit back, as before)."""
        db: Db = ws._db
        capture = cls(db)
        conn = db.conn
        try:
            conn.create_function("wsfs_handover_armed", 0, capture._is_armed)
            conn.create_function("wsfs_handover_log", 3, capture._log)
            conn.create_function("wsfs_handover_unlog", 1, capture._unlog)
            conn.create_function("wsfs_handover_node", 9, capture._node)
            conn.create_function("wsfs_handover_gone", 1, capture._gone)
            conn.create_function("wsfs_handover_meta", 1, capture._meta)
            for sql in _TRIGGERS:
                conn.execute(sql)
        except sqlite3.Error:
            return None
        return capture

    def arm(self) -> None:
        """Start capturing: the next transaction on this connection is the one `take` hands over."""
        self._reset()
        self._armed = True

    def disarm(self) -> None:
        self._armed = False
        self._reset()

    def take(self, rev: int, *, limit: int) -> list[Change] | None:
        """The entries of commit `rev`, just made, as `Workspace.commit_changes(rev, limit=limit)`
        gives them, or None when the capture cannot vouch for them (read the store then).
        What was captured is consumed: the window's next transaction is captured afresh."""
        try:
            return self._entries(rev, limit) if self._armed else None
        finally:
            self._reset()

    # -- the triggers' callbacks (inside the store's statements: they never raise) --

    def _is_armed(self) -> int:
        return 1 if self._armed else 0

    def _same_tx(self) -> None:
        db = self._db
        if db._savepoints:
            self._broken = True  # written inside a savepoint, which may yet be rolled back
        tx = db._tx_state
        if self._tx is None:
            self._tx = tx
        elif tx is not self._tx:
            self._broken = True  # two transactions in one window: the first may have rolled back

    def _log(self, path: str, rev: int, ino: int | None) -> None:
        self._same_tx()
        self._logged[path] = (rev, ino)

    def _unlog(self, path: str) -> None:
        self._same_tx()
        self._logged.pop(path, None)

    def _node(self, ino: int, *row: Any) -> None:
        self._same_tx()
        self._nodes[ino] = row

    def _gone(self, ino: int) -> None:
        self._same_tx()
        self._nodes[ino] = _GONE

    def _meta(self, key: str) -> None:
        if key == "tombstone_horizon":
            self._broken = True  # `commit_changes` compares the commit with the horizon: read it

    # -- building the entries --

    def _reset(self) -> None:
        self._logged = {}
        self._nodes = {}
        self._tx = None
        self._broken = False

    def _entries(self, rev: int, limit: int) -> list[Change] | None:
        if self._broken or not self._logged or len(self._logged) > limit:
            return None
        entries = []
        for path in sorted(self._logged):  # SQLite's BINARY order of UTF-8 text is code point order
            logged_rev, ino = self._logged[path]
            if logged_rev != rev:
                return None
            node = _GONE if ino is None else self._nodes.get(ino, _MISSING)
            if node is _MISSING:
                return None  # its node was not written here: only the store knows its state
            if node is _GONE:
                entries.append(_to_change(path, rev, None, None, None, None, None, None, None))
                continue
            kind, mode, mtime_ns, size, digest, chunks, target, rdev = node
            if kind == KIND_FILE and digest is None:
                return None  # a content id left to derive (a positional write): the read derives it
            entries.append(_to_change(path, rev, kind, mode, mtime_ns / 1e9, size, digest, chunks, target,
                                      ino, rdev))
        return entries
