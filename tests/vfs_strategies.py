"""Shared helpers for the vfs tests: tree snapshots and comparable views.

A snapshot is a plain dict `path -> Node` so two trees (a store and a real
directory, or two stores after a sync) compare with one `==` and a failing
assert shows exactly which paths differ.
"""

from __future__ import annotations

import os
import stat as st
from dataclasses import dataclass

import blake3

import vfs

KIND_OF_MODE = {st.S_IFREG: "file", st.S_IFDIR: "dir", st.S_IFLNK: "symlink"}


@dataclass(frozen=True)
class Node:
    """What we compare per path. Fields that legitimately differ are None.

    Not compared, on purpose: inode numbers (compared as hard-link groups
    instead), ctime/atime, directory sizes (ext4 says 4096, a store 0) and
    directory mtimes (the store stamps its own clock).
    """

    kind: str
    mode: int
    size: int | None
    nlink: int | None
    content: bytes | None = None  # files
    target: str | None = None  # symlinks


def blake3_hex(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def vfs_snapshot(ws: vfs.Workspace, *, dir_nlink: bool = False) -> dict[str, Node]:
    """Every path under `/` (root excluded), walked without following symlinks."""
    out: dict[str, Node] = {}
    stack = ["/"]
    while stack:
        parent = stack.pop()
        for entry in ws.readdir(parent):
            path = parent.rstrip("/") + "/" + entry.name
            s = ws.lstat(path)
            assert s.kind == entry.kind, (path, s.kind, entry.kind)
            if s.kind == "dir":
                out[path] = Node("dir", s.mode, None, s.nlink if dir_nlink else None)
                stack.append(path)
            elif s.kind == "symlink":
                target = ws.readlink(path)
                out[path] = Node("symlink", s.mode, s.size, s.nlink, target=target)
            else:
                data = ws.read_file(path)
                assert s.hash == blake3_hex(data), f"{path}: Stat.hash is not blake3(content)"
                out[path] = Node("file", s.mode, s.size, s.nlink, content=data)
    return out


def disk_snapshot(root: str, *, dir_nlink: bool = False) -> dict[str, Node]:
    """The same view of a real directory; paths are made relative to `root` as `/x/y`."""
    out: dict[str, Node] = {}
    stack = [""]
    while stack:
        rel = stack.pop()
        with os.scandir(root + rel) as it:
            entries = list(it)
        for entry in entries:
            path = rel + "/" + entry.name
            s = os.lstat(root + path)
            kind = KIND_OF_MODE[st.S_IFMT(s.st_mode)]
            if kind == "dir":
                out[path] = Node("dir", s.st_mode, None, s.st_nlink if dir_nlink else None)
                stack.append(path)
            elif kind == "symlink":
                target = os.readlink(root + path)
                out[path] = Node("symlink", s.st_mode, s.st_size, s.st_nlink, target=target)
            else:
                with open(root + path, "rb") as f:
                    data = f.read()
                out[path] = Node("file", s.st_mode, s.st_size, s.st_nlink, content=data)
    return out


def vfs_link_groups(ws: vfs.Workspace, snapshot: dict[str, Node]) -> set[frozenset[str]]:
    """Paths grouped by inode: hard-link identity without comparing inode numbers."""
    return _groups({p: ws.lstat(p).ino for p, n in snapshot.items() if n.kind == "file"})


def disk_link_groups(root: str, snapshot: dict[str, Node]) -> set[frozenset[str]]:
    return _groups({p: os.lstat(root + p).st_ino for p, n in snapshot.items() if n.kind == "file"})


def _groups(ino_of: dict[str, int]) -> set[frozenset[str]]:
    by_ino: dict[int, set[str]] = {}
    for path, ino in ino_of.items():
        by_ino.setdefault(ino, set()).add(path)
    return {frozenset(paths) for paths in by_ino.values()}


def stat_view(kind: str, mode: int, size: int, nlink: int, hash_: str | None) -> tuple:
    """The comparable part of a stat result (see Node for what is left out)."""
    return (kind, mode, size if kind != "dir" else None, nlink if kind != "dir" else None, hash_)


def vfs_stat_view(s: vfs.Stat) -> tuple:
    return stat_view(s.kind, s.mode, s.size, s.nlink, s.hash)


def disk_stat_view(s: os.stat_result, real_path: str) -> tuple:
    kind = KIND_OF_MODE[st.S_IFMT(s.st_mode)]
    digest = None
    if kind == "file":
        with open(real_path, "rb") as f:
            digest = blake3_hex(f.read())
    return stat_view(kind, s.st_mode, s.st_size, s.st_nlink, digest)
