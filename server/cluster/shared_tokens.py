"""`SharedTokens`: the token store of a cluster, kept in Redis, mirrored in memory on each node.

Same interface as `server.auth.TokenStore` (`TokenBackend` below is that
interface), so handlers, the bootstrap (`ensure_admin`, `ensure_demo_token`)
and the revocation watch work unchanged. Tokens are stored as SHA-256
digests only, as in SQLite.

Why a mirror: `lookup` runs on the event loop for every request and
WebSocket upgrade, synchronously. It answers from memory; a token created on
another node a moment ago is not in the mirror yet, so a miss asks Redis once
(a blocking round trip bounded by `LOOKUP_TIMEOUT`: a miss is rare, a
new token or a bad one). A background task (`start`/`stop`) polls one
version counter every `POLL` seconds and reloads the mirror when it moved,
so revoked tokens stop working on every node within `POLL`.

Revoking goes through Redis first (the token is gone for every node), then
`hub.close_sessions(None, CLOSE_POLICY, "token revoked", token_id=...)`
cuts the open sockets on every node at once. Creating and revoking are rare
admin operations and block for one Redis round trip: the answer must not be
given before every node can see the change.

Durability: Redis is the only copy. A cluster must run Redis with
persistence for the tokens (`appendonly yes`); if Redis loses them anyway,
the cluster fails *closed* (no token authenticates; a node restart mints a
new admin token) and never resurrects a revoked token.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import logging
import time
from typing import Any, Protocol, cast

import orjson
import redis
from redis.asyncio import Redis

from server.auth import Principal, new_token
from server.cluster.redis_hub import RedisHub
from server.hub import Hub
from vfs.wire import CLOSE_POLICY, EAUTH, ProtocolError

log = logging.getLogger("wsfs.cluster.tokens")

POLL = 0.2  # seconds between checks of the version counter
LOOKUP_TIMEOUT = 0.5  # bound on the blocking Redis read after a mirror miss
DOWN_BACKOFF = 1.0  # after a failed fallback read, misses answer "unknown" at once for this long

# KEYS: tokens hash, digests hash, version; ARGV[1]: token id. Returns 1 if it existed.
_REVOKE = """
local rec = redis.call('HGET', KEYS[1], ARGV[1])
if not rec then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], cjson.decode(rec)['digest'])
redis.call('INCR', KEYS[3])
return 1
"""

# KEYS: tokens hash, digests hash, version; ARGV[1]: workspace. Returns the ids removed.
_REVOKE_WORKSPACE = """
local gone = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
    local rec = cjson.decode(all[i + 1])
    if rec['workspace'] == ARGV[1] then
        redis.call('HDEL', KEYS[1], all[i])
        redis.call('HDEL', KEYS[2], rec['digest'])
        table.insert(gone, all[i])
    end
