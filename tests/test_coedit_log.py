"""The update log in the store (vfs/coedit_log.py): numbered rows, compaction up to a row, and the
log's own connection (`DirectLog`) that a server appends through from its event loop."""

from __future__ import annotations

import pytest

import vfs
from vfs.coedit_log import DirectLog
from vfs.errors import StoreBusy


@pytest.fixture
def store(tmp_path):
    ws = vfs.Workspace(tmp_path / "s.db")
    yield ws
    ws.close()


def test_rows_are_numbered_and_a_compaction_keeps_the_rows_appended_after_its_snapshot(store):
    direct = DirectLog(store.path)
    try:
        first = direct.try_append([("/a.md", b"u1"), ("/b.md", b"x"), ("/a.md", b"u2")])
        assert isinstance(first, int)
        saved = store.coedit_log.load("/a.md")
        assert saved is not None and saved.updates == [b"u1", b"u2"] and saved.seq == first
        later = store.coedit_log.append([("/a.md", b"u3")])  # the writer's connection numbers on
        assert later > first
        # a snapshot taken when `first` was the newest row: u3 came after it and must stay
        store.coedit_log.compact("/a.md", b"snap", None, None, upto=first)
        saved = store.coedit_log.load("/a.md")
        assert saved is not None and (saved.snapshot, saved.updates, saved.seq) == (b"snap", [b"u3"], later)
        assert store.coedit_log.load("/b.md").updates == [b"x"]  # another path's rows are its own
        store.coedit_log.compact("/a.md", b"snap2", None, None)  # no bound: the whole log
        assert store.coedit_log.load("/a.md").updates == []
        assert store.coedit_log.logged() == ["/b.md"]
    finally:
        direct.close()


def test_a_direct_append_is_refused_at_once_while_another_writer_holds_the_store(store):
    direct = DirectLog(store.path)
    try:
        with store.transaction():
            store.write_file("/x", b"held")
            assert direct.try_append([("/a.md", b"refused")]) is None
        seq = direct.try_append([("/a.md", b"stored")])
        assert isinstance(seq, int)
        assert store.coedit_log.load("/a.md").updates == [b"stored"]  # nothing of the refused attempt
    finally:
        direct.close()


def test_a_direct_log_is_refused_while_the_store_is_mounted(tmp_path):
    path = tmp_path / "m.db"
    vfs.Workspace(path).close()
    mounted = vfs.Workspace(path, exclusive=True)  # as a local FUSE mount opens it
    try:
        with pytest.raises(StoreBusy):
            DirectLog(str(path))
    finally:
        mounted.close()
    DirectLog(str(path)).close()  # and taken once the mount is gone


def test_direct_appends_never_checkpoint_and_the_writer_still_does(store):
    """The log's own connection runs on the server's event loop: it must leave checkpoints (copying
    the WAL into the database) to the store's writer, whose next commit still makes one."""
    import os

    wal = f"{store.path}-wal"
    direct = DirectLog(store.path)
    try:
        for i in range(300):  # ~1,200 WAL pages of 4 KiB updates: past SQLite's auto-checkpoint (1,000)
            assert direct.try_append([("/a.md", os.urandom(4000))]) is not None
        assert store.coedit_log.load("/a.md") is not None
        db_before = os.path.getsize(store.path)
        assert os.path.getsize(wal) > 1000 * 4096 and db_before < 300 * 4000  # no append copied anything back
        store.write_file("/x", b"a writer commit")  # the writer's auto-checkpoint copies the WAL
        assert os.path.getsize(store.path) > 300 * 4000  # the updates are in the database file now
    finally:
        direct.close()
