"""One cluster node: the engines of `wsfs serve --cluster`, built once, started and stopped together.

`ClusterConfig` is what the command line gives (`--cluster`, `--replicate`,
`--s3-endpoint`, `--advertise`, `--node-id`). `ClusterNode` builds, on the
serving loop, the Redis client, the `ObjectStore` (once per node: building a
botocore client blocks the loop for a while), `Leases`, `Manifests`,
`Ownership`, the supervised `Litestream` child and `DurableAcks`, and keeps
two small things in Redis that every node reads:

- `<prefix>:nodes` (hash node id -> advertised URL): where to proxy a
  request for a workspace another node owns (the lease value is the node id);
- `<prefix>:workspaces` (set): the workspace names of the whole cluster, for
  `GET /api/workspaces` on any node.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.exceptions import RedisError

from server.cluster.acks import DurableAcks
from server.cluster.chunkobjects import CACHE_BYTES, ChunkCache, ChunkObjects, ObjectClient
from server.cluster.lease import Leases
from server.cluster.manifest import Manifests
from server.cluster.objectstore import ObjectStore, S3Location
from server.cluster.objectchunks import GRACE
from server.cluster.ownership import FENCE_WINDOW, LostCallback, Ownership
from server.cluster.replication import L1_INTERVAL, Litestream, compaction_settings

log = logging.getLogger("wsfs.server.cluster")

REDIS_TIMEOUT = 2.0  # seconds: a paused Redis never answers
LITESTREAM_STOP = 2.0  # seconds for Litestream to exit on SIGTERM (every store is unregistered by then)


@dataclass
class ClusterConfig:
    """`wsfs serve --cluster ...`: where the engines are and how other nodes reach this one."""

    redis_url: str
    replicate: str  # s3://BUCKET/PREFIX
    advertise: str  # http://host:port other nodes proxy to
    s3_endpoint: str | None = None
    node_id: str | None = None
    lease_ms: int = 3000
    ack_timeout: float = 5.0
    # D (docs/cluster.md, "Why it fences"); 0: the plain rule, for machines whose clock may stop
    # while the node is frozen (WSFS_CLUSTER_FENCE_WINDOW until `wsfs serve` has a flag for it)
    fence_window: float = field(default_factory=lambda: float(os.environ.get("WSFS_CLUSTER_FENCE_WINDOW",
                                                                              FENCE_WINDOW)))
    prefix: str = "wsfs"  # Redis key prefix (shared with RedisHub and SharedTokens)
    # where chunk bytes beyond a transaction's spill go: "objects" (S3, by hash; the default) or
    # "sqlite" (inside the replicated store file, the first pass); WSFS_CLUSTER_CHUNKS until a flag exists
    chunks: str = field(default_factory=lambda: os.environ.get("WSFS_CLUSTER_CHUNKS", "objects"))
    # seconds a chunk collector spares an unnamed object (docs/cluster.md, "Why the chunk collector is safe")
    chunk_grace: float = field(default_factory=lambda: float(os.environ.get("WSFS_CLUSTER_CHUNK_GRACE", GRACE)))
    chunk_cache_bytes: int = field(default_factory=lambda: int(float(os.environ.get(
        "WSFS_CLUSTER_CHUNK_CACHE_MB", CACHE_BYTES >> 20)) * (1 << 20)))
    # group-commit rounds syncing at once per workspace (`DurableAcks.in_flight`; docs/cluster.md,
    # "Fourth pass"); WSFS_CLUSTER_ROUNDS_IN_FLIGHT until a flag exists
    rounds_in_flight: int = field(default_factory=lambda: int(os.environ.get("WSFS_CLUSTER_ROUNDS_IN_FLIGHT", 1)))
    # seconds between Litestream's L1 compactions; its L0 files go at half that (docs/cluster.md,
    # "Litestream's compaction"): shorter keeps each sync cheap, longer lists S3 less often; 0 leaves
    # Litestream's own defaults (L1 every 30 s, L0 files kept 5 minutes)
    l1_interval: float = field(default_factory=lambda: float(os.environ.get("WSFS_CLUSTER_L1_INTERVAL",
                                                                            L1_INTERVAL)))

    def __post_init__(self) -> None:
        if urlsplit(self.advertise).scheme not in ("http", "https"):
            raise ValueError(f"--advertise must be an http:// or https:// URL, got {self.advertise!r}")
        if urlsplit(self.redis_url).scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"--cluster must be a redis:// URL, got {self.redis_url!r}")
        S3Location.parse(self.replicate, endpoint=self.s3_endpoint)  # fail at start, not at first write
        if not self.node_id:
            self.node_id = re.sub(r"[^A-Za-z0-9._-]", "-", urlsplit(self.advertise).netloc)
        if ":" in self.node_id:
            raise ValueError("a node id may not contain ':'")
        if not 0 <= self.fence_window <= 5:
            raise ValueError(f"the fence window must be between 0 and 5 s, got {self.fence_window}")
        if self.chunks not in ("objects", "sqlite"):
            raise ValueError(f"cluster chunks must be 'objects' or 'sqlite', got {self.chunks!r}")
        if self.l1_interval != 0 and not 1 <= self.l1_interval <= 3600:
            raise ValueError(f"the L1 interval must be 0 or between 1 and 3600 s, got {self.l1_interval}")
        if self.rounds_in_flight not in (1, 2):
            raise ValueError(f"rounds in flight must be 1 or 2, got {self.rounds_in_flight}")
        if self.chunk_grace < 0 or self.chunk_cache_bytes < 0:
            raise ValueError("the chunk grace and the chunk cache size must not be negative")

    @property
    def node(self) -> str:
        assert self.node_id
        return self.node_id

    def location(self) -> S3Location:
        return S3Location.parse(self.replicate, endpoint=self.s3_endpoint)


class ClusterNode:
    """The engines of one node; `start` on the serving loop, `stop` at the end."""

    def __init__(self, config: ClusterConfig, log_dir: Path):
        self.config = config
        self.node = config.node
        self.advertise = config.advertise.rstrip("/")
        self.location = config.location()
        self.log_dir = log_dir
        self.redis: Redis | None = None
        self.store: ObjectStore | None = None
        self.ownership: Ownership | None = None
        self.litestream: Litestream | None = None
        self.acks: DurableAcks | None = None
        self.chunk_objects: ChunkObjects | None = None  # chunk bytes in S3 (None: inside SQLite)
        self._urls: dict[str, str] = {}  # node id -> advertised URL, cached (a node's URL does not change)
        self.nodes_key = f"{config.prefix}:nodes"
        self.workspaces_key = f"{config.prefix}:workspaces"

    async def start(self, on_lost: LostCallback) -> None:
        self.redis = Redis.from_url(self.config.redis_url, socket_timeout=REDIS_TIMEOUT,
                                    socket_connect_timeout=REDIS_TIMEOUT)
        self.store = await ObjectStore(self.location).open()
        leases = Leases(self.redis, self.node, ttl_ms=self.config.lease_ms)
        self.ownership = Ownership(leases, Manifests(self.store), on_lost=on_lost,
                                   fence_window=self.config.fence_window)
        self.litestream = await Litestream(self.location, log_path=self.log_dir / "litestream.log",
                                           settings=compaction_settings(self.config.l1_interval)
                                           if self.config.l1_interval else "").start()
        self.acks = DurableAcks(self.litestream, self.ownership, timeout=self.config.ack_timeout,
                                in_flight=self.config.rounds_in_flight)
        if self.config.chunks == "objects":  # building a botocore client blocks: not on the loop
            self.chunk_objects = await asyncio.to_thread(self._chunk_objects)
        try:
            await self.redis.hset(self.nodes_key, self.node, self.advertise)
        except RedisError as exc:  # not fatal: other nodes cannot proxy here until it is written
            log.warning("could not publish this node's URL to Redis: %s", exc)
        log.info("cluster node %s up, advertised at %s", self.node, self.advertise)

    def _chunk_objects(self) -> ChunkObjects:
        cache = ChunkCache(self.log_dir / ".chunk-cache", self.config.chunk_cache_bytes)
        return ChunkObjects(ObjectClient(self.location), cache)

    def chunk_prefix(self, workspace: str) -> str:
        """Where a workspace's chunk objects live (every epoch's: a new owner finds them by their rows)."""
        return self.location.key("ws", workspace, "chunks")

    async def publish_url(self) -> None:
        """Write this node's URL again (Redis may have come back empty)."""
        assert self.redis is not None
        await self.redis.hset(self.nodes_key, self.node, self.advertise)

    async def url_of(self, node: str) -> str | None:
        """The advertised URL of another node (None: it never said)."""
        url = self._urls.get(node)
        if url is None and self.redis is not None:
            raw = await self.redis.hget(self.nodes_key, node)
            if raw is not None:
                url = self._urls[node] = raw.decode() if isinstance(raw, bytes) else str(raw)
        return url

    async def stop(self) -> None:
        """Release every workspace still held, stop Litestream, close the clients (each step bounded)."""
        if self.ownership is not None:
            await self.ownership.close()
        if self.litestream is not None:
            await self.litestream.stop(timeout=LITESTREAM_STOP)
        if self.store is not None:
            await self.store.close()
        if self.chunk_objects is not None:
            await asyncio.to_thread(self.chunk_objects.close)
        if self.redis is not None:
            await self.redis.aclose()
