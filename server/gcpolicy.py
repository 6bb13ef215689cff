"""When the garbage collector may pause the server: full collections on our schedule.

CPython runs a full (oldest-generation) collection whenever enough objects have
survived into that generation. A node with 1,000 open workspaces holds millions
of long-lived objects, and under a steady write load a full collection paused
the event loop for 160–660 ms every 3–4 s while finding nothing to free
(measured with 1,000 workspaces at 1 write/s each: 17 full collections in 30 s,
4.7 s of pauses, "collected 0"): those pauses were the write p99.

So `wsfs serve` takes full collections out of CPython's hands (`install`): the
youngest generation is still collected as usual, where nearly all cyclic
garbage dies, and a full collection runs from the background sweep (`tick`,
about once a second) when the process has been allocating little and
serving (almost) nothing since the last tick, `QUIET_AFTER` seconds have passed since the previous one and at
least `QUIET_PROMOTED` middle-generation collections' worth of youngest ones ran since (an idle
server has nothing new in the oldest generation: at 3,000 idle sessions a
full collection took ~300 ms every 30 s, ~1 % of a core, for nothing), or
after `FULL_EVERY` seconds whatever the load. Cyclic garbage that reached the
oldest generation waits for that; memory stays bounded by it.

The middle generation is collected only with the full collections too: what
survives a youngest collection is, under load, what lives a while (the
feed's pages and deltas, `sqlite3`'s dead cursor weakrefs, requests in
flight), so the middle collections walked each of those objects a second
time and freed almost nothing (211 gen0 and 20 gen1 collections in a row at
1,000 workspaces x 1 write/s: fewer than one object each); they were about
half of the collector's CPU there, 25-51 µs per write (docs/server.md,
fourteenth pass).

Closing stores (`reclaim`, from the idle sweep) asks for one sooner: a closed
workspace leaves ~140 objects in cycles (its handle, session and feed objects
refer to each other), 1,000 of them ~26 MB that an idle server, which promotes
almost nothing, kept for up to `FULL_EVERY` seconds. The collection then runs
at the first quiet tick after the last one by `RECLAIM_SPACING` times its
pause (at most ~1 % of the time: ~20 ms on a small server, a second later;
~300 ms at 10,000 sessions, 30 s later; never more than `QUIET_AFTER`), and
is followed by `release_memory` (glibc's `malloc_trim`), so the freed heap
goes back too. Quiet, because on a busy node some workspace goes to sleep in
nearly every sweep: the pause then landed among the other workspaces' writes
every 30 s; under a load that never stops, `FULL_EVERY` collects them.
The heap is also trimmed at once when stores close: what their SQLite
connections held (most of a busy workspace's memory) needs no collection.

What lives through one of our full collections is then frozen (`gc.freeze`: CPython's permanent
generation), so the next one walks only what was allocated since: at 1,000 open workspaces a full
collection walked ~1 GB of live objects (0.7-0.9 s of CPU) at every quiet second after a burst and
every `FULL_EVERY` under a steady load, each time finding next to nothing. Cycles among frozen objects
that die later are found by the collections that unfreeze first: the one after stores closed or went
to sleep (`reclaim`: their handles, sessions, feeds and connections were frozen while open) and at least
one every `WHOLE_EVERY` seconds. So the saving is for a node whose stores stay awake between two
collections (a steady load, bursts closer than the idle times); after sleeps the walk is whole.

Only the server process installs this (`server/cli.py`): a program embedding
the app, or the test run, keeps CPython's own schedule. Installing it also
times every collection (`Pauses`, from `gc.callbacks`), exported by
`/metrics` as `wsfs_gc_pause_seconds` per generation: a pause stops the
event loop, so it is the first suspect of a slow write.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import logging
import sys
import time
from collections.abc import Callable

from vfs import paths

log = logging.getLogger("wsfs.server")

NEVER = 1 << 30  # an oldest-generation threshold CPython never reaches
QUIET_AFTER = 30.0  # seconds since the last full collection before a quiet moment may run one
FULL_EVERY = 300.0  # the longest between two full collections, busy or not
QUIET_YOUNG = 3  # youngest-generation collections per tick below which the process counts as quiet
QUIET_WORK = 3  # requests and commits per tick below which the process counts as quiet (when told)
QUIET_PROMOTED = 10  # middle-generation collections since the last full one before a quiet moment runs one
MIDDLE_EVERY = 10  # youngest collections per middle one (CPython's own threshold, counted by `tick` only)
RECLAIM_SPACING = 100.0  # after closes: the time since the last full collection, in multiples of its pause
RECLAIM_AFTER = 1.0  # ... and at least this many seconds
WHOLE_EVERY = 3600.0  # the longest between two collections that also walk what earlier ones froze

PAUSE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)  # seconds, upper bounds

_policy: FullCollections | None = None
pauses: Pauses | None = None  # set by `install`


class Pauses:
    """How long each collection stopped the process, per generation: a `gc.callbacks` entry (a few
    microseconds per collection; young collections run a few hundred times a second under load)."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.total = [0.0, 0.0, 0.0]
        self.longest = [0.0, 0.0, 0.0]
        self.buckets = [[0] * len(PAUSE_BUCKETS) for _ in range(3)]  # per bound, not cumulative
        self.cpu = [0.0, 0.0, 0.0]  # the collecting thread's CPU time: the pause without preemption
        # the same buckets for each collection's CPU time: a long pause with little CPU was the
        # process waiting for a core (preempted mid-collection), not the collector's own work
        self.cpu_buckets = [[0] * len(PAUSE_BUCKETS) for _ in range(3)]
        self._t0 = self._c0 = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0, self._c0 = time.perf_counter(), time.thread_time()
            return
        took = time.perf_counter() - self._t0
        gen = info["generation"]
        cpu = time.thread_time() - self._c0
        self.cpu[gen] += cpu
        self.count[gen] += 1
        self.total[gen] += took
        if took > self.longest[gen]:
            self.longest[gen] = took
        _count(self.buckets[gen], took)
        _count(self.cpu_buckets[gen], cpu)


