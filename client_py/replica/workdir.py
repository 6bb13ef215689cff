"""The replica's directory together with what was last synced there.

Pull and push both compare a local object with its state row ("is this
still what we last synced?") and act on the same outcomes: a conflict copy
that keeps the local version beside the server's, a path that must be
pushed next (`pending`), an entry refused as unsafe, a count in the
summary. `Workdir` holds the pieces both directions share — the tree, the
state, the ignore rules, the summary and `pending` — and those shared
verdicts, so each direction's module holds only its own steps.
"""

from __future__ import annotations

import logging
import os
import stat as statmod
import time

import blake3

from client_py.conflicts import conflict_name
from client_py.replica.ignore import IgnoreRules
from client_py.replica.localfs import LocalTree, UnsafePath
from client_py.replica.state import Entry, State
from client_py.replica.summary import SyncSummary

log = logging.getLogger("client_py.replica")

RACY_NS = 100_000_000  # file timestamps tick at jiffy granularity: a stat this fresh proves nothing


def kind_of(st: os.stat_result) -> str | None:
    """The workspace kind of a local object; None for what is not synced (fifos, sockets, devices)."""
    if statmod.S_ISREG(st.st_mode):
        return "file"
    if statmod.S_ISDIR(st.st_mode):
        return "dir"
    if statmod.S_ISLNK(st.st_mode):
        return "symlink"
    return None


def trusted_mtime(st: os.stat_result) -> int:
    """The mtime to record for a file we read, or -1 when it is too recent to trust ("racy git").

    Two writes of the same size within one timestamp tick leave size and mtime
    unchanged; recording such a stat would hide the second write from every
    later rescan. -1 never matches, so the next rescan hashes the file again.
    """
    return st.st_mtime_ns if time.time_ns() - st.st_mtime_ns > RACY_NS else -1


def join(parent: str, name: str) -> str:
    """The workspace path of `name` inside the directory `parent`."""
    return parent + name if parent == "/" else f"{parent}/{name}"


class Workdir:
    """The directory, its state and ignore rules, and what a sync has found so far."""

    def __init__(self, tree: LocalTree, state: State, rules: IgnoreRules, host: str):
        self.tree = tree
        self.state = state
        self.rules = rules
        self.host = host  # names the conflict copies made here
        self.summary = SyncSummary()
        # Paths to look at and push: watcher events, conflict copies, local edits that
        # beat a remote delete. Pull adds to it; the loop hands it to push.
        self.pending: set[str] = set()
        self._skipped_logged: set[str] = set()  # special files from the server already reported

    def take_pending(self) -> set[str]:
        """The paths waiting to be pushed; `pending` starts over empty."""
        paths, self.pending = self.pending, set()
        return paths

    def is_clean(self, local: os.stat_result, row: Entry | None, path: str | None = None) -> bool:
        """Is the local object exactly what was last synced? With `path`, a racy stat is settled by hashing."""
        if row is None or row.kind != kind_of(local):
            return False
        if row.kind == "file" and (local.st_mode & 0o7777) != (row.mode & 0o7777):
            return False
        if row.matches(local):
            return True
        racy = row.kind == "file" and row.mtime_ns == -1 and row.size == local.st_size and row.ino == local.st_ino
        return path is not None and racy and self.content_id(path) == row.hash

    def content_id(self, path: str) -> str | None:
        """The BLAKE3 of the whole local file (the store's content id), or None if it cannot be read."""
        try:
            with self.tree.open_read(path) as fd:
                hasher = blake3.blake3()
                while piece := os.read(fd, 1 << 20):
                    hasher.update(piece)
                return hasher.hexdigest()
        except (OSError, UnsafePath):
            return None

    def conflict_copy(self, path: str) -> str:
        """Move the local version of `path` aside (to be pushed as a new file); the server's takes the path."""
        base = conflict_name(path, self.host)
        target, n = base, 1
        while self.tree.lstat(target) is not None:
            n += 1
            stem, ext = os.path.splitext(base)
            target = f"{stem}-{n}{ext}"
        self.tree.rename(path, target)
        self.state.delete(path)
        self.summary.conflicts.append(target)
        self.pending.add(target)
        log.warning("conflict on %s: the server's version is at the path, yours is kept as %s", path, target)
        return target

    def refuse(self, path: str, reason: str) -> None:
        """Report an entry from the server that was not applied because it is unsafe here."""
        log.warning("refused %s from the server: %s", path, reason)
        self.summary.refused.append((path, reason))

    def skip_special(self, path: str, kind: str) -> None:
        """A FIFO, socket or device node on the server: not made here (counted; logged once per path)."""
        self.summary.skipped += 1
        if path not in self._skipped_logged and len(self._skipped_logged) < 100_000:
            self._skipped_logged.add(path)
            log.info("skipped %s from the server: a %s, which a replica does not create", path, kind)

    def count_received(self, n: int) -> None:
        self.summary.bytes_received += n
