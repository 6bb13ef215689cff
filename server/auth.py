"""Tokens: creation, lookup, scopes.

Tokens live in `DATA/server.db`, stored as SHA-256 digests only (a leaked
database does not leak usable tokens). Lookups are one indexed SQLite read
(a few microseconds), done on the event loop on purpose: a thread hop would
cost ten times more. A token found before is answered from memory for as
long as nobody committed to the database since, which every lookup checks
(the WAL-index header, one read of a shared mapping), so a token revoked by
`wsfs token revoke` in another process stops working at once for new
requests and connections. Open WebSockets are cut by the server's
revocation watch (`server/app.py`), which asks `changed()` (SQLite's
`data_version`: one pragma, no table read) twice a second and, only when
another connection committed, reads `ids()` to find the tokens gone.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from vfs import shmmap
from vfs.wire import EACCES, EAUTH, ProtocolError

SCOPES = ("read", "write", "admin")
KNOWN_MAX = 4096  # tokens remembered by `TokenStore.lookup` (emptied when full)
WAL_HEADER = 48  # bytes of SQLite's WAL-index header (one copy of struct WalIndexHdr) in `-shm`
_RANK = {"read": 0, "write": 1, "admin": 2}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    id        TEXT PRIMARY KEY,
    name      TEXT NOT NULL,
    workspace TEXT,             -- NULL for admin tokens
    scope     TEXT NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    digest    BLOB NOT NULL UNIQUE,
    created   REAL NOT NULL
) STRICT;
"""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: one token's identity and reach."""

    id: str
    name: str
    workspace: str | None  # None: admin, every workspace
    scope: str

    @property
    def is_admin(self) -> bool:
        return self.scope == "admin"

    def require(self, workspace: str | None, need: str) -> None:
        """Raise EACCES unless this token may do `need` ('read'/'write'/'admin') on `workspace`."""
        if self.is_admin:
            return
        if need == "admin":
            raise ProtocolError(EACCES, "this operation needs an admin token")
        if workspace is None or workspace != self.workspace:
            raise ProtocolError(EACCES, f"token is not valid for workspace {workspace!r}")
        if _RANK[self.scope] < _RANK[need]:
            raise ProtocolError(EACCES, f"token scope {self.scope!r} does not allow {need}")

    def to_wire(self) -> dict[str, str | None]:
        return {
            "id": self.id,
            "name": self.name,
            "kind": "admin" if self.is_admin else "workspace",
            "workspace": self.workspace,
            "scope": self.scope,
        }


