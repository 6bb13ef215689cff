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
        middle, young = gc.get_stats()[1]["collections"], gc.get_stats()[0]["collections"]
        junk = [[i] for i in range(300_000)]  # survives into the oldest generation...
        del junk                               # ...and many young collections run meanwhile
        assert gc.get_stats()[2]["collections"] == full, "CPython ran a full collection by itself"
        assert gc.get_stats()[0]["collections"] > young + 100  # the youngest generation as before
        assert gc.get_stats()[1]["collections"] == middle, "CPython ran a middle collection by itself"
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


def test_closed_stores_get_their_cycles_collected_at_the_next_tick_then_the_heap_trimmed() -> None:
    """An idle server promotes almost nothing, so its quiet full collection waited up to `FULL_EVERY`:
    1,000 closed workspaces kept ~26 MB of cycles that long. A close (`reclaim`) asks for one at the
    next tick, spaced by `RECLAIM_SPACING` times the last pause."""
    run("""
        import gc, weakref
        from server import gcpolicy as g

        trims = []
        g._malloc_trim.cache_clear()
        g._malloc_trim = lambda: trims.append  # count the calls (glibc's own is looked up the same way)
        g.install()
        policy = g._policy

        class Node:
            pass

        held = [Node(), Node()]
        held[0].other, held[1].other = held[1], held[0]  # a cycle: only a collection frees it
        ref = weakref.ref(held[0])
        gc.collect(1)  # alive while young: promoted to the oldest generation, as an open store's objects
        del held       # then the store closes: garbage only a full collection finds
        gc.collect(1)
        assert ref() is not None
        policy.last -= g.RECLAIM_AFTER + 1
        g.tick()
        assert ref() is not None and policy.count == 0, "an idle tick with no close collected"
        g.reclaim()    # the sweep closed stores: the heap trimmed at once
        assert trims == [0] and ref() is not None
        g.tick()       # and their cycles collected at the next tick, then trimmed again
        assert ref() is None and policy.count == 1 and not policy.wanted and trims == [0, 0]
        policy.took = 0.1  # a long pause: the next close's collection waits RECLAIM_SPACING times it
        policy.last -= g.RECLAIM_AFTER + 1
        g.reclaim()
        g.tick()
        assert policy.count == 1 and policy.wanted
        policy.last -= g.RECLAIM_SPACING * 0.1
        g.tick()
        assert policy.count == 2 and trims == [0, 0, 0, 0]
        policy.took = 10.0  # never longer than QUIET_AFTER
        g.reclaim()
        policy.last -= g.QUIET_AFTER + 1
        g.tick()
        assert policy.count == 3
    """)


def test_a_close_during_a_busy_tick_waits_for_a_quiet_one_or_full_every() -> None:
    """A sleeping workspace on a busy node asked for a full collection (200-660 ms at 1,000 workspaces)
    in the middle of the others' writes; it now waits until the process is quiet, or `FULL_EVERY`."""
    run("""
        from server import gcpolicy as g

        g.install()
        policy = g._policy
        policy.last -= g.RECLAIM_AFTER + 1
        g.reclaim()
        policy.young -= g.QUIET_YOUNG + 10     # as if many young collections ran since the last tick
        g.tick()
        assert policy.count == 0 and policy.wanted, "collected while busy"
        g.tick()                               # quiet now
        assert policy.count == 1 and not policy.wanted
        g.reclaim()
        policy.last -= g.FULL_EVERY
        policy.young -= g.QUIET_YOUNG + 10
        g.tick()
        assert policy.count == 2 and not policy.wanted  # busy, but FULL_EVERY has passed
    """)


def test_a_second_of_requests_is_busy_even_when_no_young_collection_ran() -> None:
    """Young collections follow the net growth of tracked objects: under 1,000 writes/s, a second in
    which idle readers were closed saw 0-2 of them and passed for quiet, and a 0.6-0.9 s full
    collection landed amid the writes. The server's count of requests and commits overrules that."""
    run("""
        import gc
        from server import gcpolicy as g

        g.install()
        policy = g._policy
        junk = [[i] for i in range(300_000)]   # enough promoted for a quiet moment to collect
        del junk
        g.tick(0)
        policy.last -= g.QUIET_AFTER + 1
        policy.young = g._young_collections()  # no young collection since: quiet by that measure alone
        g.tick(0 + 1000)                       # ... but 1,000 requests and commits were served
        assert policy.count == 0, "a full collection ran in a busy second"
        policy.young = g._young_collections()
        g.tick(1000 + g.QUIET_WORK - 1)         # a quiet second: it runs now
        assert policy.count == 1
        g.reclaim()                             # closes ask for one sooner, but still not while busy
        policy.last -= g.QUIET_AFTER + 1
        policy.young = g._young_collections()
        g.tick(5000)
        assert policy.count == 1 and policy.wanted
        policy.young = g._young_collections()
        g.tick(5000)
        assert policy.count == 2 and not policy.wanted
    """)


