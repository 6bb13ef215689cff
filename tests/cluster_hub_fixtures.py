"""Two wsfs nodes sharing one Redis: `RedisHub` and `SharedTokens` on real uvicorn servers.

`hub_nodes` starts one Redis (`hub_redis`: restartable on its port) and two
`HubNode`s, each the real app on real uvicorn in a thread of its own, each
with its own data dir, its own `RedisHub` and `SharedTokens`, and a node
prefix on its session ids (sessions must be unique across nodes).

`create_app` takes no hub or token store yet, so a node builds the app as
usual and swaps them in before the lifespan starts; the lifespan is wrapped
to start and stop them on the server's own loop (what `wsfs serve
--cluster` is to do itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster_fixtures import Engine, RedisServer, wait_until
from server_fixtures import START_TIMEOUT, LiveServer
from starlette.applications import Starlette

from server import create_app
from server.cluster.redis_hub import RedisHub
from server.cluster.shared_tokens import SharedTokens
from server.runner import WsfsServer, bind, make_config

_prefixes = itertools.count(1)


class HubNode(LiveServer):
    """One node: the app with a `RedisHub` and `SharedTokens` on `redis_url`."""

    def __init__(self, data_dir: Path, redis_url: str, node: str, prefix: str = "wsfs"):
        self.data_dir = Path(data_dir)
        self.node = node
        self.app = create_app(self.data_dir, seed_demo=False)
        self.state = self.app.state.wsfs
        self.hub = RedisHub(redis_url, node, prefix=prefix)
        self.tokens = SharedTokens(redis_url, prefix=prefix, hub=self.hub)
        self.state.tokens.close()
        self.state.hub = self.state.stores._hub = self.hub
        self.state.tokens = self.tokens
        counter = itertools.count(1)
        self.state.next_session = lambda: f"{node}-s{next(counter)}"
        self._wrap_lifespan(self.app)
        self._sock = bind("127.0.0.1", 0)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = WsfsServer(make_config(self.app))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True)
        self.admin = self.token(None, "admin", f"admin-{node}")

    def _wrap_lifespan(self, app: Starlette) -> None:
        inner = app.router.lifespan_context
        hub, tokens = self.hub, self.tokens

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[Any]:
            self.loop = asyncio.get_running_loop()
            await hub.start()
            await tokens.start()
            try:
                async with inner(app) as value:
                    yield value
            finally:
                await tokens.stop()
                await hub.stop()

        app.router.lifespan_context = lifespan

    def stop(self) -> None:
        super().stop()
        self.tokens.close()

    def on_loop(self, fn: Any, *args: Any) -> None:
        """Run `fn(*args)` on the server's loop (the hub is not thread-safe) and wait for it."""
        done = threading.Event()

        def call() -> None:
            try:
                fn(*args)
            finally:
                done.set()

        self.loop.call_soon_threadsafe(call)
        assert done.wait(START_TIMEOUT)


class RestartableRedis(RedisServer):
    """Redis that can be SIGKILLed and started again on the same port, with an fsynced append-only
    file: what docs/cluster.md asks of a cluster's Redis, since the tokens live there (without it a
    restarted Redis forgets every token and every node fails closed)."""

    def __init__(self, workdir: Path):
        super().__init__(workdir)
        self.argv = [a for a in self.proc.args if a not in ("--appendonly", "no")]
        self.argv += ["--appendonly", "yes", "--appendfsync", "always"]
        self.restart()

    def restart(self) -> None:
        self.kill()
        Engine.__init__(self, "redis", self.argv, self.workdir)
        wait_until(self._pong, "redis-server", self.proc, self.log)


@pytest.fixture
def hub_redis(tmp_path: Path) -> Iterator[RestartableRedis]:
    workdir = tmp_path / "hub-redis"
    workdir.mkdir()
    server = RestartableRedis(workdir)
    try:
        yield server
    finally:
        server.kill()


def wait_thread(predicate: Any, timeout: float = START_TIMEOUT) -> None:
    """Poll a condition from the test's thread (bounded)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


@pytest.fixture
def hub_nodes(tmp_path: Path, hub_redis: RestartableRedis) -> Iterator[tuple[HubNode, HubNode]]:
    """Nodes A and B on one Redis, separate data dirs, both started; stopped on every path."""
    prefix = f"t{next(_prefixes)}"
    nodes: list[HubNode] = []
    try:
        for name in ("a", "b"):
            nodes.append(HubNode(tmp_path / f"node-{name}", hub_redis.url, name, prefix).start())
        for node in nodes:
            wait_thread(lambda node=node: node.hub.connected)
        yield nodes[0], nodes[1]
    finally:
        for node in nodes:
            node.stop()
