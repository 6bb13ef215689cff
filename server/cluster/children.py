"""Child processes a node (or a test) starts: they never outlive it.

Each child runs in its own process group (`start_new_session=True`), so the
parent decides when and how it stops (Litestream must outlive the node's
last sync, not die with a Ctrl-C that reaches the whole terminal group),
and one `killpg` ends it with anything it started. `die_with_parent`
(Linux `PR_SET_PDEATHSIG`) covers the case no `finally` can: the parent
killed with SIGKILL. The kernel then kills the child too, so a node killed
with `kill -9` leaves no Litestream replicating behind it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved now: nothing to look up after fork

    def set_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    return set_death_signal


die_with_parent: Callable[[], None] | None = _load_prctl()
"""A `preexec_fn` that has the kernel SIGKILL the child when its parent dies (None off Linux)."""


def kill_group(pid: int) -> None:
    """SIGKILL the process group a child leads (a group that is gone already is fine)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
