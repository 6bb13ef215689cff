"""Scale benchmark: many open, subscribed workspaces on one `wsfs serve`, and small writes vs a bare endpoint.

    .venv/bin/python bench/bench_scale.py                          # every point (bounded: ~3-6 min)
    .venv/bin/python bench/bench_scale.py --workspaces 10,100,1000 --rate 1 --small-clients 1,10,50
    .venv/bin/python bench/bench_scale.py --workspaces 1000 --no-small    # one curve only

The server is a real `python -m server serve` subprocess on 127.0.0.1; this
process is the client (a separate process). Raw HTTP/1.1 keep-alive requests
(a few lines of asyncio, cheaper than httpx) keep the client from being the
bottleneck.

- **workspaces N**: N workspaces created, each opened and subscribed by one
  WebSocket; a write load of `--rate` writes/s per workspace for
  `--load-seconds` (HTTP PUT of 100 B, spread evenly; `--rate 0`: none):
  write latency (request -> reply) and delivery latency (request sent -> the
  subscriber's `changes` frame) percentiles, achieved rate, server CPU. Then,
  `--sleep-wait` quiet seconds later (the workspaces have gone to sleep: no
  SQLite connection), RSS, descriptors (/proc/PID/fd) and their increase per
  workspace, threads, idle CPU over `--idle-window` seconds (from
  /proc/PID/stat); then the same load for `--wake-seconds` on the sleeping
  workspaces (each first write reopens its store).
- **small writes**: C clients (1/10/50) each PUT 100 B back to back for
  `--small-seconds`, against 1 and 10 workspaces, and the same against a bare
  uvicorn endpoint (same server settings, same route shape, reads the body
  and answers a JSON of the same size) in the same run: writes/s, p50/p99,
  server CPU per request, ratio wsfs / bare.
- **stacks** (`--stacks h11:asyncio,httptools:uvloop --pairs 4`): one wsfs
  server and one bare endpoint per uvicorn HTTP:LOOP pair, every point run
  `--pairs` times with the stacks interleaved (order alternating), then
  each stack's medians and its CPU per request against the first stack's.
- **subscribers S** (`--subs 100,1000,5000`): S subscribers on one
  workspace, 10 writes/s for `--load-seconds`: delivery p50/p99 and server
  CPU per delivery.
- **snapshot N** (`--snapshot-entries 1000000`): a workspace of N empty
  files (built with `vfs` before the server starts, ~100 s per million on
  this machine), subscribed once from the beginning (`after: null`): the
  snapshot's time and entries, and the server's RSS before, right after,
  and `--wait-close` seconds after the subscriber left (its store closed).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_server import Proc  # noqa: E402 - the same server-subprocess helper
from bench_server import RawHttp as Http  # noqa: E402 - the same hand-spoken HTTP/1.1 client
from scale_timeline import Timeline  # noqa: E402

BODY = b"x" * 100
_PATH = re.compile(rb'"path":"([^"]+)"')


# ---------------------------------------------------------------- process figures


def proc_figures(pid: int) -> dict[str, float]:
    """RSS (MiB; `anon_mib` of it the process's own heap, the rest mapped files such as a store's
    mmap'ed pages, which the kernel drops under pressure), threads, open descriptors, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {"rss_mib": int(fields["VmRSS"].split()[0]) / 1024,
            "anon_mib": round(int(fields["RssAnon"].split()[0]) / 1024, 1), "threads": int(fields["Threads"]),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def memory_map(pid: int) -> dict[str, float]:
    """Resident MiB by kind of mapping (/proc/PID/smaps): glibc's main heap (`[heap]`, brk), other
    anonymous mappings (threads' arenas and stacks, blocks malloc mapped on their own), mapped files."""
    kinds = {"heap": 0, "anon": 0, "files": 0}
    kind = "anon"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split(None, 5)
        if len(head) >= 5 and "-" in head[0] and not head[0].endswith(":"):
            name = head[5].strip() if len(head) > 5 else ""
            kind = "heap" if name == "[heap]" else "anon" if not name or name.startswith("[") else "files"
        elif line.startswith("Rss:"):
            kinds[kind] += int(line.split()[1])
    return {k: round(v / 1024, 1) for k, v in kinds.items()}


def cpu_seconds(pid: int) -> float:
    return sum(cpu_split(pid))


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of the process: the system share of a small write is the
    sockets' (loopback TCP charges the receiver's delivery to the sender) and SQLite's I/O."""
    parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(parts[11]) / tick, int(parts[12]) / tick


