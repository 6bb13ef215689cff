"""The name of a conflict copy, shared by the replica and the remote mount.

When both sides changed a file, the server's version keeps the path and
ours is kept beside it as `NAME.conflict-<host>-<YYYYmmdd-HHMMSS>.EXT`
(docs/client.md, docs/mount.md). Both clients build that name here, so a
user who meets copies made by either sees one form, and a tool that looks
for them (`*.conflict-*`) needs one pattern. `parse_conflict_name` reads such a name back, for
`wsfs conflicts` (list the copies, keep mine / theirs / both).
"""

from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import dataclass

TIME_FORMAT = "%Y%m%d-%H%M%S"  # local time: the copy is read by a person on this machine


def host_label(host: str | None = None) -> str:
    """`host` (default: this machine's name) reduced to characters safe in a file name, at most 64."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", host or socket.gethostname())[:64]


def conflict_name(path: str, host: str, when: float | None = None) -> str:
    """`/d/notes.md` -> `/d/notes.conflict-HOST-20261125-094501.md`.

    The extension stays last so the copy opens with the same program;
    leading dots belong to the name (`.bashrc` has no extension).
    """
    head, _, name = path.rpartition("/")
    stem, ext = os.path.splitext(name)
    stamp = time.strftime(TIME_FORMAT, time.localtime(when or time.time()))
    return f"{head}/{stem}.conflict-{host}-{stamp}{ext}"


CONFLICT_GLOB = "*.conflict-*"  # what `find` needs to list every candidate copy (names at any depth)

_COPY_RE = re.compile(r"^(?P<stem>.+?)\.conflict-(?P<host>.+)-(?P<stamp>\d{8}-\d{6})(?P<ext>\.[^.]*)?$", re.DOTALL)


@dataclass(frozen=True)
class ConflictCopy:
    """A conflict copy found in a tree: where it is, the path it is a copy of, who made it and when."""

    path: str
    original: str
    host: str
    stamp: str  # YYYYmmdd-HHMMSS, local time of the machine that made it


def parse_conflict_name(path: str) -> ConflictCopy | None:
    """The inverse of `conflict_name`: None when `path` is not a conflict copy's name."""
    head, _, name = path.rpartition("/")
    m = _COPY_RE.match(name)
    if m is None:
        return None
    original = f"{head}/{m['stem']}{m['ext'] or ''}"
    return ConflictCopy(path, original, m["host"], m["stamp"])


def kept_name(copy: ConflictCopy) -> str:
    """Where "keep both" puts a copy: its name without the `.conflict-` marker (`notes.HOST-STAMP.md`)."""
    head, _, _ = copy.original.rpartition("/")
    stem, ext = os.path.splitext(copy.original.rpartition("/")[2])
    return f"{head}/{stem}.{copy.host}-{copy.stamp}{ext}"
