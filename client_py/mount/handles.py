"""The open-file table: per-inode write buffers and per-descriptor handles.

Several descriptors can be open on one inode (a reader and a writer, or two
hard links). They share one `OpenNode`, so a reader sees what a writer
buffered at once, and the inode's content is committed once, as one store
transaction, on flush/fsync/release. Each descriptor gets a `Handle` with
its flags and a cached store reader (sequential reads then fetch each chunk
once instead of once per FUSE read).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

from client_py.mount.spool import Spool
from vfs.surface import ReadableFile


@dataclass(eq=False)
class OpenNode:
    ino: int
    refs: int = 0
    spool: Spool | None = None  # the content, once someone wrote or truncated it
    dirty: bool = False  # the spool holds bytes the store does not have yet
    version: int = 0  # bumps on every content change made here; stale readers reopen
    mtime_ns: int = 0  # time of the last buffered change (what getattr reports while dirty)
    base: str | None = None  # content id the buffer started from (remote mode pushes against it)
    stat: object = None  # the last Stat seen (what fstat reports once the file has no name)
    created_ns: int = 0  # when a pending create (files.py) made it: its parent's times in the store
    # (and, once closed, when a pending link or unlink last changed its names)
    names: list[str] | None = None  # a closed pending file linked here: all its pending names (files.py)
    # A closed pending file (files.py `_keep_closed`): (version, BLAKE3 digest) of the content it was
    # closed with, handed to the store with it so the store need not hash the bytes again.
    digest: tuple[int, bytes] | None = None

    def changed(self) -> None:
        self.dirty = True
        self.version += 1
        self.mtime_ns = time.time_ns()

    def drop_spool(self) -> None:
        if self.spool is not None:
            self.spool.close()
            self.spool = None


@dataclass(eq=False)
class Handle:
    fh: int
    node: OpenNode
    flags: int
    reader: ReadableFile | None = None
    reader_version: int = -1
    extra: dict = field(default_factory=dict)

    def close_reader(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None


class OpenTable:
    """fh -> Handle and ino -> OpenNode. Callers hold the mount's lock."""

    def __init__(self) -> None:
        self.handles: dict[int, Handle] = {}
        self.nodes: dict[int, OpenNode] = {}
        self._next_fh = itertools.count(1)

    def open(self, ino: int, flags: int) -> Handle:
        node = self.nodes.get(ino)
        if node is None:
            node = self.nodes[ino] = OpenNode(ino)
        node.refs += 1
        handle = Handle(next(self._next_fh), node, flags)
        self.handles[handle.fh] = handle
        return handle

    def get(self, fh: int) -> Handle:
        return self.handles[fh]

    def node(self, ino: int) -> OpenNode | None:
        return self.nodes.get(ino)

    def close(self, fh: int) -> OpenNode | None:
        """Forget a handle; return its node if this was the node's last handle."""
        handle = self.handles.pop(fh)
        handle.close_reader()
        node = handle.node
        node.refs -= 1
        if node.refs > 0:
            return None
        del self.nodes[node.ino]
        return node

    def dirty_nodes(self) -> list[OpenNode]:
        return [node for node in self.nodes.values() if node.dirty]
