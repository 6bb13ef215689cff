"""`server/pools.py`: a pool whose idle threads leave (their cached freed blocks go back to glibc)."""

from __future__ import annotations

import random
import threading
import time

import pytest

from server import gcpolicy
from server.pools import IdlePool


def _wait_for(check, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        time.sleep(0.02)
    return check()


def test_jobs_run_with_their_results_and_errors_on_at_most_workers_threads() -> None:
    pool = IdlePool(3, thread_name_prefix="t-pool")
    running, most = [0], [0]
    lock = threading.Lock()

    def job(k: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.005)
        with lock:
            running[0] -= 1
        if k == 7:
            raise ValueError("seven")
        return k * 2

    try:
        futures = [pool.submit(job, k) for k in range(40)]
        assert [f.result(timeout=30) for f in futures if f is not futures[7]] == [k * 2 for k in range(40) if k != 7]
        with pytest.raises(ValueError, match="seven"):
            futures[7].result(timeout=30)
        assert 1 <= most[0] <= 3
        assert pool.threads <= 3
    finally:
        pool.shutdown(wait=True)
    assert pool.threads == 0
    with pytest.raises(RuntimeError):
        pool.submit(job, 1)


def test_an_idle_thread_leaves_asks_for_a_trim_and_a_later_job_starts_one_again() -> None:
    """A `ThreadPoolExecutor` keeps its threads for good: each kept glibc's cache of its freed blocks,
    pinning pages of its arena that no trim gave back after 1,000 workspaces closed."""
    pool = IdlePool(2, thread_name_prefix="t-idle", idle=0.2)
    try:
        assert pool.submit(lambda: threading.current_thread().name).result(timeout=30).startswith("t-idle_")
        assert pool.threads == 1
        gcpolicy._trim_wanted = False
        assert _wait_for(lambda: pool.threads == 0), "the idle thread did not leave"
        assert _wait_for(lambda: gcpolicy._trim_wanted), "its exit asked for no trim"
        gcpolicy.tick()  # the sweep's tick trims once
        assert gcpolicy._trim_wanted is False
        assert pool.submit(lambda: 5).result(timeout=30) == 5  # a new thread
    finally:
        pool.shutdown(wait=True)


def test_no_job_is_left_without_a_thread_while_threads_keep_leaving() -> None:
    """Threads leave after 1 ms idle while four threads submit at random gaps: every job still runs
    (a thread leaves only under the pool's lock and with nothing queued)."""
    pool = IdlePool(2, thread_name_prefix="t-churn", idle=0.001)
    futures = []
    lock = threading.Lock()

    def submitter(seed: int) -> None:
        rnd = random.Random(seed)
        for k in range(300):
            fut = pool.submit(lambda v=k: v)
            with lock:
                futures.append(fut)
            if rnd.random() < 0.2:
                time.sleep(rnd.random() * 0.003)

    try:
        threads = [threading.Thread(target=submitter, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(futures) == 1200
        assert sum(1 for f in futures if f.result(timeout=30) is not None) == 1200
        assert pool._started > 2  # threads did leave and start again meanwhile
    finally:
        pool.shutdown(wait=True)