def runqueue_wait(pid: int) -> float:
    """Seconds the process's main thread (the event loop) has spent runnable but waiting for a CPU
    (`/proc/PID/schedstat`, second field): on a shared machine, what a write waits that no server
    change removes."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


async def idle_cpu(pid: int, window: float) -> float:
    """Percent of one core the process used over `window` seconds of nothing to do."""
    c0, t0 = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(window)
    return 100 * (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


_GC_LINE = re.compile(r'^wsfs_gc_(?:pause_seconds_(bucket|sum|count)|pause_cpu_seconds_(bucket)|(cpu)_seconds_total)'
                      r'\{generation="(\d)"(?:,le="([^"]+)")?\} (\S+)$')


def gc_pauses(server: Proc) -> dict[tuple[str, int, str], float]:
    """The server's garbage-collection pause histogram (`/metrics`, `wsfs_gc_pause_seconds`): {} from a
    server that does not export it (a `--root` tree before it)."""
    import httpx

    text = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {server.admin}"}, timeout=30).text
    found: dict[tuple[str, int, str], float] = {}
    for line in text.splitlines():
        m = _GC_LINE.match(line)
        if m:
            found[(m[1] or ("cpu_bucket" if m[2] else m[3]), int(m[4]), m[5] or "")] = float(m[6])
    return found


def gc_summary(before: dict[tuple[str, int, str], float], after: dict[tuple[str, int, str], float]) -> str:
    """Collections per generation between two `gc_pauses` readings: count, total and the longest bucket."""
    if not after:
        return "GC pauses not exported"
    parts = []
    for gen in range(3):
        n = after[("count", gen, "")] - before.get(("count", gen, ""), 0)
        total = 1000 * (after[("sum", gen, "")] - before.get(("sum", gen, ""), 0))
        cpu = 1000 * (after.get(("cpu", gen, ""), 0) - before.get(("cpu", gen, ""), 0))
        part = f"gen{gen} {n:.0f} ({total:.0f} ms, CPU {cpu:.0f} ms"
        for kind, what in (("bucket", ""), ("cpu_bucket", " of CPU")):
            bounds = [(float(le), after[k] - before.get(k, 0)) for k in after if k[0] == kind and k[1] == gen
                      for le in [k[2]]]
            if bounds:  # (the CPU histogram: not from a `--root` tree before it)
                below = min((b for b, c in bounds if c >= n), default=float("inf"))
                over25 = n - sum(c for b, c in bounds if b == 0.025)
                part += f", longest <= {1000 * below:g} ms{what}, {over25:.0f} > 25 ms{what}"
        parts.append(part + ")")
    return "GC: " + ", ".join(parts)


def full_gc(before: dict[tuple[str, int, str], float], after: dict[tuple[str, int, str], float]) -> str:
    """The server's full collections between two `gc_pauses` readings: count, wall and CPU ms."""
    if not after:
        return "not exported"
    n = after[("count", 2, "")] - before.get(("count", 2, ""), 0)
    wall = 1000 * (after[("sum", 2, "")] - before.get(("sum", 2, ""), 0))
    cpu = 1000 * (after.get(("cpu", 2, ""), 0) - before.get(("cpu", 2, ""), 0))
    return f"{n:.0f} ({wall:.0f} ms wall, {cpu:.0f} ms CPU)"


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def bare_app() -> Any:
    """The bare endpoint: the same route shape as a wsfs PUT, reads the body, answers a same-size JSON."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    reply = orjson.dumps({"path": "/f", "kind": "file", "size": 100, "mtime": 1.0, "mode": 420, "rev": 1,
                          "hash": "0" * 64})

    async def put(request: Request) -> Response:
        await request.body()
        return Response(reply, media_type="application/json")

    async def healthz(request: Request) -> Response:
        return Response(b'{"ok":true}', media_type="application/json")

    return Starlette(routes=[Route("/healthz", healthz),
                             Route("/api/workspaces/{ws}", put, methods=["PUT"]),
                             Route("/api/workspaces/{ws}/files/{path:path}", put, methods=["PUT"])])


def run_bare_server(stack: str) -> None:
    """The bare endpoint on uvicorn with the same settings as `wsfs serve` (`stack`: HTTP:LOOP)."""
    import uvicorn

    from server.runner import bind, make_config

    http, loop = stack.split(":")
    sock = bind("127.0.0.1", 0)
    print(f"URL http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    uvicorn.Server(make_config(bare_app(), lifespan="off", http=http, loop=loop)).run(sockets=[sock])


# ---------------------------------------------------------------- wsfs clients


class Refused(Exception):
    """The server closed a new WebSocket with 1013 (near its descriptor limit): try again later."""


class RawSubscriber(asyncio.Protocol):
    """One subscribed WebSocket spoken by hand: the handshake, then `hello` and `subscribe` at once,
    then frames cut from the stream and `changes` frames searched with a regex, pings answered.
    No library per frame (websockets parsed, unmasked, UTF-8-decoded and queued every frame, so two
    client processes holding 5,000 subscribers were slower than the server they measured)."""

    HELLO = orjson.dumps({"type": "hello", "protocol": 1})
    SUBSCRIBE = orjson.dumps({"type": "subscribe", "id": "b", "after": "now"})

    def __init__(self, subs: Subscribers, ws: str, path: str, host: str):
        self.subs, self.ws, self.path, self.host = subs, ws, path, host
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.buf = bytearray()
        self.upgraded = False
        self.transport: asyncio.Transport | None = None

    @staticmethod
    def masked(opcode: int, payload: bytes) -> bytes:
        """A client frame (masked with a zero key: the server unmasks it all the same)."""
        n = len(payload)
        head = bytes((0x80 | opcode, 0x80 | n)) if n < 126 else bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
        return head + b"\0\0\0\0" + payload

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write((f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n").encode())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before caught_up"))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.ready.set_exception(ConnectionError(bytes(buf[:40]).decode("latin-1")))
                return
            del buf[:end + 4]
            self.upgraded = True
            # after the 101, not with the request: uvicorn (websockets-sansio) leaves frames that came in
            # the request's own segment unread until more data arrives
            assert self.transport is not None
            self.transport.write(self.masked(0x1, self.HELLO) + self.masked(0x1, self.SUBSCRIBE))
        pos, n = 0, len(buf)
        while n - pos >= 2:
            b1 = buf[pos + 1] & 0x7F
            head = 2 if b1 < 126 else 4 if b1 == 126 else 10
            if n - pos < head:
                break
            size = b1 if b1 < 126 else int.from_bytes(buf[pos + 2:pos + head], "big")
            if n - pos < head + size:
                break
            self.frame(buf[pos] & 0x0F, bytes(buf[pos + head:pos + head + size]))
            pos += head + size
        del buf[:pos]

    def frame(self, opcode: int, payload: bytes) -> None:
        if opcode == 0x1:
            if payload.startswith(b'{"type":"changes"'):
                now = time.perf_counter()
                if self.subs.raw is not None:  # a worker: parsed after the load, not while it measures
                    self.subs.raw.append((now, self.ws, payload))
                else:
                    self.subs.record(now, self.ws, payload)
            elif not self.ready.done() and payload.startswith(b'{"type":"caught_up"'):
                self.ready.set_result(None)
        elif opcode == 0x9 and self.transport is not None:  # ping
            self.transport.write(self.masked(0xA, payload))
        elif opcode == 0x8 and not self.ready.done():  # closed before caught_up: 1013 means later
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self.ready.set_exception(Refused() if code == 1013 else ConnectionError(f"closed {code}"))


class Subscribers:
    """One subscribed WebSocket per (workspace, copy); records the first receipt time of each path."""

    def __init__(self, deferred: bool = False) -> None:
        self.conns: list[RawSubscriber] = []
        self.seen: dict[str, list[float]] = {}
        self.deliveries = 0
        # deferred: `changes` frames kept raw with their receipt time and parsed by `parse_raw` once the
        # load is over, so a client process spends its CPU on reading sockets while the clock runs
        self.raw: list[tuple[float, str, bytes]] | None = [] if deferred else None
        self.retries = 0  # connections refused with 1013 (the server near its descriptor limit) and retried

    async def add(self, url: str, token: str, ws: str) -> None:
        host, port = url.split("://", 1)[1].split(":")
        loop = asyncio.get_running_loop()
        for attempt in range(100):  # bounded; a server near its descriptor limit answers 1013: try again later
            _, sub = await loop.create_connection(
                lambda: RawSubscriber(self, ws, f"/api/workspaces/{ws}/ws?token={token}", f"{host}:{port}"),
                host, int(port))
            try:
                await asyncio.wait_for(sub.ready, 120)
                break
            except Refused:
                if attempt == 99:
                    raise
                self.retries += 1
                if sub.transport is not None:
                    sub.transport.close()
                await asyncio.sleep(0.2 + 0.01 * attempt)
        self.conns.append(sub)

    def record(self, now: float, ws: str, payload: bytes) -> None:
        """A `changes` frame of workspace `ws` received at `now`: each path's receipt, one delivery each."""
        for path in _PATH.findall(payload):
            self.seen.setdefault(f"{ws}{path.decode()}", []).append(now)
            self.deliveries += 1

    def parse_raw(self) -> None:
        """Turn the kept `changes` frames into `seen` and `deliveries` (deferred mode)."""
        for now, ws, payload in self.raw or ():
            self.record(now, ws, payload)
        self.raw = []

    async def close(self) -> None:
        for sub in self.conns:
            if sub.transport is not None:
                sub.transport.close()
        await asyncio.sleep(0.1)