def test_the_server_tells_the_policy_its_requests_and_commits() -> None:
    """`Metrics.work` counts HTTP requests, WebSocket messages in and store commits."""
    from server.metrics import Metrics

    m = Metrics()
    before = m.work()
    m.http_requests.labels("PUT", "200").inc()
    m.http_requests.labels("GET", "404").inc()
    m.ws.messages_in += 3
    m.commits.inc()
    assert m.work() == before + 6


def test_a_pause_spent_waiting_counts_in_wall_time_not_in_cpu_time() -> None:
    """A collection that waits (here a finalizer sleeping inside it; under load, the process waiting for
    a core) is long in `buckets` and short in `cpu_buckets`: the two histograms tell them apart."""
    run("""
        import gc, time
        from server import gcpolicy as g

        g.install()
        p = g.pauses

        class Slow:
            def __del__(self):
                time.sleep(0.06)

        a, b = Slow(), Slow()
        a.other, b.other = b, a  # a cycle: only the collector frees it, running both finalizers
        del a, b
        gc.collect(0)
        slow = g.PAUSE_BUCKETS.index(0.25)  # 60-120 ms asleep: counted at or above the 0.1 s bound
        assert sum(p.buckets[0][slow - 1:]) == 1, p.buckets[0]
        assert sum(p.cpu_buckets[0][:2]) == p.count[0], p.cpu_buckets[0]  # each under 5 ms of CPU
    """)


def test_what_lived_through_a_full_collection_is_frozen_and_walked_again_only_after_closes_or_whole_every() -> None:
    """At 1,000 open workspaces a full collection walked ~1 GB of live objects (0.7-0.9 s of CPU) each
    time; now what lives through one is frozen and the next walks only what came since. A cycle that
    was alive then and died later is found by a collection after stores closed (`reclaim`: their
    objects were frozen while open) or once `WHOLE_EVERY` passed, never lost for good."""
    run("""
        import gc, weakref
        from server import gcpolicy as g

        g._malloc_trim.cache_clear()
        g._malloc_trim = lambda: None
        g.install()
        policy = g._policy

        class Node:
            pass

        def cycle():
            a, b = Node(), Node()
            a.other, b.other = b, a
            return [a, b], weakref.ref(a)

        held, ref = cycle()        # alive through the first full collection, as an open store's objects
        policy.last -= g.FULL_EVERY
        g.tick()
        assert policy.count == 1 and gc.get_freeze_count() > 0
        del held                   # then it dies: garbage among the frozen objects
        policy.last -= g.FULL_EVERY
        g.tick()                   # a full collection that walks only what came since the last one
        assert policy.count == 2 and ref() is not None, "the frozen objects were walked again"
        g.reclaim()                # stores closed: the next one walks everything
        policy.last -= g.QUIET_AFTER + 1
        g.tick()
        assert policy.count == 3 and ref() is None, "a closed store's cycles stayed frozen"

        held, ref = cycle()
        policy.last -= g.FULL_EVERY
        g.tick()                   # frozen again
        del held
        policy.last -= g.FULL_EVERY
        g.tick()
        assert policy.count == 5 and ref() is not None
        policy.whole -= g.WHOLE_EVERY
        policy.last -= g.FULL_EVERY
        g.tick()                   # but never longer than WHOLE_EVERY
        assert policy.count == 6 and ref() is None
    """)


def test_a_trim_first_swaps_the_threads_cached_freed_blocks_for_new_ones() -> None:
    """glibc keeps a thread's last freed blocks of each size (up to 7) for its next allocations; freed
    amid a peak, each pinned a page against `malloc_trim`. `release_memory` first takes them out and
    caches new ones in their place, so the old ones go back to the heap (the next 7 allocations of that
    size no longer return them; they did before)."""
    run("""
        import ctypes
        from server import gcpolicy as g

        libc = g._libc()
        size = 1000  # one of the cached sizes (24 + 16 k), rarely asked by the interpreter meanwhile
        old = [libc.malloc(size) for _ in range(g.TCACHE_COUNT)]
        for block in old:
            libc.free(block)           # now in this thread's cache
        g.release_memory()
        again = [libc.malloc(size) for _ in range(g.TCACHE_COUNT)]
        assert len(set(again) & set(old)) <= 1, (old, again)
        for block in again:
            libc.free(block)
    """)
