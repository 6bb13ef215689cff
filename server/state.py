"""The server's shared state and configuration (one instance per app)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.auth import TokenStore
from server.hub import Hub, LocalHub
from server.keepalive import INTERVAL as KEEPALIVE_INTERVAL
from server.keepalive import TIMEOUT as KEEPALIVE_TIMEOUT
from server.keepalive import Keepalive
from server.metrics import Metrics
from server.placement import Placement
from server.store_options import StoreOptions
from server.store_set import Stores

log = logging.getLogger("wsfs.server")

__version__ = "0.1.0"


@dataclass
class ServerConfig:
    data_dir: Path
    max_upload: int = 16 * 1024**3  # PUT body limit (413 above)
    max_json: int = 16 * 1024**2  # JSON request body limit
    max_patch: int = 64 * 1024**2  # PATCH (positional write) body limit
    # PUTs of at least 8 MiB stored as they arrive at once (each holds 12-16 MiB meanwhile,
    # `http_files._Arriving`); one more is answered 503 EAGAIN with Retry-After
    max_big_uploads: int = 16
    # seconds one more big PUT waits for a slot before that 503 (its body unread meanwhile): a
    # client that cannot send its body again (a mount's close, a pipe) rarely sees the refusal
    big_upload_wait: float = 30.0
    max_errors: int = 100  # error frames on one WebSocket before closing it with 1008
    hello_timeout: float = 10.0
    demo_workspace: str = "demo"
    seed_demo: bool = True  # write example files into a never-written demo workspace at startup
    store: StoreOptions = field(default_factory=StoreOptions)


class ServerState:
    """Everything a handler needs, reached as `request.app.state.wsfs`."""

    def __init__(self, config: ServerConfig, hub: Hub | None = None, placement: Placement | None = None,
                 tokens: Any = None, node: str | None = None):
        self.config = config
        self.data_dir = Path(config.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.spool_dir = self.data_dir / "tmp"
        self.spool_dir.mkdir(exist_ok=True)
        self.metrics = Metrics()
        self.hub: Hub = hub if hub is not None else LocalHub()  # a cluster passes its broker-backed hub
        # a cluster passes its shared tokens (server/cluster/shared_tokens.py); else this data dir's
        self.tokens: Any = tokens if tokens is not None else TokenStore(self.data_dir)
        self.node = node  # the cluster node id (None: a single server)
        self.cluster: Any = None  # the ClusterNode of a cluster node
        # a cluster node passes its placement (ownership, restore, durable acks); None: this disk only
        self.stores = Stores(self.data_dir, self.hub, self.metrics, config.store, placement)
        self.stopping = False
        self.sessions: dict[str, Any] = {}  # open WebSocket sessions by session id
        self.session_counter = 0
        # pings (when `runner.make_config` gives them to us, not uvicorn) and aborts closing sockets
        # whose peer reads nothing (always; under plain uvicorn too)
        self.keepalive = Keepalive(KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT, pinging=False)
        self.big_uploads = 0  # big PUTs being stored as they arrive (`config.max_big_uploads`)

    def next_session(self) -> str:
        self.session_counter += 1
        # unique across a cluster's nodes: presence and echo suppression key on it
        return f"{self.node}-s{self.session_counter}" if self.node else f"s{self.session_counter}"
