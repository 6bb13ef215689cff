"""Cluster mode against one node, same run: ack latency, write throughput, failover time.

    .venv/bin/python bench/bench_cluster.py [--writes 200] [--sizes-mib 1,100] [--only failover|ack]
                                            [--stacks h11,httptools] [--compare-l1 SECONDS]

Starts its own engines on loopback (`redis-server`, SeaweedFS, and Litestream
inside each node), all in their own process groups, killed at the end:

- **baseline**: one plain `wsfs serve` (no flags): SQLite's commit is the ack;
- **cluster**: two `wsfs serve --cluster ... --replicate ...` nodes, A and B,
  and a third, P, with the fence window off (`WSFS_CLUSTER_FENCE_WINDOW=0`:
  the plain rule, a manifest HEAD after every sync), for comparison.

Prints Markdown tables:

- the acknowledgement's own steps after a commit (no HTTP), before and after
  in one run: httpx to Litestream's control socket then the fence HEAD (as
  it was), the plain rule on the new control client, and the fence window;
- ack latency p50 / p99 of sequential 200-byte PUTs: baseline, cluster via
  the owner, cluster via the other node (proxied), and the ratios to baseline,
  with the owners' own acknowledgement time (commit to durable, the mean of
  `wsfs_cluster_ack_seconds` over the run) to split the end-to-end figure;
- CPU milliseconds per sequential write, per process (the node, its
  Litestream, SeaweedFS, Redis, the client), one node against a cluster
  owner: where an acknowledgement's time goes as work;
  `--stacks h11,httptools` runs an owner and a proxying node per HTTP stack
  (h11/asyncio, a cluster node's default, against httptools/uvloop, a plain
  node's), interleaved write by write, and the throughput rows per stack;
- acknowledged writes/s with 1, 10 and 100 concurrent writers (one file
  each write, each writer its own client), baseline vs cluster via the
  owner and via another node (group commit shows here);
- fan-out: a write through the owner A, seen by a subscriber (`watch()`)
  on A itself and by one on B (whose WebSocket B bridges to A, where the
  workspace's hub is): p50 / p99 from sending the PUT to the event, and the
  ratio cross-node / same-node (goal: p99 ≤ 2×); once idle, once with 10
  writers busy on another workspace of A;
- failover: a workspace of N MiB (1 MiB incompressible files, 8 writers)
  on a fresh owner, `kill -9` of its process group, time until a write
  through a surviving node is acknowledged (lease expiry + manifest bump +
  takeover wait + Litestream restore), the size of the store file restored,
  and the time to read every file back through the survivor afterwards;
  for each size with chunks inside the replicated SQLite file (`sqlite`,
  the first pass) and as S3 objects (`objects`), interleaved
  (`--chunks`; `--only failover` skips the rest).

`--only ack` stops after the ack latency table; `--only cpu` prints only
the CPU per write (one node, the owner, the owner through another node). `--compare-l1 SECONDS` adds
an owner whose Litestream compacts to L1 every SECONDS (0: Litestream's own
defaults, `WSFS_CLUSTER_L1_INTERVAL`) to that table, and the same to the
failover runs, against a node's default (docs/cluster.md, "Fourth pass").

The machine is shared: the load average is printed with the results.
`--workdir DIR` keeps the nodes' logs; `WSFS_BENCH_LOG_LEVEL=info` makes the
failover nodes log their takeovers there; `WSFS_BENCH_FILE_KIB` sets the size
of the files the failover runs write (1024).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.cluster.objectstore import ObjectStore  # noqa: E402
from tests.cluster_fixtures import (  # noqa: E402
    VENV_BIN,
    Engine,
    RedisServer,
    SeaweedS3,
    ServeNode,
    admin_token,
    free_ports,
    new_bucket,
    wait_until,
)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _plain_node(workdir: Path) -> tuple[Engine, str, str]:
    (port,) = free_ports(1)
    workdir.mkdir(parents=True, exist_ok=True)
    node = Engine("plain", [str(VENV_BIN / "wsfs"), "serve", "--data", str(workdir / "data"), "--port", str(port),
                            "--no-seed"], workdir)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(url + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(up, "plain wsfs serve", node.proc, node.log)
    token = next(line.rsplit(" ", 1)[1] for line in node.log.read_text().splitlines() if "admin token" in line)
    return node, url, token


async def _latencies(targets: list[tuple[httpx.AsyncClient, str, str]], writes: int) -> list[list[float]]:
    """Seconds per sequential 200-byte PUT to each (client, node URL, workspace), interleaved write by
    write so that every target sees the same load on this shared machine."""
    for http, url, ws in targets:
        assert (await http.put(f"{url}/api/workspaces/{ws}")).status_code in (200, 201)
    times: list[list[float]] = [[] for _ in targets]
    for i in range(writes):
        for (http, url, ws), out in zip(targets, times):
            t0 = time.perf_counter()
            reply = await http.put(f"{url}/api/workspaces/{ws}/files/l{i}.txt", content=os.urandom(100).hex().encode())
            out.append(time.perf_counter() - t0)
            assert reply.status_code in (200, 201), reply.text
    return times


WRITERS_PER_CLIENT = 1  # httpx's pool with several requests in flight on one client was the bottleneck


async def _throughput(http: httpx.AsyncClient, url: str, ws: str, writers: int, total: int) -> float:
    """Acknowledged writes/s with `writers` concurrent writers, each with its own httpx client: with
    them all on one client, the client's own connection pool capped both baseline and cluster
    (against one cluster owner, load 6-11: 10 writers on one client 82 writes/s, on ten 223; 100
    writers on one client 37, on ten 150, on a hundred 158)."""
    assert (await http.put(f"{url}/api/workspaces/{ws}")).status_code in (200, 201)
    counter = iter(range(total))
    clients = [httpx.AsyncClient(headers=http.headers, timeout=60)
               for _ in range(-(-writers // WRITERS_PER_CLIENT))]

    async def writer(client: httpx.AsyncClient) -> None:
        for i in counter:
            reply = await client.put(f"{url}/api/workspaces/{ws}/files/t{i}.txt", content=b"x" * 200)
            assert reply.status_code in (200, 201), reply.text

    try:
        t0 = time.perf_counter()
        await asyncio.gather(*(writer(clients[n // WRITERS_PER_CLIENT]) for n in range(writers)))
        return total / (time.perf_counter() - t0)
    finally:
        for client in clients:
            await client.aclose()


async def _fanout(http: httpx.AsyncClient, owner: str, watchers: dict[str, str], token: str, ws: str,
                  writes: int, busy: int) -> dict[str, list[float]]:
    """Seconds from sending each PUT (through `owner`) to its event at each watcher; `busy` writers
    keep another workspace of the owner busy meanwhile."""
    from client_py import Client

    assert (await http.put(f"{owner}/api/workspaces/{ws}")).status_code in (200, 201)
    seen: dict[str, dict[str, float]] = {label: {} for label in watchers}
    arrived = asyncio.Event()

    async def watch(label: str, client: Client) -> None:
        async for event in client.workspace(ws).watch("/", after="now"):
            seen[label].setdefault(event.path, time.perf_counter())
            arrived.set()

    stop = asyncio.Event()

    async def background(n: int) -> None:
        i = 0
        while not stop.is_set():
            await http.put(f"{owner}/api/workspaces/{ws}-busy/files/b{n}-{i}.txt", content=b"x" * 200)
            i += 1

    clients = {label: Client(url, token=token) for label, url in watchers.items()}
    tasks = [asyncio.ensure_future(watch(label, client)) for label, client in clients.items()]
    busy_tasks: list[asyncio.Task[None]] = []
    try:
        await asyncio.sleep(1.0)  # subscriptions up
        if busy:
            assert (await http.put(f"{owner}/api/workspaces/{ws}-busy")).status_code in (200, 201)
            busy_tasks = [asyncio.ensure_future(background(n)) for n in range(busy)]
            await asyncio.sleep(0.5)
        sent: dict[str, float] = {}
        for i in range(writes):
            path = f"/fan{i}.txt"
            sent[path] = time.perf_counter()
            reply = await http.put(f"{owner}/api/workspaces/{ws}/files{path}", content=b"fan-out")
            assert reply.status_code in (200, 201), reply.text
            deadline = time.monotonic() + 10
            while not all(path in got for got in seen.values()):
                assert time.monotonic() < deadline, f"{path} not seen by every watcher within 10 s"
                arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(arrived.wait(), 1.0)
        return {label: [got[p] - t for p, t in sent.items()] for label, got in seen.items()}
    finally:
        stop.set()
        for task in tasks + busy_tasks:
            task.cancel()
        await asyncio.gather(*tasks, *busy_tasks, return_exceptions=True)
        for client in clients.values():
            await client.aclose()


async def _ack_steps(location, work: Path, rounds: int) -> tuple[dict[str, list[float]], int]:
    """The acknowledgement's own steps after a commit, three ways interleaved commit by commit on one
    store and one Litestream: before (httpx to the control socket, then the fence HEAD), the plain
    rule on the new control client (sync, then HEAD), and the fence window (sync; a HEAD beside it
    when the last is older than D/2; waited for only when none sent within D before the sync
    returned). Returns seconds per variant and the window's HEAD count."""
    from server.cluster.ownership import FENCE_WINDOW, fence_clock
    from server.cluster.replication import Litestream
    from vfs import Workspace

    db = work / "steps.db"
    with Workspace(db) as ws:
        ws.mkdir("/w")
    async with ObjectStore(location) as s3:
        key = location.key("steps", "manifest.json")
        etag = await s3.put_new(key, b'{"epoch": 1}')
        assert etag is not None
        litestream = await Litestream(location, log_path=work / "steps-litestream.log").start()
        old = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(litestream.socket_path)),
                                base_url="http://litestream")
        fenced, heads = [0.0], [0]

        async def head() -> None:
            sent = fence_clock()
            assert await s3.matches(key, etag)
            fenced[0], heads[0] = max(fenced[0], sent), heads[0] + 1

        async def before() -> None:
            reply = await old.post("/sync", json={"path": str(db.resolve()), "wait": True, "timeout": 5})
            reply.raise_for_status()
            assert await s3.matches(key, etag)

        async def plain() -> None:
            await litestream.sync(db)
            assert await s3.matches(key, etag)

        async def window() -> None:
            task = asyncio.ensure_future(head()) if fence_clock() - fenced[0] > FENCE_WINDOW / 2 else None
            await litestream.sync(db)
            synced = fence_clock()
            if fenced[0] < synced - FENCE_WINDOW and task is not None:
                await task
            if fenced[0] < synced - FENCE_WINDOW:
                await head()

        variants = {"before: httpx sync, then HEAD": before, "plain rule: sync, then HEAD": plain,
                    "fence window: sync, HEAD beside it every D/2": window}
        times: dict[str, list[float]] = {label: [] for label in variants}
        try:
            await litestream.register(db, location.key("steps", "e1"))
            with Workspace(db) as ws:
                for i in range(rounds):
                    for n, (label, step) in enumerate(variants.items()):
                        ws.write_file(f"/w/{i}-{n}", os.urandom(100))
                        t0 = time.perf_counter()
                        await step()
                        times[label].append(time.perf_counter() - t0)
        finally:
            await old.aclose()
            await litestream.stop()
        return times, heads[0]


