"""Shared test set-up: hypothesis profiles and the live-server fixtures.

The suite runs against real components only: SQLite files in tmp_path, a
real uvicorn server on a loopback port, real WebSocket clients.
"""

import faulthandler
import gc
import sys
import threading

import pytest

import hypothesis_profiles  # noqa: F401  (registers and loads the hypothesis profile)

# Fixtures shared across modules: `live_server` (in-process server),
# `server`/`ws` (a restartable server process and a WS client on it),
# `browser`/`demo_server` (chromium and `wsfs serve` for the demo), and the cluster's
# engines (`redis_server`, `seaweed`, `s3_location`, `litestream`: real, on loopback).
pytest_plugins = ["server_fixtures", "client_fixtures", "web_fixtures", "cluster_fixtures", "cli_fixtures"]
pytest_plugins += ["cluster_hub_fixtures"]  # RedisHub and SharedTokens on two nodes (tests/test_cluster_hub.py)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """A failed test's report shows its witnesses: fixtures append `(title, read)` pairs to
    `item.wsfs_witnesses` (a cluster node's log, read only when the body failed)."""
    report = yield
    if report.when == "call" and report.failed:
        for title, read in getattr(item, "wsfs_witnesses", []):
            text = read()
            if text:
                report.sections.append((title, text))
    return report


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """After pytest's own faulthandler has let go: keep one on until the process ends, and name
    the threads still alive. A crash while the interpreter shuts down (CI once exited 139 after
    every test had passed) then prints every thread's stack instead of a bare exit status."""
    faulthandler.enable(file=sys.__stderr__, all_threads=True)
    gc.collect()  # what the tests left in cycles goes now, while every module is still whole
    alive = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if alive:
        names = ", ".join(f"{t.name}{' (daemon)' if t.daemon else ''}" for t in alive)
        print(f"\nthreads alive after the tests: {names}", file=sys.__stderr__)
