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

`still_owner(ws)` is what an acknowledgement calls after the replication
sync: the lease must be locally valid *and* a conditional HEAD of the
manifest must show our ETag. The HEAD alone makes it safe (a paused node
that wakes up believing it owns the workspace gets "no"); the local lease
check makes a node whose Redis vanished stop acknowledging within one time
to live, as the contract asks.
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

LostCallback = Callable[[str], Awaitable[None] | None]


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
                 on_lost: LostCallback | None = None):
        self.leases = leases
        self.manifests = manifests
        self.node = leases.node
        self.renew_every = renew_every if renew_every is not None else leases.ttl_ms / 3000
        self.on_lost = on_lost
        self._held: dict[str, Held] = {}
        self._acquiring: dict[str, asyncio.Lock] = {}
        self._renewer: asyncio.Task[None] | None = None

    @property
    def held(self) -> dict[str, Held]:
        """The workspaces this node owns now (a copy)."""
        return dict(self._held)

    def _ttl(self) -> float:
        return self.leases.ttl_ms / 1000

    async def acquire(self, workspace: str) -> Held:
        """Own `workspace` (lease, then manifest bump); raises OwnedElsewhere when another node does."""
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
                epoch = await self.manifests.bump(workspace, self.node, current)
                if epoch is None:  # another node bumped between our read and our write
                    latest = await self.manifests.read(workspace)
                    raise OwnedElsewhere(workspace, latest.manifest.owner if latest else None)
                restore_from = await self.manifests.restore_source(workspace, epoch.manifest.epoch)
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
        """May this node acknowledge a write to `workspace` now? (call it after the replication sync)

        Raises ObjectStoreError when S3 does not answer: then nobody can
        know, and the write must be refused, not acknowledged.
        """
        held = self._held.get(workspace)
        if held is None or time.monotonic() >= held.valid_until:
            return False
        if await self.manifests.still_current(workspace, held.epoch):
            return True
        await self._lose(workspace, "the manifest moved to a newer epoch")
        return False

    async def release(self, workspace: str) -> None:
        """Give `workspace` up at once (clean shutdown): another node can take it without waiting.

        Call it after the last sync of the workspace's replica and after
        unregistering it from Litestream: what the next owner restores is
        what the replica holds when the lease goes.
        """
        if self._held.pop(workspace, None) is not None:
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
        if self._held.pop(workspace, None) is None:
            return
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
