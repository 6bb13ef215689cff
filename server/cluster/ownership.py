"""Which workspaces this node owns, and whether it may still acknowledge writes to them.

Taking a workspace (`Ownership.acquire`) follows one order, each step
depending on the one before:

1. the Redis lease (`owner:<ws>` = this node, `SET NX PX`): only one node
   tries at a time, and the others learn who owns it;
2. the manifest bump in S3 (`If-Match`): the new epoch, and the fence that
   shuts the previous owner out from this moment;
3. the previous epochs' replica to restore from (`Held.restore_from`, read
   after the bump, so it holds every write the old owner acknowledged);
4. the new epoch's replica prefix to register with Litestream
   (`Held.prefix`).

Steps 3 and 4 are the caller's (`server.cluster.replication`). While it
holds workspaces, the node extends their leases every `renew_every` seconds
with a compare-and-extend script; a lease found taken, or not renewed
within its time to live (Redis unreachable), is *lost*: the workspace is
dropped and `on_lost` is called, so the server can close its sessions.

`covers(ws, synced_at)` is what an acknowledgement calls once its
replication sync returned: the lease must be locally valid *and* a
conditional HEAD of the manifest that showed our ETag must have been
*issued* no earlier than `fence_window` (D) before the sync's return was
seen. With D = 0 that HEAD is issued after the sync (the plain rule); with
D > 0 a HEAD running beside the sync, or one from a recent round, covers it,
and the HEAD leaves the acknowledgement's critical path. What makes that
safe is the other half: a node taking over waits `takeover_wait` (G > D,
with a margin for clock rates) after its bump before it reads the previous
epochs' replicas, so any sync an old owner could still acknowledge has
landed before the restore reads it (docs/cluster.md, "Why it fences"). The
HEAD makes it safe (a paused node that wakes up believing it owns the
workspace gets "no", or finds its window closed); the local lease check
makes a node whose Redis vanished stop acknowledging within one time to
live, as the contract asks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from server.cluster.lease import Leases, LeaseUnavailable
from server.cluster.manifest import Epoch, Manifests

log = logging.getLogger("wsfs.server.cluster")

FENCE_WINDOW = 0.5  # D, seconds: how long a HEAD that found the manifest ours covers syncs returning after it
CLOCK_MARGIN = 1.2  # G = D x this: room for the two nodes' clocks to run at rates up to ~9 % apart


def fence_clock() -> float:
    """The old owner's clock for the fence window: CLOCK_BOOTTIME, which keeps counting while the
    machine is suspended (CLOCK_MONOTONIC does not: a node suspended between its HEAD and its
    sync's return must find its window closed when it wakes up)."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def takeover_wait(fence_window: float) -> float:
    """G: how long a new owner waits after its bump before it reads the previous epochs' replicas."""
    return fence_window * CLOCK_MARGIN

LostCallback = Callable[[str], Awaitable[None] | None]


class NoSuchWorkspace(Exception):
    """The workspace has no live epoch (never created, or its manifest carries the deletion marker),
    and the caller did not ask to create it."""

    def __init__(self, workspace: str, deleted: bool):
        super().__init__(f"workspace {workspace!r} {'was deleted' if deleted else 'was never created'}")
        self.workspace = workspace
        self.deleted = deleted


class OwnedElsewhere(Exception):
    """Another node owns the workspace (its lease, or an epoch it bumped while we tried)."""

    def __init__(self, workspace: str, owner: str | None):
        super().__init__(f"workspace {workspace!r} is owned by {owner or 'another node'}")
        self.workspace = workspace
        self.owner = owner


@dataclass
class Held:
    """A workspace this node owns: its epoch, and where its replicas go and come from."""

    workspace: str
    epoch: Epoch
    restore_from: str | None  # the earlier epoch's replica prefix (None: nothing replicated yet)
    valid_until: float  # time.monotonic() before which our lease is certainly still ours
    fenced_at: float | None = None  # fence_clock() when the latest HEAD that found the manifest ours was sent
    checking: asyncio.Task[bool] | None = None  # a HEAD in flight (at most one per workspace)

    @property
    def prefix(self) -> str:
        """This epoch's replica prefix: register the workspace's store with Litestream here."""
        return self.epoch.manifest.prefix

    @property
    def number(self) -> int:
        return self.epoch.manifest.epoch


class Ownership:
    """One node's ownership of workspaces: acquire, renew, check, release."""

    def __init__(self, leases: Leases, manifests: Manifests, *, renew_every: float | None = None,
                 on_lost: LostCallback | None = None, fence_window: float = FENCE_WINDOW):
        """`fence_window` (D, seconds): 0 gives the plain rule (every acknowledgement waits for a HEAD
        sent after its sync) and no takeover wait; D > 0 takes the HEAD off the acknowledgement's path
        and makes every takeover wait G = `takeover_wait(D)` before it reads an earlier epoch."""
        if fence_window < 0:
            raise ValueError("fence_window must be >= 0")
        self.leases = leases
        self.manifests = manifests
        self.node = leases.node
        self.renew_every = renew_every if renew_every is not None else leases.ttl_ms / 3000
        self.on_lost = on_lost
        self.fence_window = fence_window
        self.takeover_wait = takeover_wait(fence_window)
        self.fence_checks = 0  # manifest HEADs sent (what the window saves shows here)
        self._held: dict[str, Held] = {}
        self._acquiring: dict[str, asyncio.Lock] = {}
        self._renewer: asyncio.Task[None] | None = None

    @property
    def held(self) -> dict[str, Held]:
        """The workspaces this node owns now (a copy)."""
        return dict(self._held)

    def epoch_of(self, workspace: str) -> int | None:
        """The epoch this node holds `workspace` at (None: not held). Cheap, and safe to call from a
        store's thread (one dict lookup), as the chunk backend does for every upload."""
        held = self._held.get(workspace)
        return None if held is None else held.number

    def _ttl(self) -> float:
        return self.leases.ttl_ms / 1000

    async def acquire(self, workspace: str, *, revive: bool = True) -> Held:
        """Own `workspace` (lease, then manifest bump); raises OwnedElsewhere when another node does.

        A workspace with no manifest, or whose manifest carries the deletion marker, starts a new,
        empty life only when `revive` (a creation, or a store on this disk from before the cluster);
        otherwise `NoSuchWorkspace` is raised and nothing is written to S3."""
        lock = self._acquiring.setdefault(workspace, asyncio.Lock())
        async with lock:
            held = self._held.get(workspace)
            if held is not None:
                return held
            owner = await self.leases.take(workspace)
            if owner is not None:
                raise OwnedElsewhere(workspace, owner)
            try:
                current = await self.manifests.read(workspace)
                if not revive and (current is None or current.manifest.deleted):
                    raise NoSuchWorkspace(workspace, deleted=current is not None)
                epoch = await self.manifests.bump(workspace, self.node, current)
                if epoch is None:  # another node bumped between our read and our write
                    latest = await self.manifests.read(workspace)
                    raise OwnedElsewhere(workspace, latest.manifest.owner if latest else None)
                if epoch.manifest.since < epoch.manifest.epoch and self.takeover_wait > 0:
                    # an earlier epoch of this life may still be acknowledging syncs for up to D after
                    # our bump: read its replicas only once every such sync has landed
                    await asyncio.sleep(self.takeover_wait)
                restore_from = await self.manifests.restore_source(workspace, epoch.manifest.epoch,
                                                                   epoch.manifest.since)
                # the S3 steps may have outlasted the lease (a store's first write to a new bucket
                # can take seconds): extend it, and count our time to live from this extension
                refreshed = time.monotonic()
                if not await self.leases.extend(workspace):
                    # it lapsed meanwhile: take it again if it is free and our epoch still stands
                    owner = await self.leases.take(workspace)
                    if owner is not None or not await self.manifests.still_current(workspace, epoch):
                        raise OwnedElsewhere(workspace, owner)
            except BaseException:
                await self._release_lease(workspace)
                raise
            held = Held(workspace, epoch, restore_from, refreshed + self._ttl())
            self._held[workspace] = held
            self._ensure_renewer()
            log.info("node %s owns %s at epoch %d", self.node, workspace, epoch.manifest.epoch)
            return held

    async def owner_of(self, workspace: str) -> str | None:
        """The node whose lease holds `workspace` now (None: nobody; the next request takes it)."""
        if workspace in self._held:
            return self.node
        return await self.leases.owner(workspace)

    async def still_owner(self, workspace: str) -> bool:
        """Is `workspace` ours now? The lease by our clock, then a HEAD of the manifest sent now.

        Raises ObjectStoreError when S3 does not answer: then nobody can
        know, and the write must be refused, not acknowledged.
        """
        held = self._held.get(workspace)
        if held is None or time.monotonic() >= held.valid_until:
            return False
        return await self._check(workspace, held)

    def refresh_fence(self, workspace: str) -> None:
        """Send a manifest HEAD in the background unless one is in flight or the latest is younger
        than half the window (called as a round's sync starts: the next round finds it fresh)."""
        held = self._held.get(workspace)
        if held is None or self.fence_window <= 0 or held.checking is not None:
            return
        if held.fenced_at is not None and fence_clock() - held.fenced_at < self.fence_window / 2:
            return
        task = asyncio.ensure_future(self._check(workspace, held))
        held.checking = task

        def done(finished: asyncio.Task[bool]) -> None:
            if held.checking is finished:
                held.checking = None
            if not finished.cancelled() and finished.exception() is not None:
                log.debug("fence check of %s failed: %s", workspace, finished.exception())

        task.add_done_callback(done)

    async def covers(self, workspace: str, synced_at: float) -> bool:
        """May a sync of `workspace` whose return this node saw at `synced_at` (fence_clock) be
        acknowledged? Yes if the lease is ours by our clock and a HEAD that found the manifest ours
        was sent at or after `synced_at - fence_window`: a recent one, the one in flight, or else
        one sent now. Raises ObjectStoreError when S3 does not answer."""
        held = self._held.get(workspace)
        if held is None or time.monotonic() >= held.valid_until:
            return False

        def fresh() -> bool:
            return held.fenced_at is not None and held.fenced_at >= synced_at - self.fence_window

        if fresh():
            return True
        if held.checking is not None:
            await asyncio.wait([held.checking])  # its failure, if any, the HEAD below meets again
            if self._held.get(workspace) is not held:
                return False
            if fresh():
                return True
        return await self.still_owner(workspace)

    async def _check(self, workspace: str, held: Held) -> bool:
        """One conditional HEAD of the manifest; on success note when it was *sent*."""
        sent = fence_clock()  # before the request leaves: the bump that beats it comes after this
        self.fence_checks += 1
        if await self.manifests.still_current(workspace, held.epoch):
            if held.fenced_at is None or sent > held.fenced_at:
                held.fenced_at = sent
            return True
        await self._lose(workspace, "the manifest moved to a newer epoch")
        return False

    async def release(self, workspace: str) -> None:
        """Give `workspace` up at once (clean shutdown): another node can take it without waiting.

        Call it after the last sync of the workspace's replica and after
        unregistering it from Litestream: what the next owner restores is
        what the replica holds when the lease goes.
        """
        held = self._held.pop(workspace, None)
        if held is not None:
            _cancel_check(held)
            await self._release_lease(workspace)

    async def close(self) -> None:
        """Stop renewing and release every workspace this node holds."""
        self.stop_renewal()
        for workspace in list(self._held):
            try:
                await self.release(workspace)
            except LeaseUnavailable as exc:
                log.warning("could not release %s: %s (it expires by itself)", workspace, exc)

    def stop_renewal(self) -> None:
        """Stop extending leases without releasing them: what a paused or cut-off node looks like."""
        if self._renewer is not None:
            self._renewer.cancel()
            self._renewer = None

    async def renew_once(self) -> None:
        """Extend every held lease once; drop the workspaces whose lease is gone or ran out."""
        for workspace, held in list(self._held.items()):
            sent = time.monotonic()
            try:
                ours = await self.leases.extend(workspace)
            except LeaseUnavailable as exc:
                if time.monotonic() >= held.valid_until:
                    await self._lose(workspace, f"lease not renewed in time ({exc})")
                continue
            if not ours:
                await self._lose(workspace, "another node holds the lease")
            elif self._held.get(workspace) is held:
                held.valid_until = sent + self._ttl()

    def _ensure_renewer(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._renew_forever(), name=f"lease-renewal-{self.node}")

    async def _renew_forever(self) -> None:
        while self._held:
            await asyncio.sleep(self.renew_every)
            try:
                await self.renew_once()
            except Exception:  # a bug here must not silently stop renewal: log, keep going
                log.exception("lease renewal failed")

    async def _lose(self, workspace: str, why: str) -> None:
        held = self._held.pop(workspace, None)
        if held is None:
            return
        _cancel_check(held)
        log.warning("node %s lost %s: %s", self.node, workspace, why)
        if self.on_lost is not None:
            result = self.on_lost(workspace)
            if result is not None:
                await result

    async def _release_lease(self, workspace: str) -> None:
        try:
            await self.leases.release(workspace)
        except LeaseUnavailable as exc:
            log.warning("could not release the lease on %s: %s", workspace, exc)


def _cancel_check(held: Held) -> None:
    """A workspace let go: its HEAD in flight (if any) no longer matters."""
    task = held.checking
    if task is not None and not task.done() and task is not asyncio.current_task():
        task.cancel()