def new_token(workspace: str | None, scope: str, name: str = "") -> tuple[Principal, str]:
    """Check a token request and mint it: its identity and its secret. Every token store
    (this one, the cluster's `SharedTokens`) keeps only a digest of the secret."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}")
    if (scope == "admin") != (workspace is None):
        raise ValueError("admin tokens have no workspace; workspace tokens need one")
    name = name or (f"{workspace}-{scope}" if workspace else "admin")
    return Principal(secrets.token_hex(6), name, workspace, scope), "wsfs_" + secrets.token_urlsafe(32)


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


class TokenStore:
    """The token table of one data dir. Thread-safe; cheap to open."""

    def __init__(self, data_dir: str | os.PathLike[str]):
        self.path = Path(data_dir) / "server.db"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.executescript(_SCHEMA)
        self._data_version: int | None = None
        # found tokens by secret, valid while nobody committed (`lookup`)
        self._known: dict[str, Principal] = {}
        self._known_version: object = None
        # the WAL-index header: every commit of any connection, in any process, changes it (None: read
        # `PRAGMA data_version` instead); the mapping is `vfs.shmmap`'s, kept while the file has a name
        self._shm = shmmap.header_map(f"{self.path}-shm", WAL_HEADER)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
            if self._shm is not None:
                shmmap.let_go(self._shm)
                self._shm = None

    def _version(self) -> object:
        """What any commit to the token table changes (under `_lock`): the WAL-index header's bytes
        (a 48-byte read, ~0.2 us; a checkpoint may change them too, which only empties the memory
        once more), else SQLite's `data_version` (a statement, ~4-5 us of every request)."""
        shm = self._shm
        if shm is not None:
            return shm[:WAL_HEADER]
        return self._conn.execute("PRAGMA data_version").fetchone()[0]

    def create(self, workspace: str | None, scope: str, name: str = "") -> tuple[Principal, str]:
        """Mint a token; returns its identity and the secret (shown once, never stored)."""
        who, secret = new_token(workspace, scope, name)
        with self._lock:
            self._conn.execute(
                "INSERT INTO tokens (id, name, workspace, scope, digest, created) VALUES (?, ?, ?, ?, ?, ?)",
                (who.id, who.name, workspace, scope, _digest(secret), time.time()),
            )
        return who, secret

    def lookup(self, secret: str | None) -> Principal | None:
        """The token's identity, or None. A token found before is answered from memory while the
        database's WAL-index header says nobody committed since (`_version`: no statement), by its
        secret (no digest: SHA-256 of it was ~2 us of every request); our own writes (`create`,
        `revoke`) forget what they change too, so a revocation by anyone still holds from the next
        request on."""
        if not secret:
            return None
        with self._lock:
            version = self._version()
            if version != self._known_version:
                self._known.clear()
                self._known_version = version
            found = self._known.get(secret)
            if found is not None:
                return found
            row = self._conn.execute(
                "SELECT id, name, workspace, scope FROM tokens WHERE digest = ?", (_digest(secret),)
            ).fetchone()
            if row is None:
                return None
            if len(self._known) >= KNOWN_MAX:
                self._known.clear()
            found = self._known[secret] = Principal(*row)
            return found

    def authenticate(self, secret: str | None) -> Principal:
        principal = self.lookup(secret)
        if principal is None:
            raise ProtocolError(EAUTH, "missing or invalid token" if secret else "a token is required")
        return principal

    def list(self) -> list[dict[str, object]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, name, workspace, scope, created FROM tokens ORDER BY created, id"
            ).fetchall()
        return [dict(zip(("id", "name", "workspace", "scope", "created"), r)) for r in rows]

    def revoke(self, token_id: str) -> bool:
        with self._lock:
            self._known.clear()
            return self._conn.execute("DELETE FROM tokens WHERE id = ?", (token_id,)).rowcount > 0

    def revoke_workspace(self, workspace: str) -> list[str]:
        with self._lock:
            self._known.clear()
            rows = self._conn.execute("DELETE FROM tokens WHERE workspace = ? RETURNING id", (workspace,)).fetchall()
        return [r[0] for r in rows]

    def changed(self) -> bool:
        """Has another connection (another process) committed to the token table since the last call?"""
        with self._lock:
            version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        changed, self._data_version = version != self._data_version, version
        return changed

    def ids(self) -> set[str]:
        """The ids of every token that exists now."""
        with self._lock:
            return {r[0] for r in self._conn.execute("SELECT id FROM tokens")}

    def has_admin(self) -> bool:
        with self._lock:
            return self._conn.execute("SELECT 1 FROM tokens WHERE scope = 'admin' LIMIT 1").fetchone() is not None


def ensure_admin(tokens: TokenStore) -> str | None:
    """Create the first admin token; returns its secret only when it was just created."""
    if tokens.has_admin():
        return None
    return tokens.create(None, "admin", "admin")[1]


def ensure_demo_token(tokens: TokenStore, data_dir: str | os.PathLike[str], workspace: str = "demo") -> str:
    """The token of the printed demo URL, kept in plaintext in `DATA/demo-token` (mode 0600).

    Tokens are stored hashed, so the one secret we can print at every start is
    one we keep ourselves: a write token scoped to the demo workspace only.
    Revoking it (or deleting the file) makes the next start mint a new one.
    """
    path = Path(data_dir) / "demo-token"
    try:
        secret = path.read_text().strip()
    except FileNotFoundError:
        secret = ""
    found = tokens.lookup(secret)
    if found is not None and found.workspace == workspace:
        return secret
    secret = tokens.create(workspace, "write", "demo-link")[1]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    os.chmod(path, 0o600)
    return secret


def token_from(headers: object, query: object) -> str | None:
    """The bearer token of a request: `Authorization: Bearer X`, else `?token=X`."""
    auth = headers.get("authorization")  # type: ignore[attr-defined]
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return query.get("token")  # type: ignore[attr-defined]
