"""The fence: each workspace's manifest object in S3, `{epoch, owner, prefix}`.

`<root>/ws/<workspace>/manifest.json` names the current ownership epoch,
the node that owns it and the key prefix its Litestream replicates into
(`<root>/ws/<workspace>/e<epoch>`: a new prefix per epoch, because two
replicators writing one replica path corrupt it).

Taking over a workspace bumps the epoch with a conditional PUT (`If-Match`
the ETag read, or `If-None-Match: *` for the first epoch): of two nodes
racing, exactly one PUT succeeds. A node acknowledges a write only after a
conditional HEAD (`If-Match` its own ETag) says the manifest is unchanged.
S3's read-after-write consistency then orders everything: a write
acknowledged before the bump was already in the old epoch's replica, which
the new owner restores *after* its bump; a write synced after the bump is
refused by the HEAD, whatever the old owner's clock or lease believes.
Every epoch's manifest body differs (the epoch is in it), so its ETag does.

Deleting a workspace does not remove its manifest: its owner rewrites it
(`If-Match`, so only the current owner can) with `deleted: true`. The next
bump starts a new *life* (`since` = the new epoch): restores never read an
epoch older than `since`, so no node can bring a deleted workspace back from
its old replicas, whatever is left of them or whoever asks.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from server.cluster.objectstore import ObjectStore


class ManifestError(Exception):
    """A manifest object that is not a manifest (written by something else, or damaged)."""


@dataclass(frozen=True)
class Manifest:
    """One ownership epoch of a workspace."""

    epoch: int
    owner: str
    prefix: str
    since: int = 1  # the first epoch of the workspace's current life: restores read no older epoch
    deleted: bool = False  # the workspace was deleted in this epoch (the marker no restore passes)

    def to_bytes(self) -> bytes:
        return orjson.dumps({"epoch": self.epoch, "owner": self.owner, "prefix": self.prefix,
                             "since": self.since, "deleted": self.deleted})

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ManifestError(f"manifest is not JSON: {exc}") from None
        if not (isinstance(doc, dict) and type(doc.get("epoch")) is int and doc["epoch"] >= 1
                and isinstance(doc.get("owner"), str) and isinstance(doc.get("prefix"), str)):
            raise ManifestError(f"manifest must be {{epoch >= 1, owner, prefix}}, got {doc!r}")
        since, deleted = doc.get("since", 1), doc.get("deleted", False)
        if type(since) is not int or not 1 <= since <= doc["epoch"] or type(deleted) is not bool:
            raise ManifestError(f"manifest needs 1 <= since <= epoch and a boolean deleted, got {doc!r}")
        return cls(doc["epoch"], doc["owner"], doc["prefix"], since, deleted)


@dataclass(frozen=True)
class Epoch:
    """A manifest as read or written, with the ETag that fences it."""

    manifest: Manifest
    etag: str


class Manifests:
    """Read, bump and check the workspaces' manifests in one object store."""

    def __init__(self, store: ObjectStore):
        self.store = store

    def key(self, workspace: str) -> str:
        return self.store.location.key("ws", workspace, "manifest.json")

    def replica_prefix(self, workspace: str, epoch: int) -> str:
        """Where epoch `epoch` of `workspace` replicates to (a key prefix in the bucket)."""
        return self.store.location.key("ws", workspace, f"e{epoch}")

    async def read(self, workspace: str) -> Epoch | None:
        """The current epoch, or None for a workspace no node ever owned."""
        stored = await self.store.get(self.key(workspace))
        if stored is None:
            return None
        return Epoch(Manifest.from_bytes(stored.body), stored.etag)

    async def bump(self, workspace: str, node: str, current: Epoch | None) -> Epoch | None:
        """Start the epoch after `current` owned by `node`; None when someone else changed it first.
        After a deletion marker the new epoch starts a new life (`since` = itself)."""
        epoch = current.manifest.epoch + 1 if current else 1
        since = epoch if current is None or current.manifest.deleted else current.manifest.since
        manifest = Manifest(epoch, node, self.replica_prefix(workspace, epoch), since)
        key = self.key(workspace)
        if current is None:
            etag = await self.store.put_new(key, manifest.to_bytes())
        else:
            etag = await self.store.put_replacing(key, manifest.to_bytes(), current.etag)
        return Epoch(manifest, etag) if etag else None

    async def mark_deleted(self, workspace: str, epoch: Epoch) -> Epoch | None:
        """Write the deletion marker over our own epoch (`If-Match`); None when the manifest moved
        (another node owns the workspace now: the deletion must be refused and asked there)."""
        m = epoch.manifest
        marker = Manifest(m.epoch, m.owner, m.prefix, m.since, deleted=True)
        etag = await self.store.put_replacing(self.key(workspace), marker.to_bytes(), epoch.etag)
        return Epoch(marker, etag) if etag else None

    async def still_current(self, workspace: str, epoch: Epoch) -> bool:
        """Is `epoch` still the workspace's manifest? The check before every acknowledgement."""
        return await self.store.matches(self.key(workspace), epoch.etag)

    async def restore_source(self, workspace: str, epoch: int, since: int = 1) -> str | None:
        """The replica prefix to restore epoch `epoch` from: the latest earlier epoch of the same life
        (no older than `since`) that replicated anything.

        An epoch whose owner died before its first sync left no objects; it
        acknowledged nothing either (an acknowledgement waits for a sync), so
        the epoch before it holds everything. Litestream's first upload to a
        prefix is a whole snapshot in one object, so a prefix with objects
        restores completely.
        """
        for earlier in range(epoch - 1, since - 1, -1):
            prefix = self.replica_prefix(workspace, earlier)
            if await self.store.has_objects(prefix):
                return prefix
        return None

    async def erase_before(self, workspace: str, epoch: int) -> int:
        """Delete the replicas and chunk objects of every epoch up to `epoch` (a deleted life's, once
        its marker is written); how many objects. The manifest and any later epoch's replicas are left alone."""
        erased = 0
        root = self.store.location.key("ws", workspace)
        for key in await self.store.keys(root):
            parts = key[len(root) + 1:].split("/")
            if parts[0] == "chunks" and len(parts) == 3:  # chunks/e<epoch>g<gen>/<hash>: uploaded in that epoch
                parts = [parts[1].split("g", 1)[0]]
            part = parts[0]
            if part[:1] == "e" and part[1:].isdigit() and int(part[1:]) <= epoch:
                await self.store.delete(key)
                erased += 1
        return erased
