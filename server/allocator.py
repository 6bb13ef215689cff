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

It also runs with one glibc arena (`MALLOC_ARENA_MAX=1`, unless the
environment names a number): each thread of the store pools had an arena of
its own, and what was left there after the idle close (6-12 MiB at 1,000
workspaces, varying from run to run) stayed out of `malloc_trim`'s reach,
which never shrinks the top of a thread's arena (only the main arena's).
With one arena, 30 s after 1,000 workspaces closed: +10 / +11 % of the start
against +12 / +26 % (2 pairs in turn, load 1.0-1.4), the other anonymous
memory 1.2 MiB against 2.6-9.9 (docs/server.md, nineteenth pass); CPU per
write 824 / 863 µs against 817 / 770 µs, within this machine's noise (a pool
thread's small allocations come from its own cache, without the arena's lock).

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
ARENAS_ENV = "MALLOC_ARENA_MAX"
ARENAS = "1"


def wanted() -> bool:
    """True when this process should re-execute itself on the system allocator."""
    return ENV not in os.environ and sys.platform.startswith("linux") and bool(getattr(sys, "orig_argv", None))


def reexec_on_system_malloc() -> None:
    """Replace this process with itself started under `PYTHONMALLOC=malloc` and `MALLOC_ARENA_MAX=1`
    (returns only if nothing to do).

    Call it from a command line's entry point only, before any thread starts
    or any socket opens: `execve` keeps the process id and open descriptors
    but drops everything else.
    """
    if not wanted():
        return
    sys.stdout.flush()
    sys.stderr.flush()
    env = {**os.environ, ENV: SYSTEM_MALLOC}
    env.setdefault(ARENAS_ENV, ARENAS)
    os.execve(sys.executable, list(sys.orig_argv), env)
