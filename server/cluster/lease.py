"""Workspace leases on Redis: who owns a workspace right now.

A lease is the key `owner:<workspace>` holding the owner's node id with a
time to live: taken with `SET NX PX`, extended and released by scripts that
first compare the value with our node id, so a node can never extend or
delete a lease another node took after ours expired.

The lease decides who *should* own a workspace and lets others find the
owner. It is not what makes ownership safe: Redis may lose keys on failover,
and a paused node's timer proves nothing. Safety is the manifest fence
(`server.cluster.manifest`); the lease only keeps two nodes from racing for
it all the time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

# KEYS[1] = owner:<ws>, ARGV[1] = our node id, ARGV[2] = time to live in ms.
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS[1] = owner:<ws>, ARGV[1] = our node id.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


T = TypeVar("T")


class LeaseUnavailable(Exception):
    """Redis did not answer: nobody can tell who owns what until it does."""


def lease_key(workspace: str) -> str:
    return f"owner:{workspace}"


class Leases:
    """One node's view of the leases: take, extend, release, and look up owners."""

    def __init__(self, redis: Redis, node: str, *, ttl_ms: int = 3000, timeout: float | None = None):
        """`timeout` bounds every Redis call (default: one time to live): a Redis that is paused or
        cut off does not refuse connections, it just never answers."""
        if not node:
            raise ValueError("a node needs a non-empty id")
        self.redis = redis
        self.node = node
        self.ttl_ms = ttl_ms
        self.timeout = timeout if timeout is not None else max(ttl_ms / 1000, 0.5)
        self._extend: Any = redis.register_script(_EXTEND)
        self._release: Any = redis.register_script(_RELEASE)

    async def _bounded(self, call: Awaitable[T]) -> T:
        """One Redis round trip (or a few), bounded by `timeout`; failures become LeaseUnavailable."""
        try:
            async with asyncio.timeout(self.timeout):
                return await call
        except (RedisError, TimeoutError) as exc:
            raise LeaseUnavailable(f"redis did not answer: {exc!r}") from exc

    async def take(self, workspace: str) -> str | None:
        """Take the lease if it is free (or already ours): None on success, else the owner's node id."""
        return await self._bounded(self._take(workspace))

    async def _take(self, workspace: str) -> str | None:
        key = lease_key(workspace)
        for _attempt in range(3):  # the owner's lease may expire between our calls: look again
            if await self.redis.set(key, self.node, nx=True, px=self.ttl_ms):
                return None
            if await self._extend(keys=[key], args=[self.node, self.ttl_ms]):
                return None  # it was ours already: taking it again renews it
            owner = await self.redis.get(key)
            if owner is not None:
                return _text(owner)
        raise LeaseUnavailable(f"the lease on {workspace!r} kept changing hands; try again")

    async def extend(self, workspace: str) -> bool:
        """Extend our lease by a full time to live; False when it is no longer ours."""
        return bool(await self._bounded(self._extend(keys=[lease_key(workspace)], args=[self.node, self.ttl_ms])))

    async def release(self, workspace: str) -> bool:
        """Delete our lease so another node can take over at once; False when it was not ours."""
        return bool(await self._bounded(self._release(keys=[lease_key(workspace)], args=[self.node])))

    async def owner(self, workspace: str) -> str | None:
        """The node holding the lease, or None."""
        value = await self._bounded(self.redis.get(lease_key(workspace)))
        return None if value is None else _text(value)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
