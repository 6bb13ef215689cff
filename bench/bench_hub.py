"""RedisHub against LocalHub: local delivery cost and cross-node vs same-node fan-out latency.

    .venv/bin/python bench/bench_hub.py [--calls 20000] [--listeners 10] [--rounds 300]

Starts its own `redis-server` (no persistence) on a free loopback port and
kills it at the end. Prints a Markdown table:

- **local call cost**: microseconds per `publish_commit` / `publish_presence`
  with N in-process listeners, LocalHub vs RedisHub (which also queues the
  message for Redis), and the ratio (the goal: RedisHub ≈ LocalHub, since
  nothing on that path awaits Redis).
- **fan-out latency**: from `publish_commit` on one hub to `on_commit` on a
  listener, same hub vs a second RedisHub on the same Redis (another node),
  p50 / p99 over `--rounds` commits, and the ratio; then the same through
  `DurableHub` (what a cluster node stacks), announced with
  `publish_durable`. The issue's goal (p99 ≤ 2× same-node) is about
  end-to-end fan-out: `bench/bench_cluster.py` measures that through real
  nodes; this is the hub's share.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.cluster.durable_hub import DurableHub
from server.cluster.redis_hub import RedisHub
from server.hub import LocalHub

_runs = itertools.count(1)


class Sink:
    def __init__(self, session: str):
        self.session, self.token_id = session, "t"
        self.last = 0
        self.event: asyncio.Event | None = None

    def on_commit(self, rev: int) -> None:
        self.last = rev
        if self.event is not None:
            self.event.set()

    def on_presence(self, op: str, peer: dict[str, Any]) -> None:
        pass

    def on_close(self, code: int, reason: str) -> None:
        pass


def start_redis(workdir: str) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", workdir], stdout=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"redis://127.0.0.1:{port}/0"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    sys.exit("redis-server did not start")


def call_cost(hub: Any, calls: int, listeners: int) -> tuple[float, float]:
    """Microseconds per publish_commit and per publish_presence (update) with `listeners` listening."""
    ws = f"bench-{next(_runs)}"  # a fresh workspace per run: heads only grow
    for i in range(listeners):
        hub.listen(ws, Sink(f"s{i}"))
    t0 = time.perf_counter()
    for rev in range(1, calls + 1):
        hub.publish_commit(ws, rev)
    commit = (time.perf_counter() - t0) / calls * 1e6
    t0 = time.perf_counter()
    for i in range(calls):
        hub.publish_presence(ws, "writer", "update", {"session": "writer", "n": i})
    presence = (time.perf_counter() - t0) / calls * 1e6
    return commit, presence


async def latency(sender: Any, receiver: Any, rounds: int) -> list[float]:
    """Milliseconds from announcing a revision on `sender` to `on_commit` on a listener of `receiver`
    (a `DurableHub` announces with `publish_durable`: what a cluster node calls once acknowledged)."""
    ws = f"lat-{id(sender)}-{id(receiver)}"
    publish = sender.publish_durable if isinstance(sender, DurableHub) else sender.publish_commit
    sink = Sink("lat")
    sink.event = asyncio.Event()
    receiver.listen(ws, sink)
    out = []
    for rev in range(1, rounds + 1):
        sink.event.clear()
        t0 = time.perf_counter()
        publish(ws, rev)
        await asyncio.wait_for(sink.event.wait(), 5)
        out.append((time.perf_counter() - t0) * 1e3)
        await asyncio.sleep(0.001)
    return out


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--listeners", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=300)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_redis(tmp)
        try:
            a, b = RedisHub(url, "a", prefix="bench"), RedisHub(url, "b", prefix="bench")
            await a.start()
            await b.start()
            for _ in range(200):
                if a.connected and b.connected:
                    break
                await asyncio.sleep(0.02)
            print(f"load average at start: {os.getloadavg()[0]:.2f}\n")
            local = [call_cost(LocalHub(), args.calls, args.listeners) for _ in range(3)]
            redis = [call_cost(a, args.calls, args.listeners) for _ in range(3)]
            await asyncio.sleep(1)  # let the writer drain before timing latency
            lc, lp = (statistics.median(x) for x in zip(*local))
            rc, rp = (statistics.median(x) for x in zip(*redis))
            print(f"| local call, {args.listeners} listeners | LocalHub µs | RedisHub µs | ratio |")
            print("| --- | --- | --- | --- |")
            print(f"| publish_commit | {lc:.2f} | {rc:.2f} | {rc / lc:.2f} |")
            print(f"| publish_presence | {lp:.2f} | {rp:.2f} | {rp / lp:.2f} |")
            same = await latency(a, a, args.rounds)
            cross = await latency(a, b, args.rounds)
            da, db = DurableHub(a), DurableHub(b)  # what a cluster node stacks: RedisHub inside DurableHub
            dsame = await latency(da, da, args.rounds)
            dcross = await latency(da, db, args.rounds)
            print(f"\n| commit → on_commit, {args.rounds} rounds | p50 ms | p99 ms | p99 / same node |")
            print("| --- | --- | --- | --- |")
            for label, values, base in (("RedisHub, same node", same, same),
                                        ("RedisHub, other node (via Redis)", cross, same),
                                        ("DurableHub over RedisHub, same node", dsame, dsame),
                                        ("DurableHub over RedisHub, other node", dcross, dsame)):
                print(f"| {label} | {pct(values, 0.5):.3f} | {pct(values, 0.99):.3f} "
                      f"| {pct(values, 0.99) / pct(base, 0.99):.1f}x |")
            print(f"\nsent through Redis: {a.sent} messages; load average at end: {os.getloadavg()[0]:.2f}")
            await a.stop()
            await b.stop()
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


if __name__ == "__main__":
    asyncio.run(main())