FILE_KIB = int(os.environ.get("WSFS_BENCH_FILE_KIB", "1024"))  # size of each file the failover runs write


async def _fill(http: httpx.AsyncClient, url: str, ws: str, mib: int, writers: int = 8) -> int:
    """`mib` MiB of incompressible bytes in files of FILE_KIB, `writers` PUTs at a time (each
    acknowledged); how many PUTs were refused (503) and retried."""
    todo = iter(range(mib * 1024 // FILE_KIB))

    refused = 0

    async def writer() -> None:
        nonlocal refused
        for i in todo:
            body = os.urandom(FILE_KIB << 10)
            for _ in range(10):  # a 503 (not acknowledged in time) is retried, as a client would
                reply = await http.put(f"{url}/api/workspaces/{ws}/files/blob{i}.bin", content=body)
                if reply.status_code != 503:
                    break
                refused += 1
            assert reply.status_code in (200, 201), reply.text

    await asyncio.gather(*(writer() for _ in range(writers)))
    return refused


async def _failover(http: httpx.AsyncClient, owner: ServeNode, other: ServeNode, ws: str, mib: int
                    ) -> tuple[float, int, float, float]:
    """kill -9 of the owner of a workspace of `mib` MiB: (seconds to the next write acknowledged through
    `other`, bytes of the store file `other` restored, seconds to read every file back through `other`,
    seconds it took to write the workspace through its owner)."""
    assert (await http.put(f"{owner.url}/api/workspaces/{ws}")).status_code == 201
    t0 = time.monotonic()
    refused = await _fill(http, owner.url, ws, mib)
    filled = time.monotonic() - t0
    if refused:
        print(f"({ws}: {refused} PUTs refused with 503 while writing it, retried)", flush=True)
    owner.kill()
    killed = time.monotonic()
    last = ""
    while True:
        if time.monotonic() - killed > 300:
            raise RuntimeError(f"no failover of {ws} within 300 s; last answer: {last}")
        try:
            reply = await http.put(f"{other.url}/api/workspaces/{ws}/files/after.txt", content=b"after")
            if reply.status_code in (200, 201):
                break
            last = f"{reply.status_code} {reply.text[:300]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        await asyncio.sleep(0.05)
    failover = time.monotonic() - killed
    restored = sum(p.stat().st_size for p in other.workdir.rglob(f"{ws}.db*") if p.is_file())
    (store,) = other.workdir.rglob(f"{ws}.db")
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        verdict = conn.execute("PRAGMA quick_check(3)").fetchall()
    finally:
        conn.close()
    if verdict != [("ok",)]:
        print(f"({ws}: the restored store is DAMAGED: {str(verdict)[:300]})", flush=True)
    t0 = time.monotonic()
    for i in range(mib * 1024 // FILE_KIB):
        reply = await http.get(f"{other.url}/api/workspaces/{ws}/files/blob{i}.bin")
        assert reply.status_code == 200 and len(reply.content) == FILE_KIB << 10, (reply.status_code, reply.text[:300])
    return failover, restored, time.monotonic() - t0, filled


async def _failovers(http: httpx.AsyncClient, redis: RedisServer, location: object, work: Path,
                     engines: list[Engine], sizes: list[int], modes: list[str], compare_l1: float | None = None) -> None:
    """Failover per workspace size, chunks inside SQLite (the first pass) and as S3 objects, interleaved;
    with `compare_l1`, each mode also with Litestream compacting to L1 every `compare_l1` s (0: its defaults)."""
    kinds = [(mode, None) for mode in modes] + ([(mode, compare_l1) for mode in modes] if compare_l1 is not None else [])

    def env(mode: str, l1: float | None) -> dict[str, str]:
        return {"WSFS_CLUSTER_CHUNKS": mode} | ({} if l1 is None else {"WSFS_CLUSTER_L1_INTERVAL": f"{l1:g}"})

    def label(mode: str, l1: float | None) -> str:
        return mode if l1 is None else f"{mode}, L1 {l1:g} s" if l1 else f"{mode}, Litestream's compaction"

    survivors = {}
    for n, (mode, l1) in enumerate(kinds):
        node = ServeNode(f"s{n}-{mode}", work / f"s{n}-{mode}", redis.url, location, free_ports(1)[0],
                         args_log_level(), extra_env=env(mode, l1))
        engines.append(node)
        node.wait_ready()
        survivors[mode, l1] = node
    print(f"\nload average: {os.getloadavg()}\n")
    print("| workspace size | chunks | writing it (8 writers) | failover (kill -9 to next acknowledged write) "
          "| store file restored | reading it all back after | load |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for i, mib in enumerate(sizes):
        for n, (mode, l1) in enumerate(kinds):
            fresh = ServeNode(f"f{i}-{n}-{mode}", work / f"f{i}-{n}-{mode}", redis.url, location, free_ports(1)[0],
                              args_log_level(), extra_env=env(mode, l1))
            engines.append(fresh)
            fresh.wait_ready()
            seconds, restored, read, filled = await _failover(http, fresh, survivors[mode, l1], f"fo{i}-{n}-{mode}", mib)
            print(f"| {mib} MiB | {label(mode, l1)} | {filled:.1f} s | {seconds:.1f} s | {restored / (1 << 20):.1f} MiB "
                  f"| {read:.1f} s | {os.getloadavg()[0]:.1f} |", flush=True)


STACKS = {"h11": {"WSFS_HTTP": "h11", "WSFS_LOOP": "asyncio"},  # a cluster node's default today
          "httptools": {"WSFS_HTTP": "httptools", "WSFS_LOOP": "uvloop"}}  # a plain node's default


def _metric_sums(url: str, token: str, name: str) -> tuple[float, float]:
    """(sum, count) of one histogram on a node's /metrics."""
    text = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10).text
    found = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
             if line.startswith((name + "_sum", name + "_count"))}
    return found.get(name + "_sum", 0.0), found.get(name + "_count", 0.0)


async def run(args: argparse.Namespace, work: Path) -> None:
    redis = RedisServer(_dir(work / "redis"))
    seaweed = SeaweedS3(_dir(work / "seaweed"))
    engines: list[Engine] = [redis, seaweed]
    try:
        location = await new_bucket(seaweed, "bench")
        plain, plain_url, plain_token = _plain_node(work / "plain")
        engines.append(plain)
        token = admin_token(redis.url)
        if args.only == "failover":
            async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=120) as ch:
                await _failovers(ch, redis, location, work, engines, args.sizes, args.modes, args.compare_l1)
            return
        # per HTTP stack: an owner A and a node B that proxies to it (the first stack's are "a" and "b")
        pairs: dict[str, tuple[ServeNode, ServeNode]] = {}
        for n, stack in enumerate(args.stacks):
            names = ("a", "b") if n == 0 else (f"a-{stack}", f"b-{stack}")
            pairs[stack] = tuple(ServeNode(name, work / name, redis.url, location, port, "warning",  # type: ignore[misc]
                                           extra_env=STACKS[stack]) for name, port in zip(names, free_ports(2)))
            engines += pairs[stack]
        a, b = pairs[args.stacks[0]]
        # the plain rule (fence window 0: a HEAD after every sync, no takeover wait), for comparison
        plain_rule = ServeNode("p", work / "p", redis.url, location, free_ports(1)[0], "warning",
                               extra_env={"WSFS_CLUSTER_FENCE_WINDOW": "0", **STACKS[args.stacks[0]]})
        engines.append(plain_rule)
        compared = None
        if args.compare_l1 is not None:  # the same owner, another Litestream compaction
            compared = ServeNode("l1", work / "l1", redis.url, location, free_ports(1)[0], "warning",
                                 extra_env={"WSFS_CLUSTER_L1_INTERVAL": f"{args.compare_l1:g}",
                                            **STACKS[args.stacks[0]]})
            engines.append(compared)
        for node in (*(n for pair in pairs.values() for n in pair), plain_rule, *([compared] if compared else [])):
            node.wait_ready()
        if args.only == "cpu":
            async with httpx.AsyncClient(headers={"Authorization": f"Bearer {plain_token}"}, timeout=60) as ph, \
                    httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as ch:
                await _cpu_table(ph, plain_url, plain, ch, a, b, redis, seaweed, args.writes)
            return
        steps, window_heads = await _ack_steps(location, work, args.steps)
        print(f"\nload average: {os.getloadavg()}\n")
        print(f"| acknowledgement after the commit, {args.steps} each, interleaved | p50 ms | p99 ms | p50 / before |")
        print("| --- | --- | --- | --- |")
        first = _pct(next(iter(steps.values())), 0.5)
        for label, values in steps.items():
            print(f"| {label} | {_pct(values, 0.5) * 1e3:.1f} | {_pct(values, 0.99) * 1e3:.1f} "
                  f"| {_pct(values, 0.5) / first:.2f}x |")
        print(f"\n(the fence window sent {window_heads} HEADs for {args.steps} acknowledgements)")
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {plain_token}"}, timeout=60,
                                     limits=limits) as ph, \
                httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60, limits=limits) as ch:
            await _ack_latency(args, ph, plain_url, ch, pairs, plain_rule, token, compared)
            if args.only == "ack":
                return
            await _cpu_table(ph, plain_url, plain, ch, a, b, redis, seaweed, args.writes)
            print("\n| concurrent writers | one node writes/s | " + " | ".join(
                f"cluster ({s}) writes/s | ratio" for s in args.stacks)
                + f" | cluster ({args.stacks[0]}) via another node | ratio |")
            print("| --- | --- |" + " --- | --- |" * (len(args.stacks) + 1))
            for writers in (1, 10, 100):
                total = max(args.writes, writers * 3)
                one = await _throughput(ph, plain_url, f"tp{writers}", writers, total)
                cells = []
                for stack, (owner, _) in pairs.items():
                    clu = await _throughput(ch, owner.url, f"tp{writers}-{stack}", writers, total)
                    cells.append(f"{clu:.0f} | {clu / one:.2f}")
                # the same writers through B, which proxies every request to A (`ClusterProxy`)
                await _throughput(ch, a.url, f"tpb{writers}", 1, 1)  # created (owned) by A first
                via = await _throughput(ch, b.url, f"tpb{writers}", writers, total)
                cells.append(f"{via:.0f} | {via / one:.2f}")
                print(f"| {writers} | {one:.0f} | " + " | ".join(cells) + " |")
            print(f"\nload average: {os.getloadavg()}\n")
            print("| fan-out, write via A to event (ms) | p50 | p99 | p50 / same node | p99 / same node |")
            print("| --- | --- | --- | --- | --- |")
            for busy in (0, 10):
                got = await _fanout(ch, a.url, {"same": a.url, "cross": b.url}, token, f"fan{busy}",
                                    args.fanout, busy)
                s50, s99 = _pct(got["same"], 0.5), _pct(got["same"], 0.99)
                load = f", {busy} writers busy on A" if busy else ", idle"
                for label, side in (("subscriber on A (same node)", "same"), ("subscriber on B (cross-node)", "cross")):
                    p50, p99 = _pct(got[side], 0.5), _pct(got[side], 0.99)
                    print(f"| {label}{load} | {p50 * 1e3:.1f} | {p99 * 1e3:.1f} | {p50 / s50:.2f}x | {p99 / s99:.2f}x |")
            if args.sizes:
                await _failovers(ch, redis, location, work, engines, args.sizes, args.modes, args.compare_l1)
            print(f"\nload average: {os.getloadavg()}")
    finally:
        for engine in reversed(engines):
            engine.kill()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    """The direct children of a process (a node's Litestream)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


async def _cpu_table(ph: httpx.AsyncClient, plain_url: str, plain: Engine, ch: httpx.AsyncClient, a: ServeNode,
                     b: ServeNode, redis: Engine, seaweed: Engine, writes: int) -> None:
    """CPU per sequential write: one node, a cluster's owner A, and the same owner reached through B
    (B's own column is its proxying: routing, the lease look-up, the forwarded request)."""
    cluster_procs = {"wsfs serve": a.proc.pid, "SeaweedFS (S3)": seaweed.proc.pid, "Redis": redis.proc.pid}
    cluster_procs |= {"its Litestream": pid for pid in _children(a.proc.pid)[:1]}
    assert (await ch.put(f"{a.url}/api/workspaces/cpub")).status_code in (200, 201)  # owned by A
    await _cpu_per_write({"one node": (ph, plain_url, "cpu", {"wsfs serve": plain.proc.pid}),
                          "cluster owner A": (ch, a.url, "cpu", cluster_procs),
                          "owner A via node B": (ch, b.url, "cpub", {**cluster_procs, "proxying node B": b.proc.pid})},
                         writes)


async def _cpu_per_write(targets: dict[str, tuple[httpx.AsyncClient, str, str, dict[str, int]]], writes: int) -> None:
    """CPU milliseconds each process spends per acknowledged write: sequential 200-byte PUTs to one
    target at a time (a plain node, a cluster owner), each process's idle rate, measured just before,
    subtracted. Where the time of an acknowledgement goes, as work rather than waiting."""
    print("\n| CPU ms per sequential write | " + " | ".join(targets) + " |")
    print("| --- |" + " --- |" * len(targets))
    rows: dict[str, dict[str, float]] = {}
    for label, (http, url, workspace, procs) in targets.items():
        assert (await http.put(f"{url}/api/workspaces/{workspace}")).status_code in (200, 201)
        idle0 = {k: _cpu_seconds(p) for k, p in procs.items()}
        await asyncio.sleep(2.0)
        idle = {k: (_cpu_seconds(p) - idle0[k]) / 2.0 for k, p in procs.items()}
        before, mine, t0 = {k: _cpu_seconds(p) for k, p in procs.items()}, time.process_time(), time.perf_counter()
        for i in range(writes):
            reply = await http.put(f"{url}/api/workspaces/{workspace}/files/c{i}.txt", content=b"x" * 200)
            assert reply.status_code in (200, 201), reply.text
        elapsed = time.perf_counter() - t0
        rows[label] = {k: (_cpu_seconds(p) - before[k] - idle[k] * elapsed) / writes * 1e3 for k, p in procs.items()}
        rows[label]["the benchmark's client"] = (time.process_time() - mine) / writes * 1e3
    for name in dict.fromkeys(k for row in rows.values() for k in row):
        print(f"| {name} | " + " | ".join(f"{row[name]:.2f}" if name in row else "" for row in rows.values()) + " |")
    print(f"\n(load average {os.getloadavg()}; a negative figure is noise in the idle rate)")


async def _ack_latency(args: argparse.Namespace, ph: httpx.AsyncClient, plain_url: str, ch: httpx.AsyncClient,
                       pairs: dict[str, tuple[ServeNode, ServeNode]], plain_rule: ServeNode, token: str,
                       compared: ServeNode | None = None) -> None:
    """Sequential PUTs, interleaved write by write: the baseline, then per stack via the owner and via
    the other node, then the plain rule; with each owner's own acknowledgement time (commit to durable,
    `wsfs_cluster_ack_seconds` on its /metrics, a mean over the run) to split the end-to-end time."""
    targets = [(ph, plain_url, "lat")]
    labels = ["one node (baseline)"]
    for stack, (owner, other) in pairs.items():
        targets += [(ch, owner.url, f"lat-{stack}"), (ch, other.url, f"lat-{stack}")]
        labels += [f"cluster ({stack}), via the owner", f"cluster ({stack}), via another node"]
    targets.append((ch, plain_rule.url, "lat-plain"))
    labels.append("cluster, via the owner, plain rule (fence window 0)")
    owners = [owner for owner, _ in pairs.values()] + [plain_rule]
    if compared is not None:
        targets.append((ch, compared.url, "lat-l1"))
        l1 = args.compare_l1
        labels.append(f"cluster ({args.stacks[0]}), via the owner, L1 every {l1:g} s"
                      if l1 else f"cluster ({args.stacks[0]}), via the owner, Litestream's compaction defaults")
        owners.append(compared)
    before = [_metric_sums(node.url, token, "wsfs_cluster_ack_seconds") for node in owners]
    times = await _latencies(targets, args.writes)
    after = [_metric_sums(node.url, token, "wsfs_cluster_ack_seconds") for node in owners]
    acks = {node.name: (a[0] - b[0]) / max(1.0, a[1] - b[1]) for node, a, b in zip(owners, after, before)}
    print(f"\nload average: {os.getloadavg()}\n")
    print("| ack latency (ms) | p50 | p99 | p50 / baseline | p99 / baseline |")
    print("| --- | --- | --- | --- | --- |")
    b50, b99 = _pct(times[0], 0.5), _pct(times[0], 0.99)
    for label, values in zip(labels, times):
        p50, p99 = _pct(values, 0.5), _pct(values, 0.99)
        print(f"| {label} | {p50 * 1e3:.1f} | {p99 * 1e3:.1f} | {p50 / b50:.1f}x | {p99 / b99:.1f}x |")
    print("\n(the owners' own acknowledgement, commit to durable, mean per write including the proxied ones: "
          + ", ".join(f"{name} {seconds * 1e3:.1f} ms" for name, seconds in acks.items()) + ")")


def args_log_level() -> str:
    """The failover nodes' log level (`--log-level`; warning by default)."""
    return os.environ.get("WSFS_BENCH_LOG_LEVEL", "warning")


def _dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writes", type=int, default=200, help="sequential writes per latency run")
    parser.add_argument("--fanout", type=int, default=100, help="writes per fan-out run")
    parser.add_argument("--steps", type=int, default=150, help="acknowledgements per variant in the step comparison")
    parser.add_argument("--sizes-mib", default="1,100", help="workspace sizes for the failover runs (MiB)")
    parser.add_argument("--chunks", default="sqlite,objects",
                        help="chunk placements for the failover runs: sqlite (inside the replicated file), objects (S3)")
    parser.add_argument("--only", choices=("failover", "ack", "cpu"),
                        help="run only this part (ack: the acknowledgement steps and the ack latency table; "
                             "cpu: CPU per sequential write, one node, the owner, and the owner via another node)")
    parser.add_argument("--compare-l1", type=float, default=None, metavar="SECONDS",
                        help="add an owner (and failover nodes) whose Litestream compacts to L1 every SECONDS (0: Litestream's "
                             "defaults) to the ack latency table, beside the default (WSFS_CLUSTER_L1_INTERVAL)")
    parser.add_argument("--stacks", default="h11",
                        help="HTTP stacks of the cluster nodes, compared in one run: h11 (h11/asyncio), "
                             "httptools (httptools/uvloop); e.g. h11,httptools")
    parser.add_argument("--workdir", help="run in this directory and keep it (the nodes' logs); default: a temporary one")
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes_mib.split(",") if s]
    args.modes = [m for m in args.chunks.split(",") if m]
    args.stacks = [s for s in args.stacks.split(",") if s]
    if not args.stacks or any(s not in STACKS for s in args.stacks):
        parser.error(f"--stacks: one or more of {', '.join(STACKS)}")
    if args.workdir:  # kept afterwards: the nodes' logs
        asyncio.run(run(args, _dir(Path(args.workdir))))
        return
    with tempfile.TemporaryDirectory(prefix="wsfs-bench-cluster-") as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
