"""Every workspace store of a data dir (`Stores`): opened on first use, closed when unused.

`server/stores.py` holds one open store (`WorkspaceHandle`); this module keeps
the set of them: which are open, the per-name lock that orders opening,
closing and deleting, the idle sweep's entry points, and deletion.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import vfs
from vfs import storelock
from vfs.storefiles import remove_store
from vfs.wire import ProtocolError, valid_workspace_name

from server.coedit import recover as recover_coedit
from server.hub import Hub, LocalHub
from server.metrics import Metrics
from server.placement import LocalPlacement, Placement
from server.pools import IdlePool
from server.sleep import Activity, pressed, sweep
from server.store_options import StoreOptions
from server.stores import WorkspaceHandle

log = logging.getLogger("wsfs.server")


class InUse:
    """`Stores.use` (a class: every request enters one; an asynccontextmanager costs a generator)."""

    __slots__ = ("handle", "name", "stores")

    def __init__(self, stores: Stores, name: str):
        self.stores, self.name = stores, name

    async def __aenter__(self) -> WorkspaceHandle:
        self.handle = handle = await self.stores.get(self.name)
        handle.users += 1
        return handle

    async def __aexit__(self, *exc: object) -> None:
        self.handle.users -= 1
        self.handle.last_used = time.monotonic()


class Stores:
    """Every workspace of a data dir: `DATA/workspaces/NAME.db`."""

    def __init__(self, data_dir: Path, hub: Hub, metrics: Metrics, options: StoreOptions,
                 placement: Placement | None = None):
        self.placement: Placement = placement if placement is not None else LocalPlacement()
        self.dir = Path(data_dir) / "workspaces"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._hub = hub
        self._metrics = metrics
        self.options = options
        self._handles: dict[str, WorkspaceHandle] = {}
        self.activity = Activity()  # the handles the sweep must look at; users counted, not walked
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}  # name -> (lock, [holders and waiters])
        # threads that leave when idle: each kept a cache of freed blocks pinning pages (server/pools.py)
        self._readers = IdlePool(options.readers, thread_name_prefix="wsfs-reader")
        self._writers = IdlePool(options.writers, thread_name_prefix="wsfs-writer")

    def path_of(self, name: str) -> Path:
        if not valid_workspace_name(name):
            raise ProtocolError("EINVAL", f"invalid workspace name {name!r}: use 1-64 of [A-Za-z0-9._-]")
        return self.dir / f"{name}.db"

    def exists(self, name: str) -> bool:
        if self.open_handle(name) is not None:
            return True  # open: no stat per request
        return self.path_of(name).exists()

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.dir.glob("*.db") if valid_workspace_name(p.stem))

    def open_handle(self, name: str) -> WorkspaceHandle | None:
        """The workspace's handle if it is open now (never opens it)."""
        handle = self._handles.get(name)
        return handle if handle is not None and not handle.closed else None

    def open_handles(self) -> list[WorkspaceHandle]:
        """The workspaces open right now (a snapshot: safe to await while walking it)."""
        return list(self._handles.values())

    @contextlib.asynccontextmanager
    async def _lock(self, name: str) -> AsyncIterator[None]:
        """Hold the name's lock (opening, closing, deleting). The lock is dropped when no one holds
        or waits for it: kept forever, 1,000 workspaces left 2,000 objects behind after closing,
        allocated amid the peak, each pinning a block of the allocator's memory."""
        entry = self._locks.get(name)
        if entry is None:
            entry = self._locks[name] = (asyncio.Lock(), [0])
        entry[1][0] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1][0] -= 1
            if entry[1][0] == 0 and self._locks.get(name) is entry:
                del self._locks[name]

    async def get(self, name: str, *, create: bool = False) -> WorkspaceHandle:
        """The open handle of a workspace (opening it if needed); ENOENT if it does not exist."""
        handle = self._handles.get(name)
        if handle is not None and not handle.closed:
            return handle
        path = self.path_of(name)
        async with self._lock(name):
            handle = self._handles.get(name)
            if handle is not None and not handle.closed:
                return handle
            await self.placement.opening(name, path)
            if not create and not path.exists():
                raise ProtocolError("ENOENT", f"no workspace named {name!r}", workspace=name)
            handle = WorkspaceHandle(name, path, readers=self._readers, hub=self._hub, metrics=self._metrics,
                                     options=self.options, loop=asyncio.get_running_loop(),
                                     placement=self.placement, writers=self._writers, activity=self.activity)
            try:
                rev = await handle.write(lambda ws: ws.rev, op="open")
            except vfs.StoreBusy:
                # A local `wsfs mount` is the store's only writer (and has brought its schema up to
                # date): serve reads; writes get 409 EBUSY until it is unmounted.
                log.warning("workspace %s is mounted locally: read-only until it is unmounted", name)
                rev = await handle.read(lambda ws: ws.rev, op="open")
            self._hub.set_head(name, rev)
            await self._recover_coedit(handle)
            self._handles[name] = handle
            self._metrics.open_workspaces.set(len(self._handles))
            return handle

    @staticmethod
    async def _recover_coedit(handle: WorkspaceHandle) -> None:
        """Before anyone uses the store: co-edited text a crash left only in its update log
        reaches its files (whether or not an editor ever comes back)."""
        try:
            await recover_coedit(handle)
        except Exception as e:  # noqa: BLE001 - e.g. mounted locally (read-only): the log waits
            log.warning("workspace %s: co-edited documents not recovered (%s)", handle.name, e)

    def use(self, name: str) -> InUse:
        """`async with stores.use(name) as handle`: a handle that stays open for the whole block."""
        return InUse(self, name)

    async def create(self, name: str) -> bool:
        """Create the workspace if missing; True if it was created."""
        existed = self.exists(name)
        await self.get(name, create=True)
        return not existed

    async def close(self, name: str) -> None:
        """Close one workspace's store now (its sessions are the caller's business), under its open lock."""
        async with self._lock(name):
            await self._close(name)

    async def _close(self, name: str) -> None:
        handle = self._handles.pop(name, None)
        if handle is not None:
            self.activity.handles.discard(handle)
            await handle.close()
            await self.placement.closed(name, handle.path)
            if isinstance(self._hub, LocalHub):
                # Its head is set from its store when it opens again, and nobody asks a closed one's. Kept,
                # the name (allocated amid the burst that opened it) pinned a 4 KiB page of the heap after
                # every block around it was freed: 1,000 closed workspaces held ~960 pages (docs/server.md,
                # eighteenth pass). A cluster node's hub keeps it: forgetting is news there.
                self._hub.forget(name)
        self._metrics.open_workspaces.set(len(self._handles))

    async def delete(self, name: str, *, on_delete: Callable[[], None] | None = None) -> None:
        """Remove a workspace's files. `on_delete` runs once nothing can stop the deletion
        (the server closes the workspace's sessions there)."""
        path = self.path_of(name)
        async with self._lock(name):
            if not path.exists():
                raise ProtocolError("ENOENT", f"no workspace named {name!r}", workspace=name)
            await self._close(name)
            try:  # nobody else may be writing it (a local `wsfs mount` would lose its store)
                lock = storelock.acquire(str(path), exclusive=True)
            except vfs.StoreBusy:
                raise ProtocolError(
                    "EBUSY", f"workspace {name!r} is open for writing elsewhere (a local wsfs mount?)", workspace=name
                ) from None
            try:
                if on_delete is not None:
                    on_delete()
                remove_store(path)  # the file, its WAL, shm, lock and pack files
            finally:
                storelock.release(lock)
            self._hub.forget(name)

    def open_count(self) -> int:
        return len(self._handles)

    def pressed(self) -> bool:
        """Too many awake stores for the open-file limit (`server/sleep.py`): sweep now, with short idle times."""
        return pressed(sum(1 for h in list(self.activity.handles) if not h.asleep), self.activity.users)

    async def sweep(self, pressed: bool = False) -> None:
        """Close or put to sleep the stores that were quiet long enough (`server/sleep.py` `sweep`)."""
        await sweep(self, pressed)

    async def close_if_unused(self, handle: WorkspaceHandle) -> bool:
        """Close `handle`'s store if nobody uses it now (under its open lock); whether it was closed."""
        async with self._lock(handle.name):
            if handle.users == 0 and handle.busy == 0 and self._handles.get(handle.name) is handle:
                await self._close(handle.name)
                return True
        return False

    async def close_all(self) -> None:
        for name in list(self._handles):
            await self._close(name)
        self._readers.shutdown(wait=True)
        self._writers.shutdown(wait=True)
