"""The token store's memory of found tokens: a change by another process is seen at the next lookup.

`TokenStore.lookup` answers a token it found before from memory while the
database's WAL-index header is unchanged (no statement per request). These
tests change the token table from another process, as `wsfs token revoke`
does, and check the very next lookup here sees it: after a plain commit,
after a checkpoint that restarts the WAL, and for a token created there.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from server.auth import TokenStore

ROOT = Path(__file__).resolve().parent.parent


def _other_process(data: Path, code: str) -> str:
    """Run `code` with `tokens` (a TokenStore of `data`) in a separate Python process; its stdout."""
    script = f"from server.auth import TokenStore\ntokens = TokenStore({str(data)!r})\n{code}\ntokens.close()\n"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_revocation_by_another_process_holds_from_the_next_lookup(tmp_path: Path) -> None:
    tokens = TokenStore(tmp_path)
    try:
        who, secret = tokens.create("w", "write", "temp")
        kept, kept_secret = tokens.create("w", "read", "kept")
        for _ in range(3):  # found, then answered from memory
            assert tokens.lookup(secret) == who
        assert tokens.lookup(kept_secret) == kept
        assert _other_process(tmp_path, f"print(tokens.revoke({who.id!r}))") == "True"
        assert tokens.lookup(secret) is None
        assert tokens.lookup(kept_secret) == kept
    finally:
        tokens.close()


def test_changes_after_a_wal_restart_and_new_tokens_are_seen(tmp_path: Path) -> None:
    tokens = TokenStore(tmp_path)
    try:
        made = [tokens.create("w", "write", f"t{i}") for i in range(6)]
        for who, secret in made:
            assert tokens.lookup(secret) == who
        for i, (who, secret) in enumerate(made[:3]):
            # the other process empties the WAL (the next commit starts it over from its first frame), then
            # revokes: the header's frame count may come back to a value it had before, its salts do not
            code = (f"tokens._conn.execute('PRAGMA wal_checkpoint(TRUNCATE)').fetchone()\n"
                    f"print(tokens.revoke({who.id!r}))")
            assert _other_process(tmp_path, code) == "True", i
            assert tokens.lookup(secret) is None, i
            for later, later_secret in made[i + 1:]:
                assert tokens.lookup(later_secret) == later
        secret_there = _other_process(tmp_path, "print(tokens.create('w', 'read', 'there')[1])")
        found = tokens.lookup(secret_there)
        assert found is not None and found.name == "there"
    finally:
        tokens.close()
