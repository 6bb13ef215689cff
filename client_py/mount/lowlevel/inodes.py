"""The kernel's inodes: number -> names (parent inode, name) and lookup count.

On libfuse's low-level API the kernel names every node by inode number, and the
store by path. This table is the bridge: each inode the kernel holds (every entry
reply counts one lookup, FORGET gives them back) keeps its names, so a request's path
is built from parent links, and a directory rename is one update of one entry (every
path below it follows). The store's own inode numbers are the kernel's (root: 1), so a
hard-linked file is one kernel inode with several names.

An inode whose last name is gone while a descriptor holds it open keeps a stand-in key
(`stand_in`): the operations layer keeps such a file in memory under that key
(`WsfsOperations.hidden`) until the last close. It contains a NUL byte, so no request
can ever name it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ROOT = 1
STAND_IN_PREFIX = "\0"  # (the operations layer's `stand_in_prefix` on this API)


@dataclass(slots=True, eq=False)
class Inode:
    ino: int
    nlookup: int = 0
    names: list[tuple[int, str]] = field(default_factory=list)  # (parent inode, name), oldest first
    stand_in: str | None = None  # the key of an open file with no name left (see the module docstring)
    is_dir: bool = False
    path: str | None = None  # its path, built once: valid while `epoch` is the table's
    epoch: int = -1


def stand_in_key(ino: int) -> str:
    """The operations layer's name for an open inode with no name left (no request can name it)."""
    return f"/{STAND_IN_PREFIX}hidden-{ino:x}"


class InodeTable:
    """Inodes the kernel knows, with their names; `by_name` finds a child by (parent, name)."""

    def __init__(self) -> None:
        self.nodes: dict[int, Inode] = {ROOT: Inode(ROOT, nlookup=1, is_dir=True, path="/", epoch=0)}
        self.by_name: dict[tuple[int, str], int] = {}
        # Bumped by a directory's rename (every path below it changes): cached paths older are rebuilt.
        self.epoch = 0

    def path(self, ino: int) -> str | None:
        """The path of `ino` (its first name, its parents' first names); a stand-in key for an
        open file with no name left; None for an inode unknown or gone. Kept per inode until
        its names or a directory's change (a request's path costs a dict lookup, not a walk)."""
        node = self.nodes.get(ino)
        if node is None:
            return None
        if node.epoch == self.epoch and ino != ROOT:
            return node.path
        path = "/" if ino == ROOT else self._build(node)
        node.path, node.epoch = path, self.epoch
        return path

    def _build(self, node: Inode) -> str | None:
        if not node.names:
            return node.stand_in
        for parent, name in node.names:  # (a hard link's first name whose directory the kernel still holds)
            base = self._dir_path(parent)
            if base is not None:
                return f"/{name}" if base == "/" else f"{base}/{name}"
        return None

    def _dir_path(self, ino: int) -> str | None:
        """A directory's path (one name each): walked up, without recursion (paths may be deep),
        to the first directory whose path is kept."""
        parts, nodes, epoch = [], self.nodes, self.epoch
        base = "/"
        while ino != ROOT:
            node = nodes.get(ino)
            if node is None:
                return None  # (a directory the kernel forgot: not while it holds a child)
            if node.epoch == epoch:
                base = node.path
                break
            if not node.names:
                return None
            ino, name = node.names[0]
            parts.append(name)
        if base is None:
            return None
        if not parts:
            return base
        tail = "/".join(reversed(parts))
        return f"/{tail}" if base == "/" else f"{base}/{tail}"

    def child_path(self, parent: int, name: str) -> str | None:
        base = self.path(parent)
        if base is None or base.startswith("/" + STAND_IN_PREFIX):
            return None
        return f"/{name}" if base == "/" else f"{base}/{name}"

    def child(self, parent: int, name: str) -> int | None:
        return self.by_name.get((parent, name))

    def looked_up(self, ino: int, parent: int, name: str, is_dir: bool = False) -> None:
        """An entry reply for `name` in `parent` gave the kernel `ino` (one more lookup)."""
        node = self.nodes.get(ino)
        if node is None:
            node = self.nodes[ino] = Inode(ino, is_dir=is_dir)
        node.nlookup += 1
        self._name(node, parent, name)

    def _name(self, node: Inode, parent: int, name: str) -> None:
        key = (parent, name)
        old = self.by_name.get(key)
        if old == node.ino:
            return
        if old is not None:
            self._drop_name(old, key)
        self.by_name[key] = node.ino
        node.names.append(key)
        node.stand_in = None
        node.epoch = -1

    def _drop_name(self, ino: int, key: tuple[int, str]) -> None:
        node = self.nodes.get(ino)
        if node is not None and key in node.names:
            node.names.remove(key)
            node.epoch = -1

    def unlinked(self, parent: int, name: str) -> Inode | None:
        """`name` is gone from `parent` (unlink, rmdir); its inode, if the kernel holds it."""
        ino = self.by_name.pop((parent, name), None)
        if ino is None:
            return None
        self._drop_name(ino, (parent, name))
        return self.nodes.get(ino)

    def renamed(self, parent: int, name: str, new_parent: int, new_name: str, *, exchange: bool = False) -> None:
        """`name` in `parent` is now `new_name` in `new_parent`; what it replaced lost that name
        (or, `exchange`, took the old one)."""
        ino = self.by_name.pop((parent, name), None)
        other = self.by_name.pop((new_parent, new_name), None)
        if other is not None:
            self._drop_name(other, (new_parent, new_name))
        if ino is not None:
            self._drop_name(ino, (parent, name))
            self._name(self.nodes[ino], new_parent, new_name)
        if exchange and other is not None:
            self._name(self.nodes[other], parent, name)
        if any(self.nodes[i].is_dir for i in (ino, other) if i in self.nodes):
            self.epoch += 1  # (a directory moved: every path below it changed)

    def hide(self, node: Inode) -> str:
        """`node` lost its last name while open: its stand-in key."""
        node.stand_in = stand_in_key(node.ino)
        node.epoch = -1
        return node.stand_in

    def unhide(self, node: Inode) -> None:
        """`node`'s stand-in is gone (its last close): no path names it any more."""
        node.stand_in = None
        node.epoch = -1

    def forget(self, ino: int, nlookup: int) -> None:
        """The kernel dropped `nlookup` lookups of `ino`; at 0 it no longer names it."""
        node = self.nodes.get(ino)
        if node is None or ino == ROOT:
            return
        node.nlookup -= nlookup
        if node.nlookup > 0:
            return
        del self.nodes[ino]
        for key in node.names:
            if self.by_name.get(key) == ino:
                del self.by_name[key]
