"""`server/gcpolicy.py`: full garbage collections run on the server's schedule, not CPython's.

Each case runs in its own interpreter: installing the policy changes the process's collector.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(code: str) -> None:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr


def test_installed_cpython_runs_no_full_collection_and_a_quiet_tick_does() -> None:
    run("""
        import gc
        from server import gcpolicy as g

        g.tick()  # not installed: nothing
        g.install()
        assert gc.get_threshold()[2] == g.NEVER
        full = gc.get_stats()[2]["collections"]
        junk = [[i] for i in range(300_000)]  # survives into the oldest generation...
        del junk                               # ...and many young collections run meanwhile
        assert gc.get_stats()[2]["collections"] == full, "CPython ran a full collection by itself"
        policy = g._policy
        g.tick()                               # quiet now, but the last full collection is recent
        assert policy.count == 0
        policy.last -= g.QUIET_AFTER + 1
        g.tick()
        assert policy.count == 1 and gc.get_stats()[2]["collections"] == full + 1
    """)


def test_a_busy_process_still_gets_a_full_collection_every_full_every_seconds() -> None:
    run("""
        import gc
        from server import gcpolicy as g

        g.install()
        policy = g._policy
        policy.last -= g.QUIET_AFTER + 1
        policy.young -= g.QUIET_YOUNG + 10     # as if many young collections ran since the last tick
        g.tick()
        assert policy.count == 0               # busy: waits
        policy.last -= g.FULL_EVERY
        policy.young -= g.QUIET_YOUNG + 10
        g.tick()
        assert policy.count == 1               # but never longer than FULL_EVERY
    """)


def test_a_quiet_moment_with_nothing_new_in_the_old_generation_runs_no_full_collection() -> None:
    run("""
        import gc
        from server import gcpolicy as g

        g.install()
        gc.collect()                           # nothing promoted since
        policy = g._policy
        policy.last -= g.QUIET_AFTER + 1
        g.tick()
        assert policy.count == 0, "an idle process walked its live objects for nothing"
        junk = [[i] for i in range(300_000)]   # now the middle generation is collected many times
        del junk
        g.tick()                               # (busy: many young collections since the last tick)
        g.tick()
        assert policy.count == 1
    """)
