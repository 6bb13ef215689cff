"""`ClusterSetup`: everything `wsfs serve --cluster` adds to a server, built in one place.

The command line builds it (`server/cli.py`), `create_app` plugs it in:
the hub (`RedisHub` wrapped in `DurableHub`: subscribers hear only durable
revisions), the shared tokens (`SharedTokens`), the placement
(`ClusterPlacement`), and the outermost ASGI layer (`ClusterProxy`). Its
`start` and `stop` run in the app's lifespan, on the serving loop, around
the stores: start the engines before any store opens; stop them after every
store closed (each close synced and released its workspace).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError
from vfs.wire import ProtocolError

from server.cluster.durable_hub import DurableHub
from server.cluster.lease import LeaseUnavailable
from server.cluster.manifest import Manifests
from server.cluster.objectstore import ObjectStoreError
from server.cluster.node import ClusterConfig, ClusterNode
from server.cluster.placement import ClusterPlacement
from server.cluster.proxy import ClusterProxy
from server.cluster.redis_hub import RedisHub
from server.cluster.shared_tokens import SharedTokens

if TYPE_CHECKING:
    from server.state import ServerState

log = logging.getLogger("wsfs.server.cluster")


class ClusterSetup:
    def __init__(self, config: ClusterConfig, data_dir: Path):
        self.config = config
        self.node = ClusterNode(config, Path(data_dir))  # Litestream's log goes there
        self.redis_hub = RedisHub(config.redis_url, config.node, prefix=config.prefix)
        self.hub = DurableHub(self.redis_hub, on_known=self._known)
        self.tokens = SharedTokens(config.redis_url, prefix=config.prefix, hub=self.redis_hub)
        self.placement = ClusterPlacement(self.node)
        self.proxy: ClusterProxy | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._known_names: set[str] = set()

    async def owned_elsewhere(self, workspace: str) -> bool:
        """Does another node hold `workspace` now? (True when Redis cannot tell: do not fight for it)"""
        ownership = self.node.ownership
        if ownership is None:
            return True
        try:
            owner = await ownership.owner_of(workspace)
        except LeaseUnavailable:
            return True
        return owner is not None and owner != self.node.node

    async def start(self, state: ServerState) -> None:
        await self.redis_hub.start()
        await self.tokens.start()
        await self.node.start(on_lost=self.placement.on_lost)
        self.placement.attach(state)

    async def stop(self) -> None:
        await self.placement.stop()
        for task in list(self._tasks):
            await asyncio.gather(task, return_exceptions=True)
        await self.node.stop()
        await self.tokens.stop()
        await self.redis_hub.stop()
        if self.proxy is not None:
            await self.proxy.aclose()

    def owned(self) -> list[str]:
        ownership = self.node.ownership
        return sorted(ownership.held) if ownership is not None else []

    def chunk_stats(self) -> tuple[dict[str, int], int] | None:
        """S3 requests and bytes for chunk objects so far, and the node's chunk cache size (for
        `/metrics`); None when chunks live inside SQLite (`--cluster-chunks sqlite`)."""
        objects = self.node.chunk_objects
        if objects is None:
            return None
        return dict(objects.client.counts), objects.cache.total

    async def open_here(self, workspace: str) -> None:
        """Before a request is served here for a workspace this node does not hold: open its store now
        (acquire, restore), so handlers that look at the local disk first find it. A name the cluster
        never listed is left to the handler (404, or a create)."""
        state, ownership, redis = self.placement.state, self.node.ownership, self.node.redis
        if state is None or ownership is None or redis is None or workspace in ownership.held:
            return
        try:
            known = bool(await redis.sismember(self.node.workspaces_key, workspace))
        except RedisError:
            known = False
        if known or state.stores.exists(workspace):
            try:
                await state.stores.get(workspace)
            except ProtocolError as exc:
                if exc.code != "ENOENT":
                    raise

    async def workspace_names(self) -> set[str]:
        """Every workspace of the cluster (the Redis set; empty while Redis is away)."""
        if self.node.redis is None:
            return set()
        try:
            raw = await self.node.redis.smembers(self.node.workspaces_key)
        except RedisError as exc:
            log.warning("cannot list the cluster's workspaces: %s", exc)
            return set()
        return {m.decode() if isinstance(m, bytes) else str(m) for m in raw}

    def _known(self, workspace: str) -> None:
        """A store of `workspace` opened here: add it to the cluster's list (once per name)."""
        if workspace in self._known_names or self.node.redis is None:
            return
        self._known_names.add(workspace)
        task = asyncio.ensure_future(self._add(workspace))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _add(self, workspace: str) -> None:
        assert self.node.redis is not None
        try:
            await self.node.redis.sadd(self.node.workspaces_key, workspace)
        except RedisError as exc:
            self._known_names.discard(workspace)
            log.warning("could not list %s in the cluster: %s", workspace, exc)

    async def forget(self, workspace: str) -> None:
        """The workspace was deleted here: the deletion marker in its manifest (what keeps every node
        from restoring it), then its old replicas erased (garbage: a failure only leaves them behind)
        and its name dropped from the cluster's list."""
        self._known_names.discard(workspace)
        epoch = await self.placement.mark_deleted(workspace)
        if self.node.store is not None:
            try:
                await Manifests(self.node.store).erase_before(workspace, epoch)
            except ObjectStoreError as exc:
                log.warning("replicas of deleted %s not erased (unreadable now, left behind): %s", workspace, exc)
        if self.node.redis is not None:
            try:
                await self.node.redis.srem(self.node.workspaces_key, workspace)
            except RedisError as exc:
                log.warning("could not unlist %s: %s", workspace, exc)