async def bounded_gather(coros: list[Any], width: int = 50) -> None:
    for start in range(0, len(coros), width):
        await asyncio.gather(*coros[start:start + width])


async def create_workspaces(url: str, admin: str, names: list[str]) -> None:
    conns = [await Http.open(url) for _ in range(min(10, len(names)))]

    async def worker(k: int) -> None:
        for name in names[k::len(conns)]:
            for attempt in range(100):  # bounded: 503 near the descriptor limit means try again later
                status = await conns[k].request("PUT", f"/api/workspaces/{name}", b"", admin)
                if status != 503:
                    break
                conns[k].close()  # the server closes a refused connection
                await asyncio.sleep(0.2 + 0.01 * attempt)
                conns[k] = await Http.open(url)
            assert status in (200, 201), status

    await asyncio.gather(*(worker(k) for k in range(len(conns))))
    for c in conns:
        c.close()


async def write_load(url: str, token: str, names: list[str], rate: float, seconds: float,
                     subs: Subscribers, tag: str, timeline: Timeline | None = None) -> dict[str, float]:
    """`rate` writes/s per workspace, spread evenly, for `seconds`; open-loop, at most 200 in flight."""
    total = max(1, int(rate * len(names) * seconds))
    interval = seconds / total
    pool: asyncio.Queue[Http] = asyncio.Queue()
    for _ in range(min(200, total)):
        pool.put_nowait(await Http.open(url))
    sent: dict[str, float] = {}
    write_ms: list[float] = []
    took: dict[str, float] = {}  # each write's latency by key (`--timeline`)
    errors = 0
    statuses: dict[int, int] = {}  # the errors' HTTP statuses

    async def one(i: int) -> None:
        nonlocal errors
        conn = await pool.get()
        ws = names[i % len(names)]
        path = f"/{tag}{i}"
        t0 = time.perf_counter()
        sent[f"{ws}{path}"] = t0
        try:
            status = await conn.request("PUT", f"/api/workspaces/{ws}/files{path}", BODY, token)
            if status >= 300:
                errors += 1
                statuses[status] = statuses.get(status, 0) + 1
            write_ms.append((time.perf_counter() - t0) * 1000)
            took[f"{ws}{path}"] = write_ms[-1]
        finally:
            pool.put_nowait(conn)

    start = time.perf_counter()
    tasks = []
    for i in range(total):
        delay = start + i * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=seconds + 60)
    elapsed = time.perf_counter() - start
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and sum(1 for k in sent if k in subs.seen) < len(sent):
        await asyncio.sleep(0.05)
    delivery = [(min(subs.seen[k]) - t) * 1000 for k, t in sent.items() if k in subs.seen]
    if timeline is not None:
        timeline.stop()
        for k, t in sent.items():
            if k in took:
                timeline.write(t, took[k], (min(subs.seen[k]) - t) * 1000 if k in subs.seen else None)
    while not pool.empty():
        pool.get_nowait().close()
    return {"_sent": sent, "writes": total, "achieved_per_s": total / elapsed, "errors": errors,
            "statuses": statuses, "write_p50": pct(write_ms, 50), "write_p99": pct(write_ms, 99),
            "deliv_p50": pct(delivery, 50), "deliv_p99": pct(delivery, 99),
            "delivered": len(delivery)}


async def workspaces_point(server: Proc, n: int, args: argparse.Namespace, tag: str = "") -> dict[str, Any]:
    names = [f"w{n}x{tag}{i}" for i in range(n)]
    before = proc_figures(server.proc.pid)
    t0 = time.monotonic()
    await create_workspaces(server.url, server.admin, names)
    subs = Subscribers()
    await bounded_gather([subs.add(server.url, server.admin, name) for name in names], 100)
    row: dict[str, Any] = {"workspaces": n, "setup_s": time.monotonic() - t0}
    row["subscribed"] = proc_figures(server.proc.pid)
    row["subscribed"]["refused_1013"] = subs.retries
    g_load = gc_pauses(server)
    if args.rate > 0:  # every workspace awake (it was just opened): the steady active load
        row["load"], row["load_cpu_pct"], row["client_cpu_pct"] = await measured_load(
            server, names, args.rate, args.load_seconds, subs, "a")
    # quiet workspaces go to sleep (every SQLite connection closed) after the server's idle time
    await asyncio.sleep(max(1.0, args.sleep_wait))
    g_quiet = gc_pauses(server)  # (the full collection of the first quiet second after the load is in)
    row["full_gc"] = [full_gc(g_load, g_quiet)]
    spy = py_spy(server.proc.pid, args.idle_window, f"idle{n}")
    gc0 = gc_pauses(server)
    row["idle_cpu_pct"] = await idle_cpu(server.proc.pid, args.idle_window)
    row["idle_gc"] = gc_summary(gc0, gc_pauses(server))  # a quiet full collection may land in the window
    if spy is not None:
        spy.wait()
    if args.strace:  # after the CPU window (strace slows every syscall it sees): what wakes the idle server
        row["strace"] = strace_counts(server.proc.pid, args.idle_window)
    row.update(proc_figures(server.proc.pid))
    row["fds_per_ws"] = (row["fds"] - before["fds"] - n) / n  # beyond each subscriber's socket
    row["kib_per_ws"] = 1024 * (row["rss_mib"] - before["rss_mib"]) / n  # its subscriber included
    if args.rate > 0 and args.wake_seconds > 0:  # the same load on workspaces that were all asleep
        row["wake"] = (await measured_load(server, names, args.rate, args.wake_seconds, subs, "z"))[0]
        await asyncio.sleep(3)  # its first quiet second's full collection
        row["full_gc"].append(full_gc(g_quiet, gc_pauses(server)))
    await subs.close()
    return row