end
if #gone > 0 then redis.call('INCR', KEYS[3]) end
return gone
"""


class TokenBackend(Protocol):
    """What the server needs from a token store (`server.auth.TokenStore` and `SharedTokens`)."""

    def create(self, workspace: str | None, scope: str, name: str = "") -> tuple[Principal, str]: ...
    def lookup(self, secret: str | None) -> Principal | None: ...
    def authenticate(self, secret: str | None) -> Principal: ...
    def list(self) -> list[dict[str, object]]: ...
    def revoke(self, token_id: str) -> bool: ...
    def revoke_workspace(self, workspace: str) -> builtins.list[str]: ...
    def changed(self) -> bool: ...
    def ids(self) -> set[str]: ...
    def has_admin(self) -> bool: ...
    def close(self) -> None: ...


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _principal(rec: dict[str, Any]) -> Principal:
    return Principal(rec["id"], rec["name"], rec["workspace"], rec["scope"])


class SharedTokens:
    """Tokens in Redis (`<prefix>:tokens`, `<prefix>:token-digests`, `<prefix>:tokens-version`)."""

    def __init__(self, url: str, *, prefix: str = "wsfs", hub: Hub | None = None):
        self.url, self.hub = url, hub
        self._keys = [f"{prefix}:tokens", f"{prefix}:token-digests", f"{prefix}:tokens-version"]
        self._sync = redis.Redis.from_url(url, socket_timeout=LOOKUP_TIMEOUT, socket_connect_timeout=LOOKUP_TIMEOUT)
        self._by_digest: dict[str, Principal] = {}
        self._version: bytes | None = None  # of the mirror
        self._seen: bytes | None = None  # the mirror version at the last `changed()`
        self._task: asyncio.Task[None] | None = None
        self._async: Redis | None = None
        self._down_until = 0.0  # no fallback lookups before this (monotonic): Redis just failed
        if isinstance(hub, RedisHub):  # a revocation on another node drops the token here at once
            hub.token_closed.append(self._drop)

    # -- lifecycle --------------------------------------------------------

    async def start(self) -> None:
        """Load the mirror and start following changes (on the serving loop)."""
        self._async = Redis.from_url(self.url, socket_timeout=2.0, socket_connect_timeout=2.0)
        try:
            await self._refresh()
        except redis.RedisError as exc:
            log.warning("tokens: Redis unreachable at start (%s); lookups ask it directly meanwhile", exc)
        self._seen = self._version
        self._task = asyncio.ensure_future(self._follow())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._async is not None:
            await self._async.aclose()

    def close(self) -> None:
        self._sync.close()

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(POLL)
            try:
                await self._refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis away: keep serving the last mirror
                log.debug("tokens: refresh failed (%s)", exc)

    async def _refresh(self) -> None:
        assert self._async is not None
        version = cast("bytes | None", await self._async.get(self._keys[2])) or b"0"  # none: Redis lost them
        if version == self._version:
            return
        records = await self._async.hgetall(self._keys[0])
        self._by_digest = {r["digest"]: _principal(r) for r in map(orjson.loads, records.values())}
        self._version = version

    # -- the TokenStore interface ----------------------------------------

    def create(self, workspace: str | None, scope: str, name: str = "") -> tuple[Principal, str]:
        """Mint a token, stored in Redis before the secret is returned (every node can use it then)."""
        who, secret = new_token(workspace, scope, name)
        digest = _digest(secret)
        rec = {"id": who.id, "name": who.name, "workspace": workspace, "scope": scope, "digest": digest,
               "created": time.time()}
        pipe = self._sync.pipeline(transaction=True)
        pipe.hset(self._keys[0], who.id, orjson.dumps(rec))
        pipe.hset(self._keys[1], digest, who.id)
        pipe.incr(self._keys[2])
        pipe.execute()
        self._by_digest[digest] = who
        return who, secret

    def lookup(self, secret: str | None) -> Principal | None:
        if not secret:
            return None
        digest = _digest(secret)
        found = self._by_digest.get(digest)
        if found is not None:
            return found
        if time.monotonic() < self._down_until:
            return None  # Redis failed a moment ago: no blocking call per bad token meanwhile
        try:  # not mirrored (yet): made on another node a moment ago, or not a token
            tid = self._sync.hget(self._keys[1], digest)
            rec = self._sync.hget(self._keys[0], tid) if tid else None
        except redis.RedisError:
            self._down_until = time.monotonic() + DOWN_BACKOFF
            return None
        if rec is None:
            return None
        found = _principal(orjson.loads(rec))
        self._by_digest[digest] = found
        return found

    def authenticate(self, secret: str | None) -> Principal:
        principal = self.lookup(secret)
        if principal is None:
            raise ProtocolError(EAUTH, "missing or invalid token" if secret else "a token is required")
        return principal

    def list(self) -> list[dict[str, object]]:
        records = [orjson.loads(r) for r in self._sync.hvals(self._keys[0])]
        rows = [{k: r[k] for k in ("id", "name", "workspace", "scope", "created")} for r in records]
        return sorted(rows, key=lambda r: (r["created"], r["id"]))  # type: ignore[return-value]

    def revoke(self, token_id: str) -> bool:
        """Delete it in Redis (every node), then close its sockets on every node through the hub."""
        gone = bool(self._sync.eval(_REVOKE, 3, *self._keys, token_id))
        if gone:
            self._forget_ids({token_id})
        return gone

    def revoke_workspace(self, workspace: str) -> builtins.list[str]:
        ids = [i.decode() for i in self._sync.eval(_REVOKE_WORKSPACE, 3, *self._keys, workspace)]
        self._forget_ids(set(ids))
        return ids

    def _drop(self, token_id: str) -> None:
        self._by_digest = {d: p for d, p in self._by_digest.items() if p.id != token_id}

    def _forget_ids(self, ids: set[str]) -> None:
        self._by_digest = {d: p for d, p in self._by_digest.items() if p.id not in ids}
        if self.hub is not None:
            for tid in ids:
                self.hub.close_sessions(None, CLOSE_POLICY, "token revoked", token_id=tid)

    def changed(self) -> bool:
        """Did the mirror change since the last call (a token created or revoked on any node)?"""
        changed, self._seen = self._version != self._seen, self._version
        return changed

    def ids(self) -> set[str]:
        return {p.id for p in self._by_digest.values()}

    def has_admin(self) -> bool:
        return any(orjson.loads(r)["scope"] == "admin" for r in self._sync.hvals(self._keys[0]))
