"""What a workspace's store allows: `StoreOptions` (pool sizes, idle times, history, maximum
file size, quota) and the size checks every write path runs before any work."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import vfs
from vfs.wire import ProtocolError

DEFAULT_MAX_FILE_SIZE = 16 * 1024**3


@dataclass
class StoreOptions:
    readers: int = 2
    writers: int = 4  # writer threads shared by every open workspace (each workspace's writes stay in order)
    idle_close: float = 60.0
    # quiet seconds before an open workspace's readers close and it sleeps (every SQLite connection closed,
    # one lock kept; subscriptions stay): server/sleep.py
    idle_readers: float = 20.0
    history_keep: int = 20
    history_days: float = 7.0
    max_file_size: int = DEFAULT_MAX_FILE_SIZE  # no file may grow past this (413 EFBIG)
    quota: int | None = None  # logical bytes per workspace, as `du /` counts them (507 EDQUOT); None: no quota
    _usage: weakref.WeakKeyDictionary[vfs.Workspace, tuple[int, int]] = field(
        default_factory=weakref.WeakKeyDictionary, repr=False, compare=False)  # writer ws -> (rev, du /)

    def check_file_size(self, size: int, field: str | None = None) -> None:
        """EFBIG unless a file of `size` bytes is allowed: checked before any work is done."""
        if size > self.max_file_size:
            extra = {"field": field} if field else {}
            raise ProtocolError("EFBIG", f"a file of {size} bytes would exceed the maximum file size "
                                f"of {self.max_file_size} bytes", max_file_size=self.max_file_size, **extra)

    def check_growth(self, ws: vfs.Workspace, growth: Callable[[vfs.Workspace], int]) -> None:
        """EDQUOT if the workspace would pass its quota. Run in the writer's hop, before the write:
        `growth(ws)` is how many bytes the write adds to `du /` (negative when it frees some)."""
        if self.quota is None:
            return
        added = growth(ws)
        if added <= 0:
            return
        rev = ws.rev
        known = self._usage.get(ws)
        used = known[1] if known is not None and known[0] == rev else ws.du("/")  # du: ~10 ms per 1,000 files
        if used + added > self.quota:
            raise ProtocolError("EDQUOT", f"the workspace uses {used} of its {self.quota} bytes; "
                                f"this write adds {added}", quota=self.quota, used=used)
        # what `du /` will say if this write commits its one revision and nothing else commits meanwhile:
        # a burst of growing writes costs one du, not one each (any other revision makes the next check count)
        self._usage[ws] = (rev + 1, used + added)


def file_size_at(ws: vfs.Workspace, path: str) -> int:
    """The size of the regular file at `path` (0 if there is none): what writing there replaces."""
    try:
        st = ws.lstat(path)
    except (FileNotFoundError, NotADirectoryError, ValueError, OSError):
        return 0
    return st.size if st.kind == "file" else 0


def check_push(options: StoreOptions, changes: list[vfs.Change]) -> Callable[[vfs.Workspace], None]:
    """Refuse a push with a file past the maximum size now; return its quota check for the writer's hop."""
    for change in changes:
        if change.kind == "file":
            options.check_file_size(change.size, "size")
    return lambda ws: options.check_growth(ws, push_growth(changes))


def push_growth(changes: list[vfs.Change]) -> Callable[[vfs.Workspace], int]:
    """How many bytes a push adds: each file's new size minus what is at its path now."""
    def growth(ws: vfs.Workspace) -> int:
        return sum((c.size if c.kind == "file" else 0) - file_size_at(ws, c.path) for c in changes)
    return growth
