"""SQLITE_PROTOCOL ("locking protocol") retried, never a 500 (`vfs/locking.py`).

SQLite answers it when another process (Litestream, on a cluster node) keeps
changing the WAL index; it cannot be produced on demand, so the retry policy
is tested here against a connection that fails a set number of times, and
end to end by `tests/test_cluster_chunks.py` (the first write after a
failover), where it was seen.
"""

from __future__ import annotations

import errno
import sqlite3

import pytest

from vfs import locking


class FlakyConnection:
    """A real SQLite connection whose next `failures` statements fail with SQLITE_PROTOCOL."""

    def __init__(self, failures: int, drop_transaction: bool = False):
        self.real = sqlite3.connect(":memory:", isolation_level=None)
        self.failures, self.drop_transaction, self.calls = failures, drop_transaction, 0

    @property
    def in_transaction(self) -> bool:
        return self.real.in_transaction

    def execute(self, sql: str) -> None:
        self.calls += 1
        if self.failures:
            self.failures -= 1
            if self.drop_transaction and self.real.in_transaction:
                self.real.execute("ROLLBACK")
            error = sqlite3.OperationalError("locking protocol")
            error.sqlite_errorcode = locking.SQLITE_PROTOCOL
            raise error
        self.real.execute(sql)


def test_a_commit_is_retried_until_it_goes_through() -> None:
    conn = FlakyConnection(failures=0)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.failures = 3
    locking.execute_retrying(conn, "COMMIT", in_transaction=True)
    assert conn.calls == 3 + 3 + 1 and not conn.in_transaction  # 3 statements, 3 failures, 1 success
    assert conn.real.execute("SELECT x FROM t").fetchall() == [(1,)]


def test_a_transaction_sqlite_rolled_back_is_eagain_not_retried() -> None:
    conn = FlakyConnection(failures=0, drop_transaction=True)
    conn.execute("BEGIN IMMEDIATE")
    conn.failures = 1
    with pytest.raises(OSError) as info:
        locking.execute_retrying(conn, "COMMIT", in_transaction=True)
    assert info.value.errno == errno.EAGAIN and "locking protocol" in str(info.value)
    assert conn.failures == 0  # one attempt: nothing left to commit


def test_a_lasting_failure_ends_in_eagain_and_other_errors_pass_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(locking, "RETRY_DELAYS", (0.0, 0.0))
    conn = FlakyConnection(failures=10)
    with pytest.raises(OSError) as info:
        locking.execute_retrying(conn, "BEGIN IMMEDIATE")
    assert info.value.errno == errno.EAGAIN and conn.calls == 3
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        locking.execute_retrying(FlakyConnection(failures=0), "DELETE FROM missing")


def _flaky_dml(ws, fail_on: str, failures: int, drop_transaction: bool = False) -> list[str]:
    """Make the store's kept cursor fail `fail_on` `failures` times with SQLITE_PROTOCOL; the statements it saw."""
    db, seen = ws._db, []
    real = db.dml

    def dml(sql, *args):
        seen.append(sql)
        if sql == fail_on and seen.count(sql) <= failures:
            if drop_transaction and db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
            error = sqlite3.OperationalError("locking protocol")
            error.sqlite_errorcode = locking.SQLITE_PROTOCOL
            raise error
        return real(sql, *args)

    db.dml = dml
    return seen


@pytest.mark.parametrize("statement", ["BEGIN IMMEDIATE", "COMMIT"])
def test_the_stores_own_begin_and_commit_are_retried(tmp_path, monkeypatch: pytest.MonkeyPatch, statement: str) -> None:
    """`Db._begin` and `Db._commit` run BEGIN and COMMIT themselves and go to `locking.retry_after` on a failure."""
    import vfs

    monkeypatch.setattr(locking, "RETRY_DELAYS", (0.0, 0.0, 0.0))
    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        seen = _flaky_dml(ws, statement, failures=2)
        ws.write_file("/f", b"x")
        assert seen.count(statement) == 3  # two failures, then through
        assert ws.read_file("/f") == b"x" and not ws._db.conn.in_transaction
    with vfs.Workspace(str(tmp_path / "s.db"), readonly=True) as ws:
        assert ws.read_file("/f") == b"x"


def test_a_store_commit_sqlite_rolled_back_is_eagain_and_leaves_nothing(tmp_path) -> None:
    import vfs

    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        _flaky_dml(ws, "COMMIT", failures=1, drop_transaction=True)
        with pytest.raises(OSError) as info:
            ws.write_file("/f", b"x")
        assert info.value.errno == errno.EAGAIN
        assert not ws.exists("/f") and not ws._db.conn.in_transaction
        ws.write_file("/g", b"y")  # the store goes on
    with vfs.Workspace(str(tmp_path / "s.db"), readonly=True) as ws:
        assert ws.listdir("/") == ["g"]
