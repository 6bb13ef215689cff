"""The server process runs on the C library's malloc, not CPython's own small-object allocator.

Why: a node that opens and closes thousands of workspaces must give the
memory back (issue 18: within 20 % of its size before, once they are idle
and closed). CPython's pymalloc carves small objects out of 1 MiB arenas and
returns an arena to the system only when every block in it is free; a few
long-lived objects born during a busy minute (a cache entry, an interned
name) pin most of the arenas that minute grew. Measured with `bench_scale.py
--workspaces 1000 --rate 1 --wait-close 80` (docs/server.md): 80 s after every
store closed, RSS +179-182 % over its value at start with pymalloc, +39-44 %
with glibc's malloc (whose free pages `malloc_trim`, which the server calls
after closing stores, hands back wherever they are). The CPU per small write
moved within this machine's noise in the same runs.

`PYTHONMALLOC` is read once, as the interpreter starts, so `wsfs serve` (and
`python -m server serve`) execute themselves again with it set: same process
id, same arguments, same descriptors. A `PYTHONMALLOC` already in the
environment is kept as given (`PYTHONMALLOC=pymalloc wsfs serve` opts out).
"""

from __future__ import annotations

import os
import sys

ENV = "PYTHONMALLOC"
SYSTEM_MALLOC = "malloc"


def wanted() -> bool:
    """True when this process should re-execute itself on the system allocator."""
    return ENV not in os.environ and sys.platform.startswith("linux") and bool(getattr(sys, "orig_argv", None))


def reexec_on_system_malloc() -> None:
    """Replace this process with itself started under `PYTHONMALLOC=malloc` (returns only if nothing to do).

    Call it from a command line's entry point only, before any thread starts
    or any socket opens: `execve` keeps the process id and open descriptors
    but drops everything else.
    """
    if not wanted():
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, list(sys.orig_argv), {**os.environ, ENV: SYSTEM_MALLOC})
