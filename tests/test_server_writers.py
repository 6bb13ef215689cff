"""The writer queue (`server/writers.py`): small jobs queued behind pool work run on the loop.

A workspace's small writes run on the event loop when its queue is idle. One
job on the pool (a checkpoint, a big write) used to make every write arriving
meanwhile queue behind it on the pool, and the next ones behind those: a busy
workspace stayed on the pool for good. Now the drain that reaches a small job
hands it (and those after it) back to the loop, in order.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from server.writers import SerialQueue
from server_fixtures import LiveServer

WAIT = 10.0  # seconds any single wait below may take


async def test_jobs_keep_their_order_and_small_ones_run_on_the_loop() -> None:
    loop = asyncio.get_running_loop()
    loop_thread = threading.get_ident()
    ran: list[tuple[str, bool]] = []
    gate = threading.Event()
    with ThreadPoolExecutor(2) as pool:
        queue = SerialQueue(pool, loop)

        def job(name: str) -> str:
            ran.append((name, threading.get_ident() == loop_thread))
            return name

        first = queue.submit(lambda: gate.wait(WAIT))  # holds the queue on the pool
        names = ["a", "b", "c", "d", "e", "f"]
        here = {"b", "c", "e", "f"}
        futures = [queue.submit(job, n, here=n in here) for n in names]
        assert not queue.idle
        gate.set()
        results = await asyncio.wait_for(asyncio.gather(*(asyncio.wrap_future(f) for f in futures)), WAIT)
        assert first.result(WAIT) is True
    assert results == names
    assert [n for n, _ in ran] == names  # one at a time, in submission order
    assert [on_loop for _, on_loop in ran] == [n in here for n in names]
    assert queue.ran_here == len(here)
    assert queue.idle


async def test_small_jobs_stay_on_the_pool_while_the_loop_may_not_run_them() -> None:
    loop = asyncio.get_running_loop()
    loop_thread = threading.get_ident()
    on_loop: list[bool] = []
    with ThreadPoolExecutor(1) as pool:
        queue = SerialQueue(pool, loop, here_ok=lambda: False)  # e.g. the writer's connection is closed
        futures = [queue.submit(lambda: on_loop.append(threading.get_ident() == loop_thread), here=True)
                   for _ in range(3)]
        await asyncio.wait_for(asyncio.gather(*(asyncio.wrap_future(f) for f in futures)), WAIT)
    assert on_loop == [False, False, False]
    assert queue.ran_here == 0


async def test_small_puts_queued_behind_a_pool_job_run_on_the_loop(live_server: LiveServer) -> None:
    async with live_server.ahttp() as http:
        assert (await http.put("/api/workspaces/demo/files/first", content=b"x")).status_code == 201
        handle = live_server.state.stores.open_handle("demo")
        queue = handle._writer
        before = queue.ran_here
        metrics = live_server.state.metrics
        on_loop, in_pool = metrics.jobs_on_loop.value, metrics.jobs_in_pool.value
        gate = threading.Event()
        blocker = queue.submit(lambda: gate.wait(WAIT))  # a pool job: the queue is busy
        for _ in range(500):  # bounded: until a pool thread runs it (then only the PUTs are queued)
            if blocker.running():
                break
            await asyncio.sleep(0.01)
        assert blocker.running()
        puts = [asyncio.ensure_future(http.put(f"/api/workspaces/demo/files/s{i}", content=b"y" * 100))
                for i in range(6)]
        for _ in range(500):  # bounded: until all six are queued behind the blocker
            if len(queue._jobs) >= 6:
                break
            await asyncio.sleep(0.01)
        assert len(queue._jobs) == 6
        gate.set()
        replies = await asyncio.wait_for(asyncio.gather(*puts), WAIT)
        assert blocker.result(WAIT) is True
        assert [r.status_code for r in replies] == [201] * 6
        assert queue.ran_here - before == 6  # all on the loop, none in the pool
        assert (metrics.jobs_on_loop.value - on_loop, metrics.jobs_in_pool.value - in_pool) == (6, 0)
        text = (await http.get("/metrics")).text
        assert 'wsfs_write_jobs_total{where="loop"}' in text
        for i in range(6):
            assert (await http.get(f"/api/workspaces/demo/files/s{i}")).content == b"y" * 100