def _count(buckets: list[int], seconds: float) -> None:
    for k, bound in enumerate(PAUSE_BUCKETS):
        if seconds <= bound:
            buckets[k] += 1
            break


def _young_collections() -> int:
    return gc.get_stats()[0]["collections"]


class FullCollections:
    """The schedule of full collections; `tick` is called about once a second."""

    def __init__(self) -> None:
        self.last = time.monotonic()
        self.young = _young_collections()
        self.count = 0
        self.paused = 0.0  # seconds spent in our full collections
        self.wanted = False  # stores closed since the last one: collect, then give memory back
        self.took = 0.0  # the last full collection's pause
        self.work = 0  # the caller's count of requests and commits at the last tick
        self.whole = self.last  # when a full collection last walked the frozen objects too

    def tick(self, work: int | None = None) -> None:
        now = time.monotonic()
        young = _young_collections()
        # Young collections follow the *net* growth of tracked objects, not the work: at 1,000 writes/s
        # a second in which closing idle readers freed as much as the writes made saw 0-2 of them,
        # passed for quiet and paid for a 0.6-0.9 s full collection amid the writes (2-3 per 100 s).
        # So a caller that counts its requests and commits (`work`) has the last word.
        quiet = young - self.young < QUIET_YOUNG and (work is None or work - self.work < QUIET_WORK)
        self.young = young
        if work is not None:
            self.work = work
        since = now - self.last
        # a quiet moment runs one only if enough went through the middle generation since the last:
        # an idle node with 10,000 sessions paused ~300 ms every 30 s walking the same live objects
        promoted = gc.get_count()[1] >= QUIET_PROMOTED * MIDDLE_EVERY  # (youngest collections since the last full)
        # after closes, only while quiet: at 1,000 busy workspaces, others going to sleep asked for a full
        # collection every 30 s, a 200-660 ms pause in the middle of writes (docs/server.md, seventh pass)
        reclaim = quiet and self.wanted and since >= max(RECLAIM_AFTER, min(QUIET_AFTER, RECLAIM_SPACING * self.took))
        if since < FULL_EVERY and not reclaim and not (quiet and promoted and since >= QUIET_AFTER):
            return
        # what lived through the last full collection is frozen (`gc.freeze`): a later one walks only what
        # came since, unless stores closed (their cycles are among the frozen) or `WHOLE_EVERY` passed
        whole = self.wanted or now - self.whole >= WHOLE_EVERY
        t0 = time.perf_counter()
        if whole:
            gc.unfreeze()
        found = gc.collect()
        gc.freeze()
        took = time.perf_counter() - t0
        self.last, self.young = time.monotonic(), _young_collections()
        if whole:
            self.whole = self.last
        self.count += 1
        self.paused += took
        self.took = took
        log.debug("full garbage collection: %.0f ms, %d objects freed", took * 1000, found)
        if self.wanted:
            self.wanted = False
            release_memory()


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`, looked up once (`find_library` runs `ldconfig`); None elsewhere."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


TCACHE_BINS = 64  # glibc's per-thread caches of freed blocks: one per size, requests of 24 + 16 k bytes
TCACHE_COUNT = 7  # blocks each keeps


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc.restype = ctypes.c_void_p
        libc.malloc.argtypes = [ctypes.c_size_t]
        libc.free.argtypes = [ctypes.c_void_p]
        return libc
    except (OSError, AttributeError):
        return None


def refresh_tcache() -> None:
    """Swap this thread's cached freed blocks for new ones: the cached ones, freed amid a peak, each
    pinned a page of the heap against `malloc_trim`. Take each size's cached blocks (they come first)
    and as many new ones (side by side, from one free chunk), give the new ones back first (they fill
    the cache), then the old ones (the cache is full: they go back to the heap, trimmable)."""
    libc = _libc()
    if libc is None:
        return
    for k in range(TCACHE_BINS):
        size = 24 + 16 * k
        old = [libc.malloc(size) for _ in range(TCACHE_COUNT)]
        new = [libc.malloc(size) for _ in range(TCACHE_COUNT)]
        for block in new + old:
            libc.free(block)


def release_memory() -> None:
    """Give freed heap back to the system (glibc keeps it otherwise: RSS stayed at its peak after
    1,000 stores closed). A no-op where there is no `malloc_trim`."""
    trim = _malloc_trim()
    if trim is not None:
        refresh_tcache()
        trim(0)


_trim_wanted = False


def trim_soon() -> None:
    """Ask the next `tick` to trim the heap (from a pool thread as it exits, `server/pools.py`: glibc
    returns its cached blocks to their arena only once the thread is gone, so it cannot trim itself)."""
    global _trim_wanted
    _trim_wanted = True


def install() -> None:
    """Stop CPython's own full collections in this process; `tick` runs them instead."""
    global _policy, pauses
    if pauses is None:
        pauses = Pauses()
        gc.callbacks.append(pauses)
    if _policy is None:
        young, _, _ = gc.get_threshold()
        gc.set_threshold(young, NEVER, NEVER)
        _policy = FullCollections()


def drop_caches() -> None:
    """Empty the process-wide caches that fill with what the stores were asked. Filled amid a peak,
    each of their blocks pins a page of the heap once everything around it is freed (docs/server.md,
    tenth and nineteenth passes). They refill on use.

    - `vfs.paths.normalize`: every path a write named, up to 8,192, ~20,000 small blocks after 5,000
      distinct paths.
    - CPython's type attribute cache (`sys._clear_type_cache`): 3.11 caches a lookup by the *address*
      of the name, and keeps a reference to that name. A name made from a C string for one call is a
      new object each time, so each call takes a slot of its own and keeps its string alive: every
      WebSocket handshake's Date header (`email.utils.formatdate`, in uvicorn and websockets) calls
      the C `datetime`'s `tzinfo.dst` that way, and after 1,000 subscribers ~640 strings `"dst"`
      (refcount 1, referred to only from the interpreter's static state) pinned ~640 pages of the
      heap. Emptying the cache frees them; the next lookups refill it."""
    paths.normalize.cache_clear()
    clear = getattr(sys, "_clear_type_cache", None)
    if clear is not None:
        clear()


def reclaim() -> None:
    """Stores were closed: drop the caches their use filled (`drop_caches`), give the memory back
    now, and collect their cycles (at the next allowed tick where the policy is installed, then trim
    again; otherwise CPython collects on its own schedule). Trimming only after the collection left
    RSS at its peak (608 of 648 MiB) 80 s after 1,000 stores closed: a collection under load may
    pause 660 ms, which spaces the next 66 s."""
    drop_caches()
    release_memory()
    if _policy is not None:
        _policy.wanted = True


def tick(work: int | None = None) -> None:
    """From the background sweep: trim the heap if a pool thread left since (`trim_soon`), and run a
    full collection if it is time (nothing unless installed). `work`: a running count of the requests and commits served, so a busy second never counts as
    quiet (see `FullCollections.tick`)."""
    global _trim_wanted
    if _trim_wanted:
        _trim_wanted = False
        release_memory()
    if _policy is not None:
        _policy.tick(work)
