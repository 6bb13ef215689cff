"""A directory's link count (2 + its subdirectories) after every kind of name change.

Since schema v12 the count is kept by the statements that add, drop or move a
directory's name (`Db.touch_dir`'s `subdirs`), not by triggers on `dirents`. A seeded
sequence of random operations (mkdir, rmdir, rm -r, renames that move, replace and
exchange directories, files and symlinks) is checked after every step against the
count read from the tree itself, and once more from a fresh connection.
"""

from __future__ import annotations

import random
from pathlib import Path

import vfs

_NAMES = ("a", "b", "c", "d")


def _dirs(ws: vfs.Workspace, top: str = "/") -> list[str]:
    found = [top]
    for entry in ws.readdir(top):
        if entry.kind == "dir":
            found += _dirs(ws, f"{top.rstrip('/')}/{entry.name}")
    return found


def _all(ws: vfs.Workspace, top: str = "/") -> list[str]:
    out = []
    for entry in ws.readdir(top):
        path = f"{top.rstrip('/')}/{entry.name}"
        out.append(path)
        if entry.kind == "dir":
            out += _all(ws, path)
    return out


def _check(ws: vfs.Workspace, step: str) -> None:
    for path in _dirs(ws):
        subdirs = sum(entry.kind == "dir" for entry in ws.readdir(path))
        assert ws.lstat(path).nlink == 2 + subdirs, (step, path)


def _step(ws: vfs.Workspace, rng: random.Random) -> str:
    dirs, everything = _dirs(ws), _all(ws)
    where = rng.choice(dirs)
    new = f"{where.rstrip('/')}/{rng.choice(_NAMES)}"
    op = rng.choice(("mkdir", "mkdir", "file", "symlink", "rmdir", "rm", "rename", "rename", "exchange"))
    try:
        if op == "mkdir":
            ws.mkdir(new)
        elif op == "file":
            ws.write_file(new, b"x")
        elif op == "symlink":
            ws.symlink("a", new)
        elif op == "rmdir" and len(dirs) > 1:
            ws.rmdir(rng.choice(dirs[1:]))
        elif op == "rm" and everything:
            ws.rm(rng.choice(everything), recursive=True)
        elif op in ("rename", "exchange") and everything:
            target = rng.choice(everything + [new]) if op == "rename" else rng.choice(everything)
            ws.rename(rng.choice(everything), target, exchange=op == "exchange")
    except OSError:
        pass  # refused (EEXIST, ENOTEMPTY, EINVAL, ENOTDIR, ...): nothing changed, checked all the same
    return f"{op} {new}"


def test_directory_link_counts_hold_through_random_name_changes(tmp_path: Path) -> None:
    rng = random.Random(12)
    store = tmp_path / "s.db"
    with vfs.Workspace(store) as ws:
        for n in range(400):
            _check(ws, f"{n}: {_step(ws, rng)}")
        assert len(_dirs(ws)) > 3  # the sequence left a tree to check
    with vfs.Workspace(store) as ws:
        _check(ws, "reopened")


def test_moving_a_directory_over_an_empty_one_counts_both_parents(tmp_path: Path) -> None:
    with vfs.Workspace(tmp_path / "s.db") as ws:
        for path in ("/p/x", "/p/y", "/q/z"):
            ws.mkdir(path, parents=True)
        ws.rename("/p/x", "/p/y")  # same parent: one subdirectory less
        assert ws.lstat("/p").nlink == 3
        ws.rename("/p/y", "/q/z")  # another parent: /p loses one, /q keeps its count
        assert (ws.lstat("/p").nlink, ws.lstat("/q").nlink) == (2, 3)
        ws.rmdir("/q/z")
        assert ws.lstat("/q").nlink == 2
