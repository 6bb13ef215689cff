"""`ClusterPlacement`: the `server.placement.Placement` of a cluster node.

- `opening` (before a store opens): own the workspace (`Ownership.acquire`:
  lease, then manifest bump), restore the store from the previous epoch's
  replica, register it with Litestream under the new epoch's prefix;
- `durable` (after each commit, before its acknowledgement): one group-commit
  round of `DurableAcks` (Litestream sync-and-wait, then the fence HEAD);
  only then is the revision announced to subscribers (`DurableHub`);
- `closed` (after the store closed): last sync, unregister, release the lease
  so another node takes over at once;
- `mark_deleted` (a deletion, after the store and its files are gone): the
  deletion marker in the manifest, written over our own epoch before the
  lease is released, so no node restores the workspace afterwards. While a
  deletion runs (`deleting`, set by the proxy for the request) the store is
  not reopened here and `closed` keeps the lease.

A workspace lost to another node (`on_lost`: lease taken, manifest moved,
lease not renewed) gets its sessions closed with 1012 (`CLOSE_MOVED`: "service
restart", clients reconnect and land on the new owner through any node) and
its store closed; the fence already refuses every acknowledgement.

Every refusal is `ProtocolError("EAGAIN")`: HTTP 503 with a JSON error, the
same error in a WebSocket push reply.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError
from vfs.wire import ProtocolError

from server.cluster.acks import NotAcknowledged
from server.cluster.lease import LeaseUnavailable
from server.cluster.node import ClusterNode
from server.cluster.objectchunks import ChunkSpace, blocking_durable
from server.cluster.objectstore import ObjectStoreError
from server.cluster.ownership import NoSuchWorkspace, OwnedElsewhere
from server.cluster.replication import ReplicationError, _remove_store

if TYPE_CHECKING:
    from server.state import ServerState

log = logging.getLogger("wsfs.server.cluster")

CLOSE_MOVED = 1012  # "service restart": the workspace moved to another node; reconnect (through any node)
EAGAIN = "EAGAIN"  # 503: not acknowledged / not servable now; the JSON message names why
RELEASE_SWEEP = 2.0  # seconds between sweeps releasing workspaces held without an open store
STOP_BUDGET = 10.0  # seconds all last syncs together may take once the node is stopping
LAST_SYNC = 5.0  # seconds one last sync may take (at an idle close, or within the stop budget)


def refusal(message: str, **extra: Any) -> ProtocolError:
    return ProtocolError(EAGAIN, message, **extra)


class ClusterPlacement:
    """Ownership, restore and durable acknowledgements for the stores of one node."""

    # Subscribers see only acknowledged revisions: a revision shown and then lost with its owner
    # would let the next owner reuse its number for other changes under a reader's cursor.
    durable_reads = True
    # Litestream checkpoints the WAL it replicates: a commit's automatic checkpoint that restarted
    # the WAL while Litestream read it left the replica's last transaction damaged (a restore then
    # failed `quick_check` in about half of the runs; `tests/test_cluster_litestream_kill.py`).
    store_checkpoints = False

    def __init__(self, node: ClusterNode):
        self.node = node
        self.state: ServerState | None = None
        self._registered: dict[str, Path] = {}  # workspace -> store path registered with Litestream
        self._opening: set[str] = set()
        self._orphans: set[str] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.durable_head: dict[str, int] = {}
        self.deleting: set[str] = set()  # workspaces whose DELETE is being served here
        self.creating: set[str] = set()  # workspaces whose creation (PUT) is being served here
        self._stop_by: float | None = None  # time.monotonic() by which the last syncs must be done
        self._spaces: dict[str, ChunkSpace] = {}  # workspace -> its chunk objects (`chunk_backend_for`)
        self._loop: asyncio.AbstractEventLoop | None = None

    def chunk_backend_for(self, name: str) -> str | ChunkSpace:
        """Bulk chunk bytes as S3 objects by hash (`objectchunks.py`): Litestream replicates the
        catalogue only, and a new owner reads chunks lazily. With `chunks = "sqlite"` (the first
        pass) every chunk stays inside the replicated SQLite file. Either way a store made with pack
        files on one node cannot join (it fails to open, naming them: `wsfs store convert` first)."""
        if self.node.chunk_objects is None or self._loop is None:
            return "sqlite"
        space = self._spaces.get(name)
        if space is None:
            space = self._spaces[name] = ChunkSpace(
                name, self.node.chunk_prefix(name), self.node.chunk_objects, lambda: self._epoch(name),
                blocking_durable(self._loop, lambda: self._replicated(name, "chunk collection not fenced"),
                                 self.node.config.ack_timeout + 5),
                grace=self.node.config.chunk_grace)
        return space

    def _epoch(self, name: str) -> int | None:
        assert self.node.ownership is not None
        return self.node.ownership.epoch_of(name)

    def attach(self, state: ServerState) -> None:
        self.state = state
        self._loop = asyncio.get_running_loop()
        self._sweeper = asyncio.ensure_future(self._sweep_forever())

    # -- Placement --------------------------------------------------------

    async def opening(self, name: str, path: Path) -> None:
        node = self.node
        assert node.ownership is not None and node.litestream is not None
        if name in self.deleting:
            raise ProtocolError("ENOENT", f"workspace {name!r} is being deleted", workspace=name)
        self._opening.add(name)
        try:
            if name in self._registered and name in node.ownership.held:
                return
            if name in node.ownership.held:
                # held, but its store was closed without letting go (a deletion that failed half way,
                # an open that found no file): our epoch's replica is newer than `restore_from`, so
                # take a new epoch, which restores from ours
                await node.ownership.release(name)
            try:
                held = await node.ownership.acquire(name, revive=self._may_create(name, path))
            except NoSuchWorkspace as exc:
                if exc.deleted:
                    _remove_store(path)  # a copy left on this disk from before the deletion is no workspace
                raise ProtocolError("ENOENT", f"no workspace named {name!r} ({exc})", workspace=name) from None
            except OwnedElsewhere as exc:
                raise refusal(f"workspace {name!r} is owned by node {exc.owner}; try again", owner=exc.owner) from None
            except (LeaseUnavailable, ObjectStoreError) as exc:
                raise refusal(f"cannot take ownership of {name!r} now: {exc}") from None
            try:
                if held.restore_from is not None:
                    if not await node.litestream.restore(held.restore_from, path):
                        log.warning("%s: epoch %d found no replica at %s", name, held.number, held.restore_from)
                    log.info("%s: epoch %d restored from %s", name, held.number, held.restore_from)
                    if path.exists():
                        await asyncio.to_thread(_check_restored, path)
                elif held.number > 1:
                    log.warning("%s: epoch %d, no earlier replica: starting empty", name, held.number)
                    _remove_store(path)  # earlier epochs replicated nothing, so they acknowledged nothing
                if path.exists():
                    await self._register(name, path)
            except (ReplicationError, OSError) as exc:
                await node.ownership.release(name)
                raise refusal(f"cannot restore {name!r}: {exc}") from None
        finally:
            self._opening.discard(name)

    def _may_create(self, name: str, path: Path) -> bool:
        """May opening `name` start a new life for it (write a first manifest, or one after a deletion)?
        Only a creation (`PUT /api/workspaces/{ws}`, marked by the proxy), the demo workspace (created
        at start, not through the proxy), or a store on this disk that no manifest knows yet (a data
        directory from before the cluster). A request for any other name writes nothing to S3."""
        if name in self.creating or (self.state is not None and name == self.state.config.demo_workspace):
            return True
        return path.exists()

    async def _register(self, name: str, path: Path) -> None:
        node = self.node
        assert node.litestream is not None and node.ownership is not None
        held = node.ownership.held.get(name)
        if held is None:
            raise refusal(f"workspace {name!r} is no longer owned by node {node.node}")
        await node.litestream.register(path, held.prefix)
        self._registered[name] = path

    async def durable(self, name: str, rev: int) -> None:
        assert self.state is not None
        t0 = time.perf_counter()
        await self._replicated(name, f"write committed to revision {rev} but not acknowledged", rev=rev)
        self.state.metrics.cluster_ack_seconds.observe(time.perf_counter() - t0)
        if rev > self.durable_head.get(name, 0):
            self.durable_head[name] = rev
        self.state.hub.publish_durable(name, rev)  # type: ignore[attr-defined]

    async def stored(self, name: str) -> None:
        """The co-editing update log committed (no revision): its updates are acknowledged once
        the commit is replicated and still ours, like any write."""
        await self._replicated(name, "co-editing update stored but not acknowledged")

    async def created(self, name: str) -> None:
        """A workspace was just created here (no commit went through `durable`): replicate its
        empty store before the creation is acknowledged, so it survives this node."""
        await self._replicated(name, f"workspace {name!r} created but not acknowledged")

    async def _replicated(self, name: str, failure: str, **extra: Any) -> None:
        """Return once the store's latest commit is in S3 and the workspace still ours
        (registering it with Litestream first if needed); else EAGAIN saying `failure` and why."""
        node = self.node
        assert node.acks is not None and self.state is not None
        path = self.state.stores.path_of(name)
        try:
            if name not in self._registered:
                await self._register(name, path)
            await node.acks.wait_durable(name, path)
        except (NotAcknowledged, ReplicationError) as exc:
            self.state.metrics.cluster_ack_failures.inc()
            raise refusal(f"{failure}: {exc}", **extra) from None

    def begin_stop(self) -> None:
        """The node is stopping (the lifespan's shutdown began): from now on every last sync shares
        one budget of STOP_BUDGET seconds, so a slow or unreachable S3 cannot hold the stop up for
        a sync timeout per workspace. A last sync skipped or cut short loses nothing acknowledged:
        every acknowledgement waited for its own sync."""
        if self._stop_by is None:
            self._stop_by = time.monotonic() + STOP_BUDGET

    def _sync_time(self) -> float:
        """How long the next last sync may take (0: skip it, the stop budget is spent)."""
        if self._stop_by is None:
            return LAST_SYNC
        return max(0.0, min(LAST_SYNC, self._stop_by - time.monotonic()))

    async def closed(self, name: str, path: Path) -> None:
        node = self.node
        assert node.ownership is not None and node.litestream is not None
        ours = name in node.ownership.held
        if name in self.deleting:  # keep the lease: `mark_deleted` writes the marker under it
            await self._unregister(name, path)
            return
        allowed = self._sync_time()
        try:
            if ours and name not in self._registered and path.exists() and allowed > 0:
                await self._register(name, path)  # created but never written: replicate it before letting go
            if ours and name in self._registered and allowed > 0:
                await node.litestream.sync(path, timeout=allowed)
        except (ReplicationError, ProtocolError) as exc:
            log.warning("last sync of %s failed: %s", name, exc)
        if self._sync_time() > 0:
            await self._unregister(name, path)
        else:  # out of time: Litestream is stopped (and killed if need be) with the node
            self._registered.pop(name, None)
            self.durable_head.pop(name, None)
        if ours:
            await node.ownership.release(name)

    async def _unregister(self, name: str, path: Path) -> None:
        assert self.node.litestream is not None
        self.durable_head.pop(name, None)
        if self._registered.pop(name, None) is not None:
            try:
                await self.node.litestream.unregister(path)
            except ReplicationError as exc:
                log.warning("could not unregister %s: %s", name, exc)

    async def mark_deleted(self, name: str) -> int:
        """The workspace was deleted here: write the deletion marker over our epoch (taking the
        workspace first if we do not hold it), then let it go. Returns the marked epoch. Any failure
        is EAGAIN ("delete again"), and the workspace is let go so the retry starts afresh."""
        ownership = self.node.ownership
        assert ownership is not None
        held = ownership.held.get(name)
        try:
            if held is None:
                held = await ownership.acquire(name)
            marked = await ownership.manifests.mark_deleted(name, held.epoch)
        except OwnedElsewhere as exc:
            raise refusal(f"workspace {name!r} is owned by node {exc.owner}; delete it again") from None
        except (LeaseUnavailable, ObjectStoreError) as exc:
            await ownership.release(name)
            raise refusal(f"workspace {name!r} deleted here but its deletion marker could not be "
                          f"written: {exc}; delete it again") from None
        await ownership.release(name)
        if marked is None:
            raise refusal(f"workspace {name!r} moved to another node during its deletion; delete it again")
        log.info("%s deleted at epoch %d", name, marked.manifest.epoch)
        return marked.manifest.epoch

    # -- losing and releasing ---------------------------------------------

    def on_lost(self, name: str) -> None:
        """Another node has the workspace now: close its sessions and its store (in a task of its own:
        this runs inside a lease renewal or an acknowledgement round)."""
        task = asyncio.ensure_future(self._drop(name))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drop(self, name: str) -> None:
        state = self.state
        if state is None:
            return
        reason = "workspace moved to another node; reconnect"
        close_local = getattr(state.hub, "close_local", None)  # DurableHub: this node's sessions only
        if close_local is not None:
            close_local(name, CLOSE_MOVED, reason)
        else:
            state.hub.close_sessions(name, CLOSE_MOVED, reason)
        try:
            await _close_store(state, name)
        except Exception:  # noqa: BLE001 - a failed close must not stop the node
            log.exception("closing lost workspace %s failed", name)

    async def _sweep_forever(self) -> None:
        """Release workspaces held with no store open (an open that failed, e.g. ENOENT)."""
        while True:
            await asyncio.sleep(RELEASE_SWEEP)
            try:
                await self.sweep_once()
            except Exception:  # noqa: BLE001
                log.exception("release sweep failed")

    async def sweep_once(self) -> None:
        node, state = self.node, self.state
        if node.ownership is None or state is None:
            return
        open_names = {h.name for h in state.stores.open_handles() if not h.closed}
        orphans = {name for name in node.ownership.held
                   if name not in open_names and name not in self._opening and name not in self._registered}
        # released only when seen orphaned by two sweeps in a row: a store still being created after
        # `opening` returned is not open yet for a moment, and must not lose its lease meanwhile
        for name in orphans & self._orphans:
            await node.ownership.release(name)
        self._orphans = orphans
        try:
            await node.publish_url()  # cheap; Redis may have come back empty
        except RedisError:
            pass

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        for task in list(self._tasks):
            await asyncio.gather(task, return_exceptions=True)


def _check_restored(path: Path) -> None:
    """Refuse to serve a restored store SQLite finds damaged (`PRAGMA quick_check`): Litestream 0.5.17
    restored a corrupt file here once a 256 MiB store had been written in bursts (docs/cluster.md).
    A refusal (503, nothing served) instead of wrong bytes or errors in the middle of a read."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        verdict = conn.execute("PRAGMA quick_check(5)").fetchall()
    except sqlite3.DatabaseError as exc:
        verdict = [(str(exc),)]
    finally:
        conn.close()
    if verdict != [("ok",)]:
        log.error("restored store %s is damaged: %s", path, "; ".join(str(v[0])[:200] for v in verdict))
        raise ReplicationError(f"the restored replica is damaged ({str(verdict[0][0])[:120]})")


async def _close_store(state: ServerState, name: str) -> None:
    """Close one store through Stores' own close path (under its per-workspace lock)."""
    await state.stores.close(name)
