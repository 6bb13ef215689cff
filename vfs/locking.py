"""SQLite's transient "locking protocol" failure (SQLITE_PROTOCOL), retried: `execute_retrying`.

In WAL mode SQLite answers SQLITE_PROTOCOL when it could not read a stable
wal-index header after its own retries, because another process kept
changing it: Litestream's checkpoints restart the WAL. The statement did
nothing and may simply be run again; busy_timeout does not cover this code.
A failure that *lasts* (the first write after a failover answering 503 or
500, `tests/test_cluster_chunks.py`) was no such race: the node's own stat
cache opened and closed the `-shm` file, which dropped every POSIX lock the
process held on it, so Litestream reset the shared memory as its "first
user" under the node's connections (`vfs/shmmap.py` keeps them).
A transaction SQLite already rolled back cannot be committed again: that,
or a failure that outlasts the retries, is EAGAIN (503 on the wire), a
refusal that loses nothing acknowledged.
"""

from __future__ import annotations

import errno
import sqlite3
import time
from collections.abc import Callable
from typing import Any

SQLITE_PROTOCOL = 15
RETRY_DELAYS = (0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64)  # ~1.3 s in all, then give up


def is_locking_protocol(exc: BaseException) -> bool:
    """True for SQLite's SQLITE_PROTOCOL (its code where Python gives it, else its message)."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    return code == SQLITE_PROTOCOL if code is not None else "locking protocol" in str(exc)


def execute_retrying(conn: Any, sql: str, *, in_transaction: bool = False,
                     execute: Callable[[str], object] | None = None) -> None:
    """`conn.execute(sql)` (BEGIN IMMEDIATE or COMMIT), run again while it fails with
    SQLITE_PROTOCOL. `in_transaction`: the statement ends an open transaction (COMMIT), so a
    retry is possible only while SQLite still holds that transaction open. `execute`: what
    runs it (a kept cursor's, `Db.dml`; default `conn.execute`)."""
    run = conn.execute if execute is None else execute
    try:
        run(sql)
    except sqlite3.OperationalError as e:
        retry_after(conn, sql, e, in_transaction=in_transaction, run=run)


def retry_after(conn: Any, sql: str, error: sqlite3.OperationalError, *, in_transaction: bool,
                run: Callable[[str], object]) -> None:
    """`run(sql)` failed with `error`: re-raise it unless it is SQLITE_PROTOCOL, else run it again
    after each of `RETRY_DELAYS` (`execute_retrying`'s rules). A hot caller runs the statement
    itself and comes here only on a failure (`Db._begin`, `Db._commit`: no wrapper call per
    transaction)."""
    for delay in (*RETRY_DELAYS, None):
        if not is_locking_protocol(error):
            raise error
        if delay is None or (in_transaction and not conn.in_transaction):
            raise OSError(errno.EAGAIN, f"the store is busy (SQLite: {error}); try again") from error
        time.sleep(delay)
        try:
            run(sql)
            return
        except sqlite3.OperationalError as e:
            error = e
