"""`RedisHub`: the `Hub` protocol across nodes, over Redis pub/sub.

Every call is answered or delivered **locally at once**, exactly like
`LocalHub` (which it embeds); what other nodes must hear is queued and sent
by a background writer on one Redis connection. Nothing on the request path
awaits Redis, so a slow or dead Redis never stalls local work: the queue is
bounded, and after a reconnect the node rewrites its own presence in full.

What crosses nodes (channel `<prefix>:hub:<workspace>`, one pattern
subscription per node; `<prefix>:hub-all` for closes of every workspace):

- **commit doorbells** `{rev}`: a listener on another node gets `on_commit(rev)`
  and reads the store from its own cursor. A lost doorbell costs nothing but
  latency: heads only grow and the next doorbell carries the newest revision.
- **presence** events, mirrored per node; the authoritative copy is a Redis
  hash per workspace and node (`<prefix>:presence:<ws>:<node>`) whose time to
  live the node renews every second. A heartbeat round re-reads the hashes
  of every workspace this node knows of, so a lost event, a restarted Redis
  or a dead node (its hash expires) is repaired within a few seconds, with
  `leave` events for the peers that vanished.
- **close requests** (workspace deleted, token revoked): every node closes
  its matching sessions.

In cluster mode a workspace's store is open on its owner only and other
nodes proxy WebSockets there, so most listeners sit on the owner; the
cross-node path matters for presence and closes (revocation arrives at any
node), for the sessions left on an old owner during a hand-over, and for any
subscriber a node serves itself.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from redis.asyncio import Redis

from server.hub import Listener, LocalHub

log = logging.getLogger("wsfs.cluster.hub")

HEARTBEAT = 1.0  # seconds between presence renewals and re-reads
PRESENCE_TTL_MS = 5000  # a dead node's presence is gone after this
OP_TIMEOUT = 2.0  # bound on one Redis round trip (a paused Redis never answers)
MAX_QUEUED = 10_000  # messages kept for Redis while it is away (oldest dropped first)
MAX_REMOTE_PEERS = 10_000  # peers mirrored per workspace from other nodes
MAX_AGE = 10.0  # seconds a message may wait for Redis before it is dropped
RETRY = (0.05, 0.1, 0.2, 0.5, 1.0)  # reconnect back-off, seconds


class RedisHub:
    """A `Hub` shared by every node on one Redis. `await start()` on the serving loop, `await stop()` at exit."""

    def __init__(self, url: str, node: str, *, prefix: str = "wsfs"):
        if not node or ":" in node:
            raise ValueError("a node needs a non-empty id without ':'")
        self.url, self.node, self.prefix = url, node, prefix
        self.local = LocalHub()  # this node's listeners, heads and sessions' presence
        self._remote: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}  # ws -> (node, session) -> peer
        # (queued at, channel, payload); bounded, oldest dropped first
        self._outbox: collections.deque[tuple[float, str, bytes]] = collections.deque(maxlen=MAX_QUEUED)
        self._mine: dict[str, dict[str, dict[str, Any]]] = {}  # ws -> our sessions' presence (what our hash holds)
        self._dirty: set[str] = set()  # workspaces whose presence hash of ours must be rewritten
        self._heard: dict[tuple[str, str, str], float] = {}  # (ws, node, session) -> when a message last said
        self._commits: dict[str, int] = {}  # doorbells not sent yet: the latest revision per workspace
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._pub: Redis | None = None
        self._sub: Redis | None = None
        self.connected = False  # the subscriber is up (for /healthz and tests)
        self.sent = 0  # messages published (for /metrics and tests)
        # called with a token id when another node closes that token's sessions (`SharedTokens` drops it at once)
        self.token_closed: list[Callable[[str], None]] = []

    # -- lifecycle --------------------------------------------------------

    async def start(self) -> None:
        """Open the two connections (publish, subscribe) and start the background tasks."""
        self._pub = Redis.from_url(self.url, single_connection_client=True, socket_timeout=OP_TIMEOUT,
                                   socket_connect_timeout=OP_TIMEOUT)
        self._sub = Redis.from_url(self.url, socket_connect_timeout=OP_TIMEOUT)
        self._wake = asyncio.Event()
        self._tasks = [asyncio.ensure_future(t) for t in (self._writer(), self._reader(), self._heartbeat())]

    async def stop(self) -> None:
        """Send what is queued (bounded), withdraw our presence, close the connections."""
        for task in self._tasks:  # first: a flush cut short puts its messages back for ours
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._dirty.update(self._own_workspaces())
        self._mine.clear()
        try:
            await asyncio.wait_for(self._flush(), OP_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - Redis away: our hashes expire by themselves
            log.info("redis hub: presence not withdrawn at stop (%s)", exc)
        for client in (self._pub, self._sub):
            if client is not None:
                await client.aclose()

    # -- the Hub protocol: local at once, remote in the background ---------

    def listen(self, workspace: str, listener: Listener) -> None:
        self.local.listen(workspace, listener)

    def unlisten(self, workspace: str, listener: Listener) -> None:
        self.local.unlisten(workspace, listener)

    def stand_in(self, workspace: str, listener: Listener, stand_in: Callable[[int], None] | None) -> None:
        """As `LocalHub.stand_in`: remote commits reach the local hub (`publish_commit`), so they fire it too."""
        self.local.stand_in(workspace, listener, stand_in)

    def listeners(self, workspace: str | None = None) -> list[Listener]:
        return self.local.listeners(workspace)

    def head(self, workspace: str) -> int:
        return self.local.head(workspace)

    def set_head(self, workspace: str, rev: int) -> None:
        self.local.set_head(workspace, rev)

    def forget(self, workspace: str) -> None:
        self.local.forget(workspace)
        self._remote.pop(workspace, None)
        self._mine.pop(workspace, None)
        self._commits.pop(workspace, None)  # an older doorbell must not follow the forget
        self._dirty.add(workspace)
        self._send(workspace, {"t": "forget"})

    def publish_commit(self, workspace: str, rev: int) -> None:
        if rev <= self.local.head(workspace):
            return
        self.local.publish_commit(workspace, rev)
        self._commits[workspace] = rev  # coalesced: latest wins, one doorbell per flush
        self._wake.set()

    def publish_presence(self, workspace: str, session: str, op: str, peer: dict[str, Any]) -> None:
        if op == "leave":
            table = self._mine.get(workspace, {})
            if table.pop(session, None) is None:
                return  # never joined: dropped, as LocalHub does
            if not table:
                del self._mine[workspace]
        else:
            self._mine.setdefault(workspace, {})[session] = peer
        self.local.publish_presence(workspace, session, op, peer)
        self._dirty.add(workspace)
        self._send(workspace, {"t": "presence", "s": session, "op": op, "peer": peer})

    def presence(self, workspace: str) -> list[dict[str, Any]]:
        return self.local.presence(workspace) + list(self._remote.get(workspace, {}).values())

    def close_sessions(self, workspace: str | None, code: int, reason: str, *, token_id: str | None = None) -> None:
        self.local.close_sessions(workspace, code, reason, token_id=token_id)
        self._send(workspace, {"t": "close", "code": code, "reason": reason, "token": token_id})

    # -- names ------------------------------------------------------------

    def _channel(self, workspace: str | None) -> str:
        return f"{self.prefix}:hub-all" if workspace is None else f"{self.prefix}:hub:{workspace}"

    def _presence_key(self, workspace: str, node: str) -> str:
        return f"{self.prefix}:presence:{workspace}:{node}"

    def _nodes_key(self, workspace: str) -> str:
        return f"{self.prefix}:presence-nodes:{workspace}"

    def _own_workspaces(self) -> list[str]:
        return list(self._mine)

    # -- sending ----------------------------------------------------------

    def _send(self, workspace: str | None, body: dict[str, Any]) -> None:
        body["n"] = self.node
        self._outbox.append((time.monotonic(), self._channel(workspace), orjson.dumps(body)))
        self._wake.set()

    async def _writer(self) -> None:
        """Send queued messages and presence rewrites, one pipeline per wake-up; retry while Redis is away."""
        failures = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await asyncio.wait_for(self._flush(), OP_TIMEOUT)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis away: keep the queue, retry with back-off
                if failures == 0:
                    log.warning("redis hub: cannot publish (%s); retrying", exc)
                await asyncio.sleep(RETRY[min(failures, len(RETRY) - 1)])
                failures += 1
                self._wake.set()

    async def _flush(self) -> None:
        assert self._pub is not None
        # a message older than MAX_AGE is stale news (a close replayed late could hit a newer session):
        # dropped; presence is rewritten whole and heads only grow, so nothing else depends on it
        oldest = time.monotonic() - MAX_AGE
        messages = [m for m in self._outbox if m[0] >= oldest]
        dirty = set(self._dirty)
        commits = self._commits
        self._outbox.clear()
        self._dirty.clear()
        self._commits = {}
        now = time.monotonic()
        messages += [(now, self._channel(ws), orjson.dumps({"t": "commit", "rev": rev, "n": self.node}))
                     for ws, rev in commits.items()]
        if not messages and not dirty:
            return
        try:
            pipe = self._pub.pipeline(transaction=False)
            for ws in dirty:
                self._write_presence(pipe, ws)
            for _, channel, payload in messages:
                pipe.publish(channel, payload)
            await pipe.execute()
            self.sent += len(messages)
        except BaseException:
            # put back what was not sent, before what arrived meanwhile; past the bound the oldest go
            newer = list(self._outbox)
            self._outbox.clear()
            self._outbox.extend(messages + newer)
            self._dirty |= dirty
            raise

    def _write_presence(self, pipe: Any, workspace: str) -> None:
        """Replace our presence hash for `workspace` with the local table (whole: simple and self-healing)."""
        key = self._presence_key(workspace, self.node)
        table = self._mine.get(workspace, {})
        pipe.delete(key)
        if table:
            pipe.hset(key, mapping={s: orjson.dumps(p) for s, p in table.items()})
            pipe.pexpire(key, PRESENCE_TTL_MS)
            pipe.sadd(self._nodes_key(workspace), self.node)
            pipe.pexpire(self._nodes_key(workspace), PRESENCE_TTL_MS)

    # -- receiving --------------------------------------------------------

    async def _reader(self) -> None:
        """The node's one pub/sub connection: a pattern for every workspace, a channel for global closes."""
        failures = 0
        while True:
            assert self._sub is not None
            pubsub = self._sub.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(f"{self.prefix}:hub:*")
                await pubsub.subscribe(self._channel(None))
                self.connected, failures = True, 0
                self._dirty.update(self._own_workspaces())  # Redis may have restarted empty
                self._wake.set()
                while True:
                    msg = await pubsub.get_message(timeout=HEARTBEAT)
                    if msg is not None:
                        self._receive(msg["channel"], msg["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - reconnect with back-off
                if self.connected:
                    log.warning("redis hub: subscription lost (%s); reconnecting", exc)
                self.connected = False
                await asyncio.sleep(RETRY[min(failures, len(RETRY) - 1)])
                failures += 1
            finally:
                with contextlib.suppress(Exception):  # the connection is already gone
                    await pubsub.aclose()

    def _receive(self, channel: bytes, data: bytes) -> None:
        try:
            body = orjson.loads(data)
            if body.get("n") == self.node:
                return  # our own message: delivered locally already
            name = channel.decode()
            ws = None if name == self._channel(None) else name[len(f"{self.prefix}:hub:"):]
            self._apply(ws, body)
        except Exception:  # one bad message must not end the subscription
            log.exception("redis hub: bad message on %r", channel)

    def _apply(self, ws: str | None, body: dict[str, Any]) -> None:
        kind = body["t"]
        if kind == "close":
            token = body.get("token")
            if token is not None:
                for callback in self.token_closed:
                    callback(token)
            self.local.close_sessions(ws, int(body["code"]), str(body["reason"]), token_id=token)
        elif ws is None:
            return
        elif kind == "commit":
            self.local.publish_commit(ws, int(body["rev"]))
        elif kind == "presence":
            self._heard[(ws, body["n"], body["s"])] = time.monotonic()
            self._remote_presence(ws, body["n"], body["s"], body["op"], body["peer"])
        elif kind == "forget":  # deleted on its owner: its sessions here are being closed too
            self.local.forget(ws)
            self._remote.pop(ws, None)
            if self._mine.pop(ws, None) is not None:
                self._dirty.add(ws)
                self._wake.set()

    def _remote_presence(self, ws: str, node: str, session: str, op: str, peer: dict[str, Any]) -> None:
        table = self._remote.setdefault(ws, {})
        key = (node, session)
        if op == "leave":
            if table.pop(key, None) is None:
                return
        elif key not in table and len(table) >= MAX_REMOTE_PEERS:
            return
        else:
            table[key] = peer
        for listener in self.local.listeners(ws):
            listener.on_presence(op, peer)

    # -- heartbeat: renew ours, re-read theirs ------------------------------

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT)
            try:
                await asyncio.wait_for(self._renew_and_resync(), OP_TIMEOUT)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis away: the reader and writer report it
                log.debug("redis hub: heartbeat failed (%s)", exc)

    async def _renew_and_resync(self) -> None:
        """Two pipelined round trips whatever the number of workspaces: renew ours and list the
        nodes present in each workspace we know of, then read those nodes' hashes."""
        assert self._pub is not None
        started = time.monotonic()
        watched = sorted(set(self._remote) | set(self.local._listeners))  # LocalHub has no public list of these
        pipe = self._pub.pipeline(transaction=False)
        for ws in self._own_workspaces():
            pipe.pexpire(self._presence_key(ws, self.node), PRESENCE_TTL_MS)
            pipe.pexpire(self._nodes_key(ws), PRESENCE_TTL_MS)
        renewals = len(pipe)
        for ws in watched:
            pipe.smembers(self._nodes_key(ws))
        answers = (await pipe.execute())[renewals:] if len(pipe) else []
        wanted = [(ws, node) for ws, members in zip(watched, answers) for node in sorted(map(_text, members))
                  if node != self.node]
        pipe = self._pub.pipeline(transaction=False)
        for ws, node in wanted:
            pipe.hgetall(self._presence_key(ws, node))
        hashes = await pipe.execute() if wanted else []
        fresh: dict[str, dict[tuple[str, str], dict[str, Any]]] = {ws: {} for ws in watched}
        for (ws, node), entries in zip(wanted, hashes):
            for session, peer in list(entries.items())[:MAX_REMOTE_PEERS]:
                fresh[ws][(node, _text(session))] = orjson.loads(peer)
        for ws, table in fresh.items():
            self._resync(ws, table, started)
        self._heard = {k: t for k, t in self._heard.items() if t > started}

    def _resync(self, ws: str, fresh: dict[tuple[str, str], dict[str, Any]], started: float) -> None:
        """Make the mirror of `ws` equal to the other nodes' hashes; tell local listeners what changed.

        A peer a message spoke of after the read began is left alone: the message is newer than the read."""
        old = self._remote.get(ws, {})
        for key, peer in list(old.items()):
            if key not in fresh and self._heard.get((ws, *key), 0.0) <= started:
                self._remote_presence(ws, key[0], key[1], "leave", peer)
        for key, peer in fresh.items():
            if old.get(key) != peer and self._heard.get((ws, *key), 0.0) <= started:
                self._remote_presence(ws, key[0], key[1], "join" if key not in old else "update", peer)
        if not self._remote.get(ws):
            self._remote.pop(ws, None)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
