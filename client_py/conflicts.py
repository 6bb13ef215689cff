"""The name of a conflict copy, shared by the replica and the remote mount.

When both sides changed a file, the server's version keeps the path and
ours is kept beside it as `NAME.conflict-<host>-<YYYYmmdd-HHMMSS>.EXT`
(docs/client.md, docs/mount.md). Both clients build that name here, so a
user who meets copies made by either sees one form, and a tool that looks
for them (`*.conflict-*`) needs one pattern.
"""

from __future__ import annotations

import os
import re
import socket
import time

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