async def measured_load(server: Proc, names: list[str], rate: float, seconds: float, subs: Subscribers,
                        tag: str) -> tuple[dict[str, Any], float, float]:
    """`write_load`, with the server's and this client's CPU (percent of a core) meanwhile."""
    gc0 = gc_pauses(server)
    w0 = runqueue_wait(server.proc.pid)
    (u0, s0), t0, k0 = cpu_split(server.proc.pid), time.monotonic(), cpu_seconds(os.getpid())
    c0 = u0 + s0
    spy = py_spy(server.proc.pid, seconds, tag)
    timeline = None
    if TIMELINE:
        timeline = Timeline(server.proc.pid, TIMELINE, lambda: gc_pauses(server))
        timeline.start()
    # this client's own older-generation collections off during the load: at 60 s of 1,000 writes/s they
    # paused it 90-320 ms (its dicts of 60,000 sends and receipts), and a reply read late is a slow write
    young, mid, old = gc.get_threshold()
    gc.set_threshold(young, 1 << 30, 1 << 30)
    try:
        load = await write_load(server.url, server.admin, names, rate, seconds, subs, tag, timeline)
    finally:
        gc.set_threshold(young, mid, old)
    if timeline is not None:
        load["timeline"] = timeline.report(os.getloadavg())
    u1, s1 = cpu_split(server.proc.pid)
    load["user_sys_us"] = (1e6 * (u1 - u0) / load["writes"], 1e6 * (s1 - s0) / load["writes"])
    if spy is not None:
        spy.wait()
    load.pop("_sent")
    elapsed = time.monotonic() - t0
    load["gc"] = gc_summary(gc0, gc_pauses(server))
    load["gc"] += (f"; the loop waited for a CPU {100 * (runqueue_wait(server.proc.pid) - w0) / elapsed:.0f} % "
                   "of the time")
    return (load, 100 * (cpu_seconds(server.proc.pid) - c0) / elapsed,
            100 * (cpu_seconds(os.getpid()) - k0) / elapsed)


def strace_counts(pid: int, seconds: float) -> str:
    """The server's syscalls over `seconds` (`strace -c -f`, every thread): the busiest lines, per second."""
    done = subprocess.run(["timeout", "-s", "INT", str(seconds), "strace", "-c", "-f", "-p", str(pid)],
                          capture_output=True, text=True)
    lines = []
    for line in done.stderr.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
            lines.append((int(parts[3]), parts[-1]))
    lines.sort(reverse=True)
    return ", ".join(f"{name} {calls / seconds:.0f}/s" for calls, name in lines[:8]) or done.stderr[-300:]


TIMELINE: float = 0.0  # `--timeline SECONDS`: per-window figures of each measured load (bench/scale_timeline.py)
PY_SPY: str = ""  # `--py-spy PREFIX`: profile the server during each measured load (PREFIX-TAG.txt)


