"""`Workspace.commit_changes(rev)`: one commit's entries in one statement, exactly as
`changes_page(rev - 1)` gives them while `rev` is the newest revision, else None.

A server hands these to its live subscribers right after each commit
(`server/feed.py` `read_delta`), so any difference from the change log would
show a subscriber something the log never said.
"""

from __future__ import annotations

import random

import blake3

import vfs


def _same_as_the_log(ws: vfs.Workspace) -> None:
    rev = ws.rev
    page = ws.changes_page(vfs.Cursor(rev - 1), limit=1000)
    assert page.cursor == vfs.Cursor(rev)
    assert ws.commit_changes(rev, limit=1000) == page.entries


def test_each_commit_of_a_random_workload_reads_as_the_log_says(tmp_path):
    rng = random.Random(7)
    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        ws.mkdir("/d")
        names = [f"/d/f{i}" for i in range(12)] + [f"/g{i}" for i in range(4)]
        for _ in range(300):  # bounded: one operation, then one comparison, per round
            path = rng.choice(names)
            op = rng.randrange(7)
            try:
                if op <= 1:
                    ws.write_file(path, rng.randbytes(rng.randrange(0, 3000)))
                elif op == 2 and ws.exists(path):
                    ws.unlink(path)
                elif op == 3 and ws.exists(path):
                    ws.rename(path, rng.choice(names))
                elif op == 4 and ws.exists(path):
                    ws.write_range(path, rng.randrange(0, 100), rng.randbytes(10))  # leaves its id to derive
                elif op == 5 and ws.exists(path):
                    ws.chmod(path, rng.choice((0o600, 0o644, 0o755)))
                elif op == 6 and not ws.exists(path):
                    ws.symlink("elsewhere", path)
                else:
                    continue
            except (FileExistsError, IsADirectoryError, NotADirectoryError, FileNotFoundError):
                continue
            _same_as_the_log(ws)


def test_a_positional_write_reads_with_its_exact_content_id(tmp_path):
    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        ws.write_file("/f", b"a" * 5000)
        ws.write_range("/f", 10, b"changed")
        (entry,) = ws.commit_changes(ws.rev, limit=10)
        assert entry.hash == blake3.blake3(b"a" * 10 + b"changed" + b"a" * 4983).hexdigest() == ws.stat("/f").hash


def test_none_once_a_later_commit_came_or_past_the_limit(tmp_path):
    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        with ws.transaction():
            for i in range(5):
                ws.write_file(f"/f{i}", b"x")
        rev = ws.rev
        assert len(ws.commit_changes(rev, limit=5)) == 5
        assert ws.commit_changes(rev, limit=4) is None  # more than asked for: read the log instead
        ws.write_file("/f0", b"y")  # /f0's row moves to the next revision
        assert ws.commit_changes(rev, limit=5) is None
        assert [c.path for c in ws.commit_changes(ws.rev, limit=5)] == ["/f0"]


def test_none_when_the_commits_tombstones_were_compacted(tmp_path):
    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        ws.write_file("/f", b"x")
        with ws.transaction():
            ws.unlink("/f")
            ws.write_file("/g", b"y")
        rev = ws.rev
        assert [(c.path, c.kind) for c in ws.commit_changes(rev, limit=5)] == [("/f", "delete"), ("/g", "file")]
        ws.compact_tombstones(rev)  # no new revision, but the deletion is gone from the log
        assert ws.commit_changes(rev, limit=5) is None  # not /g alone: that would hide the deletion
