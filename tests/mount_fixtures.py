"""A local store mounted by a real daemon, and the stat fields mount tests compare."""

from __future__ import annotations

import os
from pathlib import Path

from client_py.mount.runner import MountProcess


def mount_store(tmp_path: Path, store: Path, extra: list[str] = ()) -> MountProcess:
    """`store` mounted at `tmp_path/mnt` (a context manager: unmounted on every path), logging to
    `mount.log`; `extra`: more `wsfs mount` options."""
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir(exist_ok=True)
    return MountProcess([str(store)], str(mountpoint), log_file=str(tmp_path / "mount.log"), extra=list(extra))


def stat_fields(st: os.stat_result) -> tuple:
    """What a remount must give back unchanged: inode, mode, links, owner, size, mtime, ctime."""
    return (st.st_ino, st.st_mode, st.st_nlink, st.st_uid, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
