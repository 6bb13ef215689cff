"""The read-only connections of one open workspace (`ReaderPool`).

Reads run beside the writer (WAL) in the server's shared reader executor;
each takes a read-only `vfs.Workspace` from its workspace's pool for the
whole operation (a download for its whole duration) and gives it back. The
pool opens a connection when none is idle and closes the idle ones when the
workspace goes quiet (`WorkspaceHandle.sleep`), so a quiet workspace holds
no reader descriptor.
"""

from __future__ import annotations

import queue
from pathlib import Path
from collections.abc import Callable
from typing import Any

import vfs


class ReaderPool:
    """Read-only `Workspace` objects of one store: checked out for exclusive use, from any thread."""

    def __init__(self, path: Path, open_kwargs: dict[str, Any], on_open: Callable[[], None]):
        self._path = path
        self._open_kwargs = open_kwargs
        self._on_open = on_open  # called (in the opening thread) whenever a connection is opened
        self._idle: queue.SimpleQueue[vfs.Workspace] = queue.SimpleQueue()
        self._all: list[vfs.Workspace] = []  # every open one, idle or checked out

    @property
    def any_open(self) -> bool:
        return bool(self._all)

    def empty(self) -> bool:
        """No idle reader (one may still be checked out)."""
        return self._idle.empty()

    def checkout(self) -> vfs.Workspace:
        """A reader for exclusive use; give it back with `checkin`."""
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            ws = vfs.Workspace(self._path, readonly=True, **self._open_kwargs)
            self._all.append(ws)
            self._on_open()
            return ws

    def checkin(self, ws: vfs.Workspace, *, close: bool = False) -> None:
        if close:
            self._forget(ws)
            ws.close()
        else:
            self._idle.put(ws)

    def peek_rev(self) -> int | None:
        """The store's revision read with an idle reader on the calling thread; None if none is idle."""
        try:
            ws = self._idle.get_nowait()
        except queue.Empty:
            return None
        try:
            return ws.rev
        finally:
            self._idle.put(ws)

    def close_idle(self) -> int:
        """Close the readers nobody has checked out (they reopen on demand); how many were closed."""
        n = 0
        while True:
            try:
                ws = self._idle.get_nowait()
            except queue.Empty:
                return n
            self._forget(ws)
            ws.close()
            n += 1

    def _forget(self, ws: vfs.Workspace) -> None:
        try:
            self._all.remove(ws)
        except ValueError:
            pass