def py_spy(pid: int, seconds: float, tag: str) -> subprocess.Popen[bytes] | None:
    """py-spy (from this venv) sampling the server for `seconds`, collapsed stacks to PREFIX-TAG.txt."""
    if not PY_SPY:
        return None
    exe = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen([str(exe), "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))),
                             "--rate", "200", "--format", "raw", "--nonblocking", "-o", f"{PY_SPY}-{tag}.txt"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def small_writes(url: str, token: str, names: list[str], clients: int, seconds: float) -> dict[str, float]:
    conns = [await Http.open(url) for _ in range(clients)]
    lat: list[float] = []
    stop = time.perf_counter() + seconds

    async def loop(k: int) -> None:
        i = 0
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            status = await conns[k].request("PUT", f"/api/workspaces/{names[k % len(names)]}/files/s{k}_{i % 50}",
                                            BODY, token)
            assert status < 300, status
            lat.append((time.perf_counter() - t0) * 1000)
            i += 1

    start = time.perf_counter()
    await asyncio.gather(*(loop(k) for k in range(clients)))
    elapsed = time.perf_counter() - start
    for c in conns:
        c.close()
    return {"per_s": len(lat) / elapsed, "p50": pct(lat, 50), "p99": pct(lat, 99), "count": len(lat)}


class SnapshotSubscriber(RawSubscriber):
    """Subscribes from the beginning and only counts the entries (1M paths kept would weigh on this client)."""

    SUBSCRIBE = orjson.dumps({"type": "subscribe", "id": "s", "after": None})

    def frame(self, opcode: int, payload: bytes) -> None:
        if opcode == 0x1 and payload.startswith(b'{"type":"changes"'):
            self.subs.deliveries += payload.count(b'"path":')
        else:
            super().frame(opcode, payload)


SNAPSHOT_WS = "snap"


def build_snapshot_store(data: str, n: int) -> float:
    """`DATA/workspaces/snap.db` with `n` empty files in 1,000-file directories, before the server starts;
    the seconds it took."""
    import dataclasses

    import vfs

    t0 = time.monotonic()
    (Path(data) / "workspaces").mkdir(parents=True, exist_ok=True)
    ws = vfs.Workspace(str(Path(data) / "workspaces" / f"{SNAPSHOT_WS}.db"))
    try:
        ws.write_file("/f", b"")
        proto = ws.changes(0)[-1]
        for k in range(0, n - 1, 20_000):
            ws.apply_changes([dataclasses.replace(proto, path=f"/d{j // 1000}/f{j}")
                              for j in range(k, min(n - 1, k + 20_000))])
    finally:
        ws.close()
    return time.monotonic() - t0


async def snapshot_point(server: Proc, n: int, args: argparse.Namespace) -> None:
    """One subscriber reads the whole n-entry workspace from the beginning; RSS around it."""
    pid = server.proc.pid
    before = proc_figures(pid)["rss_mib"]
    host, port = server.url.split("://", 1)[1].split(":")
    subs = Subscribers()
    t0 = time.monotonic()
    _, sub = await asyncio.get_running_loop().create_connection(
        lambda: SnapshotSubscriber(subs, SNAPSHOT_WS, f"/api/workspaces/{SNAPSHOT_WS}/ws?token={server.admin}",
                                   f"{host}:{port}"), host, int(port))
    subs.conns.append(sub)
    await asyncio.wait_for(sub.ready, 600)
    took = time.monotonic() - t0
    right_after = proc_figures(pid)
    after = right_after["rss_mib"]
    await subs.close()
    print(f"  snapshot of {n} entries: {subs.deliveries} received in {took:.1f} s | RSS {before:.1f} MiB before, "
          f"{after:.1f} right after ({100 * (after - before) / before:+.0f} %; of it heap "
          f"{right_after['anon_mib']:.1f}, the rest mapped files: the store's pages, the libraries)", flush=True)
    if args.wait_close:
        await asyncio.sleep(args.wait_close)
        closed = proc_figures(pid)
        print(f"        {args.wait_close:g} s later (idle close): {closed}; RSS "
              f"{100 * (closed['rss_mib'] - before) / before:+.0f} % against before (goal: within 20 %)", flush=True)


async def sub_worker(url: str, token: str, ws: str, n: int) -> None:
    """A client process holding `n` subscribers: READY once subscribed, then on a stdin line its receipts."""
    subs = Subscribers(deferred=True)
    await bounded_gather([subs.add(url, token, ws) for _ in range(n)], 100)
    print("READY", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    subs.parse_raw()
    sys.stdout.write(orjson.dumps({"seen": subs.seen, "deliveries": subs.deliveries}).decode() + "\n")
    sys.stdout.flush()
    await subs.close()


async def subscribers_point(server: Proc, n: int, args: argparse.Namespace) -> dict[str, Any]:
    """n subscribers spread over `--sub-procs` client processes (perf_counter is CLOCK_MONOTONIC, shared
    by every process), plus one in this process that `write_load` waits on."""
    name = f"fan{n}"
    await create_workspaces(server.url, server.admin, [name])
    per = [n // args.sub_procs + (1 if k < n % args.sub_procs else 0) for k in range(args.sub_procs)]
    workers = [subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--sub-worker", server.url,
                                 server.admin, name, str(m)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True) for m in per if m]
    try:
        for w in workers:
            assert w.stdout is not None and w.stdout.readline().strip() == "READY"
        subs = Subscribers()
        await subs.add(server.url, server.admin, name)
        await asyncio.sleep(1.0)
        row: dict[str, Any] = {"subscribers": n}
        row.update(proc_figures(server.proc.pid))
        pids = [server.proc.pid] + [w.pid for w in workers]
        cpu0, w0 = [cpu_split(pid) for pid in pids], runqueue_wait(server.proc.pid)
        spy = py_spy(server.proc.pid, args.load_seconds, f"subs{n}")
        load = await write_load(server.url, server.admin, [name], 10, args.load_seconds, subs, "f")
        await asyncio.sleep(2.0)  # let the slowest worker receive the last commits
        cpu1, w1 = [cpu_split(pid) for pid in pids], runqueue_wait(server.proc.pid)
        if spy is not None:
            spy.wait()
        sent = load.pop("_sent")
        latencies: list[float] = []
        last: dict[str, float] = {}  # per write: its last subscriber's receipt (what the goal's p99 is about)
        deliveries = 0
        for w in workers:
            assert w.stdin is not None and w.stdout is not None
            w.stdin.write("\n")
            w.stdin.flush()
            report = orjson.loads(w.stdout.readline())
            deliveries += report["deliveries"]
            for key, times in report["seen"].items():
                if key in sent:
                    latencies.extend((t - sent[key]) * 1000 for t in times)
                    last[key] = max(last.get(key, 0.0), (max(times) - sent[key]) * 1000)
        load["deliv_p50"], load["deliv_p99"] = pct(latencies, 50), pct(latencies, 99)
        load["last_p50"], load["last_p99"] = pct(list(last.values()), 50), pct(list(last.values()), 99)
        load["delivered"] = len(latencies)
        row["load"] = load
        per = 1e6 / max(1, deliveries)
        (u0, s0), (u1, s1) = cpu0[0], cpu1[0]
        row["cpu_us_per_delivery"] = per * (u1 + s1 - u0 - s0)
        row["user_sys_us"] = (per * (u1 - u0), per * (s1 - s0))
        row["client_us_per_delivery"] = per * sum(b[0] + b[1] - a[0] - a[1] for a, b in zip(cpu0[1:], cpu1[1:]))
        row["loop_wait_ms"] = 1000 * (w1 - w0)  # the server's loop runnable but without a CPU, whole load
        await subs.close()
    finally:
        for w in workers:
            try:
                w.wait(30)
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait()
    return row


def start_wsfs(data: str, args: argparse.Namespace, stack: str) -> Proc:
    http, loop = stack.split(":")
    # without --stacks, no flags: the server's own default (and a `--root` tree older than the flags)
    flags = ["--http", http, "--loop", loop] if args.stacks_given else []
    cmd = [sys.executable, "-m", "server", "serve", "--data", data, "--port", "0", "--no-seed",
           "--log-level", "warning", *flags, *args.server_arg]
    log = Path(data).with_suffix(".log")  # beside the data directory (the server creates that)
    args.server_logs.append(log)
    return Proc(cmd, Path(args.root) if args.root else None, stderr=log.open("w"))


def start_bare(stack: str) -> Proc:
    return Proc([sys.executable, str(Path(__file__).resolve()), "--bare-server", stack])


async def small_point(server: Proc, bare: Proc, names: list[str], c: int, seconds: float) -> dict[str, float]:
    """C clients on `names` against wsfs, then the same against the bare endpoint: rates, latencies and
    server CPU per request of each."""
    c0 = cpu_seconds(server.proc.pid)
    w = await small_writes(server.url, server.admin, names, c, seconds)
    w_us = 1e6 * (cpu_seconds(server.proc.pid) - c0) / max(1, w["count"])
    c0 = cpu_seconds(bare.proc.pid)
    b = await small_writes(bare.url, "x", names, c, seconds)
    b_us = 1e6 * (cpu_seconds(bare.proc.pid) - c0) / max(1, b["count"])
    return {"w_per_s": w["per_s"], "w_p50": w["p50"], "w_p99": w["p99"], "w_us": w_us,
            "b_per_s": b["per_s"], "b_p50": b["p50"], "b_p99": b["p99"], "b_us": b_us}


def small_line(stack: str, c: int, nws: int, r: dict[str, float]) -> str:
    return (f"  small PUT 100 B, {c:>2} clients, {nws:>2} ws [{stack}] | wsfs {r['w_per_s']:6.0f}/s "
            f"p50 {r['w_p50']:5.1f} p99 {r['w_p99']:5.1f} ms {r['w_us']:4.0f} µs CPU | bare "
            f"{r['b_per_s']:6.0f}/s p50 {r['b_p50']:5.1f} p99 {r['b_p99']:5.1f} ms {r['b_us']:4.0f} µs "
            f"CPU | ratio {r['w_per_s'] / r['b_per_s']:.2f} (CPU per request: {r['b_us'] / max(1.0, r['w_us']):.2f})")


async def small_section(servers: dict[str, Proc], args: argparse.Namespace) -> None:
    """Small writes for every stack, `--pairs` rounds interleaved point by point (the stacks' order
    alternating), then each stack's medians and, with two stacks, the second's CPU per request over
    the first's."""
    names = [f"small{i}" for i in range(10)]
    for server in servers.values():
        await create_workspaces(server.url, server.admin, names)
    bares = {stack: start_bare(stack) for stack in servers}
    results: dict[tuple[str, int, int], list[dict[str, float]]] = {}
    try:
        for nws in (1, 10):
            for c in args.small_clients:
                for k in range(args.pairs):
                    order = list(servers) if k % 2 == 0 else list(reversed(servers))
                    for stack in order:
                        r = await small_point(servers[stack], bares[stack], names[:nws], c, args.small_seconds)
                        results.setdefault((stack, nws, c), []).append(r)
                        print(small_line(stack, c, nws, r), flush=True)
    finally:
        for bare in bares.values():
            bare.stop()
    if args.pairs == 1 and len(servers) == 1:
        return
    print(f"medians over {args.pairs} rounds (load average now {os.getloadavg()}):", flush=True)
    first = next(iter(servers))
    for (stack, nws, c), rows in results.items():
        med = {key: pct([r[key] for r in rows], 50) for key in rows[0]}
        line = small_line(stack, c, nws, med)
        if stack != first:
            base = results[(first, nws, c)]
            wins = sum(1 for a, b in zip(base, rows) if b["w_us"] < a["w_us"])
            line += (f" | vs {first}: wsfs CPU x{med['w_us'] / pct([r['w_us'] for r in base], 50):.2f}, "
                     f"bare CPU x{med['b_us'] / pct([r['b_us'] for r in base], 50):.2f}, "
                     f"wsfs CPU lower in {wins}/{len(rows)} pairs")
        print(line, flush=True)


async def roots_ab(args: argparse.Namespace) -> None:
    """`--roots A,B`: the workspaces point on a fresh server of each tree in turn, `--pairs` rounds
    (order alternating; a fresh server each time, so no round runs beside an earlier round's stores),
    then each tree's medians and, for every tree after the first, in how many rounds its CPU per
    write was lower."""
    print(f"load average at start: {os.getloadavg()}", flush=True)
    if not args.workspaces and args.subs:
        await roots_subs_ab(args)
        return
    stack = args.stacks[0]
    rows: dict[str, list[dict[str, Any]]] = {root: [] for root in args.roots}
    with tempfile.TemporaryDirectory(prefix="wsfs-bench-scale-") as data:
        for k in range(args.pairs):
            for i, root in enumerate(args.roots if k % 2 == 0 else args.roots[::-1]):
                args.root = root
                server = start_wsfs(str(Path(data) / f"r{k}t{i}"), args, stack)
                try:
                    row = await workspaces_point(server, args.workspaces[0], args, f"r{k}")
                finally:
                    server.stop()
                ld = row.pop("load")
                ld["cpu_us"] = row["load_cpu_pct"] * 1e4 / ld["achieved_per_s"]
                rows[root].append(ld)
                print(f"  round {k + 1} {root} (load {os.getloadavg()[0]:.1f}): {load_figures(ld)}, server CPU "
                      f"{row['load_cpu_pct']:.0f} % ({ld['cpu_us']:.0f} µs per write: user "
                      f"{ld['user_sys_us'][0]:.0f}, system {ld['user_sys_us'][1]:.0f}); idle CPU "
                      f"{row['idle_cpu_pct']:.1f} % over {args.idle_window:g} s, {args.sleep_wait:g} s after", flush=True)
                print(f"        full collections: after the load {row['full_gc'][0]}"
                      + (f"; after the wake load {row['full_gc'][1]}" if len(row["full_gc"]) > 1 else ""), flush=True)
                if "timeline" in ld:
                    print(ld.pop("timeline"), flush=True)
    first = args.roots[0]
    for root, results in rows.items():
        med = {key: pct([r[key] for r in results], 50) for key in
               ("cpu_us", "achieved_per_s", "write_p50", "write_p99", "deliv_p50", "deliv_p99")}
        line = (f"medians {root}: {med['cpu_us']:.0f} µs per write, {med['achieved_per_s']:.0f}/s, write p50/p99 "
                f"{med['write_p50']:.1f}/{med['write_p99']:.1f} ms, delivery p50/p99 {med['deliv_p50']:.1f}/"
                f"{med['deliv_p99']:.1f} ms")
        if root != first:
            wins = sum(1 for a, b in zip(rows[first], results) if b["cpu_us"] < a["cpu_us"])
            line += f"; CPU per write lower than {first} in {wins}/{len(results)} rounds"
        print(line, flush=True)
    print(f"load average at end: {os.getloadavg()}", flush=True)


async def roots_subs_ab(args: argparse.Namespace) -> None:
    """`--roots A,B --workspaces= --subs S`: the subscribers points on a fresh server of each tree in
    turn, `--pairs` rounds (order alternating), then each tree's medians and, for every tree after the
    first, in how many rounds its server CPU per delivery and its last-subscriber p99 were lower."""
    keys = ("cpu_us_per_delivery", "user_us", "sys_us", "loop_wait_ms", "client_us_per_delivery", "deliv_p50",
            "deliv_p99", "last_p50", "last_p99", "load")
    rows: dict[tuple[str, int], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="wsfs-bench-scale-") as data:
        for k in range(args.pairs):
            for i, root in enumerate(args.roots if k % 2 == 0 else args.roots[::-1]):
                args.root = root
                server = start_wsfs(str(Path(data) / f"r{k}t{i}"), args, args.stacks[0])
                try:
                    for n in args.subs:
                        row = await subscribers_point(server, n, args)
                        ld = row.pop("load")
                        print(f"  round {k + 1} {root} (load {os.getloadavg()[0]:.1f}):", flush=True)
                        print(subs_line(n, args, row, ld), flush=True)
                        rows.setdefault((root, n), []).append({**row, **ld, "user_us": row["user_sys_us"][0],
                                                               "sys_us": row["user_sys_us"][1],
                                                               "load": os.getloadavg()[0]})
                finally:
                    server.stop()
    first = args.roots[0]
    for (root, n), results in rows.items():
        med = {key: pct([r[key] for r in results], 50) for key in keys}
        line = (f"medians {root}, {n} subscribers (load {med['load']:.1f}): server {med['cpu_us_per_delivery']:.1f} "
                f"µs/delivery (user {med['user_us']:.1f}, system {med['sys_us']:.1f}), loop waited for a CPU "
                f"{med['loop_wait_ms']:.0f} ms, clients {med['client_us_per_delivery']:.1f}, delivery p50/p99 "
                f"{med['deliv_p50']:.1f}/{med['deliv_p99']:.1f} ms, last subscriber p50/p99 {med['last_p50']:.1f}/"
                f"{med['last_p99']:.1f} ms")
        if root != first:
            # the user part is the server's own code; the system part is mostly the kernel's loopback send,
            # which swings with how busy the receiving clients are (a sleeping receiver costs a wake-up)
            base = rows[(first, n)]
            wins = {key: sum(1 for a, b in zip(base, results) if b[key] < a[key])
                    for key in ("cpu_us_per_delivery", "user_us", "last_p99")}
            line += (f"; lower than {first}: CPU in {wins['cpu_us_per_delivery']}/{len(results)}, user CPU in "
                     f"{wins['user_us']}/{len(results)}, last p99 in {wins['last_p99']}/{len(results)} rounds")
        print(line, flush=True)
    print(f"load average at end: {os.getloadavg()}", flush=True)


async def run(args: argparse.Namespace) -> None:
    if args.roots:
        await roots_ab(args)
        return
    print(f"load average at start: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="wsfs-bench-scale-") as data:
        servers: dict[str, Proc] = {}
        try:
            for k, stack in enumerate(args.stacks):
                if args.snapshot_entries:
                    took = build_snapshot_store(str(Path(data) / f"s{k}"), args.snapshot_entries)
                    print(f"built a store of {args.snapshot_entries} files in {took:.0f} s", flush=True)
                servers[stack] = start_wsfs(str(Path(data) / f"s{k}"), args, stack)
                print(f"server [{stack}] pid {servers[stack].proc.pid}; at start: "
                      f"{proc_figures(servers[stack].proc.pid)}", flush=True)
            for n, k, stack in [(n, k, stack) for n in args.workspaces for k in range(args.pairs)
                                for stack in (args.stacks if k % 2 == 0 else args.stacks[::-1])]:
                server = servers[stack]
                print(f"  [{stack}] round {k + 1}:", flush=True)
                rss_before = proc_figures(server.proc.pid)["rss_mib"]
                map_before = memory_map(server.proc.pid)
                row = await workspaces_point(server, n, args, f"r{k}")
                print(f"  {n:>5} workspaces, just subscribed: {row['subscribed']}", flush=True)
                print(f"        idle window {args.idle_window:g} s: {row.pop('idle_gc')}", flush=True)
                if "strace" in row:
                    print(f"        idle syscalls: {row.pop('strace')}", flush=True)
                print(f"  {n:>5} workspaces | idle CPU {row['idle_cpu_pct']:5.1f} % | RSS {row['rss_mib']:6.1f} MiB | "
                      f"fds {row['fds']:>5} | threads {row['threads']:>4} | setup {row['setup_s']:.1f} s | per "
                      f"workspace: {row['fds_per_ws']:.2f} fds beyond its socket, {row['kib_per_ws']:.0f} KiB "
                      f"(subscriber included), {args.sleep_wait:g} s after subscribing", flush=True)
                ld = row.pop("load", None)
                if ld is not None:
                    print(f"        at {args.rate:g}/s each ({args.rate * n:g}/s in all): {load_figures(ld)}, delivered "
                          f"{ld['delivered']}/{ld['writes']}, server CPU {row['load_cpu_pct']:.0f} % "
                          f"({row['load_cpu_pct'] * 1e4 / ld['achieved_per_s']:.0f} µs per write: user "
                          f"{ld['user_sys_us'][0]:.0f}, system {ld['user_sys_us'][1]:.0f}) "
                          f"(client CPU {row['client_cpu_pct']:.0f} %)", flush=True)
                    if "timeline" in ld:
                        print(ld["timeline"], flush=True)
                wk = row.pop("wake", None)
                if wk is not None:
                    print(f"        waking them all, {args.rate:g}/s each for {args.wake_seconds:g} s: "
                          f"{load_figures(wk)}", flush=True)
                print(f"        full collections: from the load to the idle figures {row['full_gc'][0]}"
                      + (f"; from there to 3 s after the wake load {row['full_gc'][1]}" if len(row["full_gc"]) > 1
                         else ""), flush=True)
                print(f"        after unsubscribing: {proc_figures(server.proc.pid)}", flush=True)
                if args.wait_close:
                    await asyncio.sleep(args.wait_close)
                    closed = proc_figures(server.proc.pid)
                    back = 100 * (closed["rss_mib"] - rss_before) / rss_before
                    print(f"        {args.wait_close:g} s later (idle close): {closed}; RSS {back:+.0f} % against "
                          f"{rss_before:.1f} MiB before the point (goal: within 20 %)", flush=True)
                    map_after = memory_map(server.proc.pid)
                    print("        resident MiB by mapping, before -> after: " + ", ".join(
                        f"{k} {v:.1f} -> {map_after[k]:.1f}" for k, v in map_before.items()), flush=True)
            server = servers[args.stacks[0]]
            if args.snapshot_entries:
                await snapshot_point(server, args.snapshot_entries, args)
            for n in args.subs:
                row = await subscribers_point(server, n, args)
                ld = row.pop("load")
                print(subs_line(n, args, row, ld), flush=True)
            if args.small:
                await small_section(servers, args)
        finally:
            for server in servers.values():
                server.stop()
            for log in args.server_logs:  # what the server said, if anything (warnings and errors)
                said = log.read_text(errors="replace").splitlines() if log.exists() else []
                if said:
                    print(f"server log ({len(said)} lines), its last 20:", *said[-20:], sep="\n  ", flush=True)
    print(f"load average at end: {os.getloadavg()}", flush=True)


def subs_line(n: int, args: argparse.Namespace, row: dict[str, Any], ld: dict[str, Any]) -> str:
    """One subscribers point: deliveries, each write's last subscriber, the server's and clients' CPU."""
    return (f"  {n:>5} subscribers ({args.sub_procs} client procs) | RSS {row['rss_mib']:.1f} MiB fds "
            f"{row['fds']} | delivery p50 {ld['deliv_p50']:.1f} p99 {ld['deliv_p99']:.1f} ms "
            f"({ld['delivered']}), last subscriber p50 {ld['last_p50']:.1f} p99 {ld['last_p99']:.1f} ms | "
            f"write p50 {ld['write_p50']:.1f} p99 {ld['write_p99']:.1f} ms | server CPU "
            f"{row['cpu_us_per_delivery']:.1f} µs/delivery (user {row['user_sys_us'][0]:.1f}, system "
            f"{row['user_sys_us'][1]:.1f}), loop waited for a CPU {row['loop_wait_ms']:.0f} ms | clients "
            f"{row['client_us_per_delivery']:.1f} µs/delivery")


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def load_figures(d: dict) -> str:
    """One write load's figures: achieved rate, write and delivery p50/p99, errors."""
    return (f"{d['achieved_per_s']:.0f}/s, write p50 {d['write_p50']:.1f} p99 {d['write_p99']:.1f} ms, "
            f"delivery p50 {d['deliv_p50']:.1f} p99 {d['deliv_p99']:.1f} ms, errors {d['errors']}"
            + (f" {d['statuses']}" if d.get("statuses") else "")
            + (f"; {d['gc']}" if "gc" in d else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspaces", type=ints, default=[10, 100, 1000], help="points, e.g. 10,100,1000,10000")
    parser.add_argument("--rate", type=float, default=1.0, help="writes/s per workspace during the load")
    parser.add_argument("--load-seconds", type=float, default=5.0)
    parser.add_argument("--idle-window", type=float, default=5.0)
    parser.add_argument("--sleep-wait", type=float, default=35.0,
                        help="quiet seconds before the idle figures (the server's idle time is 20 s, its sweep 10 s)")
    parser.add_argument("--server-arg", action="append", default=[],
                        help="an extra `wsfs serve` argument, e.g. --server-arg=--ws-ping-interval=60")
    parser.add_argument("--root", default="",
                        help="run the wsfs server from this source tree (e.g. `git archive REV` unpacked: A/B runs)")
    parser.add_argument("--roots", type=lambda t: [x for x in t.split(",") if x], default=[],
                        help="A/B: trees to run the first --workspaces point on, a fresh server each round, "
                             "--pairs rounds interleaved (e.g. --roots /tmp/old,/tmp/new --pairs 4)")
    parser.add_argument("--wake-seconds", type=float, default=2.0,
                        help="seconds of the same write load once every workspace is asleep (0: none)")
    parser.add_argument("--nofile", type=int, default=0,
                        help="raise this process's (and so the server's) hard open-file limit to this (needs root)")
    parser.add_argument("--wait-close", type=float, default=0.0,
                        help="seconds to wait after each point for the idle close (60 s + a 10 s sweep), e.g. 75")
    parser.add_argument("--snapshot-entries", type=int, default=0,
                        help="a workspace of this many files read once from the beginning, e.g. 1000000 (0: none)")
    parser.add_argument("--subs", type=ints, default=[], help="subscriber points on one workspace, e.g. 1000,5000")
    parser.add_argument("--small-clients", type=ints, default=[1, 10, 50])
    parser.add_argument("--small-seconds", type=float, default=3.0)
    parser.add_argument("--no-small", dest="small", action="store_false")
    parser.add_argument("--sub-procs", type=int, default=4, help="client processes holding the --subs subscribers")
    parser.add_argument("--py-spy", default="", metavar="PREFIX",
                        help="profile the server with py-spy during each measured load: PREFIX-TAG.txt (collapsed)")
    parser.add_argument("--strace", action="store_true",
                        help="count the idle server's syscalls (strace -c) for another --idle-window seconds "
                             "(it undercounts the loop's socket writes: docs/server.md, seventh pass)")
    parser.add_argument("--stacks", type=lambda t: [x for x in t.split(",") if x], default=[],
                        help="uvicorn HTTP:LOOP stacks to compare, one wsfs server and one bare endpoint each, "
                             "e.g. h11:asyncio,httptools:uvloop (default: wsfs serve's own)")
    parser.add_argument("--timeline", type=float, default=0.0, metavar="SECONDS",
                        help="per-window figures of each workspaces load (write/delivery p99, the server's and "
                             "this client's CPU wait, CPU and collections per window: bench/scale_timeline.py)")
    parser.add_argument("--pairs", type=int, default=1,
                        help="rounds of every point, the stacks interleaved (their order alternating)")
    parser.add_argument("--bare-server", metavar="HTTP:LOOP", help=argparse.SUPPRESS)
    parser.add_argument("--sub-worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        run_bare_server(args.bare_server)
        return
    args.stacks_given = bool(args.stacks)
    args.server_logs = []
    if not args.stacks:
        from server.httpstack import server_stack

        args.stacks = [":".join(server_stack().values())]
    global PY_SPY, TIMELINE
    PY_SPY = args.py_spy
    TIMELINE = args.timeline
    if args.sub_worker:
        url, token, ws, n = args.sub_worker
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        # uvloop, as the server: a socket's read costs the client process ~half of asyncio's selector loop
        uvloop.run(sub_worker(url, token, ws, int(n)))
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if args.nofile > hard:
        try:  # inherited by the server subprocess: 10,000 workspaces opening at once hold ~8 descriptors each
            resource.setrlimit(resource.RLIMIT_NOFILE, (args.nofile, args.nofile))
            hard = args.nofile
        except (ValueError, OSError) as e:
            print(f"hard open-file limit stays {hard}: {e}", flush=True)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the client holds one socket per subscriber
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
