"""Where a workspace's store lives and when a write may be acknowledged (`Placement`).

A single `wsfs serve` keeps every store on its own disk and acknowledges a
write once SQLite committed it: `LocalPlacement`, which does nothing. A
cluster node (`server/cluster/`) plugs in a placement that acquires
ownership and restores the store before it is opened, holds each
acknowledgement until the commit is replicated and the node is still the
owner, and hands ownership back when the store closes. `server/stores.py`
and the co-editing update log call these hooks and know nothing else of the
cluster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from vfs.chunkstore import BackendFactory


class Placement(Protocol):
    # True when subscribers may be told only of acknowledged revisions (`durable` returned for
    # them): change pages wait until the hub's head, the acknowledged head, covers them.
    durable_reads: bool
    # Whether the stores it opens checkpoint their own WAL (SQLite's automatic checkpoints). A
    # cluster says no: Litestream reads the WAL and checkpoints it itself, and our checkpoints racing
    # its reads damaged the last transaction of a replica (docs/cluster.md).
    store_checkpoints: bool

    def chunk_backend_for(self, name: str) -> str | BackendFactory | None:
        """Where workspace `name`'s store keeps chunk bytes (`vfs.chunkstore`): a backend's name,
        a factory of the placement's own backend, or None for the store's own default.
        A cluster keeps them where a new owner finds them: bulk chunks as S3 objects named by the
        catalogue Litestream replicates (`server/cluster/objectchunks.py`)."""

    async def opening(self, name: str, path: Path) -> None:
        """Before the store at `path` is opened (under the workspace's open lock).

        May bring the file into place (restore it) or raise a ProtocolError
        (the workspace is served elsewhere, or cannot be served now).
        """

    async def durable(self, name: str, rev: int) -> None:
        """After a write committed revision `rev`, before it is acknowledged.

        Returns once the commit may be acknowledged; raises a ProtocolError
        (answered as such, never a silent acknowledgement) when it may not.
        """

    async def stored(self, name: str) -> None:
        """After a commit that made no revision (the co-editing update log), before the updates in
        it are acknowledged: returns once they may be (as `durable`), else raises a ProtocolError."""

    async def closed(self, name: str, path: Path) -> None:
        """After the store closed (idle, deleted or shutdown): nothing of it is open any more."""


class LocalPlacement:
    """One server, one disk: SQLite's commit is the acknowledgement."""

    durable_reads = False
    store_checkpoints = True

    def chunk_backend_for(self, name: str) -> str | BackendFactory | None:
        return None

    async def opening(self, name: str, path: Path) -> None:
        return None

    async def durable(self, name: str, rev: int) -> None:
        return None

    async def stored(self, name: str) -> None:
        return None

    async def closed(self, name: str, path: Path) -> None:
        return None
